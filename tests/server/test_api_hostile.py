"""Hostile input at the door (issue #10): every one is a 4xx in the error shape, none is
committed, the listing stays 200 after them; and the nastiest input that is accepted
comes back whole. On both stores: PostgreSQL text refuses NUL, SQLite does not."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess
from tests.server.test_api_errors import assert_error

pytestmark = pytest.mark.both_stores

RAW = {"content-type": "application/json"}


def nested(depth: int, leaf: str = "1") -> str:
    """JSON text of objects nested `depth` levels: {"a":{"a":...}}."""
    return '{"a":' * depth + leaf + "}" * depth


def job_body(input_text: str, **fields: str) -> bytes:
    extra = "".join(f',"{k}":{v}' for k, v in fields.items())
    return f'{{"type":"demo","input":{input_text}{extra}}}'.encode()


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def post_chunked(server: ServerProcess, path: str, total: int) -> tuple[int, dict[str, Any]]:
    """POST a chunked body of `total` bytes over a raw socket (no client library that
    might resend a half-sent stream), reading the answer even if the server stops
    reading the body early."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n")  # fmt: skip
    pieces = [b'{"type":"demo","input":{"t":"'] + [b"x" * 65536] * (total // 65536) + [b'"}}']
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head.encode())
            for piece in pieces:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body)


# (what, method, path, request kwargs, status, code); {token} is the server's token
JOB_API: list[tuple[str, str, str, dict[str, Any], int, str | None]] = [
    ("input nested 260 deep", "POST", "/api/jobs",
     {"content": job_body(nested(259))}, 400, "too_deep"),
    ("input nested 1,000 deep", "POST", "/api/jobs",
     {"content": job_body(nested(999))}, 400, "too_deep"),
    ("input nested 65 deep (one past the limit)", "POST", "/api/jobs",
     {"content": job_body(nested(65))}, 400, "too_deep"),
    ("a lone surrogate in input", "POST", "/api/jobs",
     {"content": job_body('{"t":"\\ud800"}')}, 400, "invalid_text"),
    ("a lone low surrogate in an input key", "POST", "/api/jobs",
     {"content": job_body('{"\\udc00":1}')}, 400, "invalid_text"),
    ("a NUL in input", "POST", "/api/jobs",
     {"content": job_body('{"t":"a\\u0000b"}')}, 400, "invalid_text"),
    ("a NUL in idempotency_key", "POST", "/api/jobs",
     {"content": job_body("{}", idempotency_key='"k\\u0000"')}, 400, "invalid_text"),
    ("a NUL in concurrency_key", "POST", "/api/jobs",
     {"content": job_body("{}", concurrency_key='"org:\\u0000"')}, 400, "invalid_text"),
    ("a NUL in type", "POST", "/api/jobs",
     {"content": b'{"type":"de\\u0000mo","input":{}}'}, 400, "invalid_text"),
    ("NaN in input", "POST", "/api/jobs",
     {"content": job_body('{"n":NaN}')}, 400, "malformed_json"),
    ("an infinite number in input", "POST", "/api/jobs",
     {"content": job_body('{"n":1e999}')}, 400, None),
    ("an integer of 5,000 digits", "POST", "/api/jobs",
     {"content": job_body('{"n":' + "9" * 5000 + "}")}, 400, "malformed_json"),
    ("a body that is not UTF-8", "POST", "/api/jobs",
     {"content": b'{"type":"demo","input":{"t":"\xff"}}'}, 400, "malformed_json"),
    ("input that breaks the type's schema", "POST", "/api/jobs",
     {"json": {"type": "demo", "input": {"steps": -1}}}, 422, "invalid_input"),
    ("a date the schema's format refuses", "POST", "/api/jobs",
     {"json": {"type": "journal_extraction", "input": {"text": "x", "date": "2024-13-45"}}},
     422, "invalid_input"),
    ("since=99999999999999m", "GET", "/api/jobs",
     {"params": {"since": "99999999999999m"}}, 400, "invalid_since"),
    ("since in Unicode digits", "GET", "/api/jobs",
     {"params": {"since": "\u0663m"}}, 400, "invalid_since"),
    ("since in year 99999", "GET", "/api/jobs",
     {"params": {"since": "99999-01-01"}}, 400, "invalid_since"),
    ("an empty since (the schema's pattern refuses it)", "GET", "/api/jobs",
     {"params": {"since": ""}}, 400, "invalid_since"),
    ("a cursor with a time over 2^63", "GET", "/api/jobs",
     {"params": {"cursor": cursor_of(f"{2**64}:123e4567-e89b-12d3-a456-426614174000")}},
     400, "invalid_cursor"),
    ("a cursor with Unicode digits", "GET", "/api/jobs",
     {"params": {"cursor": cursor_of("\u0663:123e4567-e89b-12d3-a456-426614174000")}},
     400, "invalid_cursor"),
    ("limit=\u00b2", "GET", "/api/jobs", {"params": {"limit": "\u00b2"}}, 422, None),
    ("limit over 2^63", "GET", "/api/jobs", {"params": {"limit": str(2**64)}}, 422, None),
    ("logs after over 2^63", "GET", "/api/jobs/123e4567-e89b-12d3-a456-426614174000/logs",
     {"params": {"after": str(2**64)}}, 422, None),
    ("a NUL in the type filter", "GET", "/api/jobs", {"params": {"type": "de\x00mo"}}, 400,
     "invalid_text"),
    ("a NUL in id_prefix", "GET", "/api/jobs", {"params": {"id_prefix": "ab\x00"}}, 400,
     "invalid_text"),
    ("a NUL in a job id", "GET", "/api/jobs/123e4567-e89b-12d3-a456-42661417400%00", {},
     400, None),
    ("too many query values", "GET", "/api/jobs",
     {"params": [("status", "failed")] * 101}, 400, "invalid_query"),
]  # fmt: skip

EVENTS: list[tuple[str, bytes, int, str]] = [
    ("data nested 1,000 deep", b'{"name":"demo","data":' + nested(999).encode() + b"}",
     400, "too_deep"),
    ("data nested 260 deep", b'{"name":"demo","data":' + nested(259).encode() + b"}",
     400, "too_deep"),
    ("a lone surrogate in data", b'{"name":"demo","data":{"t":"\\ud800"}}', 400,
     "invalid_text"),
    ("a NUL in the event id", b'{"name":"demo","data":{},"id":"e\\u0000"}', 400,
     "invalid_text"),
    ("a NUL in the event name", b'{"name":"de\\u0000mo","data":{}}', 400, "invalid_text"),
    ("data that breaks the type's schema", b'{"name":"demo","data":{"steps":"many"}}', 400,
     "invalid_input"),
    ("not JSON", b'{"name":', 400, "malformed_json"),
]  # fmt: skip
EVENT_QUERIES = [("a NUL in a query value", {"x": "a\x00"}, 400, "invalid_text")]


def count_jobs(c: httpx.Client) -> int:
    r = c.get("/api/jobs", params={"limit": 500})
    assert r.status_code == 200, r.text
    return len(r.json()["jobs"])


def test_hostile_input_is_refused_and_nothing_is_committed(make_server: Any) -> None:
    server: ServerProcess = make_server()
    with server.client() as c:
        before = count_jobs(c)
        for what, method, path, kwargs, status, code in JOB_API:
            headers = RAW if "content" in kwargs else {}
            r = c.request(method, path, headers=headers, **kwargs)
            assert r.status_code == status, (what, r.status_code, r.text[:300])
            assert_error(r, status, code)
            assert count_jobs(c) == before, f"{what}: a job was committed"
        for path in ("/api/jobs", f"/e/{server.token}"):  # chunked, over the limit
            status, answer = post_chunked(server, path, 1024 * 1024 + 128 * 1024)
            assert status == 413, (path, answer)
            code = answer["code"] if "code" in answer else answer["error"]["code"]  # /e/: Inngest's
            assert code == "too_large", answer
            assert count_jobs(c) == before
        for what, body, status, code in EVENTS:
            r = c.post(f"/e/{server.token}", content=body, headers=RAW)
            assert r.status_code == status, (what, r.status_code, r.text[:300])
            answer = r.json()
            assert answer["status"] == status and answer["error"], (what, answer)
            assert answer["code"] == code, (what, answer)
            assert answer["ids"] in ([], [""]), (what, answer)
        for what, params, status, code in EVENT_QUERIES:
            r = c.post(f"/e/{server.token}", params=params, json={"name": "demo", "data": {}})
            answer = r.json()
            assert (r.status_code, answer["status"], answer["code"]) == (status, status, code), what
        assert count_jobs(c) == before
        # and the server still does its job
        ok = c.post("/api/jobs", json={"type": "demo", "input": {"steps": 0}})
        assert ok.status_code == 201, ok.text
        assert c.get(f"/api/jobs/{ok.json()['id']}").status_code == 200
        assert count_jobs(c) == before + 1
    assert "Traceback" not in server.log


def test_events_answer_per_event(make_server: Any) -> None:
    server: ServerProcess = make_server()
    events = [
        {"name": "demo", "data": {"steps": 0}},
        {"name": "app/demo", "data": {"steps": "many"}},  # the schema refuses it
        {"name": "nothing/nosuch", "data": {}},
        {"data": {}},  # no name
        {"name": "journal_extraction", "data": {"text": "Call Ann on 2024-05-02."}},
    ]
    with server.client() as c:
        r = c.post(f"/e/{server.token}", json=events)
        assert r.status_code == 400, r.text
        body = r.json()
        ids = body["ids"]
        assert len(ids) == 5 and ids[1] == ids[2] == ids[3] == "" and ids[0] and ids[4]
        assert [(e["index"], e["code"]) for e in body["errors"]] == [
            (1, "invalid_input"), (2, "unknown_type"), (3, "invalid_input")]  # fmt: skip
        assert body["error"].startswith("event 1: input.steps must be integer")
        assert "and 2 more refused" in body["error"]
        for job_id in (ids[0], ids[4]):  # the accepted ones were created
            assert c.get(f"/api/jobs/{job_id}").status_code == 200
        assert count_jobs(c) == 2
        # The same checks as POST /api/jobs: a key reused with other data is refused.
        first = c.post(f"/e/{server.token}", json={"name": "demo", "data": {}, "id": "ev1"})
        assert first.status_code == 200 and first.json()["status"] == 200, first.text
        again = c.post(f"/e/{server.token}", json={"name": "demo", "data": {}, "id": "ev1"})
        assert again.json()["ids"] == first.json()["ids"]
        other = c.post(f"/e/{server.token}", json={"name": "demo", "data": {"x": 1}, "id": "ev1"})
        assert other.status_code == 400
        (error,) = other.json()["errors"]
        assert (error["status"], error["code"]) == (409, "idempotency_conflict")
        assert "event id 'ev1' was already used" in error["message"]


def test_idempotency_key_reused_for_another_request_is_409(make_server: Any) -> None:
    server: ServerProcess = make_server()
    with server.client() as c:
        body = {"type": "demo", "input": {"steps": 0, "note": "a"}, "idempotency_key": "k1"}
        first = c.post("/api/jobs", json=body)
        assert first.status_code == 201, first.text
        # the same request again: the same job, as before
        same = c.post("/api/jobs", json={**body, "input": {"note": "a", "steps": 0}})
        assert (same.status_code, same.json()["id"]) == (200, first.json()["id"])
        for change in ({"input": {"steps": 0, "note": "b"}}, {"type": "journal_extraction",
                       "input": {"text": "x"}}, {"concurrency_key": "org:x"},
                       {"input": {"steps": 0.0, "note": "a"}}):  # fmt: skip
            r = c.post("/api/jobs", json={**body, **change})
            err = assert_error(r, 409, "idempotency_conflict")
            assert first.json()["id"] in err["error"]["message"], change
            assert "idempotency key 'k1' was already used" in err["error"]["message"]
        assert count_jobs(c) == 1


# The nastiest input that is accepted, with keys and filters to match: every store keeps
# it and gives it back unchanged, in the listing and on its own.
NASTY_INPUT: dict[str, Any] = {
    "deep": json.loads(nested(63, '"bottom"')),  # 64 levels with the input itself
    "controls": "".join(chr(c) for c in range(1, 32)) + "\x7f",
    "escapes": "\\u0000 \\ud800 \\\\ \" ' ` $(x) %s %n {0} ${x} <script>",
    "unicode": "\U0010ffff \uffff \ufeff \u2028\u2029 \U0001f600 e\u0301 \u202e",
    "": "an empty key",
    "k" * 1000: "a long key",
    "numbers": [0, -0.0, 1e308, -1e-308, 2**63, -(2**63) - 1, 10**4000, 0.1],
    "literals": [True, False, None, [], {}],
    "sql": "'); DROP TABLE jobs; -- \\' OR 1=1",
}


def test_the_nastiest_accepted_input_reads_back(make_server: Any) -> None:
    LISTED = "input,idempotency_key,concurrency_key"
    server: ServerProcess = make_server()
    keys = {"idempotency_key": "\U0001f600 %_\\'\" k", "concurrency_key": "org:%_\\'\"\u2028"}
    with server.client() as c:
        r = c.post("/api/jobs", json={"type": "demo", "input": NASTY_INPUT, **keys})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        c.post(f"/api/jobs/{job_id}/cancel")  # its input is not one demo runs
        for shown in (
            c.get(f"/api/jobs/{job_id}").json(),
            c.get("/api/jobs", params={"fields": LISTED}).json()["jobs"][0],
            c.get(
                "/api/jobs", params={"type": "demo", "id_prefix": job_id[:8], "fields": LISTED}
            ).json()["jobs"][0],
        ):
            assert shown["id"] == job_id
            assert shown["input"] == NASTY_INPUT
            assert json.dumps(shown["input"]) == json.dumps(NASTY_INPUT)  # -0.0, key order
            assert {k: shown[k] for k in keys} == keys
        again = c.post("/api/jobs", json={"type": "demo", "input": NASTY_INPUT, **keys})
        assert (again.status_code, again.json()["id"]) == (200, job_id)
        assert c.get("/api/jobs", params={"type": "de%"}).json()["jobs"] == []
    assert "Traceback" not in server.log


async def test_a_poison_row_from_before_the_limit_does_not_break_listings(
    store_url: str, tmp_path: Path
) -> None:
    """A row nested 260 deep (as servers before the limit committed) is listed with its
    input replaced by a note; the job itself still has its input."""
    from jobctl.server.main import build
    from jobctl.server.records import NewJob, now_us
    from jobctl.server.settings import ServerSettings

    settings = ServerSettings(db=store_url, data_dir=tmp_path / "d",
                              token_file=tmp_path / "token", jwt_secret_file=tmp_path / "jwt")  # fmt: skip
    built = build(settings)
    store = built.engine.store
    await store.open()
    try:
        poison = NewJob(str(uuid.uuid4()), "demo", nested(260), "local", 3)
        await store.create_job(poison, now_us(), 10**9)
        fine = NewJob(str(uuid.uuid4()), "demo", '{"steps":0}', "local", 3)
        await store.create_job(fine, now_us(), 10**9)
        transport = httpx.ASGITransport(app=built.app)
        headers = {"Authorization": f"Bearer {built.auth.local_token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                     headers=headers) as c:  # fmt: skip
            listing = await c.get("/api/jobs", params={"fields": "input"})
            assert listing.status_code == 200, listing.text
            inputs = {j["id"]: j["input"] for j in listing.json()["jobs"]}
            assert inputs[fine.id] == {"steps": 0}
            assert inputs[poison.id] == {
                "_not_shown": "nested 260 levels deep, over the 200 the API shows"}  # fmt: skip
            one = await c.get(f"/api/jobs/{poison.id}")
            assert one.status_code == 200 and one.json()["input"] == inputs[poison.id]
        row = await store.get_job(poison.id, None)
        assert row is not None and row.input == nested(260)
    finally:
        await store.close()
