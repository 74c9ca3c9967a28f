"""From a message in the mystery mailbox to a recorded answer: classify, match, record.

The watchers hand every new message to `ReplyPipeline.handle`.  It parses it
(never raising on hostile input), classifies it, finds the probes it could
answer (by Message-ID, token, plus-address or correspondent) and asks the
runner to record it:

- a human reply or auto-reply → a `response` event, with the raw message as
  evidence; the runner decides the verdicts; an answer that a `quality`
  commitment grades also gets its `assessment` (probes/email/quality.py:
  the answer without its quote, against what the template's question needs
  and in the request's language), recorded with it;
- a permanent bounce → the probe is `missed` with reason `undeliverable`
  and an operator-visible `operator_alert` event (the published address does
  not work: that is the service's failure);
- a transient bounce or a read receipt → recorded, the clock keeps running;
- anything else (newsletters, our own blind copies, spam) → ignored.

Watchers deliver at least once (a crash before the cursor is saved means a
message comes again), so a message already recorded for a probe (same
Message-ID) is skipped.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from monitor.config.models import Config
from monitor.kinds import ProbeQueries, Recorder, Response
from monitor.store.records import EvidenceItem, ProbeRecord
from probes.email.classify import Classification, classify
from probes.email.compose import Template, TemplateError, load_templates, template_dir
from probes.email.match import Match, ProbeRef, match_message
from probes.email.message import ParsedMessage, normalize_message_id, parse_message
from probes.email.owncopy import find_message
from probes.email.quality import assess_reply, request_language
from probes.email.token import find_tokens, token_from_address
from probes.email.watcher import FetchedMessage

log = logging.getLogger("qualimon.email")

NOT_COUNTED = {"read_receipt"}


class ReplyPipeline:
    def __init__(self, recorder: Recorder, probes: ProbeQueries, config: Config):
        self.recorder = recorder
        self.probes = probes
        self.config = config
        self.site_by_address = {s.email.address.lower(): s.id for s in config.sites if s.email is not None}
        self.own_addresses = {m.email.lower() for m in config.mailboxes.values()}
        self.graded_kinds = {kind for c in config.commitments_for("email").values() if c.is_quality
                             for kind in c.answer_kinds}
        self._templates: dict[str, Template] | None = None

    async def handle(self, fetched: FetchedMessage) -> str:
        """Record what `fetched` answers; returns what was done (for logs and tests)."""
        message = parse_message(fetched.raw)
        verdict = classify(message)
        match = match_message(message, await self.candidates(message, verdict), received_at=fetched.received_at)
        if match is None:
            log.debug("unrelated message %s from %s (%s)", message.message_id, message.from_addr, verdict.reason)
            return "unrelated"
        if await self._already_recorded(str(match.probe_id), message.message_id):
            return "duplicate"
        await self._record(str(match.probe_id), message, verdict, match, fetched)
        return f"{verdict.kind}:{match.method}"

    async def _record(self, probe_id: str, message: ParsedMessage, verdict: Classification, match: Match,
                      fetched: FetchedMessage) -> None:
        details = _details(message, verdict, match, fetched)
        evidence = (EvidenceItem(f"{verdict.kind}-{fetched.uid}.eml", "message/rfc822",
                                 await self._whole(fetched, message)),)
        at = fetched.received_at
        if verdict.kind == "bounce":
            await self.recorder.record_response(probe_id, Response("bounce", at, details, counts=False), evidence)
            if verdict.bounce == "permanent":
                probe = await self.probes.probe(probe_id)
                address = probe.details.get("to", "?") if probe else "?"
                await self.recorder.record_failure(
                    probe_id, "undeliverable",
                    alert=f"the published address {address} bounces permanently "
                          f"({verdict.status_code or 'no status'}): check it with the site")
            return
        counts = verdict.kind not in NOT_COUNTED
        assessment = await self._assessment(probe_id, evidence[0].data) if counts and \
            verdict.kind in self.graded_kinds else None
        await self.recorder.record_response(probe_id, Response(verdict.kind, at, details, counts=counts,
                                                               assessment=assessment), evidence)

    async def _assessment(self, probe_id: str, raw: bytes) -> dict[str, Any]:
        """The grade of the answer in `raw` (the bytes kept as evidence), against the question we asked."""
        probe = await self.probes.probe(probe_id)
        details = probe.details if probe is not None else {}
        template = self.templates().get(str(details.get("template", "")))
        asked = details.get("body") or (template.body if template else "")
        assessment = assess_reply(raw, template.needs if template else None, request_language(str(asked)),
                                  own_addresses=self.own_addresses)
        data = assessment.data()
        data["template"] = template.name if template else None
        return data

    def templates(self) -> dict[str, Template]:
        """The templates by name; none when they cannot be read (the answer is then graded without needs)."""
        if self._templates is None:
            try:
                self._templates = {t.name: t for t in load_templates(template_dir(self.config))}
            except TemplateError as exc:
                log.warning("grading without the templates' needs: %s", exc)
                self._templates = {}
        return self._templates

    async def _whole(self, fetched: FetchedMessage, message: ParsedMessage) -> bytes:
        """Auditors get the whole message: the watcher read only its head and a prefix of the body."""
        mailbox = self.config.mailboxes.get(fetched.source)
        if not fetched.truncated or mailbox is None or not message.message_id:
            return fetched.raw
        try:
            found = await find_message(mailbox, message.message_id)
        except Exception as exc:  # keep the prefix rather than lose the answer
            log.warning("could not fetch the whole message %s: %s", fetched.uid, type(exc).__name__)
            return fetched.raw
        return found.raw if found is not None else fetched.raw

    async def candidates(self, message: ParsedMessage, verdict: Classification) -> list[ProbeRef]:
        """Probes this message could answer, found by index instead of scanning every open probe.

        One statement, not `monitor.store.inlists` chunks: parsing bounds the keys (100 references, tokens
        from 16,384 characters of subject and of body, and of the original's), some 10,000 parameters at
        worst, a third of either driver's limit."""
        ids, tokens, sites = _keys(message, verdict, self.site_by_address)
        probes = await self.probes.open_probes(
            "email", message_ids=[f"<{i}>" for i in ids] + list(ids), tokens=tokens, sites=sites)
        return [ref for p in probes if (ref := self._ref(p)) is not None]

    def _ref(self, probe: ProbeRecord) -> ProbeRef | None:
        if not (probe.token and probe.message_id):
            return None
        sent_at = probe.sent_at or probe.planned_at  # a reply may beat our own "sent" record
        watch_until = probe.watch_until or sent_at + timedelta(days=self.config.runner.watch_days + 31)
        return ProbeRef(probe.id, probe.token, probe.message_id, probe.details.get("to", ""),
                        probe.details.get("subject", ""), sent_at, watch_until)

    async def _already_recorded(self, probe_id: str, message_id: str) -> bool:
        if not message_id:
            return False
        wanted = normalize_message_id(message_id)
        return any(e.type == "response" and normalize_message_id(e.data.get("message_id", "")) == wanted
                   for e in await self.probes.events_for(probe_id))


def _keys(message: ParsedMessage, verdict: Classification,
          site_by_address: dict[str, str]) -> tuple[set[str], set[str], set[str]]:
    texts = [message.subject, message.body]
    ids = {*message.in_reply_to, *message.references}
    addresses = {message.from_addr, *verdict.failed_recipients}
    if message.original is not None:  # the message a bounce or receipt is about
        ids.add(message.original.message_id)
        texts += [message.original.subject, message.original.body]
        addresses.update(message.original.to)
    if message.disposition is not None:
        ids.add(message.disposition.original_message_id)
    tokens = {t for text in texts for t in find_tokens(text)}
    tokens |= {t for a in (*message.to, *message.cc, *message.delivered_to) if (t := token_from_address(a))}
    sites = {site_by_address[a.lower()] for a in addresses if a and a.lower() in site_by_address}
    return {normalize_message_id(i) for i in ids if i}, tokens, sites


def _details(message: ParsedMessage, verdict: Classification, match: Match,
             fetched: FetchedMessage) -> dict[str, Any]:
    details: dict[str, Any] = {
        "method": match.method, "message_id": message.message_id, "from": message.from_addr,
        "from_name": message.from_name[:200],
        "subject": message.subject[:300], "rule": verdict.reason, "source": fetched.source, "uid": str(fetched.uid),
    }
    if verdict.kind == "bounce":
        details |= {"bounce": verdict.bounce, "status": verdict.status_code,
                    "failed_recipients": list(verdict.failed_recipients)}
    if fetched.truncated:
        details["truncated"] = True
    return details
