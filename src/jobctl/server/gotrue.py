"""The part of Supabase Auth (GoTrue) `/auth/v1` that a password sign-in uses.

`POST /auth/v1/token?grant_type=password` ({email, password}) and `?grant_type=refresh_token`
({refresh_token}) answer a session as GoTrue does (access_token, token_type "bearer",
expires_in, expires_at, refresh_token, user); `GET /auth/v1/user` answers the token's user;
`POST /auth/v1/logout?scope=local|global|others` ends sessions (204). The access token is the
HS256 JWT the rest of the server accepts (`sub` = the user's id, role `authenticated`), valid
for JOBCTL_AUTH_ACCESS_TTL seconds (3600 by default). Users come from `jobctl server user add`
(authusers.py). Errors are GoTrue's: `{"code", "error_code", "msg"}` plus the older
`{"error", "error_description"}` pair, e.g. 400 invalid_grant "Invalid login credentials".

The file work (scrypt, the locked JSON file) runs in a worker thread: the event loop never waits
on it. docs/design.md ("Auth: /auth/v1") records the decisions.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jwt
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from jobctl.server.auth import Authenticator, AuthFailed
from jobctl.server.authusers import Session, User, UserError, UserStore

DEFAULT_ACCESS_TTL = 3600.0
MAX_FIELD = 1024  # an email, a password or a refresh token longer than this is refused


def access_ttl_from_env(env: Mapping[str, str] | None = None) -> float:
    """JOBCTL_AUTH_ACCESS_TTL (seconds, 1 to 7 days); ValueError with a clear message."""
    raw = (os.environ if env is None else env).get("JOBCTL_AUTH_ACCESS_TTL", "")
    if not raw:
        return DEFAULT_ACCESS_TTL
    try:
        ttl = float(raw)
    except ValueError:
        raise ValueError(f"JOBCTL_AUTH_ACCESS_TTL: not a number: {raw!r}") from None
    if not 1 <= ttl <= 7 * 86400:
        raise ValueError("JOBCTL_AUTH_ACCESS_TTL: from 1 second to 7 days")
    return ttl


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def user_json(user: User) -> dict[str, Any]:
    """A user as GoTrue's `/user` and token answers carry it."""
    created = _iso(user.created_at)
    return {
        "id": user.id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": user.email,
        "email_confirmed_at": created,
        "phone": "",
        "confirmed_at": created,
        "last_sign_in_at": _iso(user.last_sign_in_at),
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "identities": [],
        "created_at": created,
        "updated_at": _iso(user.last_sign_in_at or user.created_at),
        "is_anonymous": False,
    }


def auth_error(status: int, error_code: str, message: str, legacy: str | None = None) -> Response:
    body: dict[str, Any] = {"code": status, "error_code": error_code, "msg": message}
    if legacy is not None:  # clients before the 2024-01-01 API version read these
        body["error"] = legacy
        body["error_description"] = message
    return JSONResponse(body, status_code=status)


class AuthService:
    def __init__(self, users: UserStore, auth: Authenticator, access_ttl: float) -> None:
        self.users = users
        self.auth = auth
        self.access_ttl = access_ttl

    def access_token(self, session: Session, now: float) -> tuple[str, int]:
        expires_at = int(now + self.access_ttl)
        claims = {
            "aud": "authenticated",
            "exp": expires_at,
            "iat": int(now),
            "iss": "jobctl/auth/v1",
            "sub": session.user.id,
            "email": session.user.email,
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {},
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": int(now)}],
            "session_id": session.session_id,
            "is_anonymous": False,
        }
        return jwt.encode(claims, self.auth.jwt_secret, algorithm="HS256"), expires_at

    def session_json(self, session: Session) -> dict[str, Any]:
        now = time.time()
        token, expires_at = self.access_token(session, now)
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": int(self.access_ttl),
            "expires_at": expires_at,
            "refresh_token": session.refresh_token,
            "user": user_json(session.user),
        }

    def claims_of(self, token: str) -> dict[str, Any]:
        """A user's access token's claims (AuthFailed if it is not one that is valid now)."""
        self.auth.authenticate(token)  # expiry, signature and role, as everywhere else
        claims: dict[str, Any] = jwt.decode(
            token, self.auth.jwt_secret, algorithms=["HS256"], options={"verify_aud": False}
        )
        if claims.get("role") != "authenticated" or not claims.get("sub"):
            raise AuthFailed("not a user's token")
        return claims


router = APIRouter(prefix="/auth/v1", include_in_schema=False)


def _service(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth_service
    return service


async def _body(request: Request) -> dict[str, Any] | Response:
    try:
        body = await request.json()
    except ValueError:
        return auth_error(
            400, "bad_json", "Could not parse request body as JSON", "invalid_request"
        )
    if not isinstance(body, dict):
        return auth_error(400, "bad_json", "Request body must be a JSON object", "invalid_request")
    return body


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        return None
    return value


def _bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@router.post("/token")
async def token(request: Request) -> Response:
    grant = request.query_params.get("grant_type", "")
    body = await _body(request)
    if isinstance(body, Response):
        return body
    service = _service(request)
    if grant == "password":
        email, password = _text(body, "email"), _text(body, "password")
        if email is None or password is None:
            if body.get("phone"):
                return auth_error(400, "phone_provider_disabled", "Phone logins are disabled")
            return auth_error(400, "validation_failed", "missing email or phone", "invalid_request")
        try:
            session = await asyncio.to_thread(service.users.sign_in, email, password)
        except UserError as exc:
            return auth_error(500, "unexpected_failure", str(exc))
        if session is None:
            return auth_error(
                400, "invalid_credentials", "Invalid login credentials", "invalid_grant"
            )
        return JSONResponse(service.session_json(session))
    if grant == "refresh_token":
        refresh = _text(body, "refresh_token")
        if refresh is None:
            return auth_error(400, "validation_failed", "Refresh Token Not Found", "invalid_grant")
        try:
            session = await asyncio.to_thread(service.users.refresh, refresh)
        except UserError as exc:
            return auth_error(500, "unexpected_failure", str(exc))
        if session is None:
            return auth_error(
                400, "refresh_token_not_found",
                "Invalid Refresh Token: Refresh Token Not Found", "invalid_grant",
            )  # fmt: skip
        return JSONResponse(service.session_json(session))
    return auth_error(
        400, "unsupported_grant_type",
        "unsupported_grant_type: this server supports password and refresh_token",
        "unsupported_grant_type",
    )  # fmt: skip


async def _user_claims(request: Request) -> dict[str, Any] | Response:
    token_value = _bearer(request)
    if not token_value:
        return auth_error(401, "no_authorization", "This endpoint requires a Bearer token")
    try:
        return _service(request).claims_of(token_value)
    except AuthFailed as exc:
        return auth_error(
            403, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {exc}"
        )


@router.get("/user")
async def get_user(request: Request) -> Response:
    claims = await _user_claims(request)
    if isinstance(claims, Response):
        return claims
    user = await asyncio.to_thread(_service(request).users.get_user, str(claims["sub"]))
    if user is None:
        return auth_error(403, "user_not_found", "User from sub claim in JWT does not exist")
    return JSONResponse(user_json(user))


@router.post("/logout")
async def logout(request: Request) -> Response:
    claims = await _user_claims(request)
    if isinstance(claims, Response):
        return claims
    scope = request.query_params.get("scope", "global")
    if scope not in ("global", "local", "others"):
        return auth_error(400, "validation_failed", "scope must be global, local or others")
    session_id = claims.get("session_id")
    await asyncio.to_thread(
        _service(request).users.sign_out,
        str(claims["sub"]),
        str(session_id) if session_id else None,
        scope,
    )
    return Response(status_code=204)


@router.get("/settings")
async def settings() -> Response:
    """What this Auth offers: email and password, nothing else."""
    return JSONResponse(
        {"external": {"email": True, "phone": False}, "disable_signup": True,
         "mailer_autoconfirm": True, "phone_autoconfirm": False, "sms_provider": ""}
    )  # fmt: skip


def mount_gotrue(app: FastAPI, users: UserStore, auth: Authenticator, access_ttl: float) -> None:
    app.state.auth_service = AuthService(users, auth, access_ttl)
    app.include_router(router)
