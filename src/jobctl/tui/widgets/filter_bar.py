"""The `/` filter line: words, `status:failed,running`, `type:demo`, `notice:3`.

What is wrong with the filter is said on the same line, as it is typed (an
unknown status matches nothing until it is fixed): no toast per keystroke.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Static

PLACEHOLDER = "filter: words  status:failed  type:demo   (Enter keeps it, Esc clears)"


class FilterInput(Input):
    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=False)]

    def action_clear_filter(self) -> None:
        bar = self.parent
        if isinstance(bar, FilterBar):
            bar.action_clear_filter()


class FilterBar(Horizontal):
    @dataclass
    class Applied(Message):
        """The filter text changed (live while typing), or was kept (done=True)."""

        text: str
        done: bool = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input = FilterInput(placeholder=PLACEHOLDER, id="filter-input")
        self.error = Static("", id="filter-error")

    def compose(self) -> ComposeResult:
        yield self.input
        yield self.error

    @property
    def value(self) -> str:
        return self.input.value

    @value.setter
    def value(self, text: str) -> None:
        with self.input.prevent(Input.Changed):
            self.input.value = text

    def focus(self, scroll_visible: bool = True) -> FilterBar:
        self.input.focus(scroll_visible)
        return self

    def show_errors(self, errors: tuple[str, ...]) -> None:
        """Say on this line what is wrong, or nothing when all is well."""
        text = Text(f"✖ matches nothing: {'; '.join(errors)}") if errors else Text("")
        self.error.update(text)
        self.error.display = bool(errors)
        self.set_class(bool(errors), "-error")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Applied(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Applied(event.value, done=True))

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Applied("", done=True))
