"""The body of `POST /api/v1/probes/{id}/grade`: an auditor's decisions on quality criteria of one answer.

`{"signed": "met", "contact": "not_met", "reason": "…", "response_seq": 42}`: every
other key is a criterion of the probe's channel (email: greeting, closing, signed,
contact, answers_question, not_holding, language) set to `met` or `not_met`; at
least one is needed.  `reason` says why (required when a criterion an auditor
already decided is decided again); `response_seq` names the answer, by default the
one the probe's quality commitments grade.  Who decides is the token's name,
never a field.  Nothing is recorded unless all of it is acceptable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from monitor.api.errors import bad_request
from monitor.api.regrade import REASON, _encodable, _seq
from monitor.quality import DECISIONS

MAX_GRADE_REASON = 500
CRITERION = r"^[a-z][a-z_]{0,39}$"
RESERVED = {"reason", "response_seq"}


@dataclass(frozen=True)
class GradeRequest:
    decisions: dict[str, bool]
    reason: str | None
    response_seq: int | None


def body_schema() -> dict[str, Any]:
    return {"type": "object", "minProperties": 1,
            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": MAX_GRADE_REASON,
                                      "pattern": REASON},
                           "response_seq": {"type": "integer", "minimum": 1}},
            "propertyNames": {"pattern": CRITERION},
            "additionalProperties": {"type": "string", "enum": list(DECISIONS)}}


def parse_grade(body: Any) -> GradeRequest:
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object: {criterion: met|not_met, …, reason}")
    decisions: dict[str, bool] = {}
    for name, value in body.items():
        if name in RESERVED:
            continue
        if not isinstance(name, str) or not re.fullmatch(CRITERION, name):
            raise bad_request("each key is a criterion name such as 'signed' (or reason, response_seq)")
        if value not in DECISIONS:
            raise bad_request(f"{name}: must be met or not_met")
        decisions[name] = DECISIONS[value]
    if not decisions:
        raise bad_request("name at least one criterion, e.g. {\"signed\": \"not_met\", \"reason\": \"…\"}")
    return GradeRequest(decisions, _reason(body.get("reason")), _seq(body.get("response_seq")))


def _reason(value: Any) -> str | None:
    if value is None:
        return None
    if (not isinstance(value, str) or not value or len(value) > MAX_GRADE_REASON
            or not re.fullmatch(REASON, value) or not _encodable(value)):
        raise bad_request(f"reason: must say why in 1 to {MAX_GRADE_REASON} characters of text")
    return value

