"""The status glyphs, one set for the command line and the dashboard.

Every status is shown as a glyph and its word, so nothing is told by colour alone.
Running is ▶ (not ●) so that it never looks like the dashboard's "● realtime".
"""

from __future__ import annotations

from jobctl.models import JobStatus

STATUS_GLYPHS: dict[JobStatus, str] = {
    JobStatus.PENDING: "○",
    JobStatus.RUNNING: "▶",
    JobStatus.COMPLETED: "✔",
    JobStatus.FAILED: "✖",
    JobStatus.CANCELLED: "⊘",
}
# A step's status: running, completed or failed.
STEP_GLYPHS: dict[str, str] = {"running": "▶", "completed": "✔", "failed": "✖", "pending": "○"}
