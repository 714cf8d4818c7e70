"""The official JavaScript clients, unmodified and with default options, against `jobctl server run`.

@supabase/realtime-js 2.119.0 and @supabase/supabase-js 2.119.1 (tests/js, pinned by its
lockfile) speak protocol 2.0.0 by default; some cases run again with `vsn: '1.0.0'`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ServerProcess, wait_job
from tests.server.realtime.conftest import jwt_for, submit
from tests.server.realtime.jsclient import Event, JsClient

JOBS_OF = {"event": "*", "schema": "public", "table": "jobs"}


@pytest.fixture
def js(server: ServerProcess) -> Iterator[Any]:
    """Factory: js(lib, key=anon key, vsn=None) -> JsClient (closed at teardown)."""
    made: list[JsClient] = []
    anon = jwt_for(server.config_dir, None, "anon")

    def factory(
        lib: str = "supabase-js", key: str | None = None, vsn: str | None = None
    ) -> JsClient:
        client = JsClient(lib, server.url, key or anon, vsn)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


def user_client(js: Any, lib: str, token: str, vsn: str | None = None) -> JsClient:
    """A client acting as the token's user. supabase-js takes the user's JWT as its key (its
    Realtime token always comes from the session or the key: without Supabase Auth here, a
    setAuth() is replaced by the key after the next join); realtime-js gets it by setAuth()."""
    if lib == "supabase-js":
        client: JsClient = js(lib, key=token, vsn=vsn)
    else:
        client = js(lib, vsn=vsn)
        client.call("setAuth", token=token)
    return client


def statuses_by_job(events: list[Event]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for event in events:
        record = event["payload"]["new"]
        if record:
            seen.setdefault(record["id"], []).append(record["status"])
    return seen


@pytest.mark.parametrize("vsn", [None, "1.0.0"], ids=["vsn-default", "vsn-1.0.0"])
@pytest.mark.parametrize("lib", ["realtime-js", "supabase-js"])
def test_postgres_changes_hear_every_state_of_a_batch(
    server: ServerProcess, js: Any, lib: str, vsn: str | None
) -> None:
    alice = jwt_for(server.config_dir, "alice")
    client = user_client(js, lib, alice, vsn)
    client.subscribe("c", "alice-jobs", pg=[{**JOBS_OF, "filter": "user_id=eq.alice"}])
    bob_job = submit(server.url, jwt_for(server.config_dir, "bob"), steps=1, step_seconds=0)
    ids = [submit(server.url, alice, steps=2, step_seconds=0)["id"] for _ in range(4)]

    def all_done(_: list[Event]) -> bool:
        seen = statuses_by_job(client.of("pg", "c"))
        return all(seen.get(i, [""])[-1] == "completed" for i in ids)

    client.wait(all_done)
    events = client.of("pg", "c")
    seen = statuses_by_job(events)
    assert set(seen) == set(ids)  # not Bob's job
    assert bob_job["id"] not in seen
    for job_id in ids:
        assert list(dict.fromkeys(seen[job_id])) == ["pending", "running", "completed"], seen
    first = events[0]["payload"]
    assert first["eventType"] == "INSERT" and first["schema"] == "public"
    assert first["table"] == "jobs" and first["commit_timestamp"].endswith("Z")
    assert first["old"] == {} and first["new"]["user_id"] == "alice"
    update = next(e["payload"] for e in events if e["payload"]["eventType"] == "UPDATE")
    assert update["old"] == {"id": update["new"]["id"]}
    assert update["new"]["input"] == {"steps": 2, "step_seconds": 0}  # jsonb, parsed
    done = client.call("leave", name="c")
    assert done["result"] == "ok"


def test_broadcast_between_clients(server: ServerProcess, js: Any) -> None:
    quiet = js("realtime-js")  # self off, no ack (the defaults)
    loud = js("supabase-js")
    old = js("realtime-js", vsn="1.0.0")  # a 1.0.0 socket on the same topic
    quiet.subscribe("q", "room", broadcast=["*"])
    loud.subscribe("l", "room", config={"broadcast": {"self": True, "ack": True}}, broadcast=["*"])
    old.subscribe("o", "room", broadcast=["*"])

    assert quiet.call("send", name="q", event="hello", payload={"n": 1})["result"] == "ok"
    loud.wait(lambda _: loud.of("broadcast", "l"))
    old.wait(lambda _: old.of("broadcast", "o"))
    [heard] = loud.of("broadcast", "l")
    assert heard["payload"] == {"type": "broadcast", "event": "hello", "payload": {"n": 1}}
    assert old.of("broadcast", "o")[0]["payload"] == heard["payload"]

    # With ack, send() waits for the server's reply; with self, the sender hears itself.
    assert loud.call("send", name="l", event="ping", payload={"n": 2})["result"] == "ok"
    loud.wait(lambda _: len(loud.of("broadcast", "l")) == 2)
    quiet.wait(lambda _: quiet.of("broadcast", "q"))
    assert quiet.of("broadcast", "q")[0]["payload"]["payload"] == {"n": 2}

    # A binary payload travels as a binary frame and arrives as bytes; not to the 1.0.0 socket.
    data = [0, 1, 2, 254, 255]
    assert loud.call("send", name="l", event="blob", bytes=data)["result"] == "ok"
    quiet.wait(lambda _: len(quiet.of("broadcast", "q")) == 2)
    blob = quiet.of("broadcast", "q")[1]["payload"]
    assert blob == {"type": "broadcast", "event": "blob", "payload": {"bytes": data}}

    # httpSend: the REST endpoint, which servers use too.
    sent = quiet.call("httpSend", name="q", event="rest", payload={"via": "http"})
    assert sent["result"] == {"success": True}, sent
    loud.wait(lambda _: any(e["payload"]["event"] == "rest" for e in loud.of("broadcast", "l")))
    old.wait(lambda _: any(e["payload"]["event"] == "rest" for e in old.of("broadcast", "o")))
    rest = [e["payload"] for e in old.of("broadcast", "o")]
    assert [p["event"] for p in rest] == ["hello", "ping", "rest"]  # no blob on 1.0.0
    assert rest[-1]["payload"] == {"via": "http"}
    # An HTTP broadcast has no sending socket: the sender's own channel hears it too.
    quiet.wait(lambda _: len(quiet.of("broadcast", "q")) == 3)
    assert [e["payload"]["event"] for e in quiet.of("broadcast", "q")] == ["ping", "blob", "rest"]


def test_presence_state_and_diffs(server: ServerProcess, js: Any) -> None:
    one, two, three = js("supabase-js"), js("realtime-js"), js("supabase-js")
    for client, key in ((one, "u1"), (two, "u2")):
        client.subscribe("p", "lobby", config={"presence": {"key": key}}, presence=True)
        assert client.call("track", name="p", payload={"who": key})["result"] == "ok"

    def keys(client: JsClient) -> set[str]:
        syncs = [e for e in client.of("presence", "p") if e["kind"] == "sync"]
        return set(syncs[-1]["state"]) if syncs else set()

    one.wait(lambda _: keys(one) == {"u1", "u2"})
    three.subscribe("p", "lobby", config={"presence": {"key": "u3"}}, presence=True)
    three.wait(lambda _: keys(three) == {"u1", "u2"})  # presence_state on join
    assert three.call("track", name="p", payload={"who": "u3"})["result"] == "ok"
    one.wait(lambda _: keys(one) == {"u1", "u2", "u3"})
    joins = [e for e in two.of("presence", "p") if e["kind"] == "join"]
    two.wait(lambda _: any(e["kind"] == "join" and e["key"] == "u3" for e in two.of("presence")))
    two.wait(lambda _: "u3" in keys(two))
    [meta] = [e for e in two.of("presence") if e["kind"] == "sync"][-1]["state"]["u3"]
    assert meta["who"] == "u3" and meta["presence_ref"]
    assert joins  # u1 and u2 heard each other join
    three.call("leave", name="p")  # the third client goes: the others hear it leave
    one.wait(lambda _: any(e["kind"] == "leave" and e["key"] == "u3" for e in one.of("presence")))
    one.wait(lambda _: keys(one) == {"u1", "u2"})
    assert two.call("untrack", name="p")["result"] == "ok"
    one.wait(lambda _: keys(one) == {"u1"})


def test_private_channels_and_broadcast_from_the_database(server: ServerProcess, js: Any) -> None:
    alice = jwt_for(server.config_dir, "alice")
    bob = jwt_for(server.config_dir, "bob")
    job = submit(server.url, alice, steps=1000, step_seconds=0.5)  # until cancelled below
    a, b = user_client(js, "supabase-js", alice), user_client(js, "realtime-js", bob)
    private = {"private": True}
    a.subscribe("mine", "jobs:alice", config=private, broadcast=["*"])
    a.subscribe("one", f"job:{job['id']}", config=private, broadcast=["UPDATE"])
    denied = b.subscribe("peek", "jobs:alice", expect="CHANNEL_ERROR", config=private)
    assert denied["error"] == (
        "Unauthorized: You do not have permissions to read from this Channel topic: jobs:alice"
    )
    denied = b.subscribe("peek2", f"job:{job['id']}", expect="CHANNEL_ERROR", config=private)
    assert denied["error"].startswith("Unauthorized: ")
    b.subscribe("own", "jobs:bob", config=private, broadcast=["*"])
    # The same topic name, public: another namespace, no database broadcasts there.
    public = js("realtime-js")
    public.subscribe("public", "jobs:alice", broadcast=["*"])

    later = submit(server.url, alice, steps=1, step_seconds=0)
    with server.client(alice) as http:
        wait_job(http, later["id"])
        assert http.post(f"/api/jobs/{job['id']}/cancel").status_code == 202
        wait_job(http, job["id"])

    def states(events: list[Event], job_id: str) -> list[str]:
        return [
            e["payload"]["payload"]["record"]["status"]
            for e in events
            if e["payload"]["payload"]["record"]["id"] == job_id
        ]

    a.wait(lambda _: states(a.of("broadcast", "mine"), later["id"])[-1:] == ["completed"])
    a.wait(lambda _: states(a.of("broadcast", "one"), job["id"])[-1:] == ["cancelled"])
    first = a.of("broadcast", "mine")[0]["payload"]
    assert first["type"] == "broadcast" and first["event"] in ("INSERT", "UPDATE")
    body = first["payload"]
    assert set(body) == {"id", "old_record", "operation", "record", "schema", "table"}
    assert (body["schema"], body["table"], body["operation"]) == ("public", "jobs", first["event"])
    assert first["meta"] == {"id": body["id"]}
    inserts = [e for e in a.of("broadcast", "mine") if e["payload"]["event"] == "INSERT"]
    assert [e["payload"]["payload"]["record"]["id"] for e in inserts] == [later["id"]]
    assert inserts[0]["payload"]["payload"]["old_record"] is None
    assert list(dict.fromkeys(states(a.of("broadcast", "mine"), later["id"]))) == [
        "pending",
        "running",
        "completed",
    ]
    only_updates = a.of("broadcast", "one")
    assert {e["payload"]["event"] for e in only_updates} == {"UPDATE"}
    assert states(only_updates, job["id"])[-1] == "cancelled"
    assert "running" in states(only_updates, job["id"])  # progress while it ran
    assert not b.of("broadcast") and not public.of("broadcast")  # nothing of Alice's jobs

    # Token refresh in-band: a fresh token of Alice's keeps the channel; another user's token on
    # Alice's private channel shuts it down.
    c = user_client(js, "realtime-js", alice)
    c.subscribe("again", "jobs:alice", config=private, system=True, broadcast=["*"])
    c.call("setAuth", token=jwt_for(server.config_dir, "alice", ttl=7200))
    third = submit(server.url, alice, steps=0, step_seconds=0)["id"]
    c.wait(
        lambda _: any(e["payload"]["payload"]["record"]["id"] == third for e in c.of("broadcast"))
    )
    c.call("setAuth", token=bob)
    c.wait(lambda _: "CLOSED" in c.statuses("again"))
    [shutdown] = [e for e in c.of("system", "again") if e["payload"]["status"] == "error"]
    assert shutdown["payload"]["message"] == (
        "You no longer have permission to read from this Channel topic: jobs:alice"
    )


def test_join_errors_as_supabase_sends_them(server: ServerProcess, js: Any) -> None:
    client = js("realtime-js")
    expired = jwt_for(server.config_dir, "alice", ttl=-30)
    client.call("setAuth", token=expired)
    status = client.subscribe("e", "x", expect="CHANNEL_ERROR", pg=[JOBS_OF])
    assert status["error"].startswith("InvalidJWTToken: Token has expired ")
    client.call("setAuth", token=jwt_for(server.config_dir, "alice"))
    bad = client.subscribe(
        "f", "y", expect="CHANNEL_ERROR", pg=[{**JOBS_OF, "filter": "nope=eq.1"}]
    )
    assert bad["error"].startswith("InvalidFilter: Error parsing `filter` params: ")
    ok = client.subscribe("g", "z", pg=[{**JOBS_OF, "filter": "status=in.(pending,running)"}])
    assert ok["status"] == "SUBSCRIBED"


def test_postgrest_reads_through_supabase_js(server: ServerProcess, js: Any) -> None:
    alice = jwt_for(server.config_dir, "alice")
    ids = [submit(server.url, alice, steps=i + 1, step_seconds=0)["id"] for i in range(3)]
    with server.client(alice) as http:
        for job_id in ids:
            wait_job(http, job_id)
    sb = js("supabase-js", key=alice)

    def rest(*chain: list[Any], **extra: Any) -> Event:
        answer = sb.call("rest", table="jobs", chain=[list(c) for c in chain], **extra)
        assert answer["error"] is None, answer
        return answer

    mixed = rest(["select", "*, id"], ["order", "created_at"])["data"]
    assert [r["id"] for r in mixed] == ids and mixed[0]["status"] == "completed"
    aliased = rest(["select", "jobId:id, steps:input->steps, name:input->>steps"])["data"]
    assert {(r["steps"], r["name"]) for r in aliased} == {(1, "1"), (2, "2"), (3, "3")}
    assert set(aliased[0]) == {"jobId", "steps", "name"}
    two = rest(["select", "id"], ["eq", "input->>steps", "2"])["data"]
    assert two == [{"id": ids[1]}]
    either = rest(["select", "id"], ["or", "input->>steps.eq.1,input->>steps.eq.3"])["data"]
    assert {r["id"] for r in either} == {ids[0], ids[2]}
    counted = rest(["select", "*"], head=True, count="exact")
    assert counted["count"] == 3 and counted["data"] is None
    csv = rest(["select", "id,status"], ["order", "created_at"], accept="csv")["data"]
    assert csv.splitlines() == ["id,status", *(f"{i},completed" for i in ids)]
    aggregate = sb.call("rest", table="jobs", chain=[["select", "count()"]])
    assert aggregate["error"]["code"] == "PGRST123"
    unknown = sb.call("rpc", fn="no_such_function", args={})
    assert unknown["status"] == 404 and unknown["error"]["code"] == "PGRST202"
