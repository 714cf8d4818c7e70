"""Reading what `jobctl submit` sends: a text file or stdin, and JSON input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jobctl.commands.context import Context
from jobctl.errors import UsageError

MAX_FILE_BYTES = 1024 * 1024  # the embedded server's input limit


def _read_bytes(name: str, ctx: Context) -> bytes:
    if name == "-":
        if ctx.stdin_tty:
            raise UsageError(
                "reading the input from stdin, but stdin is a terminal; pipe a file in"
            )
        buffer = getattr(ctx.stdin, "buffer", None)
        data = buffer.read(MAX_FILE_BYTES + 1) if buffer else ctx.stdin.read().encode()
        if len(data) > MAX_FILE_BYTES:
            raise UsageError(f"stdin: over the {MAX_FILE_BYTES // 1024} KiB input limit")
        return bytes(data)
    path = Path(name)
    if not path.exists():
        raise UsageError(f"{name}: no such file")
    if path.is_dir():
        raise UsageError(f"{name}: is a directory, not a file")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UsageError(
                f"{name}: {size / 1024 / 1024:.1f} MiB is over the "
                f"{MAX_FILE_BYTES // 1024} KiB input limit"
            )
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{name}: cannot read: {exc.strerror}") from None


def _text_of(name: str, data: bytes) -> str:
    if b"\x00" in data:
        raise UsageError(f"{name}: looks like a binary file; submit text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not UTF-8 text") from None
    if not text.strip():
        raise UsageError(f"{name}: is empty")
    return text


def _json_object(source: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}: invalid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(value, dict):
        raise UsageError(f"{source}: must be a JSON object, like '{{\"steps\": 3}}'")
    return value


def build_input(
    file: str | None, input_json: str | None, input_file: Path | None, ctx: Context
) -> dict[str, Any]:
    """FILE's text (and name) plus --input or --input-file, checked before anything is sent."""
    if input_json is not None and input_file is not None:
        raise UsageError("give --input or --input-file, not both")
    data: dict[str, Any] = {}
    if input_json is not None:
        data = _json_object("--input", input_json)
    elif input_file is not None:
        raw = _read_bytes(str(input_file), ctx)
        data = _json_object(f"--input-file {input_file}", _text_of(str(input_file), raw))
    if file is not None:
        if "text" in data:
            raise UsageError("input.text given twice: by FILE and by --input/--input-file")
        name = "stdin" if file == "-" else file
        data["text"] = _text_of(name, _read_bytes(file, ctx))
        if file != "-":
            data["filename"] = Path(file).name
    elif input_json is None and input_file is None:
        raise UsageError("nothing to submit: give a FILE (or - for stdin), --input or --input-file")
    return data
