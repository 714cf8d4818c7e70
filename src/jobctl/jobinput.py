"""Reading what a job is given: a text file (or stdin) becomes `input.text`, JSON the rest.

One reader for `jobctl submit` and the dashboard's submit dialog. Everything is
checked before anything is sent, and every failure is a UsageError that names
its source (the file, stdin, `--input`...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from jobctl.errors import UsageError

MAX_FILE_BYTES = 1024 * 1024  # the embedded server's input limit


@dataclass(frozen=True)
class Stdin:
    """Where `-` reads from, and whether that is a terminal (then there is nothing to read)."""

    stream: IO[str]
    is_tty: bool


def read_bytes(name: str, stdin: Stdin | None = None) -> bytes:
    """A file's bytes (`-`: stdin's), at most MAX_FILE_BYTES."""
    if name == "-":
        if stdin is None or stdin.is_tty:
            raise UsageError(
                "reading the input from stdin, but stdin is a terminal; pipe a file in"
            )
        buffer = getattr(stdin.stream, "buffer", None)
        data = buffer.read(MAX_FILE_BYTES + 1) if buffer else stdin.stream.read().encode()
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


def text_of(name: str, data: bytes) -> str:
    """UTF-8 text that is not empty and not binary."""
    if b"\x00" in data:
        raise UsageError(f"{name}: looks like a binary file; submit text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not UTF-8 text") from None
    if not text.strip():
        raise UsageError(f"{name}: is empty")
    return text


def json_object(source: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}: invalid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(value, dict):
        raise UsageError(f"{source}: must be a JSON object, like '{{\"steps\": 3}}'")
    return value


def job_input(
    file: str | None,
    input_json: str | None,
    input_file: str | Path | None = None,
    *,
    stdin: Stdin | None = None,
    json_source: str = "--input",
    file_word: str = "FILE",
) -> dict[str, Any]:
    """FILE's text (and name) plus the JSON input, given inline or in a file.

    `json_source` and `file_word` name the sources in messages as the caller shows
    them (`--input` and FILE on the command line; "input JSON" and "the file" in the
    dashboard). Raises UsageError when there is nothing to submit."""
    if input_json is not None and input_file is not None:
        raise UsageError("give --input or --input-file, not both")
    data: dict[str, Any] = {}
    if input_json is not None:
        data = json_object(json_source, input_json)
    elif input_file is not None:
        input_file = str(input_file)
        text = text_of(input_file, read_bytes(input_file, stdin))
        data = json_object(f"--input-file {input_file}", text)
    if file is not None:
        if "text" in data:
            others = json_source if input_file is None else "--input-file"
            raise UsageError(f"input.text given twice: by {file_word} and by {others}")
        name = "stdin" if file == "-" else file
        data["text"] = text_of(name, read_bytes(file, stdin))
        if file != "-":
            data["filename"] = Path(file).name
    elif input_json is None and input_file is None:
        raise UsageError("nothing to submit: give a FILE (or - for stdin), --input or --input-file")
    return data
