"""Phone numbers in call logs: E.164 normalisation, caller pseudonyms, redaction.

PBX logs write the same number many ways (`0199001234`, `01 99 00 12 34`,
`0033199001234`, `33199001234`, `+33199001234`, `tel:+33…`).  Sites are
configured in E.164, so every dialled number is normalised before it is
mapped to a site.  Caller numbers are personal data: they are only ever kept
as a keyed pseudonym, and excerpts of rejected rows have digit runs masked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from enum import Enum
from functools import lru_cache

_SEPARATORS = str.maketrans("", "", " .-()/\t")
_EXTENSION = re.compile(r"[0-9*#]{1,6}|[A-Za-z][A-Za-z0-9_-]{0,31}")
# Phone-number-like runs: 8+ digits with optional single space/dot separators.
# Dates (2026-03-29) and clock times (10:00:05) are left readable.
_DIGIT_RUN = re.compile(r"\+?\d(?:[ .]?\d){7,}")


class NumberKind(Enum):
    public = "public"  # normalised to E.164
    internal = "internal"  # a PBX extension (`101`, `s`, a queue name): valid, but not a call to a site
    invalid = "invalid"  # empty or malformed


@lru_cache(maxsize=8192)  # logs repeat the same few site numbers: parse each spelling once
def normalise_number(raw: str, country_code: str = "33", national_digits: int = 9) -> tuple[NumberKind, str]:
    """Return the kind of `raw` and, for a public number, its E.164 form.

    National numbers (`0` + `national_digits` digits) get `+country_code`;
    the international prefix `00` and a bare country code (as trunks often
    present DIDs) become `+`.
    """
    text = _strip_uri(raw.strip())
    if not text:
        return NumberKind.invalid, ""
    compact = text.translate(_SEPARATORS)
    if compact.startswith("+"):
        return _international(compact[1:])
    if compact.isdigit():
        return _digits(compact, country_code, national_digits)
    if _EXTENSION.fullmatch(compact):
        return NumberKind.internal, ""
    return NumberKind.invalid, ""


def _strip_uri(text: str) -> str:
    for scheme in ("tel:", "sip:", "sips:"):
        if text[: len(scheme)].lower() == scheme:
            text = text[len(scheme):]
            break
    return text.split("@", 1)[0].split(";", 1)[0]


def _international(digits: str) -> tuple[NumberKind, str]:
    # E.164: at most 15 digits, country codes never start with 0.
    if digits.isdigit() and 8 <= len(digits) <= 15 and digits[0] != "0":
        return NumberKind.public, "+" + digits
    return NumberKind.invalid, ""


def _digits(digits: str, country_code: str, national_digits: int) -> tuple[NumberKind, str]:
    if digits.startswith("00"):
        return _international(digits[2:])
    if len(digits) == national_digits + 1 and digits[0] == "0":
        return NumberKind.public, f"+{country_code}{digits[1:]}"
    if len(digits) == len(country_code) + national_digits and digits.startswith(country_code):
        return NumberKind.public, "+" + digits
    if len(digits) <= 6:
        return NumberKind.internal, ""
    return NumberKind.invalid, ""


def pseudonymise(caller: str, key: bytes | None, country_code: str = "33") -> str | None:
    """Keyed pseudonym of a caller number, or None (dropped) without a key or without a caller.

    A plain hash would not protect anything (there are only ~10⁹ French
    numbers to try); an HMAC with a secret key lets the quality team see
    that the same person called back without anyone learning who it was.
    """
    if key is None:
        return None
    kind, e164 = normalise_number(caller, country_code)
    if kind is not NumberKind.public:
        return None  # "Anonyme", an extension: one shared pseudonym would falsely link different people
    return hmac.new(key, e164.encode(), hashlib.sha256).hexdigest()[:20]


def redact(text: str, limit: int = 160) -> str:
    """An excerpt safe for logs and reports: digit runs that could be phone numbers masked, length capped."""
    masked = _DIGIT_RUN.sub("<num>", text.replace("\r", "").replace("\n", "⏎"))
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"
