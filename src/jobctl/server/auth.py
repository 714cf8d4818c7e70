"""Who is calling: the server's own token, or an HS256 JWT as Supabase issues them."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

import jwt

from jobctl.paths import write_secret

LOCAL_USER = "local"


class AuthFailed(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    user_id: str | None  # None for anon and for service_role
    role: str
    expires_at: float | None = None

    @property
    def is_service(self) -> bool:
        return self.role == "service_role"

    @property
    def scope(self) -> str | None:
        """The user every read and write is limited to; None means all (service role)."""
        return None if self.is_service else self.user_id


class Authenticator:
    def __init__(self, local_token: str, jwt_secret: str, local_user: str = LOCAL_USER) -> None:
        self.local_token = local_token
        self.jwt_secret = jwt_secret
        self.local_user = local_user

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise AuthFailed("missing token: send Authorization: Bearer <token>")
        if hmac.compare_digest(token.encode(), self.local_token.encode()):
            return Principal(self.local_user, "authenticated")
        if token.count(".") != 2:
            raise AuthFailed("invalid token")
        try:
            claims = jwt.decode(
                token,
                self.jwt_secret,
                algorithms=["HS256"],
                options={"require": ["exp", "role"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailed("token has expired") from None
        except jwt.PyJWTError:
            raise AuthFailed("invalid token") from None
        role = str(claims.get("role"))
        sub = claims.get("sub")
        if role not in ("anon", "service_role") and not sub:
            raise AuthFailed("token has no subject (sub)")
        user_id = str(sub) if sub and role != "anon" else None
        return Principal(user_id, role, float(claims["exp"]))

    def make_jwt(self, sub: str | None, role: str = "authenticated", ttl: float = 3600) -> str:
        """Mint a token signed with this server's secret (for tests and `jobctl auth`)."""
        import time

        claims: dict[str, object] = {"role": role, "exp": int(time.time() + ttl)}
        if sub is not None:
            claims["sub"] = sub
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")


def load_or_create_secret(path: Path, prefix: str = "") -> tuple[str, bool]:
    """Read a secret file, or create one (mode 0600). Returns (secret, created)."""
    try:
        value = path.read_text().strip()
        if value:
            return value, False
    except FileNotFoundError:
        pass
    value = prefix + secrets.token_urlsafe(32)
    write_secret(path, value)
    return value, True
