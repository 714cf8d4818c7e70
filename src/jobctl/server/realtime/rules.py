"""Who may use a private channel: the embedded server's stand-in for policies on `realtime.messages`.

Supabase authorises `config.private` channels with row-level security policies on
`realtime.messages`, evaluated with the caller's JWT against `realtime.topic()`. Here the rules
are fixed and mirror the job tables' own row rule:

- `jobs:<user_id>`: that user (and service_role);
- `job:<uuid>`: the owner of that job (and service_role), looked up in the store;
- anything else: service_role only.

Reading (joining, hearing broadcasts and presence) and writing (sending broadcasts, tracking
presence) follow the same rule, so a user's own devices can talk to each other on their topics.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from jobctl.server.auth import Principal
from jobctl.server.records import JobRow

JOBS_PREFIX = "jobs:"
JOB_PREFIX = "job:"


class JobLookup(Protocol):
    async def get_job(self, job_id: str, user_id: str | None) -> JobRow | None: ...


def user_topic(user_id: str) -> str:
    return JOBS_PREFIX + user_id


def job_topic(job_id: str) -> str:
    return JOB_PREFIX + job_id


async def may_use(store: JobLookup, who: Principal, topic: str) -> bool:
    """Whether `who` may read and write the private topic (the name without `realtime:`)."""
    if who.is_service:
        return True
    if who.user_id is None:
        return False  # anon: no policy grants it anything
    if topic.startswith(JOBS_PREFIX):
        return topic[len(JOBS_PREFIX) :] == who.user_id
    if topic.startswith(JOB_PREFIX):
        try:
            job_id = str(uuid.UUID(topic[len(JOB_PREFIX) :]))
        except ValueError:
            return False
        return await store.get_job(job_id, who.user_id) is not None
    return False


def denied(topic: str) -> str:
    return f"Unauthorized: You do not have permissions to read from this Channel topic: {topic}"
