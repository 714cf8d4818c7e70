"""What any value must be to get past the door: JSON a store can keep and give back.

Both stores keep JSON as text and return it through `json.loads` and the API's encoder,
so a value is refused at the door when that round trip could fail or go wrong:
- nesting over MAX_DEPTH levels (the encoder and pydantic recurse; 260 levels made a
  job that no listing could return);
- a lone surrogate (`\\ud800`): Python keeps it in a str, UTF-8 cannot encode it;
- a NUL character: PostgreSQL text cannot hold one;
- NaN and Infinity (`1e999` parses as inf): not JSON, the encoder refuses them.

The checks raise `InvalidInput`, a domain error: the API maps it to 400 or 422.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any

from jobctl.server.joberrors import InvalidInput

MAX_DEPTH = 64
"""Levels of nesting allowed in a job's input (`{"a": 1}` is one level)."""


class UnsafeJson(InvalidInput):
    """A body or value that is JSON but not one the server can keep (400)."""


def _where(path: tuple[Any, ...] | None, root: str) -> str:
    """`input.a[3]["odd key"]`: where in a value a fault is, in ASCII (keys may hold
    the very NUL or surrogate being reported)."""
    parts: list[str] = []
    while path is not None:
        path, key = path
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif isinstance(key, str) and key.isascii() and key.isidentifier():
            parts.append(f".{key[:40]}")
        else:
            parts.append(f"[{json.dumps(str(key)[:40])}]")
    text = (root + "".join(reversed(parts))).lstrip(".") or "the request body"
    return text if len(text) <= 120 else text[:117] + "..."


def check_text(text: str, where: str) -> None:
    """No NUL character and no lone surrogate in a string (a key, an id, a query value)."""
    if "\x00" in text:
        raise UnsafeJson(
            f"{where}: contains a NUL character (\\u0000), which the store cannot keep",
            code="invalid_text",
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = ord(text[exc.start])
            raise UnsafeJson(
                f"{where}: contains a lone UTF-16 surrogate (\\u{bad:04x}), which is not "
                "valid Unicode text",
                code="invalid_text",
            ) from None


_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_DELTA = [0] * 256
_DELTA[ord("[")] = _DELTA[ord("{")] = 1
_DELTA[ord("]")] = _DELTA[ord("}")] = -1
# in JSON text without its escaped backslashes: an escape that may make a lone surrogate,
# and an exponent that may make an infinity
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_HUGE = re.compile(r"[eE][+-]?0*\d{3}")


def canonical(value: Any, where: str, max_depth: int = MAX_DEPTH) -> str:
    """The value as the stores keep it (compact JSON text), once it is known to be safe:
    nested at most `max_depth` levels, no NUL, no lone surrogate, no NaN or Infinity.

    The checks run on the encoded text with str and bytes methods, in C (500,000 numbers
    cost about what encoding them costs); only a refusal walks the value to say where.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        _find_fault(value, where, max_depth)
        raise UnsafeJson(f"{where or 'the request body'}: not storable as JSON") from None
    plain = text.replace("\\\\", "")
    if "\\u0000" in plain or _depth(plain, max_depth) > max_depth:
        _find_fault(value, where, max_depth)
    return text


def json_depth(text: str, max_depth: int) -> int:
    """How deep JSON text nests, exactly when that is over `max_depth` (else maybe 0)."""
    return _depth(text.replace("\\\\", ""), max_depth)


def _depth(plain: str, max_depth: int) -> int:
    """How deep JSON text nests, given without its escaped backslashes (0 when it cannot
    be over `max_depth`: too few brackets). Brackets inside strings do not count."""
    if plain.count("[") + plain.count("{") <= max_depth:
        return 0
    kept = plain.replace('\\"', "").encode("utf-8").translate(None, _NOT_STRUCTURE)
    # Quotes now alternate, opening and closing strings. Dropping two adjacent ones merges
    # or removes strings and leaves what is outside them alone; most strings hold no
    # bracket, so little is left to split.
    kept = kept.replace(b'""', b"")
    outside = b"".join(kept.split(b'"')[::2]) if b'"' in kept else kept
    return max(itertools.accumulate(map(_DELTA.__getitem__, outside)), default=0)


def check_value(value: Any, where: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a value that `canonical` would refuse."""
    canonical(value, where, max_depth)


def _find_fault(value: Any, where: str, max_depth: int) -> None:
    """Walk the value to name the first fault (slow; only for a value known to have one).

    Iterative: a value too deep for recursion is still walked, not a RecursionError.
    """
    # (value, depth of the container holding it, path as nested (parent, key) pairs)
    stack: list[tuple[Any, int, tuple[Any, ...] | None]] = [(value, 0, None)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            check_text(item, _where(path, where))
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                raise UnsafeJson(
                    f"{_where(path, where)}: nested deeper than {max_depth} levels",
                    code="too_deep",
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str):
                        check_text(key, _where((path, key), where) + " (a key)")
                    stack.append((child, depth + 1, (path, key)))
            else:
                stack.extend((child, depth + 1, (path, i)) for i, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnsafeJson(f"{_where(path, where)}: {item} is not a JSON number")


def _refuse_constant(name: str) -> Any:
    raise UnsafeJson(f"{name} is not JSON (use null or a string)", code="malformed_json")


def load_json(body: bytes, max_depth: int) -> Any:
    """Parse a request body strictly: UTF-8 only, no NaN/Infinity, then `check_value`.

    Raises `json.JSONDecodeError` for text that is not JSON (the caller reports it as
    FastAPI does), `UnsafeJson` for the rest.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeJson(
            f"request body is not UTF-8 (byte {exc.start})", code="malformed_json"
        ) from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise UnsafeJson(
            f"request body is nested deeper than {max_depth} levels", code="too_deep"
        ) from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer of over 4,300 digits
        raise UnsafeJson(f"request body: {exc}", code="malformed_json") from None
    # The raw text tells at C speed when nothing can be wrong; only a body with NUL or
    # surrogate escapes, huge exponents or deep brackets is looked at closely.
    plain = text.replace("\\\\", "")
    if (
        "\\u0000" in plain
        or _SURROGATE.search(plain)
        or _HUGE.search(plain)
        or _depth(plain, max_depth) > max_depth
    ):
        canonical(value, "", max_depth)
    return value
