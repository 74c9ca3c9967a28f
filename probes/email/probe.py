"""The email probe kind: compose one mystery email and hand it to our SMTP server.

Success: our server accepted the message; the outcome carries `sent_at`, the
subject and template used, and the message as sent (evidence, with its
SHA-256, and no secret in it).  Answers are found later by the mailbox
watcher (see `pipeline.py`).

Restart safety: the token and Message-ID are recorded just before DATA
(`ctx.mark_sending`).  After a crash past that point, `reconcile` looks for
the blind copy each probe sends to our own mailbox (`bcc_self`): found, the
probe was sent at that copy's arrival; not found, it is voided as
interrupted rather than risk a second email to the museum.
"""

from __future__ import annotations

import random
import secrets
from typing import Any

from monitor.kinds import ProbeContext, ProbeOutcome, ProbeVoid
from monitor.store.records import EvidenceItem, ProbeRecord
from probes.email.compose import Template, TemplateError, compose, load_templates, template_dir
from probes.email.owncopy import find_message
from probes.email.send import submit
from probes.email.token import new_token, plus_address

_rng = random.SystemRandom()


async def run(probe: ProbeRecord, ctx: ProbeContext) -> ProbeOutcome:
    site = ctx.site
    if site.email is None:
        raise ProbeVoid(f"site {site.id} has no email address in the config")
    _, mailbox = ctx.config.mailbox_for(site)
    if mailbox.smtp is None:
        raise ProbeVoid(f"the mailbox of {site.id} has no smtp settings to send with")
    token = await _fresh_token(ctx)
    message_id = f"<{secrets.token_hex(12)}@{mailbox.email.rpartition('@')[2]}>"
    reply_to = plus_address(mailbox.email, token) if mailbox.plus_addressing else None
    composed = compose(_rng.choice(_templates(ctx)), site=site, mailbox=mailbox, token=token, message_id=message_id,
                       now=ctx.clock.now(), rng=_rng, reply_to=reply_to)
    recipients = [site.email.address] + ([mailbox.email] if mailbox.bcc_self else [])
    # The text we asked, kept so the answer can be graded against it (its language, the grading sheet).
    details = {"to": site.email.address, "subject": composed.subject, "template": composed.template,
               "body": composed.message.get_content()}

    async def record_intent() -> None:
        await ctx.mark_sending(token=token, message_id=message_id, **details)

    reply = await submit(mailbox.smtp, composed.message, mailbox.email, recipients, record_intent)
    return ProbeOutcome(
        sent_at=ctx.clock.now(),
        details={**details, "smtp_reply": reply},
        evidence=(EvidenceItem("sent.eml", "message/rfc822", composed.message.as_bytes()),),
    )


async def reconcile(probe: ProbeRecord, ctx: ProbeContext) -> ProbeOutcome | None:
    _, mailbox = ctx.config.mailbox_for(ctx.site)
    if not (mailbox.bcc_self and probe.message_id):
        return None
    found = await find_message(mailbox, probe.message_id)
    if found is None:
        return None
    return ProbeOutcome(sent_at=found.received_at, details={"confirmed_by": "own blind copy"},
                        evidence=(EvidenceItem("sent.eml", "message/rfc822", found.raw),))


def _templates(ctx: ProbeContext) -> list[Template]:
    cache: dict[str, Any] = ctx.shared
    if "email_templates" not in cache:
        try:
            cache["email_templates"] = load_templates(template_dir(ctx.config))
        except TemplateError as exc:
            raise ProbeVoid(f"templates: {exc}") from None
    return cache["email_templates"]


async def _fresh_token(ctx: ProbeContext) -> str:
    """A token no probe still watched carries (five characters recur over the years)."""
    taken = await ctx.open_tokens()
    while True:
        token = new_token(_rng)
        if token not in taken:
            return token
