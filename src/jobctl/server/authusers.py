"""The users the embedded server's `/auth/v1` signs in, and their refresh tokens.

One JSON file in the data dir (`auth-users.json`, mode 0600), shared by `jobctl server user add`
and the running server: every read-modify-write holds an exclusive `flock` on a lock file beside
it and replaces the file atomically, so a user added while the server runs is seen on the next
sign-in and a refresh that rotates a token never drops a user added meanwhile.

Passwords are hashed with scrypt (n=2**14, r=8, p=1, a 16-byte salt); refresh tokens are stored
as their SHA-256 only (they are 192-bit random strings: a slow hash adds nothing). A refresh
token is used once: refreshing revokes it and issues the next one of the same session.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

USERS_FILE = "auth-users.json"
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MAX_SESSIONS_PER_USER = 50  # the oldest sessions are forgotten past this
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 6  # GoTrue's default minimum


class UserError(ValueError):
    """A user that cannot be added (a malformed email, a short password, a duplicate)."""


@dataclass(frozen=True)
class User:
    id: str
    email: str
    created_at: float
    last_sign_in_at: float | None = None


@dataclass(frozen=True)
class Session:
    user: User
    session_id: str
    refresh_token: str  # the plain token, handed to the client once


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# A fixed hash to check against when the email is unknown, so that a wrong email takes as long
# as a wrong password (no user enumeration by timing).
_DUMMY_HASH = hash_password("not a password", b"\0" * 16)


class UserStore:
    """Blocking file operations: the server calls them in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The file's data under an exclusive lock; written back if changed."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self._write(data)
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {"users": {}, "refresh_tokens": {}}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UserError(f"{self.path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise UserError(f"{self.path}: expected a JSON object")
        data.setdefault("users", {})
        data.setdefault("refresh_tokens", {})
        return data

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    # users

    def add_user(self, email: str, password: str, *, replace: bool = False) -> User:
        email = email.strip().lower()
        if not EMAIL.match(email):
            raise UserError(f"not an email address: {email!r}")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"the password is shorter than {MIN_PASSWORD} characters")
        with self._locked() as data:
            users: dict[str, Any] = data["users"]
            existing = next((u for u in users.values() if u["email"] == email), None)
            if existing is not None and not replace:
                raise UserError(f"{email} already exists (--replace sets a new password)")
            if existing is not None:
                existing["password"] = hash_password(password)
                # A new password ends the user's sessions, as GoTrue does.
                data["refresh_tokens"] = {
                    k: v
                    for k, v in data["refresh_tokens"].items()
                    if v["user_id"] != existing["id"]
                }
                return _user(existing)
            record: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "email": email,
                "password": hash_password(password),
                "created_at": time.time(),
                "last_sign_in_at": None,
            }
            users[record["id"]] = record
            return _user(record)

    def list_users(self) -> list[User]:
        with self._locked() as data:
            return sorted((_user(u) for u in data["users"].values()), key=lambda u: u.created_at)

    def remove_user(self, email: str) -> bool:
        email = email.strip().lower()
        with self._locked() as data:
            found = [k for k, u in data["users"].items() if u["email"] == email]
            for key in found:
                del data["users"][key]
            data["refresh_tokens"] = {
                k: v for k, v in data["refresh_tokens"].items() if v["user_id"] not in found
            }
            return bool(found)

    def get_user(self, user_id: str) -> User | None:
        with self._locked() as data:
            record = data["users"].get(user_id)
            return _user(record) if record else None

    # sessions

    def sign_in(self, email: str, password: str) -> Session | None:
        """A new session for a right email and password; None otherwise."""
        email = email.strip().lower()
        with self._locked() as data:
            found = next((u for u in data["users"].values() if u["email"] == email), None)
            stored = found["password"] if found else None
        # scrypt outside the lock (0.1-0.7 s): other sign-ins and refreshes go on meanwhile.
        if not check_password(password, stored or _DUMMY_HASH) or stored is None:
            return None
        with self._locked() as data:
            record = next((u for u in data["users"].values() if u["email"] == email), None)
            if record is None or record["password"] != stored:
                return None  # removed, or given a new password, while we checked
            record["last_sign_in_at"] = time.time()
            return self._issue(data, record, str(uuid.uuid4()))

    def refresh(self, refresh_token: str) -> Session | None:
        """The next token of the session `refresh_token` belongs to (which it revokes)."""
        with self._locked() as data:
            entry = data["refresh_tokens"].pop(_token_hash(refresh_token), None)
            if entry is None:
                return None
            record = data["users"].get(entry["user_id"])
            if record is None:
                return None
            return self._issue(data, record, entry["session_id"])

    def sign_out(self, user_id: str, session_id: str | None, scope: str = "local") -> None:
        """`local`: this session; `global`: every session of the user; `others`: all but it."""
        with self._locked() as data:

            def keep(entry: dict[str, Any]) -> bool:
                if entry["user_id"] != user_id:
                    return True
                if scope == "global":
                    return False
                same = entry["session_id"] == session_id
                return not same if scope == "local" else same

            data["refresh_tokens"] = {k: v for k, v in data["refresh_tokens"].items() if keep(v)}

    def _issue(self, data: dict[str, Any], record: dict[str, Any], session_id: str) -> Session:
        token = secrets.token_urlsafe(24)
        tokens: dict[str, Any] = data["refresh_tokens"]
        tokens[_token_hash(token)] = {
            "user_id": record["id"],
            "session_id": session_id,
            "issued_at": time.time(),
        }
        mine = sorted(
            (v["issued_at"], k) for k, v in tokens.items() if v["user_id"] == record["id"]
        )
        for _, key in mine[:-MAX_SESSIONS_PER_USER]:
            del tokens[key]
        return Session(_user(record), session_id, token)


def _user(record: dict[str, Any]) -> User:
    return User(record["id"], record["email"], record["created_at"], record.get("last_sign_in_at"))
