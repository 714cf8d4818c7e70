"""The text on the screen, as a list of lines (for assertions that read like the screen)."""

from __future__ import annotations

from textual.app import App


def screen_lines(app: App[object]) -> list[str]:
    strips = app.screen._compositor.render_strips()
    return ["".join(segment.text for segment in strip).rstrip() for strip in strips]


def screen_text(app: App[object]) -> str:
    return "\n".join(screen_lines(app))


def highlighted_lines(app: App[object]) -> list[str]:
    """Lines with text drawn in the table's cursor style, reverse video (a scrollbar's
    thumb is drawn so too, but has no letters)."""
    lines = []
    for strip in app.screen._compositor.render_strips():
        if any(
            s.style is not None and s.style.reverse and any(c.isalnum() for c in s.text)
            for s in strip
        ):
            lines.append("".join(s.text for s in strip).rstrip())
    return lines
