"""Every Prometheus metric of qualimon (DESIGN §6), defined in one place and served fast.

`Metrics(registry, config)` defines the metrics below and creates every label
combination the config implies at value 0, so that `increase()` sees the
first event and boards list every site from the first scrape.  Label values
are only config names (site, channel, commitment, mailbox, source) and the
small enums defined here: a value outside the start-up set is dropped (logged
once; `strict=True` raises `UnknownLabel`) instead of creating a new series,
which is what keeps the label sets bounded (never a probe id, an address or a
subject).

Metrics produced (name, type, labels):

- ``qualimon_build_info`` gauge {version} = 1
- ``qualimon_probes_sent_total`` counter {site, channel}
- ``qualimon_probe_send_failures_total`` counter {site, channel, reason ∈ SEND_FAILURE_REASONS}
- ``qualimon_responses_total`` counter {site, channel, kind ∈ RESPONSE_KINDS} (email sites)
- ``qualimon_verdicts_total`` counter {site, commitment, verdict ∈ met/missed/void}
- ``qualimon_response_delay_seconds`` histogram {site, commitment}
- ``qualimon_response_delay_business_seconds`` histogram {site, commitment} (email commitments)
- ``qualimon_probes_open`` gauge {site, channel}                      (snapshot)
- ``qualimon_probes_overdue`` gauge {site, commitment}                (snapshot)
- ``qualimon_oldest_open_probe_age_seconds`` gauge {site, channel}    (snapshot)
- ``qualimon_commitment_compliance_ratio`` gauge {site, commitment, window} (snapshot)
- ``qualimon_commitment_samples`` gauge {site, commitment, window, verdict} (snapshot)
- ``qualimon_commitment_target_ratio`` gauge {commitment}
- ``qualimon_commitment_threshold_seconds`` gauge {commitment} (wall-clock thresholds only)
- ``qualimon_call_ring_seconds`` histogram {site, source ∈ mystery/calllog} (phone sites)
- ``qualimon_calls_total`` counter {site, source, outcome ∈ CALL_OUTCOMES} (phone sites)
- ``qualimon_mailbox_up`` gauge {mailbox}
- ``qualimon_mailbox_last_success_timestamp_seconds`` gauge {mailbox}
- ``qualimon_calllog_last_ingest_timestamp_seconds`` gauge {source}
- ``qualimon_calllog_rows_rejected_total`` counter {source, reason ∈ CALLLOG_REJECT_REASONS}
- ``qualimon_last_probe_sent_timestamp_seconds`` gauge {site, channel} (planned channels)

Histogram buckets contain every commitment's nominal threshold (seconds,
rings × cadence, working days × 86 400, business hours × 3 600), so the
bucket ``le="<threshold>"`` divided by ``_count`` is the on-time share of the
answered probes without interpolation.

Writers (the runner, the watchers, the call-log importer) call the plain
methods of `Metrics`; the database-derived gauges are set only by
`apply_snapshot`, from a `DerivedSnapshot` that a background task computes.
A scrape reads memory only and never touches the database.

Why not prometheus_client's own metric objects: at 10 000 sites × 4
commitments the config implies ~2.5 M sample lines (240 MB of text).  One
Python object (with its own lock) per series took 15-30 s and 1.2 GB to build,
and each exposition 22-58 s, rendered on the event loop: beyond Prometheus'
10 s scrape timeout, with every probe frozen meanwhile.  So (`_Exposition`):

- values live in one flat list, one slot per exposition line, found through
  label tuples indexed once at start-up; a histogram is its cumulative bucket
  slots, then `_count` and `_sum`;
- the text is cached per block of ~2 000 lines; a write marks its block dirty
  and the next scrape patches only the changed lines into the cached text;
- a scrape runs in a worker thread, never on the loop.  It copies the dirty
  blocks' values under one short lock, so it shows one instant (a
  histogram's buckets, count and sum together; a snapshot whole), then
  streams the cached blocks;
- `apply_snapshot` only hands the snapshot over; the next reader turns its
  entries into values, in its own thread;
- with ``Accept-Encoding: gzip`` each block is also kept as a raw deflate
  segment ending on a byte boundary, so the body is the concatenation of the
  cached segments (as pigz does) and gzip costs the CRC of the text and the
  deflation of the dirty blocks only;
- lines are those of prometheus_client's encoders, in the 0.0.4 text format
  or OpenMetrics, negotiated the same way (`choose_encoder`).

The collector is still registered on the registry it is given: its
`collect()` builds prometheus_client families, so `generate_latest(registry)`
and `registry.get_sample_value` keep working (tests use them; that path is
slow at scale and is not what `/metrics` serves).  Any other collector put on
the same registry is appended to the fast text by prometheus_client's encoder.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import struct
import threading
import weakref
import zlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress, count
from operator import itemgetter, ne
from typing import Any, Literal

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.exposition import generate_latest as text_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.utils import floatToGoString
from pydantic import SecretStr

import monitor
from monitor.config.models import Commitment, Config, Site

log = logging.getLogger("qualimon.metrics")

DAY = 86_400.0
HOUR = 3_600.0

# ---------------------------------------------------------------------------
# bounded label values

VERDICTS = ("met", "missed", "void")
SAMPLE_VERDICTS = ("met", "missed", "pending", "void")
WINDOWS = ("30d", "90d")
RESPONSE_KINDS = ("human_reply", "auto_reply", "bounce")
CALL_OUTCOMES = ("answered", "busy", "no_answer", "rejected", "failed")
CALL_SOURCES = ("mystery", "calllog")

#: Why the monitor could not send a probe (all of them make the probe `void`).
SEND_FAILURE_REASONS: Mapping[str, str] = {
    "connect": "our SMTP server / SIP trunk could not be reached (DNS, network, refused connection)",
    "tls": "the TLS handshake with our server failed (certificate, protocol)",
    "auth": "our server refused the monitor's credentials",
    "refused": "our server refused the message or the call (5xx to MAIL/RCPT/DATA, SIP 4xx/5xx from the trunk)",
    "timeout": "the runner's timeout expired before the send completed",
    "internal": "a bug or an unexpected exception in qualimon itself",
    "other": "anything else; unknown reasons are mapped here so the label set stays bounded",
}

# Free-text reasons ("timeout: the probe took more than 120 s", "monitor error:
# ...") are folded into the set above by keyword, first match wins: the text
# itself (which may name an address) never becomes a label value. "connect"
# comes before "refused" so that "connection refused" is a network problem.
_REASON_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("timeout", ("timeout", "timed out")),
    ("tls", ("tls", "ssl", "certificate")),
    ("auth", ("auth", "credential", "password", "login")),
    ("connect", ("connect", "unreachable", "dns", "resolve", "network")),
    ("internal", ("monitor error", "internal", "interrupted", "no probe kind")),
    ("refused", ("refused", "rejected", "denied", "forbidden")),
)


def send_failure_reason(text: str) -> str:
    """The bounded label value for a send failure described by `text`."""
    lowered = text.strip().lower()
    if lowered in SEND_FAILURE_REASONS:
        return lowered
    for reason, words in _REASON_KEYWORDS:
        if any(word in lowered for word in words):
            return reason
    return "other"


#: Why a call-log (CDR) row was not imported.
#: The parsers' own reasons (probes.calllogs.RejectReason) plus the mapping to a site.
CALLLOG_REJECT_REASONS: Mapping[str, str] = {
    "columns": "wrong number of fields, unbalanced quotes or a missing mapped column",
    "encoding": "bytes that are not valid in the declared encoding",
    "timestamp": "an unparseable or impossible instant",
    "duration": "a negative or non-numeric duration, or talk time longer than the call",
    "number": "an empty or malformed dialled number",
    "outcome": "a disposition or status value nobody mapped",
    "field_too_large": "a field longer than the CSV reader's limit (128 KiB), e.g. a crashed writer's garbage",
    "nul_bytes": "NUL bytes in the line, e.g. the hole a crash leaves in a log file",
    "unknown_site": "no configured site has the called number",
    "other": "anything else; unknown reasons are mapped here",
}

# ---------------------------------------------------------------------------
# buckets

# Email delays span minutes to weeks, phone delays seconds: one bucket list
# covers both (a histogram has one list for all its series), so it is kept
# short — every bucket costs one line per site × commitment on each scrape.
# The thresholds are added to it by `delay_buckets`.
BASE_DELAY_BUCKETS = (
    5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 300.0, 1800.0,
    HOUR, 4 * HOUR, 12 * HOUR,
    DAY, 2 * DAY, 3 * DAY, 5 * DAY, 7 * DAY, 14 * DAY, 30 * DAY,
)
BASE_RING_BUCKETS = (2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0, 90.0)


def nominal_threshold_seconds(commitment: Commitment) -> float:
    """The commitment's threshold as a duration: wall-clock thresholds exactly,
    working days as N × 24 h and business hours as H × 1 h (their real deadline
    depends on the calendar, so this is the nominal bucket edge)."""
    wall_clock = commitment.threshold_seconds
    if wall_clock is not None:
        return wall_clock
    within = commitment.within
    if within.working_days is not None:
        return within.working_days * DAY
    assert within.business_hours is not None  # Within guarantees exactly one unit
    return within.business_hours * HOUR


def delay_buckets(config: Config) -> tuple[float, ...]:
    thresholds = (nominal_threshold_seconds(c) for c in config.commitments.values())
    return tuple(sorted({*BASE_DELAY_BUCKETS, *thresholds}))


def ring_buckets(config: Config) -> tuple[float, ...]:
    phone = config.commitments_for("phone").values()
    thresholds = (c.threshold_seconds for c in phone if c.threshold_seconds is not None)
    return tuple(sorted({*BASE_RING_BUCKETS, *thresholds}))


# ---------------------------------------------------------------------------
# label layout derived from the config


class UnknownLabel(ValueError):
    """A label value outside the start-up set (raised in strict mode only)."""


MAX_WARNINGS = 100  # distinct dropped label sets worth a log line; beyond, stay quiet


@dataclass(frozen=True)
class Layout:
    """Every label combination the config implies, computed once."""

    site_channels: tuple[tuple[str, str], ...]
    planned_site_channels: tuple[tuple[str, str], ...]
    site_commitments: tuple[tuple[str, str], ...]
    written_site_commitments: tuple[tuple[str, str], ...]
    email_sites: tuple[str, ...]
    phone_sites: tuple[str, ...]
    mailboxes: tuple[str, ...]
    sources: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Config, source_ids: Sequence[str] = ()) -> Layout:
        return cls(
            site_channels=tuple((s.id, ch) for s in config.sites for ch in _channels(s)),
            planned_site_channels=tuple((s.id, ch) for s in config.sites for ch in _planned_channels(s)),
            site_commitments=tuple(
                (s.id, cid) for s in config.sites for ch in _channels(s) for cid in config.commitments_for(ch)
            ),
            # Business delay (time inside working days) describes written answers;
            # a call is answered in seconds, where it would only repeat the wall clock.
            written_site_commitments=tuple(
                (s.id, cid) for s in config.sites if s.email is not None for cid in config.commitments_for("email")
            ),
            email_sites=tuple(s.id for s in config.sites if s.email is not None),
            phone_sites=tuple(s.id for s in config.sites if s.phone is not None),
            mailboxes=tuple(config.mailboxes),
            sources=tuple(dict.fromkeys(source_ids)),
        )


def _channels(site: Site) -> tuple[str, ...]:
    return tuple(ch for ch in ("email", "phone") if getattr(site, ch) is not None)


def _planned_channels(site: Site) -> tuple[str, ...]:
    # The "no probe sent in 7 days" alert watches the planner; a channel with
    # every quota at 0 is deliberately paused and must not trip it.
    planned = []
    if site.email is not None and site.email.per_month > 0:
        planned.append("email")
    if site.phone is not None and (site.phone.per_month > 0 or site.phone.out_of_hours_per_month > 0):
        planned.append("phone")
    return tuple(planned)


def _product(pairs: Iterable[tuple[str, ...]], values: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    values = tuple(values)
    return tuple([pair + (value,) for pair in pairs for value in values])


# ---------------------------------------------------------------------------
# database-derived values


@dataclass(frozen=True)
class DerivedSnapshot:
    """Values computed from the database by the background refresh task.

    Keys are label tuples; combinations missing from a mapping are set to 0
    (the snapshot is complete by definition), keys naming a site, channel or
    commitment that is no longer in the config are ignored.
    """

    #: (site, commitment, window) -> met / (met + missed); 0 when nothing is decided
    compliance_ratio: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    #: (site, commitment, window, verdict ∈ met/missed/pending/void) -> probes
    samples: Mapping[tuple[str, str, str, str], int] = field(default_factory=dict)
    #: (site, channel) -> probes sent and still waiting for at least one verdict
    probes_open: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: (site, commitment) -> probes past that commitment's deadline with no qualifying
    #: answer yet (pending past the deadline, or missed and still watched for a late answer)
    probes_overdue: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: (site, channel) -> age of the oldest open probe, 0 when none is open
    oldest_open_probe_age_seconds: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: (site, channel) -> last sent_at in the store; restores the watchdog after a restart
    last_probe_sent: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    #: call-log source -> last successful ingest in the store; same purpose
    calllog_last_ingest: Mapping[str, datetime] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# the exposition engine: flat values, cached text blocks, prometheus_client's lines

Kind = Literal["counter", "gauge", "histogram"]
LabelValues = tuple[str, ...]

#: Lines per cached text block: the unit of patching and of gzip segments.  A
#: patch costs ~0.2 ms per block plus ~0.5 µs per changed line; 10 000 sites
#: make ~1 200 blocks of ~200 kB.
BLOCK_LINES = 2048
#: zlib level of the cached gzip segments.  At 10 000 sites level 1 deflates the
#: whole text in 0.4 s to 9.9 MB, level 6 in 1.5 s to 8.5 MB: re-deflating the
#: dirty blocks is what each scrape pays, so the faster level wins.
GZIP_LEVEL = 1
# mtime 0, no name, OS "unknown": the body must not depend on when it was built.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# An empty final block (fixed Huffman, just end-of-block) closes the concatenated segments.
_DEFLATE_END = b"\x03\x00"
_OPENMETRICS_EOF = b"# EOF\n"


@dataclass(frozen=True)
class FamilySpec:
    """One metric family, as it would have been declared to prometheus_client."""

    name: str  # the OpenMetrics family name: a counter's without `_total`
    kind: Kind
    documentation: str
    labelnames: tuple[str, ...]
    buckets: tuple[float, ...] = ()  # a histogram's finite upper bounds, sorted

    @property
    def shown(self) -> str:
        """The name as the text format writes it and log messages quote it."""
        return f"{self.name}_total" if self.kind == "counter" else self.name

    def lines(self) -> tuple[tuple[str, str | None], ...]:
        """(sample name, `le` or None) for each line of one series, in prometheus_client's order."""
        if self.kind != "histogram":
            return ((self.shown, None),)
        les = (*map(floatToGoString, self.buckets), "+Inf")
        return (*((f"{self.name}_bucket", le) for le in les),
                (f"{self.name}_count", None), (f"{self.name}_sum", None))


def _escape(value: str) -> str:
    """prometheus_client's escaping of a label value (the same in both formats)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _line_template(sample: str, labelnames: Sequence[str], le: str | None) -> str:
    """`sample{a="%s",le="5.0",b="%s"} `: the encoders sort label names, so `le` may sit in the middle."""
    names = sorted([*labelnames, *(["le"] if le is not None else [])])
    literal = "".join([sample, *names, le or ""])
    assert "%" not in literal and "le" not in labelnames, literal
    if not names:
        return f"{sample} "
    pairs = ",".join(f'le="{le}"' if name == "le" and le is not None else f'{name}="%s"' for name in names)
    return f"{sample}{{{pairs}}} "


def _label_text(series: Sequence[LabelValues], labelnames: Sequence[str]) -> Sequence[tuple[str, ...]]:
    """Each series' escaped label values in sorted-name order, the order `_line_template` expects.

    Building this for ~800 000 series is most of the start-up, so the common
    cases (nothing to escape, names already sorted) cost no per-series Python."""
    order = sorted(range(len(labelnames)), key=labelnames.__getitem__)
    escaped = [{value: _escape(value) for value in {labels[i] for labels in series}} for i in order]
    if all(text == value for mapping in escaped for value, text in mapping.items()):
        if order == list(range(len(labelnames))):
            return series
        return list(map(itemgetter(*order), series))  # two labels or more here: itemgetter gives tuples
    return [tuple(mapping[labels[i]] for i, mapping in zip(order, escaped)) for labels in series]


_VALUE_TEXT: dict[float, str] = {0.0: "0.0\n", 1.0: "1.0\n"}
_VALUE_TEXT_MAX = 1 << 16


def _value_line(value: float) -> str:
    """`floatToGoString(value)` and the newline; most values are small counts, so they are cached."""
    text = _VALUE_TEXT.get(value)  # -0.0 == 0.0 finds "0.0": no writer produces a negative zero
    if text is None:
        text = floatToGoString(value) + "\n"
        if math.isfinite(value) and len(_VALUE_TEXT) < _VALUE_TEXT_MAX:
            _VALUE_TEXT[value] = text
    return text


_VALUE_BYTES: dict[float, bytes] = {0.0: b"0.0", 1.0: b"1.0"}


def _value_bytes(value: float) -> bytes:
    """`floatToGoString(value)` as bytes, cached like `_value_line`."""
    text = _VALUE_BYTES.get(value)
    if text is None:
        text = floatToGoString(value).encode()
        if math.isfinite(value) and len(_VALUE_BYTES) < _VALUE_TEXT_MAX:
            _VALUE_BYTES[value] = text
    return text


def _patch(text: bytes, lines: Iterable[int], values: Sequence[float]) -> bytes:
    """`text` with the value of the given lines replaced: 1.5× (all lines) to 8× (a few) cheaper than rendering.

    A value is what follows the last space of its line (values have no
    space; a space in a label value comes before it)."""
    rows = text.split(b"\n")
    for j in lines:
        row = rows[j]
        rows[j] = row[:row.rindex(b" ") + 1] + _value_bytes(values[j])
    return b"\n".join(rows)


class _Family:
    """A family laid out in the flat value list: `width` consecutive slots (lines) per series."""

    def __init__(self, spec: FamilySpec, series: Iterable[LabelValues], first_slot: int, first_block: int):
        self.spec = spec
        self.series: tuple[LabelValues, ...] = tuple(dict.fromkeys(series))
        self.index: dict[LabelValues, int] = dict(zip(self.series, range(len(self.series))))
        lines = spec.lines()
        self.width = len(lines)
        self.templates = tuple(_line_template(name, spec.labelnames, le) for name, le in lines)
        self.label_text = _label_text(self.series, spec.labelnames)
        self.first_slot = first_slot
        self.first_block = first_block
        self.block_series = max(1, BLOCK_LINES // self.width)
        self.n_blocks = -(-len(self.series) // self.block_series)

    @property
    def n_slots(self) -> int:
        return len(self.series) * self.width

    def blocks(self) -> range:
        return range(self.first_block, self.first_block + self.n_blocks)

    def slot(self, series: int) -> int:
        return self.first_slot + series * self.width

    def block(self, series: int) -> int:
        return self.first_block + series // self.block_series

    def block_series_range(self, block: int) -> tuple[int, int]:
        first = (block - self.first_block) * self.block_series
        return first, min(first + self.block_series, len(self.series))

    def block_slots(self, block: int) -> slice:
        first, end = self.block_series_range(block)
        return slice(self.slot(first), self.slot(end))

    def render(self, block: int, values: Sequence[float]) -> bytes:
        """The block's lines; `values` are its slots, in order."""
        first, end = self.block_series_range(block)
        prefixes = [template % labels for labels in self.label_text[first:end] for template in self.templates]
        return "".join(map(str.__add__, prefixes, map(_value_line, values))).encode()

    def dense(self, values: Mapping[Any, float]) -> list[float]:
        """Every series of a gauge family, 0 where `values` has no entry; keys outside it are ignored."""
        dense = [0.0] * len(self.series)
        index = self.index
        for labels, value in values.items():
            i = index.get(labels)
            if i is not None:
                number = float(value)
                dense[i] = number if math.isfinite(number) else 0.0
        return dense

    def to_metric(self, values: Sequence[float]) -> Metric:
        """The prometheus_client family (the compatibility path behind `registry.collect()`)."""
        metric = Metric(self.spec.name, self.spec.documentation, self.spec.kind)
        lines = self.spec.lines()
        for i, labels in enumerate(self.series):
            base, slot = dict(zip(self.spec.labelnames, labels)), self.slot(i)
            for j, (name, le) in enumerate(lines):
                metric.add_sample(name, base if le is None else {**base, "le": le}, values[slot + j])
        return metric


class _Families:
    """A fixed list of families, as a collector the encoders accept."""

    def __init__(self, metrics: Iterable[Metric]):
        self.metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def _header(spec: FamilySpec, openmetrics: bool) -> bytes:
    """HELP and TYPE lines exactly as prometheus_client's encoders write them."""
    empty = _Families([Metric(spec.name, spec.documentation, spec.kind)])
    if openmetrics:
        return openmetrics_latest(empty).removesuffix(_OPENMETRICS_EOF)
    return text_latest(empty)


def _deflate(text: bytes) -> bytes:
    """Raw deflate ended by a sync flush (byte-aligned, not final): such segments concatenate into one stream."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)


class _Exposition:
    """Every series' value in one list, the text cached per block, and the collector protocol.

    `_lock` guards the values, the dirty set and the deferred snapshot; it is
    held for a few list operations, by writers (the event loop) and by a
    scrape only to take its copy, so the loop never waits on a render.
    `_render_lock` lets one reader at a time own the cached text.
    """

    def __init__(self, definitions: Iterable[tuple[FamilySpec, Iterable[LabelValues]]]):
        self.families: list[_Family] = []
        slots = blocks = 0
        for spec, series in definitions:
            family = _Family(spec, series, slots, blocks)
            self.families.append(family)
            slots, blocks = slots + family.n_slots, blocks + family.n_blocks
        self._block_family = [family for family in self.families for _ in family.blocks()]
        self._values = [0.0] * slots
        self._lock = threading.Lock()  # `_values` and `_dirty`
        self._render_lock = threading.Lock()  # one render at a time owns `_text` and `_deflated`
        self._dirty: set[int] = set(range(blocks))  # rendered on the first scrape, off the loop
        self._pending: list[tuple[_Family, Mapping[Any, float]]] | None = None  # see `defer`
        self._text: list[bytes] = [b""] * blocks
        self._shown: list[list[float] | None] = [None] * blocks  # the values `_text` shows
        self._deflated: list[bytes | None] = [None] * blocks
        self._headers = {om: [_header(f.spec, om) for f in self.families] for om in (False, True)}
        self._deflated_headers = {om: list(map(_deflate, texts)) for om, texts in self._headers.items()}
        self._muted = threading.local()

    # ---- writes (any thread; in practice the event loop)

    def add(self, family: _Family, series: int, amount: float) -> None:
        slot = family.slot(series)
        with self._lock:
            self._values[slot] += amount
            self._dirty.add(family.block(series))

    def set(self, family: _Family, series: int, value: float) -> None:
        slot = family.slot(series)
        with self._lock:
            self._values[slot] = float(value)
            self._dirty.add(family.block(series))

    def raise_to(self, family: _Family, series: int, value: float) -> None:
        """Set unless that would move the value back (timestamps fed by two sources)."""
        slot = family.slot(series)
        with self._lock:
            if value >= self._values[slot]:
                self._values[slot] = float(value)
                self._dirty.add(family.block(series))

    def observe(self, family: _Family, series: int, value: float) -> None:
        """A histogram observation: buckets are stored cumulative, then +Inf, `_count`, `_sum`."""
        base, n = family.slot(series), len(family.spec.buckets)
        with self._lock:
            values = self._values
            if not math.isnan(value):  # prometheus_client puts NaN in no bucket, only in the sum
                for slot in range(base + bisect_left(family.spec.buckets, value), base + n + 2):
                    values[slot] += 1.0
            values[base + n + 2] += value
            self._dirty.add(family.block(series))

    def defer(self, gauges: Sequence[tuple[_Family, Mapping[Any, float]]]) -> None:
        """Replace whole gauge families from label → value mappings, at the next read.

        Turning the ~500 000 entries of a full snapshot into slots costs ~0.3 s
        of Python: on the event loop (where the service applies snapshots) that
        would stall every probe, so the next scrape or `collect()` does it in its
        own thread.  Only the latest deferred set counts, and it is applied
        whole, so no scrape sees half of it."""
        with self._lock:
            self._pending = list(gauges)

    def _apply_pending(self) -> None:
        """Caller holds `_render_lock`, so deferred sets are applied in the order they came."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending:
            dense = [(family, family.dense(values)) for family, values in pending]
            with self._lock:
                for family, values in dense:
                    self._replace(family, values)

    def _replace(self, family: _Family, values: list[float]) -> None:
        """Caller holds `_lock`; blocks whose values did not change keep their cached text."""
        assert family.width == 1 and len(values) == len(family.series), family.spec.name
        for block in family.blocks():
            first, end = family.block_series_range(block)
            slots = family.block_slots(block)
            if self._values[slots] != values[first:end]:
                self._values[slots] = values[first:end]
                self._dirty.add(block)

    def raise_many(self, stamps: Iterable[tuple[_Family, int, float]]) -> None:
        """`raise_to` for many series under one lock."""
        with self._lock:
            for family, series, value in stamps:
                slot = family.slot(series)
                if value >= self._values[slot]:
                    self._values[slot] = float(value)
                    self._dirty.add(family.block(series))

    # ---- the fast exposition (a worker thread)

    def body(self, openmetrics: bool, gzip: bool, extra: bytes = b"") -> list[bytes]:
        """The exposition as parts to send in order; `extra` is other collectors' text."""
        with self._render_lock:
            self._apply_pending()
            self._render_dirty()
            if not gzip:
                return self._parts(openmetrics, extra, deflated=False)
            crc = size = 0
            for part in self._parts(openmetrics, extra, deflated=False):
                crc, size = zlib.crc32(part, crc), size + len(part)
            trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
            return [_GZIP_HEADER, *self._parts(openmetrics, extra, deflated=True), _DEFLATE_END, trailer]

    def _render_dirty(self) -> None:
        with self._lock:  # the consistent instant of this scrape
            dirty, self._dirty = self._dirty, set()
            work = [(block, self._values[self._block_family[block].block_slots(block)]) for block in dirty]
        for block, values in work:
            shown = self._shown[block]
            if shown is None:
                self._text[block] = self._block_family[block].render(block, values)
            else:
                changed = list(compress(count(), map(ne, shown, values)))
                if not changed:
                    continue  # written and written back, or set to the value it had
                self._text[block] = _patch(self._text[block], changed, values)
            self._shown[block] = values
            self._deflated[block] = None

    def _parts(self, openmetrics: bool, extra: bytes, *, deflated: bool) -> list[bytes]:
        headers = (self._deflated_headers if deflated else self._headers)[openmetrics]
        block = self._deflated_block if deflated else self._text.__getitem__
        parts: list[bytes] = []
        for family, header in zip(self.families, headers):
            parts.append(header)
            parts.extend(map(block, family.blocks()))
        tail = [text for text in (extra, _OPENMETRICS_EOF if openmetrics else b"") if text]
        parts.extend(map(_deflate, tail) if deflated else tail)
        return parts

    def _deflated_block(self, block: int) -> bytes:
        segment = self._deflated[block]
        if segment is None:
            segment = self._deflated[block] = _deflate(self._text[block])
        return segment

    # ---- the collector protocol (prometheus_client's encoders, tests)

    def collect(self) -> Iterator[Metric]:
        if getattr(self._muted, "active", False):
            return
        with self._render_lock:
            self._apply_pending()
            with self._lock:
                values = self._values[:]
        for family in self.families:
            yield family.to_metric(values)

    def describe(self) -> Iterator[Metric]:
        for family in self.families:
            yield Metric(family.spec.name, family.spec.documentation, family.spec.kind)

    @contextmanager
    def muted(self) -> Iterator[None]:
        """While active in this thread, `collect()` yields nothing (to encode the registry's other collectors)."""
        self._muted.active = True
        try:
            yield
        finally:
            self._muted.active = False


# ---------------------------------------------------------------------------
# the metrics


def _epoch(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError(f"{at!r} is naive; instants must be timezone-aware (UTC)")
    return at.timestamp()


def _known_reason(reason: str, reasons: Mapping[str, str]) -> str:
    return reason if reason in reasons else "other"


def _definitions(config: Config, lay: Layout) -> dict[str, tuple[FamilySpec, Iterable[LabelValues]]]:
    """Every family (exposition order) with every series the config implies."""
    sc, scm = ("site", "channel"), ("site", "commitment")
    windows = _product(lay.site_commitments, WINDOWS)
    phone_sources = _product(((s,) for s in lay.phone_sites), CALL_SOURCES)
    delays = delay_buckets(config)
    commitments = [(cid,) for cid in config.commitments]
    wall_clock = [(cid,) for cid, c in config.commitments.items() if c.threshold_seconds is not None]
    mailboxes, sources = [(m,) for m in lay.mailboxes], [(s,) for s in lay.sources]

    def spec(name: str, kind: Kind, doc: str, labels: Sequence[str], buckets: tuple[float, ...] = ()) -> FamilySpec:
        return FamilySpec(name, kind, doc, tuple(labels), buckets)

    return {
        "build_info": (spec("qualimon_build_info", "gauge", "qualimon version running (value 1)", ["version"]),
                       [(monitor.__version__,)]),
        "probes_sent": (spec("qualimon_probes_sent", "counter", "Probes sent", sc), lay.site_channels),
        "send_failures": (spec("qualimon_probe_send_failures", "counter", "Probes the monitor failed to send (void)",
                               [*sc, "reason"]), _product(lay.site_channels, SEND_FAILURE_REASONS)),
        "responses": (spec("qualimon_responses", "counter", "Messages matched to a probe, by kind", [*sc, "kind"]),
                      _product(((s, "email") for s in lay.email_sites), RESPONSE_KINDS)),
        "verdicts": (spec("qualimon_verdicts", "counter", "Decided verdicts per probe and commitment",
                          [*scm, "verdict"]), _product(lay.site_commitments, VERDICTS)),
        "delay": (spec("qualimon_response_delay_seconds", "histogram", "Wall-clock delay of answers", scm, delays),
                  lay.site_commitments),
        "business_delay": (spec("qualimon_response_delay_business_seconds", "histogram",
                                "Delay of answers counted inside working days", scm, delays),
                           lay.written_site_commitments),
        "probes_open": (spec("qualimon_probes_open", "gauge", "Probes waiting for a verdict (from the database)", sc),
                        lay.site_channels),
        "probes_overdue": (spec("qualimon_probes_overdue", "gauge",
                                "Probes past a deadline with no qualifying answer yet (from the database)", scm),
                           lay.site_commitments),
        "oldest_open_age": (spec("qualimon_oldest_open_probe_age_seconds", "gauge",
                                 "Age of the oldest open probe (from the database)", sc), lay.site_channels),
        "compliance": (spec("qualimon_commitment_compliance_ratio", "gauge",
                            "Share of decided probes that met the commitment (from the database)",
                            [*scm, "window"]), windows),
        "samples": (spec("qualimon_commitment_samples", "gauge", "Probes per verdict in the window (from the database)",
                         [*scm, "window", "verdict"]), _product(windows, SAMPLE_VERDICTS)),
        "target": (spec("qualimon_commitment_target_ratio", "gauge", "Configured target ratio", ["commitment"]),
                   commitments),
        "threshold": (spec("qualimon_commitment_threshold_seconds", "gauge", "Configured wall-clock threshold",
                           ["commitment"]), wall_clock),
        "ring": (spec("qualimon_call_ring_seconds", "histogram", "Ringing time until answer", ["site", "source"],
                      ring_buckets(config)), phone_sources),
        "calls": (spec("qualimon_calls", "counter", "Calls by outcome", ["site", "source", "outcome"]),
                  _product(phone_sources, CALL_OUTCOMES)),
        "mailbox_up": (spec("qualimon_mailbox_up", "gauge", "1 when the mystery mailbox is reachable", ["mailbox"]),
                       mailboxes),
        "mailbox_success": (spec("qualimon_mailbox_last_success_timestamp_seconds", "gauge",
                                 "Last successful mailbox check", ["mailbox"]), mailboxes),
        "calllog_ingest": (spec("qualimon_calllog_last_ingest_timestamp_seconds", "gauge",
                                "Last successful call-log ingest", ["source"]), sources),
        "rows_rejected": (spec("qualimon_calllog_rows_rejected", "counter", "Call-log rows not imported",
                               ["source", "reason"]), _product(sources, CALLLOG_REJECT_REASONS)),
        "last_sent": (spec("qualimon_last_probe_sent_timestamp_seconds", "gauge", "Last probe sent", sc),
                      lay.planned_site_channels),
    }


class Metrics:
    """All qualimon metrics on one registry, with the writers' methods."""

    build_info: _Family
    probes_sent: _Family
    send_failures: _Family
    responses: _Family
    verdicts: _Family
    delay: _Family
    business_delay: _Family
    probes_open: _Family
    probes_overdue: _Family
    oldest_open_age: _Family
    compliance: _Family
    samples: _Family
    target: _Family
    threshold: _Family
    ring: _Family
    calls: _Family
    mailbox_up: _Family
    mailbox_success: _Family
    calllog_ingest: _Family
    rows_rejected: _Family
    last_sent: _Family

    def __init__(self, registry: CollectorRegistry, config: Config, source_ids: Sequence[str] = (),
                 *, strict: bool = False):
        """`strict` raises `UnknownLabel` on a value outside the start-up set (tests, to catch
        wiring bugs); otherwise the write is dropped with one warning, because the store can
        legitimately hold probes of a site that has since left the config."""
        self.strict = strict
        self._warned: set[tuple[str, LabelValues]] = set()
        self.layout = Layout.from_config(config, source_ids)
        # The store's timestamps already raised, by key (see `apply_snapshot`).
        self._seen_sent: Mapping[tuple[str, str], datetime] = {}
        self._seen_ingest: Mapping[str, datetime] = {}
        definitions = _definitions(config, self.layout)
        self._exposition = _Exposition(definitions.values())
        for name, family in zip(definitions, self._exposition.families):
            setattr(self, name, family)
        self._exposition.set(self.build_info, 0, 1)
        for cid, commitment in config.commitments.items():
            self._exposition.set(self.target, self.target.index[(cid,)], commitment.target_ratio)
            if commitment.threshold_seconds is not None:
                self._exposition.set(self.threshold, self.threshold.index[(cid,)], commitment.threshold_seconds)
        registry.register(self._exposition)  # raises on a second Metrics on the same registry
        _SERVED[registry] = self._exposition

    # ---- label checks

    def _series(self, family: _Family, *labels: str) -> int | None:
        index = family.index.get(labels)
        if index is not None:
            return index
        shown = family.spec.shown
        message = (f"{shown}{dict(zip(family.spec.labelnames, labels))} is not a series of this config "
                   "(labels are config names and known enum values); the update is dropped")
        if self.strict:
            raise UnknownLabel(message)
        if len(self._warned) < MAX_WARNINGS and (shown, labels) not in self._warned:
            self._warned.add((shown, labels))
            log.warning(message)
        return None

    def _inc(self, family: _Family, *labels: str, amount: float = 1.0) -> None:
        series = self._series(family, *labels)
        if series is not None:
            self._exposition.add(family, series, amount)

    def _observe(self, family: _Family, labels: LabelValues, value: float) -> None:
        series = self._series(family, *labels)
        if series is not None:
            self._exposition.observe(family, series, value)

    def _set_timestamp(self, family: _Family, labels: LabelValues, value: float) -> None:
        # Writers and the store refresh both feed these; never move back in time
        # (the store may lag the live writers by one refresh).
        series = family.index.get(labels)
        if series is not None:
            self._exposition.raise_to(family, series, value)

    # ---- writers: the runner

    def probe_sent(self, site: str, channel: str, at: datetime) -> None:
        sent = _epoch(at)  # a naive instant is refused before anything is counted
        self._inc(self.probes_sent, site, channel)
        # One-off probes on a paused channel count, but do not arm the watchdog
        # (the paused channel has no watchdog series, so this is a no-op for it).
        self._set_timestamp(self.last_sent, (site, channel), sent)

    def send_failed(self, site: str, channel: str, reason: str) -> None:
        """`reason` is one of SEND_FAILURE_REASONS or free text, see `send_failure_reason`."""
        self._inc(self.send_failures, site, channel, send_failure_reason(reason))

    def response(self, site: str, channel: str, kind: str) -> None:
        """A written answer matched to a probe (phone answers go to `call`)."""
        self._inc(self.responses, site, channel, kind)

    def verdict(self, site: str, commitment: str, verdict: str,
                delay_seconds: float | None = None, business_delay_seconds: float | None = None) -> None:
        """A decided verdict; delays are observed for answers (a late answer too).

        A `void` verdict is the monitor's own failure, so its delays say
        nothing about the site and are not observed. The business delay is
        kept for email commitments only (see `Layout`); for calls it is ignored.
        The `le="<threshold>"` bucket over `_count` is the on-time share of the
        *answered* probes; unanswered misses are only in `verdicts_total`.
        """
        self._inc(self.verdicts, site, commitment, verdict)
        if verdict not in ("met", "missed"):
            return
        if delay_seconds is not None:
            self._observe(self.delay, (site, commitment), delay_seconds)
        written = self.business_delay.index.get((site, commitment))
        if business_delay_seconds is not None and written is not None:
            self._exposition.observe(self.business_delay, written, business_delay_seconds)

    def call(self, site: str, source: str, outcome: str, ring_seconds: float | None = None) -> None:
        """A mystery call or a call-log record; pass `ring_seconds` for answered calls."""
        self._inc(self.calls, site, source, outcome)
        if ring_seconds is not None:
            self._observe(self.ring, (site, source), ring_seconds)

    # ---- writers: watchers and importers

    def mailbox_status(self, mailbox: str, up: bool, at: datetime | None = None) -> None:
        series = self._series(self.mailbox_up, mailbox)
        if series is None:
            return
        self._exposition.set(self.mailbox_up, series, 1.0 if up else 0.0)
        if up and at is not None:
            self._exposition.set(self.mailbox_success, self.mailbox_success.index[(mailbox,)], _epoch(at))

    def calllog_ingested(self, source: str, at: datetime) -> None:
        if self._series(self.calllog_ingest, source) is not None:
            self._set_timestamp(self.calllog_ingest, (source,), _epoch(at))

    def calllog_rejected(self, source: str, reason: str, count: int = 1) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        self._inc(self.rows_rejected, source, _known_reason(reason, CALLLOG_REJECT_REASONS), amount=count)

    # ---- the background refresh

    def apply_snapshot(self, snapshot: DerivedSnapshot) -> None:
        """Set the database-derived gauges from memory (no I/O); cheap enough for the event loop.

        The gauges (up to ~500 000 entries at 10 000 sites) are turned into
        values by the next reader, in its thread (see `_Exposition.defer`), so
        the snapshot's mappings must not change afterwards (`compute_snapshot`
        builds new ones each time).  The timestamps are raised now, but only
        those that changed since the previous snapshot: raising the others
        again would change nothing, and all 20 000 cost ~50 ms."""
        self._exposition.defer([
            (self.compliance, snapshot.compliance_ratio),
            (self.samples, snapshot.samples),
            (self.probes_open, snapshot.probes_open),
            (self.probes_overdue, snapshot.probes_overdue),
            (self.oldest_open_age, snapshot.oldest_open_probe_age_seconds),
        ])
        sent, ingested = snapshot.last_probe_sent, snapshot.calllog_last_ingest
        stamps: list[tuple[_Family, LabelValues, datetime]] = [
            (self.last_sent, labels, at) for labels, at in _changed(sent, self._seen_sent).items()]
        stamps += [(self.calllog_ingest, (source,), at) for source, at in _changed(ingested, self._seen_ingest).items()]
        self._exposition.raise_many([(family, family.index[labels], _epoch(at)) for family, labels, at in stamps
                                     if labels in family.index])
        self._seen_sent, self._seen_ingest = sent, ingested


def _changed(new: Mapping[Any, datetime], old: Mapping[Any, datetime]) -> dict[Any, datetime]:
    return {key: at for key, at in new.items() if old.get(key) != at}


# ---------------------------------------------------------------------------
# HTTP

#: The fast exposition behind each registry a `Metrics` was built on (weak: tests make many).
_SERVED: weakref.WeakKeyDictionary[CollectorRegistry, _Exposition] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class _Body:
    parts: list[bytes]
    content_type: str
    gzip: bool


def _render(registry: CollectorRegistry, accept: str, accept_encoding: str, names: list[str]) -> _Body:
    """The response body; runs in a worker thread, never on the event loop."""
    encoder, content_type = choose_encoder(accept)
    gzip = gzip_accepted(accept_encoding)
    exposition = _SERVED.get(registry)
    if exposition is None or names:
        # prometheus_client's own path: a registry without `Metrics`, or `name[]` filtering
        # (a debugging aid; slow at 10 000 sites, but still off the loop).
        output = encoder(registry.restricted_registry(names) if names else registry)
        return _Body([zlib_gzip(output) if gzip else output], content_type, gzip)
    openmetrics = content_type.startswith("application/openmetrics-text")
    with exposition.muted():
        others = encoder(registry).removesuffix(_OPENMETRICS_EOF)
    return _Body(exposition.body(openmetrics, gzip, others), content_type, gzip)


def zlib_gzip(data: bytes) -> bytes:
    """One gzip member (the same framing as the fast path, for the rare slow one)."""
    return b"".join([_GZIP_HEADER, _deflate(data), _DEFLATE_END,
                     struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)])


async def _send(request: web.Request, body: _Body) -> web.StreamResponse:
    """Stream the parts as they are (cached blocks; no 200 MB join on the loop)."""
    response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: body.content_type, hdrs.VARY: hdrs.ACCEPT_ENCODING})
    if body.gzip:
        response.headers[hdrs.CONTENT_ENCODING] = "gzip"
    response.content_length = sum(map(len, body.parts))
    await response.prepare(request)
    if request.method != hdrs.METH_HEAD:
        for part in body.parts:
            await response.write(part)
    await response.write_eof()
    return response


def _serve(registry: CollectorRegistry) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
        body = await asyncio.to_thread(_render, registry, accept, request.headers.get(hdrs.ACCEPT_ENCODING, ""),
                                       request.query.getall("name[]", []))
        return await _send(request, body)

    return serve


def make_metrics_app_handler(registry: CollectorRegistry, token: SecretStr | None) -> Handler:
    """The `/metrics` handler; with a token, only `Authorization: Bearer <token>` is served."""
    serve = _serve(registry)
    if token is None:
        return serve
    secret = token.get_secret_value()
    if not secret:
        raise ValueError("an empty metrics token would accept anyone; omit it instead")
    expected = f"Bearer {secret}".encode()

    async def guarded(request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):  # constant time: no timing oracle on the token
            return web.Response(status=401, text="401: bearer token required\n",
                                headers={"WWW-Authenticate": 'Bearer realm="qualimon metrics"'})
        return await serve(request)

    return guarded
