"""The job-type registry: async job functions registered with a decorator."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobctl.server.jobcontext import JobContext

JobFunction = Callable[["JobContext"], Awaitable[Any]]
FailureHook = Callable[["JobContext", str], Awaitable[None]]

ENTRY_POINT_GROUP = "jobctl.functions"


@dataclass
class JobType:
    name: str
    fn: JobFunction
    description: str = ""
    retries: int = 2
    timeout: float = 600.0  # running longer than this ends the job failed ("timed out")
    pending_timeout: float = 300.0  # waiting to start longer than this: failed ("expired")
    reject_when_limited: bool = False  # 429 at submit instead of waiting as pending
    on_failure: FailureHook | None = None
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "retries": self.retries,
            "timeout_seconds": self.timeout,
            "pending_timeout_seconds": self.pending_timeout,
            "reject_when_limited": self.reject_when_limited,
            "input_schema": self.input_schema,
        }


class Registry:
    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}

    def job(
        self,
        name: str,
        *,
        description: str = "",
        retries: int = 2,
        timeout: float = 600.0,
        pending_timeout: float = 300.0,
        reject_when_limited: bool = False,
        on_failure: FailureHook | None = None,
        input_schema: dict[str, Any] | None = None,
    ) -> Callable[[JobFunction], JobFunction]:
        """Register an async function as job type `name`."""

        def register(fn: JobFunction) -> JobFunction:
            self._types[name] = JobType(
                name=name,
                fn=fn,
                description=description or (fn.__doc__ or "").strip().split("\n")[0],
                retries=retries,
                timeout=timeout,
                pending_timeout=pending_timeout,
                reject_when_limited=reject_when_limited,
                on_failure=on_failure,
                input_schema=input_schema or {"type": "object"},
            )
            return fn

        return register

    def add(self, job_type: JobType) -> None:
        self._types[job_type.name] = job_type

    def get(self, name: str) -> JobType | None:
        return self._types.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def types(self) -> list[JobType]:
        return [self._types[n] for n in self.names()]


registry = Registry()
"""The default registry: built-in types and user modules register here."""


def load_builtin_jobs() -> None:
    importlib.import_module("jobctl.server.jobs.journal")
    importlib.import_module("jobctl.server.jobs.demo")


def load_functions(modules: list[str]) -> list[str]:
    """Import user modules (and `jobctl.functions` entry points) so their types register."""
    loaded = []
    for name in modules:
        importlib.import_module(name)
        loaded.append(name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()
        loaded.append(ep.value)
    return loaded
