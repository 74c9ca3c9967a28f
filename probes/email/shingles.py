"""Recognise our own words quoted in a reply: word shingles, their hashes, and an index over many probes (pure).

When a probe is sent, `fingerprint(body)` keeps the hashes of its
overlapping 4-word sequences ("shingles"), never the text.  A reply that
quotes it — under a new subject, from a colleague, forwarded, through a
ticketing system, top-posted from a phone, re-wrapped at 72 columns, in HTML,
in any charset — still contains most of those sequences once `normalize` has
removed case, accents, punctuation, quote markers and line breaks.

`ShingleIndex` finds which probes a message quotes without looking at every
probe: it keeps, for each hash, the probes whose fingerprint has it, and
starts from the message's *rarest* hashes (those that only a few probes
share: the site's name, the dates, the persona's signature), taking their
probes until a bounded number of candidates, so the work per message
depends on how many probes share those few hashes, not on how many probes
are open.  A candidate is quoted when the message holds at least
`MIN_SHARED` of its shingles and `MIN_CONTAINMENT` of its fingerprint, and
enough of what is *specific* to it: each shared shingle weighs 1 / (the
number of probes that have it), and the weights must add up to `MIN_WEIGHT`.
Candidates rank by that weight: a template sentence every probe shares
says little, the site's name and the dates say which probe it is.

Success means: a reply quoting a probe's body finds that probe first; a
message quoting nothing of ours (or only a sentence every template shares)
finds none.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

from probes.email.message import fold

SHINGLE_WORDS = 4
MAX_SHINGLES = 512          # per fingerprint: a body longer than this many shingles is cut (ours are ~100)
RAREST = 16                 # message hashes used to find candidates, rarest first...
MAX_CANDIDATES = 64         # ...until this many candidate probes (the rarest hash is always used)
MIN_SHARED = 6              # shingles a probe must share with the message...
MIN_CONTAINMENT = 0.3       # ...the share of its fingerprint they must be...
MIN_WEIGHT = 1.0            # ...and how specific to it they must be, to be quoted (see the docstring)
TIE = 0.05                  # relative weights this close rank as equal (then the open, most recent probe wins)

_WORD = re.compile(r"[^\W_]+")
_QUOTE_MARKERS = re.compile(r"(?m)^(?:[ \t]*>)+")


def normalize(text: str) -> list[str]:
    """The words of `text` as a quote keeps them: no case, accents, punctuation, `>` markers or line breaks."""
    return _WORD.findall(fold(_QUOTE_MARKERS.sub(" ", text)))


def shingle_hashes(text: str, limit: int = MAX_SHINGLES) -> set[int]:
    """Signed 64-bit hashes of the text's overlapping word shingles (at most `limit`, the first ones)."""
    words = normalize(text)
    found: set[int] = set()
    for start in range(max(0, len(words) - SHINGLE_WORDS + 1)):
        found.add(_hash(" ".join(words[start:start + SHINGLE_WORDS])))
        if len(found) >= limit:
            break
    return found


def _hash(shingle: str) -> int:
    return int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=8).digest(), "big", signed=True)


def fingerprint(text: str) -> bytes:
    """What a probe keeps: its body's shingle hashes, packed (8 bytes each, sorted)."""
    return pack(shingle_hashes(text))


def pack(hashes: Iterable[int]) -> bytes:
    return array("q", sorted(hashes)).tobytes()


def unpack(data: bytes) -> frozenset[int]:
    values = array("q")
    values.frombytes(data[: len(data) - len(data) % 8])
    return frozenset(values)


@dataclass(frozen=True)
class QuoteHit:
    """A probe whose fingerprint the message contains: `shared` shingles, `containment` of its fingerprint,
    `weight` of what they share that is specific to it."""

    probe_id: str
    shared: int
    containment: float
    weight: float = MIN_WEIGHT

    @property
    def quoted(self) -> bool:
        return self.shared >= MIN_SHARED and self.containment >= MIN_CONTAINMENT and self.weight >= MIN_WEIGHT


class ShingleIndex:
    """Probes' fingerprints, searchable by the message that quotes them."""

    def __init__(self) -> None:
        self._fingerprints: dict[str, frozenset[int]] = {}
        self._postings: dict[int, set[str]] = {}

    def __len__(self) -> int:
        return len(self._fingerprints)

    def __contains__(self, probe_id: object) -> bool:
        return probe_id in self._fingerprints

    def add(self, probe_id: str, hashes: Iterable[int]) -> None:
        """Add (or replace) a probe's fingerprint."""
        self.remove(probe_id)
        kept = frozenset(hashes)
        if not kept:
            return
        self._fingerprints[probe_id] = kept
        for value in kept:
            self._postings.setdefault(value, set()).add(probe_id)

    def remove(self, probe_id: str) -> None:
        for value in self._fingerprints.pop(probe_id, ()):
            holders = self._postings.get(value)
            if holders is not None:
                holders.discard(probe_id)
                if not holders:
                    del self._postings[value]

    def search(self, hashes: set[int]) -> list[QuoteHit]:
        """Probes the message (given by its shingle hashes) quotes, best first."""
        known = sorted((len(holders), value) for value in hashes if (holders := self._postings.get(value)))
        candidates: set[str] = set()
        for rank, (count, value) in enumerate(known[:RAREST]):
            if rank and len(candidates) + count > MAX_CANDIDATES:
                break
            candidates |= self._postings[value]
        return _ranked(self._hit(probe_id, hashes) for probe_id in candidates)

    def naive_search(self, hashes: set[int]) -> list[QuoteHit]:
        """The best answer by scoring every probe: the baseline the index is measured against."""
        return _ranked(self._hit(probe_id, hashes) for probe_id in self._fingerprints)

    def _hit(self, probe_id: str, hashes: set[int]) -> QuoteHit:
        mine = self._fingerprints[probe_id]
        shared = mine & hashes
        weight = sum(1.0 / len(self._postings[value]) for value in shared)
        return QuoteHit(probe_id, len(shared), len(shared) / len(mine), weight)


def _ranked(hits: Iterable[QuoteHit]) -> list[QuoteHit]:
    return sorted((hit for hit in hits if hit.quoted), key=lambda h: (-h.weight, -h.containment, h.probe_id))
