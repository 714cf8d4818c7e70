"""The user's Supabase session for an app profile: sign-in with email and password, and the
access token refreshed with the refresh token before it expires.

Through supabase-py's auth client (`supabase_auth`, imported on first use) against
`<supabase_url>/auth/v1`, as the apps' own frontends do. Tokens are saved in the config
file (0600) with every refresh, so the next command starts with a live one; a watch of
an hour refreshes as it goes (`TokenSession.keep_fresh`), and its Realtime channel and
PostgREST reads take the new token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobctl.errors import AuthError, UnreachableError

REFRESH_AHEAD = 60.0  # seconds before `exp` a token is refreshed
MIN_WAIT = 1.0


@dataclass(frozen=True)
class Tokens:
    access: str
    refresh: str | None


def _claims(token: str) -> dict[str, Any]:
    """The JWT's claims, not verified: the server does that; this only says when to refresh."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, AttributeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def expires_at(token: str) -> float | None:
    exp = _claims(token).get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def refresh_ahead(token: str, most: float = REFRESH_AHEAD) -> float:
    """How long before its expiry a token is refreshed: a minute, or half its lifetime
    when it lives less than two (a 10-minute token is not refreshed every second)."""
    claims = _claims(token)
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, int | float) and isinstance(iat, int | float) and exp > iat:
        return min(most, (exp - iat) / 2)
    return most


def _auth_client(supabase_url: str, anon_key: str, timeout: float) -> Any:
    from supabase_auth import SyncGoTrueClient

    from jobctl.backends._httpx import httpx

    return SyncGoTrueClient(
        url=f"{supabase_url.rstrip('/')}/auth/v1",
        headers={"apikey": anon_key},
        auto_refresh_token=False,  # refreshed here, on our schedule, saved each time
        persist_session=False,
        http_client=httpx.Client(timeout=timeout, follow_redirects=True),
    )


def _failure(exc: Exception, supabase_url: str, what: str) -> Exception:
    from supabase_auth.errors import AuthApiError, AuthRetryableError

    if isinstance(exc, AuthRetryableError):
        return UnreachableError(
            f"the Supabase auth service at {supabase_url}/auth/v1 cannot be reached "
            f"({exc.message or 'no answer'}); check supabase_url"
        )
    if isinstance(exc, AuthApiError):
        return AuthError(f"{what} refused by {supabase_url}/auth/v1: {exc.message}")
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return AuthError(f"{what} failed at {supabase_url}/auth/v1: {message}")


def sign_in(
    supabase_url: str, anon_key: str, email: str, password: str, *, timeout: float = 30.0
) -> Tokens:
    from supabase_auth.errors import AuthError as SupabaseAuthError

    client = _auth_client(supabase_url, anon_key, timeout)
    try:
        answer = client.sign_in_with_password({"email": email, "password": password})
    except SupabaseAuthError as exc:
        raise _failure(exc, supabase_url, "sign-in") from None
    finally:
        client._http_client.close()
    session = answer.session
    if session is None:
        raise AuthError(f"sign-in at {supabase_url}/auth/v1 returned no session")
    return Tokens(session.access_token, session.refresh_token)


def refresh(
    supabase_url: str, anon_key: str, refresh_token: str, *, timeout: float = 30.0
) -> Tokens:
    from supabase_auth.errors import AuthError as SupabaseAuthError

    client = _auth_client(supabase_url, anon_key, timeout)
    try:
        answer = client.refresh_session(refresh_token)
    except SupabaseAuthError as exc:
        raise _failure(exc, supabase_url, "refreshing the session") from None
    finally:
        client._http_client.close()
    session = answer.session
    if session is None:
        raise AuthError(f"refreshing the session at {supabase_url}/auth/v1 returned none")
    return Tokens(session.access_token, session.refresh_token or refresh_token)


class TokenSession:
    """The access token to send now, refreshed when it is near its end.

    Thread-safe: PostgREST reads run in worker threads while the Realtime loop asks
    for the token on the event loop (`current` never blocks; `bearer` may refresh)."""

    def __init__(
        self,
        tokens: Tokens,
        *,
        supabase_url: str,
        anon_key: str,
        save: Callable[[Tokens], None] = lambda t: None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        ahead: float = REFRESH_AHEAD,
    ) -> None:
        self.tokens = tokens
        self.supabase_url = supabase_url
        self.anon_key = anon_key
        self.save = save
        self.timeout = timeout
        self.clock = clock
        self.ahead = ahead
        self.refreshes = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> str:
        return self.tokens.access

    def due_in(self) -> float | None:
        """Seconds until the token should be refreshed (None: it has no `exp`)."""
        exp = expires_at(self.tokens.access)
        if exp is None:
            return None
        return exp - refresh_ahead(self.tokens.access, self.ahead) - self.clock()

    def bearer(self) -> str:
        """The token, refreshed first when it is due and a refresh token is at hand."""
        due = self.due_in()
        if due is not None and due <= 0 and self.tokens.refresh:
            self.refresh(self.tokens.access)
        return self.tokens.access

    def refresh(self, stale: str | None = None) -> str:
        """A new access token (once, when several threads find the same one `stale`)."""
        with self._lock:
            if stale is not None and self.tokens.access != stale:
                return self.tokens.access  # another thread refreshed it meanwhile
            if not self.tokens.refresh:
                raise AuthError(
                    "the access token has expired and there is no refresh token; log in again"
                )
            self.tokens = refresh(
                self.supabase_url, self.anon_key, self.tokens.refresh, timeout=self.timeout
            )
            self.refreshes += 1
            self.save(self.tokens)
            return self.tokens.access

    async def keep_fresh(self) -> None:
        """Refresh ahead of every expiry, for as long as it runs (a watch, the dashboard).
        A failed refresh is tried again shortly; the reads report it if it never works."""
        while True:
            due = self.due_in()
            if due is None or not self.tokens.refresh:
                return
            await asyncio.sleep(max(MIN_WAIT, due))
            if (self.due_in() or 0) > 0:
                continue
            try:
                await asyncio.to_thread(self.refresh, self.tokens.access)
            except (AuthError, UnreachableError):
                await asyncio.sleep(5.0)
