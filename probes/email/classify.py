"""Classify a message found in the mystery mailbox: human reply, auto-reply, bounce or read receipt.

Pure code, no I/O.  The class decides which commitments a matched message can
meet (docs/design.md §2): `email.ack` counts an auto-reply or a human reply,
`email.reply` only a human reply, a permanent bounce makes the probe
`undeliverable`.  Whether a message is `unrelated` is decided by matching,
not here.

Success means: a machine-sent message is never taken for a human reply (that
would pass `email.reply` for a site that never answered), a bounce is never
taken for an answer, and every decision says which rule fired (`reason`).
The rules run from the most specific evidence (a standard report) to the
weakest (a subject line); a message no rule recognises is a human reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from probes.email.message import DeliveryStatus, ParsedMessage, fold

Kind = Literal["human_reply", "auto_reply", "bounce", "read_receipt"]
Severity = Literal["permanent", "transient"]


@dataclass(frozen=True)
class Classification:
    kind: Kind
    reason: str  # which rule fired, e.g. "auto-submitted: auto-replied", "dsn: failed 5.1.1"
    bulk: bool = False  # sent to a list (newsletter): never a human reply
    bounce: Severity | None = None  # for kind == "bounce"
    status_code: str = ""  # enhanced status code ("5.1.1", "4.4.7") when one was found
    failed_recipients: tuple[str, ...] = ()  # lower-case addresses reported as failing


def classify(msg: ParsedMessage) -> Classification:
    """The class of one message; never raises."""
    for rule in (_disposition_report, _delivery_report, _heuristic_bounce, _mail_system_subject):
        found = rule(msg)
        if found is not None:
            return found
    auto_reply = _auto_reply_header(msg) or _auto_reply_subject(msg)
    bulk = _is_bulk(msg, auto_reply)
    if auto_reply:
        return Classification(kind="auto_reply", reason=auto_reply, bulk=bulk)
    if bulk:
        return Classification(kind="auto_reply", reason=_bulk_reason(msg), bulk=True)
    return Classification(kind="human_reply", reason="no machine marker")


# --------------------------------------------------------------------------- read receipts


def _disposition_report(msg: ParsedMessage) -> Classification | None:
    # An MDN (RFC 8098) says the message was displayed: it proves nothing about
    # an answer, and it also carries Auto-Submitted, so it must come first.
    if msg.report_type != "disposition-notification":
        return None
    disposition = msg.disposition.disposition if msg.disposition else ""
    return Classification(kind="read_receipt", reason=f"mdn: {disposition or 'disposition-notification'}")


# --------------------------------------------------------------------------- bounces


def _delivery_report(msg: ParsedMessage) -> Classification | None:
    # A DSN (RFC 3464) is the standard, machine-readable bounce: Postfix,
    # Exchange, Gmail and most MTAs send one.  It also carries Auto-Submitted,
    # so bounces are decided before auto-replies.
    if msg.report_type != "delivery-status":
        return None
    failing = [status for status in msg.delivery_status if _severity_of(status)]
    if failing:
        severity: Severity = "permanent" if any(_severity_of(s) == "permanent" for s in failing) else "transient"
        code = _first_code([s for s in failing if _severity_of(s) == severity])
        return Classification(
            kind="bounce",
            reason=f"dsn: {failing[0].action or 'status'} {code}".rstrip(),
            bounce=severity,
            status_code=code,
            failed_recipients=_recipients(failing) + _header_recipients(msg),
        )
    if msg.delivery_status:
        # Only "delivered"/"relayed"/"expanded": a success report we did not
        # ask for.  Nothing failed, so the clock keeps running, as for a delay.
        return Classification(kind="bounce", reason="dsn: no failure reported", bounce="transient")
    # The report was cut before its machine-readable part (bounded fetch).
    return _bounce_from_text(msg, reason="dsn: fields not in the fetched prefix")


def _severity_of(status: DeliveryStatus) -> Severity | None:
    if status.action == "failed" or status.status.startswith("5"):
        return "permanent"
    if status.action == "delayed" or status.status.startswith("4"):
        return "transient"
    return None


def _first_code(statuses: list[DeliveryStatus]) -> str:
    for status in statuses:
        code = status.status or _find_code(status.diagnostic)
        if code:
            return code
    return ""


def _recipients(statuses: list[DeliveryStatus]) -> tuple[str, ...]:
    found = [addr for s in statuses for addr in (s.original_recipient, s.final_recipient) if addr]
    return tuple(dict.fromkeys(found))


def _header_recipients(msg: ParsedMessage) -> tuple[str, ...]:
    # Exim names the failed addresses in X-Failed-Recipients, comma-separated.
    value = msg.headers.x_failed_recipients
    return tuple(part.strip().strip("<>").lower() for part in value.split(",") if "@" in part)


def _heuristic_bounce(msg: ParsedMessage) -> Classification | None:
    # Non-standard bounces (Exim text, qmail, old Exchange, Yahoo…): the
    # detectors of flufl.bounce, run by the parser only on mail-system messages.
    found = msg.heuristic_bounce
    if found is None or not (found.permanent or found.temporary):
        return None
    # flufl.bounce stops at the first detector that finds an address, and a
    # generic one reads Exim's delay warnings as failures.  Taking a delay for
    # a failure would wrongly make the site "undeliverable"; the reverse only
    # keeps the clock running until the real bounce arrives.
    severity: Severity = "permanent" if found.permanent and not _looks_delayed(msg) else "transient"
    return Classification(
        kind="bounce",
        reason="flufl.bounce detectors",
        bounce=severity,
        status_code=_find_code(msg.body, prefix="5" if severity == "permanent" else "4"),
        failed_recipients=tuple(dict.fromkeys(found.permanent + found.temporary + _header_recipients(msg))),
    )


# Subjects MTAs give their bounces (Postfix, Exim, sendmail, qmail, Exchange
# in French and English, Gmail).  Only trusted on mail-system senders.
_DELAY_SUBJECT = re.compile(
    r"delay|still being retried|not yet been delivered|could not send message for past|remise differee|retard",
)
# Phrases of delay warnings in the text of the notice (Postfix, Exim, sendmail, Gmail).
_DELAY_TEXT = re.compile(
    r"this is a warning only|not yet been delivered|will be retried|delivery attempts will continue"
    r"|has been delayed|will retry for|temporary problem delivering",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|returned to sender|mail delivery (failed|failure)|delivery (status notification|failure)"
    r"|failure notice|could not be delivered|not delivered|non remis|non delivre|echec de (la )?(remise|livraison)"
)


def _mail_system_subject(msg: ParsedMessage) -> Classification | None:
    # A MAILER-DAEMON or postmaster message with a bounce subject whose
    # details did not survive truncation is still a bounce: taking it for an
    # answer would be worse than not knowing the code.
    if not msg.from_mail_system and not msg.headers.x_failed_recipients:
        return None
    if not _BOUNCE_SUBJECT.search(fold(msg.subject)) and not _DELAY_SUBJECT.search(fold(msg.subject)):
        return None
    return _bounce_from_text(msg, reason="mail-system sender with a bounce subject")


def _looks_delayed(msg: ParsedMessage) -> bool:
    return bool(_DELAY_SUBJECT.search(fold(msg.subject)) or _DELAY_TEXT.search(msg.body[:4000]))


def _bounce_from_text(msg: ParsedMessage, reason: str) -> Classification:
    code = _find_code(msg.body)
    transient = _looks_delayed(msg) or code.startswith("4")
    return Classification(
        kind="bounce",
        reason=reason,
        bounce="transient" if transient else "permanent",
        status_code=code,
        failed_recipients=_header_recipients(msg),
    )


_STATUS_CODE = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


def _find_code(text: str, prefix: str = "") -> str:
    for match in _STATUS_CODE.finditer(text):
        if match.group(0).startswith(prefix):
            return match.group(0)
    return ""


# --------------------------------------------------------------------------- auto-replies


def _auto_reply_header(msg: ParsedMessage) -> str:
    headers = msg.headers
    auto_submitted = _keyword(headers.auto_submitted)
    # RFC 3834: any value but "no" marks a message no human wrote
    # (auto-replied for vacation notices, auto-generated for robots).
    if auto_submitted and auto_submitted != "no":
        return f"auto-submitted: {auto_submitted}"
    # Older and vendor auto-responders (vacation programs, cPanel, some
    # webmails) predate RFC 3834 and mark themselves with these.
    if headers.x_autoreply and _keyword(headers.x_autoreply) not in ("no", "false"):
        return "x-autoreply"
    if headers.x_autorespond:
        return "x-autorespond"
    # "Precedence" is not standard; some responders say auto_reply outright
    # (bulk and junk are handled by `_is_bulk`).
    if _keyword(headers.precedence) == "auto_reply":
        return "precedence: auto_reply"
    # Exchange out-of-office and inbox-rule replies: Outlook adds
    # X-Auto-Response-Suppress to many messages, and the rules-loop header is
    # also set on rule-forwarded mail; only the pair means "sent by a rule".
    if headers.x_auto_response_suppress and headers.x_ms_exchange_inbox_rules_loop:
        return "exchange: inbox rule (x-ms-exchange-inbox-rules-loop)"
    return ""


def _is_bulk(msg: ParsedMessage, auto_reply: str) -> bool:
    # A newsletter or list message is written for many people: even from the
    # site's own address it is not an answer to our question.  "Precedence:
    # bulk|junk" also marks mass mail, but vacation(1) and many responders set
    # it on their replies so that other robots do not answer them: with
    # another auto-reply marker, it is an auto-reply, not mass mail.
    if msg.is_list_mail:
        return True
    return not auto_reply and _keyword(msg.headers.precedence) in ("bulk", "junk")


def _bulk_reason(msg: ParsedMessage) -> str:
    if msg.is_list_mail:
        return "list mail (list-id / list-unsubscribe / precedence: list)"
    return f"precedence: {_keyword(msg.headers.precedence)}"


# Subjects of auto-replies that carry no header at all (webmails, CRM
# acknowledgements, Outlook rules on POP accounts).  Matched on the folded
# subject: lower case, no accents, so « Réponse automatique » and a mangled
# « Reponse automatique » both count.  Our own mystery subjects never contain them.
_AUTO_SUBJECT_ANYWHERE = re.compile(
    r"reponse automatique|automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|out of (the )?office"
    r"|absence du bureau|message d'absence|notification d'absence|avis d'absence|abwesenheitsnotiz"
)
_AUTO_SUBJECT_START = re.compile(r"^\W*(auto\s*:|accuse de reception|absente?s?\b|absence\b|en conge)")


def _auto_reply_subject(msg: ParsedMessage) -> str:
    subject = fold(msg.subject)
    if _AUTO_SUBJECT_ANYWHERE.search(subject) or _AUTO_SUBJECT_START.search(subject):
        return f"subject: {msg.subject[:80]}"
    return ""


# --------------------------------------------------------------------------- helpers


def _keyword(value: str) -> str:
    """'Auto-Replied; owner-email="x"' → 'auto-replied'."""
    return value.split(";", 1)[0].strip().lower().split(" ", 1)[0] if value.strip() else ""

