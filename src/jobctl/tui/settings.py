"""Dashboard settings: the `[tui]` table of the config file, plus what the launcher knows.

    [tui]
    bell = false          # ring the terminal bell when a job ends
    osc9 = false          # also send an OSC 9 desktop notification (iTerm2, kitty, WezTerm...)
    readonly = false      # same as `jobctl tui --readonly`
    columns = ["id", "type", "status", "progress", "time", "age", "message"]

    [tui.keys]            # binding id = key(s), comma-separated; see KEYS for the ids
    retry = "R"
    cancel = "ctrl+x"

Keys are rebound through Textual's keymap (binding ids), so the footer and `?`
show the keys the user chose. No Textual import here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobctl.config import read_file
from jobctl.errors import UsageError

# The table's columns (tui/widgets/jobs_table.py has the same names; no Textual here).
COLUMNS = ("id", "type", "status", "progress", "time", "age", "attempt", "message")
DEFAULT_COLUMNS = ("id", "type", "status", "progress", "time", "age", "message")

# binding id -> (default key, what it does)
KEYS: dict[str, tuple[str, str]] = {
    "open": ("enter", "Open the job's details"),
    "submit": ("s", "Submit a job"),
    "retry": ("r", "Retry the marked jobs, or the selected one"),
    "cancel": ("c", "Cancel the marked jobs, or the selected one (asks first)"),
    "copy_id": ("y", "Copy the job id (OSC 52)"),
    "filter": ("slash", "Filter: words, status:failed, type:demo, id:1a2b"),
    "mark": ("space", "Mark or unmark the row"),
    "mark_all": ("a", "Mark every row shown, or clear the marks"),
    "sort": ("greater_than_sign", "Sort by the next column (shown in the header)"),
    "sort_back": ("less_than_sign", "Sort by the previous column"),
    "sort_invert": ("I", "Invert the sort"),
    "columns": ("C", "Choose the columns"),
    "window": ("w", "Time window: all, last hour, today"),
    "open_last": ("o", "Open the last notification's job (or its jobs)"),
    "schedules": ("S", "Schedules: next run, last outcome; pause, resume, trigger"),
    "events": ("E", "Events received: the jobs they started; replay"),
    "pause": ("p", "Pause or resume the schedule (asks for an optional note)"),
    "trigger": ("t", "Run the schedule now, once"),
    "replay": ("r", "Replay the event: the same event again, new jobs"),
    "refresh": ("ctrl+r", "Refresh now (the view also refreshes every few seconds)"),
    "back": ("escape", "Back; clear the filter and marks"),
    "help": ("question_mark", "Show the keys"),
    "quit": ("q", "Quit (on a sub-view: back)"),
}
MUTATING_ACTIONS = frozenset({"submit", "retry", "cancel", "pause", "trigger", "replay"})
READONLY_NOTE = "read-only (--readonly or [tui] readonly): {verb} is turned off"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class TuiSettings:
    readonly: bool = False
    keys: dict[str, str] = field(default_factory=dict)  # binding id -> keys (overrides)
    bell: bool = False
    osc9: bool = False
    target: str = ""  # shown in the header: profile and URL
    columns: tuple[str, ...] = DEFAULT_COLUMNS
    clock: Callable[[], datetime] = _now
    max_jobs: int = 10_000  # rows loaded at start (pages of 500)
    stats_interval: float = 5.0
    log_interval: float = 1.0
    tick_interval: float = 1.0  # redraw ages and durations
    history_interval: float = 5.0  # the schedules and events views poll this often

    def key_for(self, binding_id: str) -> str:
        return self.keys.get(binding_id) or KEYS[binding_id][0]


def _bool(table: Mapping[str, Any], key: str, where: Path) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise UsageError(f"{where}: tui.{key} must be true or false")
    return value


def _columns(table: Mapping[str, Any], where: Path) -> tuple[str, ...]:
    value = table.get("columns", list(DEFAULT_COLUMNS))
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise UsageError(f'{where}: tui.columns must be a list of names, like ["id", "status"]')
    unknown = [c for c in value if c not in COLUMNS]
    if unknown:
        raise UsageError(
            f"{where}: unknown column(s) in tui.columns: {', '.join(unknown)} "
            f"(known: {', '.join(COLUMNS)})"
        )
    return tuple(c for c in COLUMNS if c in value or c == "id")


def tui_settings_from_file(path: Path, *, readonly: bool = False, target: str = "") -> TuiSettings:
    data = read_file(path)
    table = data.get("tui") or {}
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tui] must be a table")
    keys = table.get("keys") or {}
    if not isinstance(keys, dict):
        raise UsageError(f"{path}: [tui.keys] must be a table")
    unknown = sorted(set(keys) - set(KEYS))
    if unknown:
        raise UsageError(
            f"{path}: unknown key binding(s) in [tui.keys]: {', '.join(unknown)} "
            f"(known: {', '.join(KEYS)})"
        )
    bad = [k for k, v in keys.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise UsageError(f'{path}: [tui.keys] {bad[0]} must be a key name such as "R"')
    return TuiSettings(
        readonly=readonly or _bool(table, "readonly", path),
        columns=_columns(table, path),
        keys={k: v.strip() for k, v in keys.items()},
        bell=_bool(table, "bell", path),
        osc9=_bool(table, "osc9", path),
        target=target,
    )
