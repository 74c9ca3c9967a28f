"""From a message in the mystery mailbox to its bucket, and to a recorded answer when it is one.

The watchers hand every new message to `ReplyPipeline.handle`.  It parses it
(never raising on hostile input), classifies it, finds the probes it could
answer — by Message-ID, by the text of ours it quotes (the shingle index, fed
with the fingerprints the probes kept), by token, plus-address or
correspondent — reads it again whole where it is (UID or file name, capped:
`evidence.py`), asks our receiving server's results who sent it
(`auth.py`, and `dkimcheck.py` with `dkim: verify`), and decides its bucket
(`buckets.py`).  Then one call to the recorder stores the message in its
bucket with a headers-only summary *and* what it means for its probe, at
once:

- matched human reply or auto-reply → a `response` event, the message as
  evidence; the runner decides the verdicts; an answer that a `quality`
  commitment grades also gets its `assessment` (probes/email/quality.py:
  the answer without its quote, against what the template's question needs
  and in the request's language), recorded with it (held ones too, so an
  auditor who attaches one finds it graded);
- matched permanent bounce → also the probe's `failure` (`undeliverable`)
  and an `operator_alert` (the published address does not work);
- matched transient bounce or read receipt → recorded, the clock keeps running;
- held → a `response` that waits for an auditor (the verdicts it could
  change are `review`);
- unrelated → a `message` event with its reason.

Anything that goes wrong with one message (a parser, a rule, a value the
database refuses) puts it in the `quarantined` bucket with the error and the
message kept; only an outage of our own (the database, the mailbox: the
watcher waits and retries) is raised.  So one bad message never stalls the
watcher, is never retried forever, and is never dropped.

Watchers deliver at least once: the same message read again (same digest of
what was read) is recorded once; an answer already recorded for its probe
(same Message-ID, e.g. delivered twice) is `unrelated: duplicate`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import Clock, SystemClock
from monitor.config.models import Config, Mailbox
from monitor.kinds import ProbeQueries, Recorder, Response
from monitor.store.records import HELD, QUARANTINED, EvidenceItem, MailboxMessage, ProbeRecord, StoreUnavailable
from probes.email.auth import Auth, authenticate
from probes.email.buckets import ANSWERS, Decision, decide, failure_of
from probes.email.classify import Classification, classify
from probes.email.compose import Template, TemplateError, load_templates, template_dir
from probes.email.dkimcheck import txt_lookup, verify_dkim
from probes.email.evidence import Kept, as_read, whole_message
from probes.email.match import STRONG, Match, ProbeRef, match_message
from probes.email.message import ParsedMessage, normalize_message_id, parse_message
from probes.email.quality import assess_reply, request_language
from probes.email.shingles import QuoteHit, ShingleIndex, shingle_hashes, unpack
from probes.email.token import find_tokens, token_from_address
from probes.email.watcher import FetchedMessage

log = logging.getLogger("qualimon.email")

CHANNEL = "email"
# Closed probes stay in the index this long: a late answer quoting one must not be taken for another's.
KEEP_CLOSED = timedelta(days=45)
RELOAD_EVERY = timedelta(hours=1)
OUTAGES = (StoreUnavailable, OSError, TimeoutError)


@dataclass(frozen=True)
class Read:
    """One message as far as it was understood."""

    fetched: FetchedMessage
    message: ParsedMessage
    verdict: Classification
    match: Match | None
    refs: dict[str, ProbeRef]


class ReplyPipeline:
    def __init__(self, recorder: Recorder, probes: ProbeQueries, config: Config, clock: Clock | None = None):
        self.recorder = recorder
        self.probes = probes
        self.config = config
        self.clock = clock or SystemClock()
        self.site_by_address = {s.email.address.lower(): s.id for s in config.sites if s.email is not None}
        self.site_domains = {address.rpartition("@")[2] for address in self.site_by_address}
        self.own_addresses = {m.email.lower() for m in config.mailboxes.values()}
        self.graded_kinds = {kind for c in config.commitments_for(CHANNEL).values() if c.is_quality
                             for kind in c.answer_kinds}
        self._templates: dict[str, Template] | None = None
        self.index = ShingleIndex()
        self._index_after = 0
        self._reloaded: datetime | None = None

    async def handle(self, fetched: FetchedMessage) -> str:
        """Put `fetched` in its bucket (and record what it answers); returns `bucket:detail`, for logs and tests."""
        try:
            return await self._handle(fetched)
        except OUTAGES:
            raise
        except Exception as exc:  # noqa: BLE001 - any other failure is this message's: quarantine it, go on
            log.warning("mailbox %s: message %s quarantined (%s)", fetched.source, fetched.uid, type(exc).__name__)
            return await self._quarantine(fetched, exc)

    async def _handle(self, fetched: FetchedMessage) -> str:
        mailbox = self.config.mailboxes[fetched.source]
        read = await self._read(fetched)
        if read.match is None and fetched.truncated and not read.verdict.bulk:
            kept = await whole_message(mailbox, fetched)  # the quote may lie beyond the prefix read
            read = await self._read(fetched, kept.raw)
        else:
            kept = None
        from_site = self._from_site(read.message)
        own = read.message.from_addr in self.own_addresses
        if kept is None:
            kept = await whole_message(mailbox, fetched) if (read.match or from_site) and not own \
                else as_read(fetched, mailbox.evidence_max_bytes)
        auth = await self._authenticate(mailbox, read, kept, from_site)
        probe = read.refs.get(str(read.match.probe_id)) if read.match else None
        duplicate = read.match is not None and await self._already_recorded(str(read.match.probe_id),
                                                                            read.message.message_id)
        decision = decide(read.message, read.verdict, read.match, auth, own_copy=own,
                          site_domain=probe.site_address.rpartition("@")[2] if probe else None,
                          bounce_domains=self._bounce_domains(mailbox), from_site=from_site, duplicate=duplicate)
        return await self._record(read, decision, auth, kept, own)

    # ---------------------------------------------------------------- reading and matching

    async def _read(self, fetched: FetchedMessage, raw: bytes | None = None) -> Read:
        message = parse_message(raw if raw is not None else fetched.raw)
        verdict = classify(message)
        refs = {str(ref.probe_id): ref for ref in await self.candidates(message, verdict)}
        match = match_message(message, list(refs.values()), received_at=fetched.received_at)
        if match is None or match.method != "message_id":
            # Not a reply in our thread: look for our words in it (the index first learns of new probes).
            await self._refresh_index()
            hits = self.index.search(message_hashes(message))
            refs |= {str(ref.probe_id): ref for ref in await self._quoted(hits, refs)}
            match = match_message(message, list(refs.values()), received_at=fetched.received_at, quotes=hits)
        return Read(fetched, message, verdict, match, refs)

    async def _quoted(self, hits: list[QuoteHit], known: dict[str, ProbeRef]) -> list[ProbeRef]:
        wanted = [hit.probe_id for hit in hits[:8] if hit.probe_id not in known]
        if not wanted:
            return []
        probes = await self.probes.open_probes(CHANNEL, ids=wanted)
        return [ref for p in probes if (ref := self._ref(p)) is not None]

    async def candidates(self, message: ParsedMessage, verdict: Classification) -> list[ProbeRef]:
        """Probes this message could answer by Message-ID, token or sender, found by the store's indexes."""
        ids, tokens, sites = _keys(message, verdict, self.site_by_address)
        probes = await self.probes.open_probes(
            CHANNEL, message_ids=[f"<{i}>" for i in ids] + list(ids), tokens=tokens, sites=sites)
        return [ref for p in probes if (ref := self._ref(p)) is not None]

    def _ref(self, probe: ProbeRecord) -> ProbeRef | None:
        if not (probe.token and probe.message_id):
            return None
        sent_at = probe.sent_at or probe.planned_at  # a reply may beat our own "sent" record
        watch_until = probe.watch_until or sent_at + timedelta(days=self.config.runner.watch_days + 31)
        return ProbeRef(probe.id, probe.token, probe.message_id, probe.details.get("to", ""),
                        probe.details.get("subject", ""), sent_at, watch_until)

    async def _refresh_index(self) -> None:
        """Follow the fingerprints of probes sent since the last message; rebuild now and then to forget old ones."""
        now = self.clock.now()
        if self._reloaded is None or now - self._reloaded >= RELOAD_EVERY:
            self.index, self._index_after, self._reloaded = ShingleIndex(), 0, now
        while True:
            rows = await self.probes.fingerprints_after(CHANNEL, self._index_after, closed_since=now - KEEP_CLOSED)
            for row_id, probe_id, hashes in rows:
                self.index.add(probe_id, unpack(hashes))
                self._index_after = max(self._index_after, row_id)
            if len(rows) < 5000:
                return

    def _from_site(self, message: ParsedMessage) -> bool:
        sender = message.from_addr
        return sender in self.site_by_address or sender.rpartition("@")[2] in self.site_domains

    async def _already_recorded(self, probe_id: str, message_id: str) -> bool:
        if not message_id:
            return False
        wanted = normalize_message_id(message_id)
        return any(e.type == "response" and normalize_message_id(str(e.data.get("message_id", ""))) == wanted
                   for e in await self.probes.events_for(probe_id))

    # ---------------------------------------------------------------- who sent it

    async def _authenticate(self, mailbox: Mailbox, read: Read, kept: Kept, from_site: bool) -> Auth:
        domain = read.message.from_addr.rpartition("@")[2]
        auth = authenticate(kept.raw, domain, mailbox.trust)
        weak = read.match is not None and (read.match.method not in STRONG or read.verdict.kind == "bounce")
        if auth.result == "none" and mailbox.dkim == "verify" and (weak or from_site):
            lookup = txt_lookup(mailbox.dns_resolver)
            auth = await asyncio.to_thread(verify_dkim, kept.raw, domain, lookup)
        return auth

    def _bounce_domains(self, mailbox: Mailbox) -> tuple[str, ...]:
        extra = mailbox.trust.bounce_domains if mailbox.trust is not None else ()
        return (mailbox.domain, *extra)

    # ---------------------------------------------------------------- recording

    async def _record(self, read: Read, decision: Decision, auth: Auth, kept: Kept, own: bool) -> str:
        fetched = read.fetched
        evidence_name = f"{read.verdict.kind}-{fetched.uid}.eml"
        headers = summary(read.message, read.verdict, fetched)
        if decision.probe_id is not None:  # kept once, as the probe's evidence
            headers |= {"evidence": evidence_name, "kept_bytes": len(kept.raw)}
        stored = MailboxMessage(
            mailbox=fetched.source, channel=CHANNEL, digest=digest_of(fetched), location=fetched.location[:255],
            bucket=decision.bucket, reason=decision.reason[:200], received_at=fetched.received_at,
            summary=headers, probe_id=decision.probe_id,
            method=decision.method, auth=auth.public(), kind=read.verdict.kind,
            # what it is if an auditor attaches it, whatever its bucket now
            counts=read.verdict.kind in ANSWERS, failure=failure_of(read.verdict),
            raw=None if own or decision.probe_id is not None else kept.raw, size=kept.size, sha256=kept.sha256)
        response: Response | None = None
        alert: str | None = None
        evidence: tuple[EvidenceItem, ...] = ()
        if decision.probe_id is not None:
            assessment = await self._assessment(decision.probe_id, kept.raw) \
                if read.verdict.kind in self.graded_kinds and (decision.counts or decision.held) else None
            response = Response(read.verdict.kind, fetched.received_at, _details(read, decision, auth, kept),
                                counts=decision.counts, failure=decision.failure, held=decision.held,
                                assessment=assessment)
            evidence = (EvidenceItem(evidence_name, "message/rfc822", kept.raw),)
            if decision.failure and decision.bucket != HELD:
                alert = (f"the published address {read.refs[decision.probe_id].site_address} bounces permanently "
                         f"({read.verdict.status_code or 'no status'}): check it with the site")
        if not await self.recorder.record_message(stored, response, alert=alert, evidence=evidence):
            return "duplicate"
        detail = f"{read.verdict.kind}:{decision.method}" if decision.probe_id else decision.reason
        return f"{decision.bucket}:{detail}"

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

    async def _quarantine(self, fetched: FetchedMessage, error: Exception) -> str:
        """Keep the message and the error; if even that is refused, keep less and try again."""
        reason = f"{type(error).__name__}: {str(error)[:150]}"
        limit = self.config.mailboxes[fetched.source].evidence_max_bytes if fetched.source in \
            self.config.mailboxes else len(fetched.raw)
        for details in (_safe_summary(fetched), {}):
            stored = MailboxMessage(
                mailbox=fetched.source, channel=CHANNEL, digest=digest_of(fetched), location=fetched.location[:255],
                bucket=QUARANTINED, reason=reason.encode("utf-8", "replace").decode()[:200].replace("\x00", " "),
                received_at=fetched.received_at, summary=details, raw=fetched.raw[:limit], size=len(fetched.raw),
                sha256=hashlib.sha256(fetched.raw).hexdigest())
            try:
                recorded = await self.recorder.record_message(stored)
                return "quarantined" if recorded else "duplicate"
            except OUTAGES:
                raise
            except Exception as exc:  # noqa: BLE001 - try with less
                log.error("mailbox %s: could not quarantine message %s (%s)", fetched.source, fetched.uid,
                          type(exc).__name__)
                reason = f"{type(error).__name__} (summary refused: {type(exc).__name__})"
        raise RuntimeError(f"message {fetched.uid} of {fetched.source} could not be recorded, even quarantined")


def digest_of(fetched: FetchedMessage) -> str:
    """Names one message of the mailbox whatever its UID: the same bytes read twice are the same message."""
    return hashlib.sha256(fetched.raw).hexdigest()


def message_hashes(message: ParsedMessage) -> set[int]:
    """The shingles of every text of the message where our words could be quoted."""
    texts = [message.body]
    if message.original is not None:
        texts.append(message.original.body)
    return set().union(*(shingle_hashes(text, limit=4096) for text in texts if text))


def summary(message: ParsedMessage, verdict: Classification, fetched: FetchedMessage) -> dict[str, Any]:
    """What an auditor sees of a message in a list: its headers, never its body."""
    return {
        "from": message.from_addr[:320], "from_name": message.from_name[:200], "to": list(message.to[:10]),
        "cc": list(message.cc[:10]), "subject": message.subject[:300],
        "date": message.date.isoformat() if message.date else None, "message_id": message.message_id[:998],
        "in_reply_to": list(message.in_reply_to[:5]), "references": list(message.references[-5:]),
        "content_type": message.content_type[:100], "kind": verdict.kind, "rule": verdict.reason[:200],
        "bounce": verdict.bounce, "truncated": fetched.truncated,
    }


def _safe_summary(fetched: FetchedMessage) -> dict[str, Any]:
    try:
        message = parse_message(fetched.raw)
        return {"from": message.from_addr[:320], "subject": message.subject[:300],
                "message_id": message.message_id[:998]}
    except Exception:  # noqa: BLE001 - the parser promises never to raise; if it does, keep nothing of it
        return {}


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


def _details(read: Read, decision: Decision, auth: Auth, kept: Kept) -> dict[str, Any]:
    message, verdict, fetched = read.message, read.verdict, read.fetched
    details: dict[str, Any] = {
        "method": decision.method, "message_id": message.message_id, "from": message.from_addr,
        "from_name": message.from_name[:200], "subject": message.subject[:300], "rule": verdict.reason,
        "source": fetched.source, "uid": str(fetched.uid), "auth": auth.public(),
        "size": kept.size, "sha256": kept.sha256,
    }
    if verdict.kind == "bounce":
        details |= {"bounce": verdict.bounce, "status": verdict.status_code,
                    "failed_recipients": list(verdict.failed_recipients)}
    if kept.truncated:
        details["truncated"] = True
    return details

