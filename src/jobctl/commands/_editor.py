"""Editing a JSON object in the user's editor ($VISUAL, then $EDITOR, then vi)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from jobctl.commands.context import Context
from jobctl.errors import UsageError


def edit_json(value: dict[str, Any], ctx: Context, name: str) -> dict[str, Any] | None:
    """The edited object, or None when the file was saved unchanged (the edit is cancelled)."""
    editor = ctx.env.get("VISUAL") or ctx.env.get("EDITOR") or "vi"
    original = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    folder = tempfile.mkdtemp(prefix="jobctl-")
    path = Path(folder) / name
    try:
        path.write_text(original)
        try:
            code = subprocess.call([*shlex.split(editor), str(path)], env=dict(ctx.env))
        except OSError as exc:
            raise UsageError(f"cannot start the editor {editor!r}: {exc.strerror}") from None
        if code != 0:
            raise UsageError(f"the editor {editor!r} exited with status {code}; nothing retried")
        text = path.read_text()
    finally:
        path.unlink(missing_ok=True)
        os.rmdir(folder)
    if text == original or _same(text, value):
        return None
    try:
        edited = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"edited input: invalid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(edited, dict):
        raise UsageError("edited input: must be a JSON object")
    return edited


def _same(text: str, value: dict[str, Any]) -> bool:
    try:
        return bool(json.loads(text) == value)
    except json.JSONDecodeError:
        return False
