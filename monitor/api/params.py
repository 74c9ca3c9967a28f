"""Query and path parameters: one declaration gives both the parser and its OpenAPI schema.

Each `Param` carries a JSON schema (documented in /api/v1/openapi.json) and
a parser that accepts exactly what that schema accepts, from the same regular
expression, so the document cannot drift from the handlers.  Parsers raise
`ValueError` with a message that says what is expected; `parse_args` turns it
into a 400 naming the parameter.  Unknown or repeated parameters are 400 too:
a typo such as `?sites=` must not silently widen an auditor's query.

Periods: `from` and `to` take a date (`2026-07-01`, a day in the configured
time zone) or an instant with an offset (`2026-07-01T00:00:00+02:00`,
`…Z`).  `from` is inclusive; a date `to` includes that whole day (as
`qualimon export --to` does); an instant `to` is exclusive.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from monitor.api.errors import bad_request
from monitor.clock import iso_utc
from monitor.config.models import COMMITMENT_ID, SLUG
from monitor.verdicts import VERDICTS as ALL_VERDICTS

DATE = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
INSTANT = DATE + r"T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)"
WHEN = f"^({DATE}|{INSTANT})$"
PROBE_ID = r"^[0-9A-Za-z._-]{1,64}$"
CURSOR = r"^[A-Za-z0-9_-]{1,200}$"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100

Parser = Callable[[str], Any]


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str
    parse: Parser
    location: str = "query"  # or "path"
    required: bool = False
    default: Any = None

    def openapi(self) -> dict[str, Any]:
        return {"name": self.name, "in": self.location, "required": self.required or self.location == "path",
                "description": self.description, "schema": self.schema}


def matching(pattern: str, expected: str) -> Parser:
    compiled = re.compile(pattern)

    def parse(text: str) -> str:
        if not compiled.fullmatch(text):
            raise ValueError(f"must be {expected}")
        return text

    return parse


def one_of(values: Sequence[str]) -> Parser:
    def parse(text: str) -> str:
        if text not in values:
            raise ValueError(f"must be one of {', '.join(values)}")
        return text

    return parse


def parse_limit(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,7}", text) or not 1 <= int(text) <= MAX_LIMIT:
        raise ValueError(f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def parse_when(text: str) -> date | datetime:
    """A day or an aware instant; which one matters for `to` (see the module docstring)."""
    if not re.fullmatch(WHEN, text, re.ASCII):  # as the schema's ECMA \d: no other script's digits
        raise ValueError("must be a date (2026-07-01) or an instant with an offset (2026-07-01T00:00:00Z)")
    try:
        if "T" in text:
            return datetime.fromisoformat(text).astimezone(ZoneInfo("UTC"))
        return date.fromisoformat(text)
    except (ValueError, OverflowError):
        raise ValueError("is not a real date or instant") from None


def parse_positive_int(text: str) -> int:
    if not re.fullmatch(r"[1-9][0-9]{0,17}", text):
        raise ValueError("must be a positive whole number")
    return int(text)


# ------------------------------------------------------------------ cursors


Position = tuple[datetime, str]


def encode_cursor(position: Position) -> str:
    """Opaque to clients: the (planned_at, id) of the last item served, in URL-safe base64."""
    raw = f"1|{iso_utc(position[0])}|{position[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(text: str) -> Position:
    failure = ValueError("is not a cursor this API gave out (copy next_cursor as it is)")
    if not re.fullmatch(CURSOR, text):
        raise failure
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        version, instant, probe_id = raw.split("|")
        at = datetime.fromisoformat(instant)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise failure from None
    if version != "1" or at.tzinfo is None or not re.fullmatch(PROBE_ID, probe_id):
        raise failure
    return at.astimezone(ZoneInfo("UTC")), probe_id


# ------------------------------------------------------------------ periods


def period(args: Args, zone: str) -> tuple[datetime | None, datetime | None]:
    """[start, end) in UTC from the `from` and `to` arguments (see the module docstring)."""
    tz = ZoneInfo(zone)
    start = _bound(args.get("from"), tz, end=False)
    end = _bound(args.get("to"), tz, end=True)
    if start is not None and end is not None and end <= start:
        raise bad_request("to: must be after from (a date 'to' includes that whole day)")
    return start, end


def _bound(value: date | datetime | None, tz: ZoneInfo, *, end: bool) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        day = value + timedelta(days=1) if end else value
        return datetime.combine(day, time(0), tz).astimezone(ZoneInfo("UTC"))
    except OverflowError:
        raise bad_request(f"{'to' if end else 'from'}: is out of range") from None


# ------------------------------------------------------------------ the common parameters


def site_param(description: str = "Only this site (its id in the config).") -> Param:
    return Param("site", {"type": "string", "pattern": SLUG}, description,
                 matching(SLUG, "a site id such as 'maison-victor-hugo'"))


def commitment_param(description: str = "Only this commitment (its id in the config).") -> Param:
    return Param("commitment", {"type": "string", "pattern": COMMITMENT_ID}, description,
                 matching(COMMITMENT_ID, "a commitment id such as 'email.reply'"))


VERDICTS = ALL_VERDICTS

FROM = Param("from", {"type": "string", "pattern": WHEN},
             "Start, inclusive: a date (that day in the configured time zone) or an instant with an offset.",
             parse_when)
TO = Param("to", {"type": "string", "pattern": WHEN},
           "End: a date includes that whole day; an instant with an offset is exclusive.", parse_when)
LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
              f"Items per page, 1 to {MAX_LIMIT}.", parse_limit, default=DEFAULT_LIMIT)
CURSOR_PARAM = Param("cursor", {"type": "string", "pattern": CURSOR},
                     "The next_cursor of the previous page, as it was given.", parse_cursor)
PROBE_ID_PARAM = Param("id", {"type": "string", "pattern": PROBE_ID}, "A probe id.", str, location="path")


@dataclass(frozen=True)
class Args:
    """Parsed arguments of one request, defaults filled in."""

    values: dict[str, Any] = field(default_factory=dict)
    identity: Any = None  # auth.Identity of the caller; None on open routes

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


def parse_args(params: Sequence[Param], query: Mapping[str, str], path: Mapping[str, str],
               getall: Callable[[str], list[str]], identity: Any = None) -> Args:
    known = {p.name for p in params if p.location == "query"}
    if set(query) - known:
        raise bad_request(f"unknown parameter; this endpoint takes {', '.join(sorted(known)) or 'none'}")
    values: dict[str, Any] = {}
    for param in params:
        raw = _raw(param, query, path, getall)
        if raw is None:
            if param.required:
                raise bad_request(f"{param.name}: is required")
            values[param.name] = param.default
            continue
        try:
            values[param.name] = param.parse(raw)
        except ValueError as exc:
            raise bad_request(f"{param.name}: {exc}") from None
    return Args(values, identity)


def _raw(param: Param, query: Mapping[str, str], path: Mapping[str, str],
         getall: Callable[[str], list[str]]) -> str | None:
    if param.location == "path":
        return path.get(param.name)
    if param.name not in query:
        return None
    given = getall(param.name)
    if len(given) > 1:
        raise bad_request(f"{param.name}: given {len(given)} times; give it once")
    return given[0]
