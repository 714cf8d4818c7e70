"""What this machine submitted last, per profile, for `jobctl watch --last`.

`<data dir>/last-submit.json`: {"<profile>": {"ids": [...], "at": "<ISO time>"}}.
Written by `submit` (one record per invocation: the jobs it created), read by
`watch --last`. A lost or unreadable file only means nothing is recorded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FILE_NAME = "last-submit.json"


def _path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def _read(data_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(_path(data_dir).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_submit(data_dir: Path, profile: str, job_ids: Sequence[str]) -> None:
    data = _read(data_dir)
    data[profile] = {"ids": list(job_ids), "at": datetime.now(UTC).isoformat()}
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = _path(data_dir).with_name(f"{FILE_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, _path(data_dir))  # atomic: concurrent submits leave one whole record


def last_submit(data_dir: Path, profile: str) -> list[str]:
    entry = _read(data_dir).get(profile)
    ids = entry.get("ids") if isinstance(entry, dict) else None
    return [str(i) for i in ids] if isinstance(ids, list) else []
