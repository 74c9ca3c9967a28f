"""Which bucket a message read from the mystery mailbox lands in, and why (pure).

Every message ends in exactly one bucket:

- `matched`: it answers a probe (`probe`, `method`), and the evidence is
  good enough to count: our Message-ID referenced, our text quoted, our token
  or plus-address (`match.STRONG`) whatever the sender authentication; a
  sender-only (`correspondent`) match only when our receiving server
  authenticated the site's domain; a bounce only when it quotes our
  Message-ID or our own provider's server authenticatedly sent it;
- `held`: it would answer a probe but the sender is not authenticated
  (a forged `From:` looks exactly like this): it waits for an auditor's
  attach or dismiss, and the probe's verdicts that it could change are
  `review` meanwhile;
- `unrelated`: it answers no probe — `own_copy` (our blind copy of a probe),
  `newsletter`, `spam`, `duplicate` (an answer already recorded),
  `from_site_unmatched` (from a site's address, about something else),
  `bounce_no_probe`, `receipt_no_probe`, `auto_reply_no_probe`, `personal`,
  or `unauthenticated_notice` (an unauthenticated delay notice or receipt
  matched by its sender only: it would change nothing);
- `quarantined`: processing it failed (decided by the pipeline, not here).
"""

from __future__ import annotations

from dataclasses import dataclass

from probes.email.auth import Auth
from probes.email.classify import Classification
from probes.email.match import STRONG, Match
from probes.email.message import ParsedMessage

UNDELIVERABLE = "undeliverable"
ANSWERS = ("human_reply", "auto_reply")  # the kinds that count for a commitment (as its config says)


@dataclass(frozen=True)
class Decision:
    bucket: str                  # matched | unrelated | held
    reason: str
    probe_id: str | None = None
    method: str | None = None
    counts: bool = False         # the answer counts for the commitments (a human or auto reply)
    failure: str | None = None   # the service failed (a permanent bounce), now or once attached
    held: str | None = None      # why an auditor must decide


def decide(message: ParsedMessage, verdict: Classification, match: Match | None, auth: Auth, *,
           own_copy: bool, site_domain: str | None, bounce_domains: tuple[str, ...],
           from_site: bool, duplicate: bool = False) -> Decision:
    """The bucket of one message; `site_domain` is the domain of the matched probe's site address."""
    if own_copy:
        return Decision("unrelated", "own_copy")
    if match is None:
        return Decision("unrelated", _unmatched_reason(message, verdict, from_site))
    if duplicate:
        return Decision("unrelated", "duplicate")
    probe, method = str(match.probe_id), match.method
    failure = failure_of(verdict)
    counts = verdict.kind in ANSWERS
    trusted = _trusted(verdict, method, auth, site_domain, bounce_domains)
    reason = f"{verdict.kind}: {verdict.reason}"
    if trusted:
        return Decision("matched", reason, probe, method, counts, failure)
    if not counts and failure is None:
        return Decision("unrelated", "unauthenticated_notice")
    why = f"{'bounce' if verdict.kind == 'bounce' else 'sender'} not authenticated (auth {auth.result})"
    return Decision("held", why, probe, method, counts, failure, held=why)


def failure_of(verdict: Classification) -> str | None:
    """The service's failure a message shows: a permanent bounce means the published address does not work."""
    return UNDELIVERABLE if verdict.kind == "bounce" and verdict.bounce == "permanent" else None


def _trusted(verdict: Classification, method: str, auth: Auth, site_domain: str | None,
             bounce_domains: tuple[str, ...]) -> bool:
    if verdict.kind == "bounce":
        return method == "message_id" or any(auth.passes_for(domain) for domain in bounce_domains)
    if method in STRONG:
        return True
    return site_domain is not None and auth.passes_for(site_domain)


def _unmatched_reason(message: ParsedMessage, verdict: Classification, from_site: bool) -> str:
    if is_spam(message):
        return "spam"
    if verdict.bulk:
        return "newsletter"
    if verdict.kind == "bounce":
        return "bounce_no_probe"
    if verdict.kind == "read_receipt":
        return "receipt_no_probe"
    if from_site:
        return "from_site_unmatched"
    if verdict.kind == "auto_reply":
        return "auto_reply_no_probe"
    return "personal"


def is_spam(message: ParsedMessage) -> bool:
    """Our receiving server's spam verdict (SpamAssassin / rspamd headers)."""
    return message.headers.spam_flag.strip().lower().startswith("yes")
