"""The job service: the rules between the HTTP API and the store.

Every way a job comes in (`POST /api/jobs`, an event on `/e/{key}`, and later batches and
schedules) goes through `JobService.submit` or `submit_many`, so each is checked the same
way: the type exists, the input is JSON a store can keep (`inputs.canonical`), it fits the
size limit and the type's published JSON Schema (`/api/types`), a type that refuses work
when limited is not over its limit, and a reused idempotency key names the same request.

The service raises the domain errors of `jobctl.server.joberrors` and knows nothing of
HTTP. It never wakes the engine: the store announces every new or re-queued job on its
change bus, which is how the engine (of this server or any other) hears of work.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobctl.server.engine import EngineSettings
from jobctl.server.events import SOURCE_API, SOURCE_REPLAY, new_event
from jobctl.server.groupcommit import GroupCommit
from jobctl.server.inputs import MAX_DEPTH, canonical, check_text
from jobctl.server.joberrors import (
    DomainError,
    EventMissing,
    IdempotencyConflict,
    InvalidInput,
    JobMissing,
    LimitReached,
    TooLarge,
    UnknownType,
)
from jobctl.server.records import JobRow, LogRow, NewJob, StepRow, new_id, now_us
from jobctl.server.registry import JobType, Registry
from jobctl.server.schedule_records import EventRow
from jobctl.server.stats import compute_stats
from jobctl.server.store.base import ListQuery, Store

MAX_KEY_CHARS = 512  # idempotency and concurrency keys (events add an `event:` prefix)
US = 1_000_000


@dataclass(frozen=True, slots=True)
class Submission:
    """One job to create, as any caller asks for it."""

    type: str
    input: Any
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    key_label: str | None = None  # how messages name the idempotency key ("event id 'x'")
    # What the event history (server/events.py) keeps of it: an API submit is an event
    # named after its type; /e/ gives the event's own name and id; a replay its original.
    source: str = SOURCE_API
    event_name: str | None = None
    event_id: str | None = None
    replay_of: str | None = None


@dataclass(frozen=True, slots=True)
class Submitted:
    job: JobRow
    created: bool  # False: the job an earlier submission with the same key made


_PENDING = DomainError("not yet created")  # a placeholder, replaced before anyone sees it


class JobService:
    def __init__(
        self, store: Store, registry: Registry, settings: EngineSettings, max_input_bytes: int
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        self.max_input_bytes = max_input_bytes
        check_schemas(registry)
        self._schemas = _SchemaCache()
        self.writer = GroupCommit(store, self._idempotency_ttl_us)

    def _idempotency_ttl_us(self) -> int:
        return int(self.settings.idempotency_hours * 3600 * US)

    # submitting -------------------------------------------------------------
    def prepare(self, sub: Submission, user_id: str) -> NewJob:
        """Check a submission without writing anything; the job it would create."""
        check_text(sub.type, "type")
        job_type = self.registry.get(sub.type)
        if job_type is None:
            known = ", ".join(self.registry.names())
            raise UnknownType(f"unknown job type {sub.type[:100]!r} (known: {known})")
        for name, key in (("idempotency_key", sub.idempotency_key),
                          ("concurrency_key", sub.concurrency_key)):  # fmt: skip
            if key is not None:
                check_text(key, name)
                if not 0 < len(key) <= MAX_KEY_CHARS:
                    raise InvalidInput(f"{name}: 1 to {MAX_KEY_CHARS} characters")
        if not isinstance(sub.input, dict):
            raise InvalidInput(f"input must be a JSON object, not {_json_kind(sub.input)}")
        text = canonical(sub.input, "input", MAX_DEPTH)
        if len(text.encode()) > self.max_input_bytes:
            raise TooLarge(f"input is over the {self.max_input_bytes // 1024} KiB limit")
        self._schemas.check(job_type, sub.input)
        return NewJob(
            id=new_id(),
            type=job_type.name,
            input=text,
            user_id=user_id,
            max_attempts=job_type.retries + 1,
            concurrency_key=sub.concurrency_key,
            idempotency_key=sub.idempotency_key,
        )

    async def submit(self, sub: Submission, user_id: str) -> Submitted:
        """Create the job, or return the one a live idempotency key already made."""
        (result,), _ = await self._submit_prepared([sub], [self.prepare(sub, user_id)], user_id)
        if isinstance(result, DomainError):
            raise result
        return result

    async def submit_many(
        self, subs: Sequence[Submission], user_id: str
    ) -> list[Submitted | DomainError]:
        """Each submission on its own: the jobs of the acceptable ones are created (in
        order, in one transaction), and each refused one gets its error in its place."""
        prepared: list[NewJob | DomainError] = []
        for sub in subs:
            try:
                prepared.append(self.prepare(sub, user_id))
            except DomainError as exc:
                prepared.append(exc)
        results, _ = await self._submit_prepared(subs, prepared, user_id)
        return results

    async def _submit_prepared(
        self, subs: Sequence[Submission], prepared: list[NewJob | DomainError], user_id: str
    ) -> tuple[list[Submitted | DomainError], list[EventRow]]:
        """Create the prepared jobs and their event history in one store call (one
        commit); -> a result per submission, and the history rows recorded."""
        results: list[Submitted | DomainError] = []
        todo: list[tuple[int, Submission, NewJob]] = []
        for i, (sub, new) in enumerate(zip(subs, prepared, strict=True)):
            if not isinstance(new, DomainError):
                try:
                    await self._check_limited(new)
                except DomainError as exc:
                    new = exc
            results.append(new if isinstance(new, DomainError) else _PENDING)
            if not isinstance(new, DomainError):
                todo.append((i, sub, new))
        recorded: list[EventRow] = []
        if not todo:
            return results, recorded

        def history(outcomes: list[tuple[JobRow, bool]]) -> list[EventRow]:
            """Inside the store's transaction (so no I/O): each outcome checked, and the
            event history of the accepted ones. An API submit that only found an earlier
            job is not a new event; an /e/ event is kept either way (a repeat of an event
            id is linked to no new job)."""
            recorded.clear()
            for (i, sub, new), (row, created) in zip(todo, outcomes, strict=True):
                if not created:
                    try:
                        self._same_request(sub, new, row)
                    except DomainError as exc:
                        results[i] = exc
                        continue
                results[i] = Submitted(row, created)
                if created or sub.event_name is not None:
                    recorded.append(
                        new_event(
                            user_id=user_id,
                            name=sub.event_name or sub.type,
                            data=sub.input,
                            data_text=new.input,  # canonical(sub.input): the same text
                            source=sub.source,
                            job_ids=[row.id] if created else [],
                            event_id=sub.event_id,
                            replay_of=sub.replay_of,
                        )
                    )
            return recorded

        # One commit per request, or with the requests that arrived while one was under way.
        await self.writer.create([new for _, _, new in todo], history)
        return results, recorded

    async def replay(self, event_id: str, scope: str | None) -> tuple[EventRow, list[str]]:
        """The same event again: a new job (no de-duplication) through the same checks
        as a new submit, and a history row whose `replay_of` is the original."""
        original = await self.store.get_event(event_id, scope)
        if original is None:
            raise EventMissing(event_id)
        job_type = self.type_for_event(original.name)
        if job_type is None:
            raise UnknownType(f"no job type for event {original.name[:100]!r} on this server")
        sub = Submission(
            type=job_type.name,
            input=original.to_api()["data"] or {},
            source=SOURCE_REPLAY,
            event_name=original.name,
            event_id=original.event_id,
            replay_of=original.id,
        )
        new = self.prepare(sub, original.user_id)
        (result,), (event,) = await self._submit_prepared([sub], [new], original.user_id)
        if isinstance(result, DomainError):
            raise result
        return event, [result.job.id]

    async def _check_limited(self, new: NewJob) -> None:
        job_type = self.registry.get(new.type)
        assert job_type is not None  # prepare() found it
        if job_type.reject_when_limited:
            await self._reject_if_limited(new.user_id, new.concurrency_key)

    def _same_request(self, sub: Submission, new: NewJob, row: JobRow) -> None:
        """A key's second use must ask for what the first did (as payment APIs require)."""
        differs = [
            what
            for what, same in (
                ("type", row.type == new.type),
                ("input", _same_json(row.input, new.input)),
                ("concurrency_key", row.concurrency_key == new.concurrency_key),
            )
            if not same
        ]
        if differs:
            label = sub.key_label or f"idempotency key {new.idempotency_key!r}"
            hours = f"{self.settings.idempotency_hours:g}"
            raise IdempotencyConflict(
                f"{label} was already used for job {row.id} ({row.type}) with a different "
                f"{' and '.join(differs)} in the last {hours} h; resend the same request "
                "to get that job, or use a new key",
                row.id,
            )

    async def _reject_if_limited(self, user_id: str, key: str | None) -> None:
        limits = self.settings.limits
        by_user, by_key = await self.store.count_running(user_id, key)
        full = limits.per_user is not None and by_user >= limits.per_user
        if key is not None:
            key_limit = limits.key_limit(key)
            full = full or (key_limit is not None and by_key >= key_limit)
        if full:
            raise LimitReached("concurrency limit reached for this job type; try again later")

    def type_for_event(self, name: str) -> JobType | None:
        """An event named after a type (`demo`), or `anything/<type>`, starts that type."""
        return self.registry.get(name) or self.registry.get(name.rsplit("/", 1)[-1])

    # changing jobs ----------------------------------------------------------------
    async def cancel(self, job_id: str, scope: str | None) -> JobRow:
        """Cancel a pending or running job (StateConflict when it has ended)."""
        return await self.store.cancel_job(job_id, scope, now_us())

    async def retry(
        self, job_id: str, scope: str | None, from_start: bool, input: Any = None
    ) -> JobRow:
        """Back to pending, keeping completed steps unless from_start (StateConflict
        unless the job failed or was cancelled); with `input`, the new attempt runs on
        it, which passes the same checks as a submit's."""
        text = None
        if input is not None:
            row = await self.job(job_id, scope)
            text = self.prepare(Submission(row.type, input), row.user_id).input
        return await self.store.retry_job(job_id, scope, from_start, now_us(), text)

    # reading ------------------------------------------------------------------
    async def job(self, job_id: str, scope: str | None) -> JobRow:
        row = await self.store.get_job(job_id, scope)
        if row is None:
            raise JobMissing(job_id)
        return row

    async def steps(self, job_id: str, scope: str | None) -> list[StepRow]:
        await self.job(job_id, scope)
        return await self.store.load_steps(job_id)

    async def logs(
        self, job_id: str, scope: str | None, after: int, limit: int
    ) -> tuple[JobRow, list[LogRow]]:
        row = await self.job(job_id, scope)
        return row, await self.store.list_logs(job_id, after, limit)

    async def list_jobs(self, query: ListQuery) -> tuple[list[JobRow], str | None]:
        return await self.store.list_jobs(query)

    async def stats(self, scope: str | None) -> dict[str, Any]:
        return await compute_stats(self.store, scope)

    def types(self) -> list[JobType]:
        return self.registry.types()


_ANY_OBJECT = {"type": "object"}


class _SchemaCache:
    """A jsonschema validator per job type, built on first use from its input_schema."""

    def __init__(self) -> None:
        self._validators: dict[str, tuple[object, Any]] = {}

    def check(self, job_type: JobType, value: dict[str, Any]) -> None:
        if job_type.input_schema == _ANY_OBJECT:  # the default: `value` is a dict already
            return
        validator = self._validator(job_type)
        import jsonschema.exceptions

        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            raise InvalidInput(_schema_message(job_type.name, error))

    def _validator(self, job_type: JobType) -> Any:
        cached = self._validators.get(job_type.name)
        if cached is not None and cached[0] is job_type.input_schema:
            return cached[1]
        schema = job_type.input_schema
        cls = _validator_class(schema)
        cls.check_schema(schema)  # wrong: the server's fault, not the caller's (check_schemas)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        self._validators[job_type.name] = (schema, validator)
        return validator


def check_schemas(registry: Registry) -> None:
    """Raise ValueError naming the first registered type whose input_schema is not a
    valid JSON Schema (for start-up, so no submit finds out)."""
    import jsonschema.exceptions

    for job_type in registry.types():
        try:
            _validator_class(job_type.input_schema).check_schema(job_type.input_schema)
        except jsonschema.exceptions.SchemaError as exc:
            raise ValueError(
                f"job type {job_type.name}: input_schema is not a valid JSON Schema: "
                f"{exc.message[:200]}"
            ) from None


def _validator_class(schema: dict[str, Any]) -> Any:
    """The validator of the draft the schema names (`$schema`), 2020-12 when it names none."""
    import jsonschema.validators

    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)


def _schema_message(type_name: str, error: Any) -> str:
    path = "input" + "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
    )
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        if missing:
            return f"{path}.{missing[0]} is required for {type_name}"
    if error.validator == "type":
        wanted = error.validator_value
        kinds = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return f"{path} must be {kinds}, not {_json_kind(error.instance)}"
    message = str(error.message)
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{path}: {message}"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _same_json(stored: str, text: str) -> bool:
    if stored == text:
        return True
    try:
        return json.dumps(json.loads(stored), sort_keys=True) == json.dumps(
            json.loads(text), sort_keys=True
        )
    except ValueError:
        return False
