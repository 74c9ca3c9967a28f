"""Match a mailbox message to the mystery email (probe) that caused it.

Pure code, no I/O.  The watcher passes the probes that may still receive an
answer, and the probes whose words the message quotes (`QuoteHit`s from the
shingle index); `match_message` tries, from the strongest evidence to the
weakest:

1. `message_id`    In-Reply-To / References name the probe's Message-ID (also
                   the original embedded in a bounce or named by a read receipt);
2. `quoted_text`   the message quotes the probe's body (see `shingles.py`): a
                   new subject, a colleague's answer, a forward, a ticketing
                   system, a top-posted mobile reply.  The probe quoted best
                   wins; when it is no longer open (the message quotes an
                   older probe), this method finds nothing rather than give
                   the answer to another probe with a similar text;
3. `token`         the probe's reference token (`QP-7K2M9`) is in the subject or
                   body, also when quoted, re-encoded or cut by a soft break —
                   this is how a reply from a colleague's address still matches;
4. `plus_address`  the message was sent to `jeanne.martin+qp-7k2m9@…`;
5. `correspondent` the message comes from the site's address with the probe's
                   subject (prefixes like RE:/TR:/Réponse automatique: removed),
                   inside the probe's watch window; for a bounce, the failed
                   recipient is the site's address.

Success means: every answer is attached to the right probe with the method
recorded, and a message that carries none of this evidence (a newsletter,
spam, a personal message) matches nothing, so it is `unrelated`.  All methods
but `correspondent` carry something only the probe's recipient had (`STRONG`);
anyone can write from a site's address, so a correspondent match counts only
when the sender is authenticated (decided by `buckets.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from probes.email.classify import Classification, classify
from probes.email.message import ParsedMessage, fold, normalize_message_id
from probes.email.shingles import TIE, QuoteHit
from probes.email.token import (
    canonical_token,
    find_tokens,
    strip_tokens,
    token_from_address,
)

ProbeId = int | str
Method = Literal["message_id", "quoted_text", "token", "plus_address", "correspondent"]
#: Evidence a forger does not have: our Message-ID, our words, our token, our plus-address.
STRONG: frozenset[str] = frozenset({"message_id", "quoted_text", "token", "plus_address"})

# The Date header is written by the site's clock: an auto-reply sent within
# seconds by a server a little behind ours must still fall inside the window.
DATE_HEADER_SKEW = timedelta(minutes=10)
INTERNALDATE_PRECISION = timedelta(seconds=1)


@dataclass(frozen=True)
class ProbeRef:
    """What matching needs to know about one sent probe."""

    probe_id: ProbeId
    token: str  # "QP-7K2M9"
    message_id: str  # with or without angle brackets
    site_address: str  # the site's published address the probe was sent to
    subject: str  # the subject as sent
    sent_at: datetime  # aware
    watch_until: datetime  # aware; correspondent matching stops after it

    def __post_init__(self) -> None:
        # A naive instant would silently mean local time and break comparisons later.
        if self.sent_at.tzinfo is None or self.watch_until.tzinfo is None:
            raise ValueError(f"probe {self.probe_id!r}: sent_at and watch_until must be timezone-aware")


@dataclass(frozen=True)
class Match:
    probe_id: ProbeId
    method: Method


def match_message(
    msg: ParsedMessage, candidates: Sequence[ProbeRef], received_at: datetime | None = None,
    quotes: Sequence[QuoteHit] = (),
) -> Match | None:
    """The probe this message answers, or None when it is unrelated.

    `received_at` (the mailbox's arrival time, IMAP INTERNALDATE) is preferred
    to the Date header for the correspondent window; without either, the
    correspondent rule is not applied.  `quotes`: the probes whose body the
    message quotes, best first (`ShingleIndex.search`), open or not.
    """
    if not candidates or _is_a_probe_itself(msg, candidates):
        return None
    classification = classify(msg)
    return (
        _by_message_id(msg, candidates, classification)
        or _by_quoted_text(candidates, quotes)
        or _by_token(msg, candidates)
        or _by_plus_address(msg, candidates)
        or _by_correspondent(msg, candidates, classification, _instant(msg, received_at))
    )


def _is_a_probe_itself(msg: ParsedMessage, candidates: Sequence[ProbeRef]) -> bool:
    # Our own mystery email can land in the mailbox (a copy to self, a
    # provider filing sent mail in INBOX); it carries the token but answers nothing.
    own = normalize_message_id(msg.message_id)
    return bool(own) and any(normalize_message_id(probe.message_id) == own for probe in candidates)


# --------------------------------------------------------------------------- message id


def _by_message_id(
    msg: ParsedMessage, candidates: Sequence[ProbeRef], classification: Classification
) -> Match | None:
    by_id: dict[str, list[ProbeRef]] = {}
    for probe in candidates:
        by_id.setdefault(normalize_message_id(probe.message_id), []).append(probe)
    by_id.pop("", None)
    for message_id in _referenced_ids(msg):
        if message_id in by_id:
            return Match(_latest(by_id[message_id]).probe_id, "message_id")
    if classification.kind == "bounce":
        # Exim and qmail paste the original message into the bounce text.
        for message_id, probes in by_id.items():
            if f"<{message_id}>" in msg.body:
                return Match(_latest(probes).probe_id, "message_id")
    return None


def _referenced_ids(msg: ParsedMessage) -> Iterable[str]:
    # In-Reply-To names the direct parent; References lists the thread oldest
    # first, so it is read newest first.
    yield from msg.in_reply_to
    yield from reversed(msg.references)
    if msg.disposition is not None and msg.disposition.original_message_id:
        yield msg.disposition.original_message_id
    if msg.original is not None:
        yield msg.original.message_id
        yield from msg.original.in_reply_to


# --------------------------------------------------------------------------- quoted text


def _by_quoted_text(candidates: Sequence[ProbeRef], quotes: Sequence[QuoteHit]) -> Match | None:
    """The probe quoted most specifically; among those quoted about as well, an open one, the most recent."""
    quoted = [hit for hit in quotes if hit.quoted]
    if not quoted:
        return None
    best = max(hit.weight for hit in quoted)
    top = {str(hit.probe_id) for hit in quoted if hit.weight >= best * (1 - TIE)}
    open_ = [probe for probe in candidates if str(probe.probe_id) in top]
    return Match(_latest(open_).probe_id, "quoted_text") if open_ else None


# --------------------------------------------------------------------------- token


def _by_token(msg: ParsedMessage, candidates: Sequence[ProbeRef]) -> Match | None:
    by_token = _index_by_token(candidates)
    for text in _texts(msg):
        for token in find_tokens(text):
            if token in by_token:
                return Match(_latest(by_token[token]).probe_id, "token")
    return None


def _texts(msg: ParsedMessage) -> Iterable[str]:
    # The subject first: a token there is the sender's own; in the body it
    # may be one of several quoted messages, and the first one is the newest.
    yield msg.subject
    yield msg.body
    if msg.original is not None:
        yield msg.original.subject
        yield msg.original.body


def _index_by_token(candidates: Sequence[ProbeRef]) -> dict[str, list[ProbeRef]]:
    index: dict[str, list[ProbeRef]] = {}
    for probe in candidates:
        token = canonical_token(probe.token)
        if token is not None:
            index.setdefault(token, []).append(probe)
    return index


# --------------------------------------------------------------------------- plus address


def _by_plus_address(msg: ParsedMessage, candidates: Sequence[ProbeRef]) -> Match | None:
    by_token = _index_by_token(candidates)
    for address in _recipient_addresses(msg):
        token = token_from_address(address)
        if token is not None and token in by_token:
            return Match(_latest(by_token[token]).probe_id, "plus_address")
    return None


def _recipient_addresses(msg: ParsedMessage) -> Iterable[str]:
    yield from msg.delivered_to
    yield from msg.to
    yield from msg.cc
    yield from msg.reply_to
    if msg.original is not None:
        # A bounce carries our original, sent from the plus-address.
        yield msg.original.from_addr
        yield from msg.original.reply_to


# --------------------------------------------------------------------------- correspondent


@dataclass(frozen=True)
class _Instant:
    when: datetime
    skew: timedelta  # how much earlier than a probe's sent_at `when` may be


def _instant(msg: ParsedMessage, received_at: datetime | None) -> _Instant | None:
    if received_at is not None and received_at.tzinfo is not None:
        # IMAP INTERNALDATE has whole seconds: an answer in the second the probe left reads a little earlier.
        return _Instant(received_at, INTERNALDATE_PRECISION)
    if msg.date is not None and msg.date.tzinfo is not None:
        return _Instant(msg.date, DATE_HEADER_SKEW)
    return None


def _by_correspondent(
    msg: ParsedMessage, candidates: Sequence[ProbeRef], classification: Classification, instant: _Instant | None
) -> Match | None:
    if classification.bulk or instant is None:
        # A newsletter from the site's own address may even reuse a subject;
        # without an id or a token it is never an answer.
        return None
    fitting = _same_correspondent(msg, candidates, classification)
    when = instant.when
    in_window = [p for p in fitting if p.sent_at <= when <= p.watch_until] or [
        p for p in fitting if p.sent_at - instant.skew <= when <= p.watch_until
    ]
    # Two open probes to the same site with the same subject (templates repeat):
    # the answer goes to the most recent probe sent before it, the one the
    # person most likely had in front of them.
    return Match(_latest(in_window).probe_id, "correspondent") if in_window else None


def _same_correspondent(
    msg: ParsedMessage, candidates: Sequence[ProbeRef], classification: Classification
) -> list[ProbeRef]:
    if classification.kind == "bounce":
        failed = set(classification.failed_recipients)
        return [p for p in candidates if _address(p.site_address) in failed]
    subject = normalize_subject(msg.subject)
    if not subject or not msg.from_addr:
        return []
    return [
        p for p in candidates if _address(p.site_address) == msg.from_addr and normalize_subject(p.subject) == subject
    ]


def _address(addr: str) -> str:
    return addr.strip().strip("<>").lower()


# Reply, forward and auto-reply prefixes added by French, English and German
# clients and servers, and gateway tags such as "[EXT]".
_PREFIX = re.compile(
    r"^\s*(?:\[[^\]]{0,30}\]|(?:re|r|fw|fwd|tr|aw|wg|sv|vs|antw|ref|rep|lu|read|auto|undeliverable|non remis"
    r"|reponse automatique|automatic reply|out of office|absence du bureau|accuse de reception(?: \(affiche\))?)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*:)\s*",
)
_REF_LABEL = re.compile(r"\bref\b\.?\s*:?")


def normalize_subject(subject: str) -> str:
    """The part of a subject that survives replying: no prefixes, token, accents, case or punctuation."""
    text = fold(subject)
    for _ in range(20):
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    text = _REF_LABEL.sub(" ", strip_tokens(text))
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def _latest(probes: Sequence[ProbeRef]) -> ProbeRef:
    return max(probes, key=lambda probe: probe.sent_at)
