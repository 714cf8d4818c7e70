"""Every router's routes are built when the app is, not by the first request to reach
them (#15: FastAPI builds an included router's routes lazily, 50 ms on the loop; the
first /rest/v1 read stalled a 10M-row server 64-78 ms in bench/history.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import routing

from jobctl.server.main import build
from jobctl.server.settings import ServerSettings


async def test_the_first_requests_build_no_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    included = getattr(routing, "_IncludedRouter", None)
    if included is None:
        pytest.skip("this FastAPI builds its routes eagerly")
    settings = ServerSettings(db=str(tmp_path / "r.db"), data_dir=tmp_path / "d",
                              token_file=tmp_path / "token", jwt_secret_file=tmp_path / "jwt")  # fmt: skip
    app_built = build(settings)
    built_on_request: list[str] = []
    original = included._build_effective_context

    def lazily(self: Any, route: Any) -> Any:
        built_on_request.append(getattr(route, "path", repr(route)))
        return original(self, route)

    monkeypatch.setattr(included, "_build_effective_context", lazily)
    store = app_built.engine.store
    await store.open()
    try:
        transport = httpx.ASGITransport(app=app_built.app)
        service = app_built.auth.make_jwt(None, role="service_role")
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            local = {"Authorization": f"Bearer {app_built.auth.local_token}"}
            rest = {"Authorization": f"Bearer {service}", "apikey": service}
            for path, headers in [
                ("/api/jobs?limit=5", local),
                ("/api/stats", local),
                ("/api/schedules", local),
                ("/rest/v1/jobs?select=*&status=eq.running&limit=50", rest),
                ("/auth/v1/settings", rest),
            ]:
                r = await client.get(path, headers=headers)
                assert r.status_code < 500, (path, r.status_code, r.text)
    finally:
        await store.close()
    assert built_on_request == []
