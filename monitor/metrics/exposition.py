"""The exposition engine behind /metrics: flat values, cached text blocks, prometheus_client's lines.

Why not prometheus_client's own metric objects: at 10 000 sites × 4
commitments the config implies ~2.5 M sample lines (240 MB of text).  One
Python object (with its own lock) per series took 15-30 s and 1.2 GB to build,
and each exposition 22-58 s, rendered on the event loop: beyond Prometheus'
10 s scrape timeout, with every probe frozen meanwhile.  So (`Exposition`):

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

import math
import struct
import threading
import weakref
import zlib
from bisect import bisect_left
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import compress, count, cycle
from operator import itemgetter, ne
from typing import Any, Literal

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest as text_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.utils import floatToGoString

# ---------------------------------------------------------------------------
# the exposition engine: flat values, cached text blocks, prometheus_client's lines

Kind = Literal["counter", "gauge", "histogram"]
LabelValues = tuple[str, ...]
#: The lines of each series a filtered scrape keeps, one flag per line; None keeps them all.
LineMask = tuple[bool, ...] | None

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
OPENMETRICS_EOF = b"# EOF\n"


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


def _keep_lines(text: bytes, mask: Sequence[bool]) -> bytes:
    """The block's lines whose place in their series is set in `mask` (a block starts on a series)."""
    kept = b"\n".join(compress(text.split(b"\n")[:-1], cycle(mask)))  # [:-1]: the text ends with a newline
    return kept + b"\n" if kept else b""


def _patch(text: bytes, lines: Iterable[int], values: Sequence[float]) -> bytes:
    """`text` with the value of the given lines replaced: 1.5× (all lines) to 8× (a few) cheaper than rendering.

    A value is what follows the last space of its line (values have no
    space; a space in a label value comes before it)."""
    rows = text.split(b"\n")
    for j in lines:
        row = rows[j]
        rows[j] = row[:row.rindex(b" ") + 1] + _value_bytes(values[j])
    return b"\n".join(rows)


class Family:
    """A family laid out in the flat value list: `width` consecutive slots (lines) per series."""

    def __init__(self, spec: FamilySpec, series: Iterable[LabelValues], first_slot: int, first_block: int):
        self.spec = spec
        self.series: tuple[LabelValues, ...] = tuple(dict.fromkeys(series))
        self.index: dict[LabelValues, int] = dict(zip(self.series, range(len(self.series))))
        lines = spec.lines()
        self.width = len(lines)
        self.templates = tuple(_line_template(name, spec.labelnames, le) for name, le in lines)
        self.sample_names = tuple(name for name, _ in lines)
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

    def sample_mask(self, names: Collection[str]) -> tuple[bool, ...]:
        """For each line of a series, whether its sample name is one of `names`."""
        return tuple(name in names for name in self.sample_names)

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
        return openmetrics_latest(empty).removesuffix(OPENMETRICS_EOF)
    return text_latest(empty)


def _deflate(text: bytes) -> bytes:
    """Raw deflate ended by a sync flush (byte-aligned, not final): such segments concatenate into one stream."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)


class Exposition:
    """Every series' value in one list, the text cached per block, and the collector protocol.

    `_lock` guards the values, the dirty set and the deferred snapshot; it is
    held for a few list operations, by writers (the event loop) and by a
    scrape only to take its copy, so the loop never waits on a render.
    `_render_lock` lets one reader at a time own the cached text.
    """

    def __init__(self, definitions: Iterable[tuple[FamilySpec, Iterable[LabelValues]]]):
        self.families: list[Family] = []
        slots = blocks = 0
        for spec, series in definitions:
            family = Family(spec, series, slots, blocks)
            self.families.append(family)
            slots, blocks = slots + family.n_slots, blocks + family.n_blocks
        self._block_family = [family for family in self.families for _ in family.blocks()]
        self._values = [0.0] * slots
        self._lock = threading.Lock()  # `_values` and `_dirty`
        self._render_lock = threading.Lock()  # one render at a time owns `_text` and `_deflated`
        self._dirty: set[int] = set(range(blocks))  # rendered on the first scrape, off the loop
        self._pending: list[tuple[Family, Mapping[Any, float]]] | None = None  # see `defer`
        self._text: list[bytes] = [b""] * blocks
        self._shown: list[list[float] | None] = [None] * blocks  # the values `_text` shows
        self._deflated: list[bytes | None] = [None] * blocks
        self._headers = {om: [_header(f.spec, om) for f in self.families] for om in (False, True)}
        self._deflated_headers = {om: list(map(_deflate, texts)) for om, texts in self._headers.items()}
        self._muted = threading.local()
        self._hidden: frozenset[int] = frozenset()  # families left out of the exposition (see `hide`)

    def hide(self, families: Iterable[Family], *, hidden: bool) -> None:
        """Leave `families` out of every exposition (`hidden`), or show them again, values kept meanwhile."""
        ids = {id(family) for family in families}
        indices = {i for i, family in enumerate(self.families) if id(family) in ids}
        with self._lock:
            self._hidden = self._hidden | indices if hidden else self._hidden - indices

    # ---- writes (any thread; in practice the event loop)

    def add(self, family: Family, series: int, amount: float) -> None:
        slot = family.slot(series)
        with self._lock:
            self._values[slot] += amount
            self._dirty.add(family.block(series))

    def set(self, family: Family, series: int, value: float) -> None:
        slot = family.slot(series)
        with self._lock:
            self._values[slot] = float(value)
            self._dirty.add(family.block(series))

    def raise_to(self, family: Family, series: int, value: float) -> None:
        """Set unless that would move the value back (timestamps fed by two sources)."""
        slot = family.slot(series)
        with self._lock:
            if value >= self._values[slot]:
                self._values[slot] = float(value)
                self._dirty.add(family.block(series))

    def observe(self, family: Family, series: int, value: float) -> None:
        """A histogram observation: buckets are stored cumulative, then +Inf, `_count`, `_sum`."""
        base, n = family.slot(series), len(family.spec.buckets)
        with self._lock:
            values = self._values
            if not math.isnan(value):  # prometheus_client puts NaN in no bucket, only in the sum
                for slot in range(base + bisect_left(family.spec.buckets, value), base + n + 2):
                    values[slot] += 1.0
            values[base + n + 2] += value
            self._dirty.add(family.block(series))

    def defer(self, gauges: Sequence[tuple[Family, Mapping[Any, float]]]) -> None:
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

    def _replace(self, family: Family, values: list[float]) -> None:
        """Caller holds `_lock`; blocks whose values did not change keep their cached text."""
        assert family.width == 1 and len(values) == len(family.series), family.spec.name
        for block in family.blocks():
            first, end = family.block_series_range(block)
            slots = family.block_slots(block)
            if self._values[slots] != values[first:end]:
                self._values[slots] = values[first:end]
                self._dirty.add(block)

    def raise_many(self, stamps: Iterable[tuple[Family, int, float]]) -> None:
        """`raise_to` for many series under one lock."""
        with self._lock:
            for family, series, value in stamps:
                slot = family.slot(series)
                if value >= self._values[slot]:
                    self._values[slot] = float(value)
                    self._dirty.add(family.block(series))

    # ---- the fast exposition (a worker thread)

    def body(self, openmetrics: bool, gzip: bool, extra: bytes = b"",
             names: Collection[str] | None = None) -> list[bytes]:
        """The exposition as parts to send in order; `extra` is other collectors' text.

        With `names` (`/metrics?name[]=...`), only the samples so named, as
        prometheus_client's `restricted_registry` filters: a family appears
        when one of its sample names is asked for (`x_total`, `x_bucket`...),
        with those lines only.  It is cut from the cached blocks, so a filter
        costs what a scrape costs, never a full collection."""
        with self._render_lock:
            self._apply_pending()
            self._render_dirty()
            selection = self._select(names)
            if not gzip:
                return self._parts(selection, openmetrics, extra, deflated=False)
            crc = size = 0
            for part in self._parts(selection, openmetrics, extra, deflated=False):
                crc, size = zlib.crc32(part, crc), size + len(part)
            trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
            return [_GZIP_HEADER, *self._parts(selection, openmetrics, extra, deflated=True), _DEFLATE_END, trailer]

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

    def _select(self, names: Collection[str] | None) -> list[tuple[int, LineMask]]:
        """(family index, lines kept) of each family shown; lines kept is None for all of them."""
        hidden = self._hidden
        if names is None:
            return [(i, None) for i in range(len(self.families)) if i not in hidden]
        selection: list[tuple[int, LineMask]] = []
        for i, family in enumerate(self.families):
            if i in hidden:
                continue
            mask = family.sample_mask(names)
            if any(mask):
                selection.append((i, None if all(mask) else mask))
        return selection

    def _parts(self, selection: Sequence[tuple[int, LineMask]], openmetrics: bool, extra: bytes, *,
               deflated: bool) -> list[bytes]:
        headers = (self._deflated_headers if deflated else self._headers)[openmetrics]
        parts: list[bytes] = []
        for i, mask in selection:
            parts.append(headers[i])
            parts.extend(self._blocks(self.families[i], mask, deflated=deflated))
        tail = [text for text in (extra, OPENMETRICS_EOF if openmetrics else b"") if text]
        parts.extend(map(_deflate, tail) if deflated else tail)
        return parts

    def _blocks(self, family: Family, mask: LineMask, *, deflated: bool) -> Iterable[bytes]:
        if mask is None:  # the cached text or segments as they are
            return map(self._deflated_block if deflated else self._text.__getitem__, family.blocks())
        kept = (_keep_lines(self._text[block], mask) for block in family.blocks())
        return map(_deflate, kept) if deflated else kept

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
                values, hidden = self._values[:], self._hidden
        for i, family in enumerate(self.families):
            if i not in hidden:
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


#: The fast exposition behind each registry a `Metrics` was built on (weak: tests make many).
_SERVED: weakref.WeakKeyDictionary[CollectorRegistry, Exposition] = weakref.WeakKeyDictionary()


def register(registry: CollectorRegistry, exposition: Exposition) -> None:
    """Put `exposition` on `registry`, as its collector and as what `/metrics` serves for it."""
    registry.register(exposition)  # raises on a second Metrics on the same registry
    _SERVED[registry] = exposition


def served(registry: CollectorRegistry) -> Exposition | None:
    """The fast exposition of `registry`, or None when no `Metrics` was built on it."""
    return _SERVED.get(registry)


def zlib_gzip(data: bytes) -> bytes:
    """One gzip member (the same framing as the fast path, for the rare slow one)."""
    return b"".join([_GZIP_HEADER, _deflate(data), _DEFLATE_END,
                     struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)])

