"""The email probe kind: compose one mystery email and hand it to our SMTP server.

Success: our server accepted the message; the outcome carries `sent_at`, the
subject and template used, and the message as sent (evidence, with its
SHA-256, and no secret in it).  Answers are found later by the mailbox
watcher (see `pipeline.py`).

Which persona writes (the site's mailbox rotation), which template, which
subject and details: all drawn from a generator seeded by the probe's id
(`compose.seeded`), so `qualimon probes sample` shows what a planned probe
will say.  The mailbox used is recorded in the probe's details (`mailbox`).

Restart safety: the token, Message-ID and the body's fingerprint (hashes of
its word shingles, to recognise a reply quoting it) are recorded just before
DATA (`ctx.mark_sending`).  After a crash past that point, `reconcile` looks for
the blind copy each probe sends to our own mailbox (`bcc_self`): found, the
probe was sent at that copy's arrival; not found, it is voided as
interrupted rather than risk a second email to the museum.
"""

from __future__ import annotations

import random
from typing import Any

from monitor.config.models import Config, Mailbox
from monitor.kinds import ProbeContext, ProbeOutcome, ProbeVoid
from monitor.store.records import EvidenceItem, ProbeRecord
from probes.email.compose import (
    Composed,
    Template,
    TemplateError,
    compose,
    load_templates,
    new_message_id,
    persona_choice,
    seeded,
    template_dir,
)
from probes.email.owncopy import find_message
from probes.email.send import submit
from probes.email.token import new_token, plus_address

_rng = random.SystemRandom()


async def run(probe: ProbeRecord, ctx: ProbeContext) -> ProbeOutcome:
    site = ctx.site
    if site.email is None:
        raise ProbeVoid(f"site {site.id} has no email address in the config")
    rng = seeded(probe.id)
    name = persona_choice(ctx.config, site, rng)
    mailbox = ctx.config.mailboxes[name]
    if mailbox.smtp is None:
        raise ProbeVoid(f"mailbox {name} of {site.id} has no smtp settings to send with")
    token = await _fresh_token(ctx)
    message_id = new_message_id(mailbox, _rng)
    composed = _compose(probe, ctx, rng, mailbox, token, message_id)
    recipients = [site.email.address] + ([mailbox.email] if mailbox.bcc_self else [])
    # The text we asked, kept so the answer can be graded against it (its language, the grading sheet).
    details = {"to": site.email.address, "subject": composed.subject, "template": composed.template,
               "mailbox": name, "body": composed.message.get_content()}

    async def record_intent() -> None:
        await ctx.mark_sending(token=token, message_id=message_id, fingerprint=composed.fingerprint, **details)

    reply = await submit(mailbox.smtp, composed.message, mailbox.email, recipients, record_intent)
    return ProbeOutcome(
        sent_at=ctx.clock.now(),
        details={**details, "smtp_reply": reply},
        evidence=(EvidenceItem("sent.eml", "message/rfc822", composed.message.as_bytes()),),
    )


def _compose(probe: ProbeRecord, ctx: ProbeContext, rng: random.Random, mailbox: Mailbox, token: str,
             message_id: str) -> Composed:
    site = ctx.site
    reply_to = plus_address(mailbox.email, token) if mailbox.plus_addressing else None
    return compose(rng.choice(_templates(ctx)), site=site, mailbox=mailbox, token=token, message_id=message_id,
                   now=ctx.clock.now(), rng=rng, reply_to=reply_to)


def mailbox_of(probe: ProbeRecord, config: Config) -> tuple[str, Mailbox]:
    """The mailbox that sent (or will send) `probe`: recorded in its details, else the site's first one."""
    name = probe.details.get("mailbox")
    if isinstance(name, str) and name in config.mailboxes:
        return name, config.mailboxes[name]
    return config.mailbox_for(config.site(probe.site))


async def reconcile(probe: ProbeRecord, ctx: ProbeContext) -> ProbeOutcome | None:
    _, mailbox = mailbox_of(probe, ctx.config)
    if not (mailbox.bcc_self and probe.message_id):
        return None
    found = await find_message(mailbox, probe.message_id)
    if found is None:
        return None
    return ProbeOutcome(sent_at=found.received_at, details={"confirmed_by": "own blind copy"},
                        evidence=(EvidenceItem("sent.eml", "message/rfc822", found.raw),))


def sample(probe: ProbeRecord, config: Config) -> str:
    """The message `probe` will send (the same persona, template and details), as it would leave us."""
    site = config.site(probe.site)
    if site.email is None:
        return f"site {site.id} has no email address in the config"
    rng = seeded(probe.id)
    name = persona_choice(config, site, rng)
    mailbox = config.mailboxes[name]
    token = new_token(_rng)
    composed = compose(rng.choice(load_templates(template_dir(config))), site=site, mailbox=mailbox, token=token,
                       message_id=new_message_id(mailbox, _rng), now=probe.planned_at, rng=rng,
                       reply_to=plus_address(mailbox.email, token) if mailbox.plus_addressing else None)
    message = composed.message
    headers = "".join(f"{key}: {value}\n" for key, value in message.items() if not key.startswith("Content-"))
    return f"[template {composed.template}, mailbox {name}]\n{headers}\n{message.get_content()}"


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
