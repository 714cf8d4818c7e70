"""A deterministic, offline extractor of dated events and action items from journal text.

It stands in for the LLM call of the original app: same output shape, no network,
same answer every time. Rules, not magic: a sentence with a date or weekday
expression is an event; a sentence with an intention ("need to", "remember to",
"TODO:") is an action item, with a due date when one is given.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

MONTHS = {
    m: i + 1
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ]
    )
}
MONTHS.update({m[:3]: i for m, i in list(MONTHS.items())})
MONTHS["sept"] = 9
WEEKDAYS = {
    d: i
    for i, d in enumerate(
        ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    )
}

_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))
_DAY_RE = "|".join(WEEKDAYS)
ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
MONTH_DAY = re.compile(
    rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b", re.I
)
DAY_MONTH = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\b(?:\s+(\d{{4}}))?", re.I
)
RELATIVE = re.compile(r"\b(today|tonight|tomorrow|yesterday)\b", re.I)
WEEKDAY = re.compile(rf"\b(?:(next|this|last|on)\s+)?({_DAY_RE})\b", re.I)
TIME = re.compile(
    r"\b(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)\b|\bat\s+(\d{1,2}):(\d{2})\b", re.I
)
ACTION = re.compile(
    r"\b(?:todo:?|to-do:?|need to|needs to|have to|has to|must|should|remember to|"
    r"don'?t forget to|i'?ll|i will|going to)\s+(.*)",
    re.I,
)
NOT_ACTION = re.compile(r"^(?:bed|sleep)\b", re.I)


@dataclass
class Found:
    day: date
    time: str | None


def find_reference_date(text: str, fallback: date) -> date:
    """The journal's own date: the first absolute date in its first lines."""
    head = "\n".join(text.strip().splitlines()[:3])
    found = _absolute_date(head, fallback)
    return found or fallback


def _absolute_date(sentence: str, ref: date) -> date | None:
    if m := ISO_DATE.search(sentence):
        return _safe_date(int(m[1]), int(m[2]), int(m[3]))
    if m := MONTH_DAY.search(sentence):
        year = int(m[3]) if m[3] else ref.year
        return _safe_date(year, MONTHS[m[1].lower()], int(m[2]))
    if m := DAY_MONTH.search(sentence):
        year = int(m[3]) if m[3] else ref.year
        return _safe_date(year, MONTHS[m[2].lower()], int(m[1]))
    return None


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def find_date(sentence: str, ref: date) -> Found | None:
    day = _absolute_date(sentence, ref)
    if day is None and (m := RELATIVE.search(sentence)):
        word = m[1].lower()
        offset = {"today": 0, "tonight": 0, "tomorrow": 1, "yesterday": -1}[word]
        day = ref + timedelta(days=offset)
    if day is None and (m := WEEKDAY.search(sentence)):
        qualifier = (m[1] or "").lower()
        target = WEEKDAYS[m[2].lower()]
        delta = (target - ref.weekday()) % 7
        if qualifier == "next":
            delta = delta + 7 if delta else 7
        elif qualifier == "last":
            delta = delta - 7 if delta else -7
        elif delta == 0:
            delta = 7 if qualifier != "this" else 0
        day = ref + timedelta(days=delta)
    if day is None:
        return None
    return Found(day, find_time(sentence))


def find_time(sentence: str) -> str | None:
    m = TIME.search(sentence)
    if not m:
        return None
    if m[4] is not None:
        return f"{int(m[4]):02d}:{m[5]}"
    hour = int(m[1]) % 12 + (12 if m[3].lower() == "pm" else 0)
    return f"{hour:02d}:{m[2] or '00'}"


def split_sentences(text: str) -> list[str]:
    flat = re.sub(r"\s*\n\s*", " ", text.strip())
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])|(?<=\.)\s*(?=TODO)", flat)
    return [p.strip() for p in parts if p.strip()]


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(" .,;:")
    return text[:1].upper() + text[1:]


def _stable_id(kind: str, *parts: str) -> str:
    digest = hashlib.sha1("\x1f".join((kind, *parts)).encode()).hexdigest()
    return f"{kind}_{digest[:12]}"


CLAUSE_SPLIT = re.compile(r",\s+(?:and|but|so)\s+|;\s+")


def extract_events(sentences: list[str], ref: date, skip_first: bool) -> list[dict[str, Any]]:
    events = []
    for i, sentence in enumerate(sentences):
        if skip_first and i == 0:
            continue  # the journal's own date line
        for clause in CLAUSE_SPLIT.split(sentence):
            found = find_date(clause, ref)
            if found is None or ACTION.search(clause):
                continue  # no date, or an intention (an action item, not an event)
            events.append(
                {
                    "id": _stable_id("evt", found.day.isoformat(), clause),
                    "date": found.day.isoformat(),
                    "time": found.time,
                    "title": _clean(clause),
                    "source": sentence,
                }
            )
    return events


def extract_action_items(sentences: list[str], ref: date) -> list[dict[str, Any]]:
    items = []
    for sentence in sentences:
        for clause in CLAUSE_SPLIT.split(sentence):
            m = ACTION.search(clause)
            if not m or NOT_ACTION.search(m[1]):
                continue
            task = _clean(m[1])
            if len(task) < 4:
                continue
            found = find_date(clause, ref)
            items.append(
                {
                    "id": _stable_id("act", task),
                    "title": task,
                    "due": found.day.isoformat() if found else None,
                    "source": sentence,
                }
            )
    return items
