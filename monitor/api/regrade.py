"""The body of `POST /api/v1/probes/{id}/regrade`: its JSON schema and the parser that enforces it.

An auditor's decision is one of three actions (see `monitor.verdicts`):
`override` sets a verdict (`met`, `missed` or `void`), for one commitment or
all; `discount` makes one response event (`response_seq`) no longer count;
`clear` removes an override.  Every action needs a `reason`; who made it is
the token's name, never a field of the body.

`reason` is at most `MAX_REASON` characters with no control characters but
tab and line breaks: it ends up in the verdict's reason column prefixed with
"regraded by <name>: ", and that column holds 200 characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from monitor.api.errors import bad_request
from monitor.config.models import COMMITMENT_ID
from monitor.verdicts import OVERRIDES

MAX_REASON = 120
# Text without control characters (PostgreSQL text refuses NUL) and with at least one visible character.
# Spaces are listed by hand: Python's and ECMA's `\s` (the schema's dialect) differ on U+0085 and U+FEFF.
TEXT_CHAR = r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]"
VISIBLE_CHAR = r"[^\u0000-\u0020\u007f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
REASON = rf"^{TEXT_CHAR}*{VISIBLE_CHAR}{TEXT_CHAR}*$"
ACTIONS = {"override": "verdict", "discount": "response_seq", "clear": None}
VERDICTS = OVERRIDES


@dataclass(frozen=True)
class RegradeRequest:
    action: str
    reason: str
    commitment: str | None = None
    verdict: str | None = None
    response_seq: int | None = None


def body_schema() -> dict[str, Any]:
    """One variant per action, each closed (`additionalProperties: false`)."""
    common = {"reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON, "pattern": REASON},
              "commitment": {"type": ["string", "null"], "pattern": COMMITMENT_ID}}
    extra = {"verdict": {"type": "string", "enum": list(VERDICTS)},
             "response_seq": {"type": "integer", "minimum": 1}}
    variants = []
    for action, needs in ACTIONS.items():
        properties = {"action": {"const": action}, **common} | ({needs: extra[needs]} if needs else {})
        variants.append({"type": "object", "title": action, "additionalProperties": False,
                         "required": ["action", "reason"] + ([needs] if needs else []), "properties": properties})
    return {"oneOf": variants}


def parse_regrade(body: Any) -> RegradeRequest:
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object with action and reason")
    action = body.get("action")
    if action not in ACTIONS:
        raise bad_request("action: must be override, discount or clear")
    needs = ACTIONS[action]
    allowed = {"action", "reason", "commitment"} | ({needs} if needs else set())
    if set(body) - allowed:
        raise bad_request(f"the body has fields a {action} does not take; it takes {', '.join(sorted(allowed))} "
                          "(who regrades is the token's name, never a field)")
    if needs and needs not in body:
        raise bad_request(f"{needs}: is required for {action}")
    return RegradeRequest(action, _reason(body.get("reason")), _commitment(body.get("commitment")),
                          _verdict(body.get("verdict")), _seq(body.get("response_seq")))


def _reason(value: Any) -> str:
    if (not isinstance(value, str) or not value or len(value) > MAX_REASON or not re.fullmatch(REASON, value)
            or not _encodable(value)):
        raise bad_request(f"reason: must say why in 1 to {MAX_REASON} characters of text")
    return value


def _encodable(value: str) -> bool:
    """False for lone surrogates (JSON can spell them, UTF-8 and the database cannot)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _commitment(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not re.fullmatch(COMMITMENT_ID, value)):
        raise bad_request("commitment: must be a commitment id such as 'email.reply', or null for all")
    return value


def _verdict(value: Any) -> str | None:
    if value is not None and value not in VERDICTS:
        raise bad_request(f"verdict: must be one of {', '.join(VERDICTS)}")
    return value


def _seq(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema counts 3.0 as an integer
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request("response_seq: must be the seq (a positive integer) of a response event of this probe")
    return value
