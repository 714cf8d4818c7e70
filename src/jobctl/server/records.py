"""Server-side rows, as the store returns them, and their API (JSON) shape."""

from __future__ import annotations

import json
import json.encoder
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobctl.jobshape import JOB_FIELD_NAMES, JOB_FIELDS, Kind
from jobctl.server.inputs import json_depth

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "pending",
    "running",
    "completed",
    "failed",
    "cancelled",
)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
STATUSES = (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED)


def now_us() -> int:
    return time.time_ns() // 1000


_SECONDS: dict[int, str] = {}  # second since the epoch -> "YYYY-MM-DDTHH:MM:SS"


_VERSION_4 = (0xF000 << 64) | (0xC000 << 48)
_RANDOM_4 = (0x4000 << 64) | (0x8000 << 48)


def new_id() -> str:
    """A random (version 4) UUID for a new row. uuid.uuid4() reads os.urandom each time, a
    system call that cost ~40 us apiece under load (a submit made two); ids are keys, not
    secrets (every read is scoped to its owner), and `random` is seeded from os.urandom."""
    n = (random.getrandbits(128) & ~_VERSION_4) | _RANDOM_4
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def iso(us: int | None) -> str | None:
    """Microseconds since the epoch -> ISO-8601 UTC with a Z, as the API shows time.

    Every change the server publishes carries four or five of these, mostly of the same
    few seconds (thousands of jobs in flight, #15): the date and time of a second are
    formatted once, and kept (a few thousand seconds at most)."""
    if us is None:
        return None
    second, micro = divmod(us, 1_000_000)
    head = _SECONDS.get(second)
    if head is None:
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        head = _SECONDS[second] = datetime.fromtimestamp(second, UTC).isoformat()[:19]
    return f"{head}.{micro:06d}Z"


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


SHOWN_DEPTH = 200
"""Stored JSON nested deeper than this is not shown (the API's encoder stops at 255
levels). New input cannot be that deep (inputs.MAX_DEPTH), but rows written before that
limit, or by other producers, must not make every listing that holds them fail."""


def shown(text: str | None) -> Any:
    """A stored JSON column as the API shows it."""
    if text is None:
        return None
    depth = json_depth(text, SHOWN_DEPTH)
    if depth <= SHOWN_DEPTH:
        try:
            return json.loads(text)
        except RecursionError:
            pass
    return {"_not_shown": f"nested {depth} levels deep, over the {SHOWN_DEPTH} the API shows"}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# The job's fields (jobshape.JOB_FIELDS), then the columns only the stores use.
JOB_COLUMNS = (*JOB_FIELD_NAMES, "run_at", "lease_owner", "lease_expires_at", "lease_token")
JOB_SELECT = ", ".join(JOB_COLUMNS)


@dataclass(slots=True)
class JobRow:
    id: str
    type: str
    status: str
    progress: int
    message: str | None
    input: str
    output: str | None
    error: str | None
    attempt: int
    max_attempts: int
    user_id: str
    concurrency_key: str | None
    idempotency_key: str | None
    created_at: int
    updated_at: int
    started_at: int | None
    completed_at: int | None
    schedule_id: str | None  # made by this schedule, for this tick (migration 0005)
    schedule_tick: int | None
    run_at: int
    lease_owner: str | None
    lease_expires_at: int | None
    # The fencing token: raised by every claim, re-queue and retry, so a worker whose
    # lease was taken from it is refused by every write it makes for the job (0003).
    lease_token: int = 0
    # Listings only (store/listing.py): the size of the stored input in bytes.
    input_bytes: int | None = None

    @classmethod
    def from_tuple(cls, row: Any) -> JobRow:
        return cls(*row)

    def input_obj(self) -> dict[str, Any]:
        value = json.loads(self.input)
        return value if isinstance(value, dict) else {}

    def to_api(self) -> dict[str, Any]:
        """The job's API (JSON) shape: jobshape.JOB_FIELDS, JSON parsed, times in ISO-8601."""
        return {
            name: getattr(self, name) if to is None else to(getattr(self, name))
            for name, to in _TO_API
        }

    def to_api_fields(self, names: Sequence[str]) -> dict[str, Any]:
        """A listed row in the API's shape with only these fields (of jobshape.LIST_FIELDS)."""
        out: dict[str, Any] = {}
        for name in names:
            to = _TO_API_BY_NAME.get(name)
            value = getattr(self, name)
            out[name] = value if to is None else to(value)
        return out


# How each field of the job's shape goes from its stored form (text JSON, microseconds) to JSON.
_STORED: dict[Kind, Callable[[Any], Any]] = {Kind.OBJECT: shown, Kind.JSON: shown, Kind.TIME: iso}
_TO_API = tuple((f.name, _STORED.get(f.kind)) for f in JOB_FIELDS)
_TO_API_BY_NAME = dict(_TO_API)


def api_dumps(value: Any) -> str:
    """JSON text exactly as the API's JSONResponse renders it (starlette's settings)."""
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    )


def fresh_job_json(row: JobRow) -> str:
    """`api_dumps(row.to_api())` for a row whose input is canonical JSON text (what the
    submit path stores: inputs.canonical), made field by field: the input's stored text is
    what parsing and encoding it again gives back, so it is put in as is, and the rest are
    plain strings, integers, times and nulls (a list of 100 spent a quarter of its CPU in
    `to_api` and `json.dumps`)."""
    parts = []
    for prefix, name, kind in _FRESH_FIELDS:
        value = getattr(row, name)
        if value is None:
            parts.append(prefix + "null")
        elif name == "input":
            parts.append(prefix + value)
        elif kind is Kind.TIME:
            parts.append(f'{prefix}"{iso(value)}"')
        elif kind is Kind.JSON or kind is Kind.OBJECT:  # an output: as to_api shows it
            parts.append(prefix + api_dumps(shown(value)))
        elif value.__class__ is str:
            parts.append(prefix + _encode_str(value))
        elif value.__class__ is int:
            parts.append(prefix + int.__repr__(value))
        else:
            parts.append(prefix + api_dumps(value))
    return "{" + ",".join(parts) + "}"


_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
_FRESH_FIELDS = tuple((_encode_str(f.name) + ":", f.name, f.kind) for f in JOB_FIELDS)


STEP_COLUMNS = (
    "job_id",
    "step_id",
    "name",
    "position",
    "status",
    "attempt",
    "output",
    "error",
    "started_at",
    "completed_at",
)
STEP_SELECT = ", ".join(STEP_COLUMNS)


@dataclass(slots=True)
class StepRow:
    job_id: str
    step_id: str
    name: str
    position: int
    status: str
    attempt: int
    output: str | None
    error: str | None
    started_at: int | None
    completed_at: int | None

    def to_api(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "step_id": self.step_id,
            "name": self.name,
            # step.sleep stores a completed step with no output (a step.run's is JSON text)
            "kind": "sleep" if self.output is None and self.status == COMPLETED else "run",
            "status": self.status,
            "attempt": self.attempt,
            "output": shown(self.output),
            "error": self.error,
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
        }


@dataclass(slots=True)
class LogRow:
    job_id: str
    seq: int
    ts: int
    level: str
    step: str | None
    message: str

    def to_api(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "seq": self.seq,
            "ts": iso(self.ts),
            "level": self.level,
            "step": self.step,
            "message": self.message,
        }


@dataclass(slots=True)
class NewJob:
    id: str
    type: str
    input: str
    user_id: str
    max_attempts: int
    concurrency_key: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Concurrency limits: running jobs per user, and per concurrency key by prefix.

    A key `org:acme` counts against `per_key["org"]`; a key without a known prefix
    against `default_key`. None means no limit.
    """

    per_user: int | None = 3
    per_key: tuple[tuple[str, int], ...] = (("org", 5), ("decision", 2))
    default_key: int | None = 5

    @property
    def active(self) -> bool:
        """Some limit is set: claims may leave due jobs pending."""
        return self.per_user is not None or self.default_key is not None or bool(self.per_key)

    def key_limit(self, key: str) -> int | None:
        prefix = key.split(":", 1)[0] if ":" in key else ""
        for name, limit in self.per_key:
            if name == prefix:
                return limit
        return self.default_key


@dataclass(slots=True)
class Change:
    """One committed change, in commit order, for live subscribers.

    `row` is the new row (None for a DELETE); `record` is its API shape, built on
    first use so that publishing costs little when nobody listens.
    """

    seq: int
    table: str  # "jobs" | "job_logs"
    type: str  # "INSERT" | "UPDATE" | "DELETE"
    row: JobRow | LogRow | None
    old_record: dict[str, Any] | None
    commit_us: int
    user_id: str
    _record: dict[str, Any] | None = None

    @property
    def record(self) -> dict[str, Any] | None:
        if self._record is None and self.row is not None:
            self._record = self.row.to_api()
        return self._record

    @property
    def job_id(self) -> str:
        if self.row is not None:
            return self.row.id if isinstance(self.row, JobRow) else self.row.job_id
        return str((self.old_record or {}).get("id", ""))
