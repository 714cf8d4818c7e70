"""The `/` filter line: words, `status:failed,running`, `type:demo`."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input

PLACEHOLDER = "filter: words  status:failed  type:demo   (Enter keeps it, Esc clears)"


class FilterBar(Input):
    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=False)]

    @dataclass
    class Applied(Message):
        """The filter text changed (live while typing), or was kept (done=True)."""

        text: str
        done: bool = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(placeholder=PLACEHOLDER, **kwargs)  # type: ignore[arg-type]

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Applied(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Applied(event.value, done=True))

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Applied("", done=True))
