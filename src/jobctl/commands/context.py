"""Context: what a command gets instead of reaching for globals.

Settings, the output streams and whether they are terminals, the environment,
the clock, and a client factory that knows about the local server (and starts
it on demand). Tests build one with string streams, a fixed clock and an
httpx transport.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from jobctl import paths
from jobctl.config import DEFAULT_HOST, ENV_DEBUG, ENV_NO_COLOR, Settings, load_settings
from jobctl.errors import AuthError, UsageError

if TYPE_CHECKING:
    import httpx

    from jobctl.backends.appbackend import AppBackend
    from jobctl.backends.appprofile import AppProfile
    from jobctl.backends.apptokens import TokenSession
    from jobctl.backends.feed import RealtimeConfig
    from jobctl.backends.jobapi import AsyncJobClient, Endpoint, JobClient
    from jobctl.backends.supabase_reader import SupabaseReader


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    stdout: IO[str]
    stderr: IO[str]
    stdin: IO[str]
    env: Mapping[str, str]
    flags: dict[str, Any] = field(default_factory=dict)  # global flags: profile, api_url
    no_color: bool = False
    clock: Callable[[], datetime] = _now
    transport: httpx.BaseTransport | None = None
    async_transport: httpx.AsyncBaseTransport | None = None  # default: `transport`, if it can
    _clients: list[JobClient] = field(default_factory=list)
    _async_clients: list[AsyncJobClient] = field(default_factory=list)  # their owners close them
    _readers: list[SupabaseReader | AppBackend] = field(default_factory=list)
    _app_backend: AppBackend | None = None

    @classmethod
    def from_process(cls, env: Mapping[str, str] | None = None) -> Context:
        import os

        return cls(sys.stdout, sys.stderr, sys.stdin, dict(os.environ if env is None else env))

    # Settings ---------------------------------------------------------------
    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.env, self.flags)

    @property
    def debug(self) -> bool:
        return self.env.get(ENV_DEBUG, "") not in ("", "0")

    # Terminal ---------------------------------------------------------------
    @property
    def stdout_tty(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_tty(self) -> bool:
        return _isatty(self.stderr)

    @property
    def stdin_tty(self) -> bool:
        return _isatty(self.stdin)

    @property
    def color(self) -> bool:
        """Colour on stdout: only on a terminal, and never with NO_COLOR or --no-color."""
        return self.stdout_tty and not self.no_color and not self.env.get(ENV_NO_COLOR)

    def info(self, message: str) -> None:
        """A note for the person at the terminal: stderr, never stdout."""
        print(f"jobctl: {message}", file=self.stderr, flush=True)

    def out(self, text: str = "") -> None:
        print(text, file=self.stdout)

    # The server -------------------------------------------------------------
    def local_token(self) -> str | None:
        try:
            return paths.token_file().read_text().strip() or None
        except OSError:
            return None

    def api_url(self) -> str:
        """The active profile's API URL; for `local`, the running local server's."""
        from jobctl.backends.localserver import read_state

        s = self.settings
        url = s.explicit_api_url
        if url is None and s.is_local:
            state = read_state(s.data_dir)
            url = state.url if state else f"http://{DEFAULT_HOST}:{s.port}"
        if url is None and s.supabase_only:
            raise UsageError(
                f"profile {s.profile!r} has only a Supabase project (no api_url): `list`, `show` "
                "and `watch` read its jobs table, but this command needs the job API; set it "
                f"with `jobctl config set api_url URL --profile {s.profile}`"
            )
        if url is None:
            raise UsageError(
                f"profile {s.profile!r} has no api_url; "
                f"set one with `jobctl config set api_url URL --profile {s.profile}`"
            )
        return url

    def endpoint(self) -> Endpoint:
        """URL and token of the active profile (the local server's token when local)."""
        from jobctl.backends.jobapi import Endpoint

        s = self.settings
        url = self.api_url()
        token: str | None = s.get("token")
        if s.is_local:
            token = token or self.local_token()
        elif token is None:
            raise AuthError(
                f"not logged in to profile {s.profile!r}; run `jobctl auth login --profile "
                f"{s.profile}`"
            )
        return Endpoint(url, token)

    def unreachable_hint(self) -> str:
        s = self.settings
        if s.is_local and not s.explicit_api_url:
            why = " (autostart is off)" if not s.get("autostart") else ""
            return f"; start it with `jobctl server start`{why}"
        return f"; check api_url of profile {s.profile!r} (`jobctl config show`)"

    def autostart(self) -> Endpoint | None:
        """Start the local server for a client that found none, and say so on stderr."""
        from jobctl.backends.jobapi import Endpoint
        from jobctl.backends.localserver import log_file, start_server

        s = self.settings
        state, started = start_server(s.data_dir, s.port)
        if started:
            self.info(
                f"started the local job server at {state.url} (data: {s.data_dir}; "
                f"log: {log_file(s.data_dir)}); stop it with `jobctl server stop`"
            )
        return Endpoint(state.url, self.settings.get("token") or self.local_token())

    def _client_options(self, autostart: bool, retries: int | None) -> dict[str, Any]:
        """What both job API clients are built from: the active profile's endpoint, the
        settings, and the local server's autostart on a refused connection."""
        endpoint = self.endpoint()
        return {
            "base_url": endpoint.url,
            "token": endpoint.token,
            "timeout": self.settings.timeout,
            "retries": self.settings.retries if retries is None else retries,
            "unreachable_hint": self.unreachable_hint(),
            "on_unreachable": self.autostart if autostart and self.settings.autostart else None,
        }

    def feed_client_options(self, retries: int | None = None) -> dict[str, Any]:
        """The job API client's options as plain data, for the live feed's process to build
        its own `AsyncJobClient` (no autostart there: the caller has connected)."""
        options = self._client_options(False, retries)
        options.pop("on_unreachable", None)
        return options

    # App profiles -------------------------------------------------------------------
    @cached_property
    def app(self) -> AppProfile | None:
        """The active profile's app file, when it has one (<config dir>/apps/NAME.toml)."""
        path = self.settings.app_file
        if path is None:
            return None
        from jobctl.backends.appprofile import load_profile

        return load_profile(self.settings.profile, path)

    def app_session(self) -> TokenSession:
        """The user's Supabase session for the app profile, saved again on every refresh."""
        from jobctl.backends.apptokens import Tokens, TokenSession
        from jobctl.config import set_value

        s = self.settings
        token = s.get("token")
        if not token:
            raise AuthError(
                f"not logged in to profile {s.profile!r}; run `jobctl auth login --profile "
                f"{s.profile} --email EMAIL`"
            )
        profile = s.profile

        def save(tokens: Tokens) -> None:
            set_value("token", tokens.access, profile)
            if tokens.refresh:
                set_value("refresh_token", tokens.refresh, profile)

        return TokenSession(
            Tokens(token, s.get("refresh_token")),
            supabase_url=str(s.get("supabase_url") or ""),
            anon_key=self.supabase_key(),
            save=save,
            timeout=s.timeout,
        )

    def app_backend(self) -> AppBackend:
        """The app profile's backend (one per command, closed by `close`)."""
        if self._app_backend is None:
            from jobctl.backends.appbackend import AppBackend
            from jobctl.backends.appprofile import replace_urls

            app = self.app
            assert app is not None
            s = self.settings
            app = replace_urls(app, s.explicit_api_url, s.get("supabase_url"))
            self._app_backend = AppBackend(
                app,
                self.app_session(),
                self.supabase_key(),
                timeout=s.timeout,
                transport=self.transport,
            )
            self._readers.append(self._app_backend)
        return self._app_backend

    def jobs_client(self) -> JobClient | AppBackend:
        """What `submit`, `cancel` and `retry` act through: the job API, or the app's own."""
        return self.app_backend() if self.app is not None else self.client()

    def client(self, *, autostart: bool = True) -> JobClient:
        """The job API for the blocking commands (closed by `close`)."""
        from jobctl.backends.jobapi import JobClient

        if self.app is not None:
            raise UsageError(
                f"profile {self.settings.profile!r} is an app ({self.settings.app_file}): this "
                "command needs jobctl's own job API; `submit`, `list`, `show`, `watch`, "
                "`cancel`, `retry` and `tui` work with the app"
            )

        client = JobClient(**self._client_options(autostart, None), transport=self.transport)
        self._clients.append(client)
        return client

    def async_client(self, *, autostart: bool = True, retries: int | None = None) -> AsyncJobClient:
        """The same job API for asyncio (the live feed, the dashboard), built as `client()`
        is; the caller closes it (`aclose`) inside its event loop."""
        from jobctl.backends._httpx import httpx
        from jobctl.backends.jobapi import AsyncJobClient

        transport = self.async_transport
        if transport is None and isinstance(self.transport, httpx.AsyncBaseTransport):
            transport = self.transport  # httpx.MockTransport serves both kinds of client
        client = AsyncJobClient(**self._client_options(autostart, retries), transport=transport)
        self._async_clients.append(client)
        return client

    def reader(self) -> JobClient | SupabaseReader | AppBackend:
        """What `list`, `show` and `watch` read through: the job API, an app's own jobs
        table (app profiles), or for a profile with only a Supabase project, its `jobs`
        table over PostgREST."""
        if self.app is not None:
            return self.app_backend()
        s = self.settings
        if not s.supabase_only:
            return self.client()
        from jobctl.backends.supabase_reader import SupabaseReader

        key, token = self.supabase_key(), s.get("token")
        if not token:
            raise AuthError(
                f"not logged in to profile {s.profile!r}: it needs the user's Supabase access "
                f"token (JWT); run `jobctl auth login --profile {s.profile}`"
            )
        reader = SupabaseReader(s.get("supabase_url"), key, token, timeout=s.timeout)
        self._readers.append(reader)
        return reader

    def supabase_key(self) -> str:
        s = self.settings
        key: str | None = s.get("supabase_anon_key")
        if not key:
            raise UsageError(
                f"profile {s.profile!r} has supabase_url but no supabase_anon_key; set it with "
                f"`jobctl config set supabase_anon_key KEY --profile {s.profile}`"
            )
        return key

    def realtime_config(self, endpoint: Endpoint | None) -> RealtimeConfig:
        """Where live updates come from: the profile's Supabase project (anon key as apikey,
        the user's JWT set on the client before subscribing), else the job server's own
        Realtime endpoint (its token as apikey)."""
        from jobctl.backends.feed import RealtimeConfig

        s = self.settings
        if self.app is not None:
            backend = self.app_backend()
            profile, session = backend.profile, backend.session
            return RealtimeConfig(
                f"{profile.supabase_url}/realtime/v1",
                self.supabase_key(),
                access_token=session.current,
                table=profile.table,
                schema=profile.schema,
                id_column=profile.columns["id"],
                decode=profile.map_row,
                token=lambda: session.current,
            )
        if s.get("supabase_url") and not s.is_local:
            url = str(s.get("supabase_url")).rstrip("/") + "/realtime/v1"
            return RealtimeConfig(url, self.supabase_key(), access_token=s.get("token"))
        if endpoint is None:
            endpoint = self.endpoint()
        return RealtimeConfig(endpoint.url.rstrip("/") + "/realtime/v1", endpoint.token or "")

    def secrets(self) -> list[str]:
        """Strings that must never be printed (for the last-resort redaction in main)."""
        found = []
        if "settings" in self.__dict__:
            found += [self.settings.get(k) for k in ("token", "refresh_token", "supabase_anon_key")]
        if self._app_backend is not None:
            found += [
                self._app_backend.session.tokens.access,
                self._app_backend.session.tokens.refresh,
            ]
        found += [c.core.token for c in self._clients]
        found += [c.core.token for c in self._async_clients]
        found += [self.env.get("JOBCTL_TOKEN"), self.local_token()]
        return [s for s in found if s]

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for reader in self._readers:
            reader.close()

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir
