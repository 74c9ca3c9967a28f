"""Every Prometheus metric of qualimon (docs/design.md §6), defined in one place, and its writers.

`Metrics(registry, config)` defines the metrics below and creates every label
combination the config implies at value 0, so that `increase()` sees the
first event and boards list every site from the first scrape.  Label values
are only config names (site, channel, commitment, mailbox, source) and the
small enums defined here: a write naming a site, channel or value outside the
start-up set is dropped (logged once; `strict=True` raises `UnknownLabel`)
instead of creating a new series, which is what keeps the label sets bounded
(never a probe id, an address or a subject).

The cardinality budget (docs/design.md §6, "Budget"): at most `SITE_BUDGET`
series per site, all commitments together.  So every series with a `site`
label is a figure of the database, exported once per fleet by the instance
that holds the refresh (`export_derived`); what an instance counts itself
(counters, histograms) is network-level and summed over instances in queries.
Per-site distributions come from PostgreSQL (the Site board).

Metrics produced (name, type, labels); (derived) = from the database, shown
only while `export_derived` is on:

- ``qualimon_build_info`` gauge {version} = 1
- ``qualimon_probes_sent_total`` counter {channel}
- ``qualimon_probe_send_failures_total`` counter {channel, reason ∈ SEND_FAILURE_REASONS}
- ``qualimon_responses_total`` counter {channel, kind ∈ the channel's ChannelSpec.responses}
- ``qualimon_verdicts_total`` counter {commitment, verdict ∈ VERDICTS}
- ``qualimon_response_delay_seconds`` histogram {commitment}
- ``qualimon_response_delay_business_seconds`` histogram {commitment} (office-calendar channels)
- ``qualimon_probes_open`` gauge {site, channel}          (derived; channels whose answers come later)
- ``qualimon_probes_overdue`` gauge {site, commitment}    (derived; the same channels' commitments)
- ``qualimon_oldest_open_probe_age_seconds`` gauge {channel}  (derived; the oldest over all sites)
- ``qualimon_commitment_compliance_ratio`` gauge {site, commitment, window ∈ WINDOWS} (derived)
- ``qualimon_commitment_samples`` gauge {site, commitment, window, verdict ∈ SAMPLE_VERDICTS} (derived)
- ``qualimon_commitment_target_ratio`` gauge {commitment}
- ``qualimon_commitment_threshold_seconds`` gauge {commitment} (wall-clock thresholds only)
- ``qualimon_call_ring_seconds`` histogram {source ∈ mystery/calllog} (when a channel makes calls)
- ``qualimon_calls_total`` counter {source, outcome ∈ CALL_OUTCOMES} (same)
- ``qualimon_mailbox_up`` gauge {mailbox}
- ``qualimon_mailbox_last_success_timestamp_seconds`` gauge {mailbox}
- ``qualimon_mailbox_messages_total`` counter {mailbox, bucket ∈ matched/unrelated/held/quarantined}
- ``qualimon_mailbox_awaiting_review`` gauge {mailbox, bucket ∈ held/quarantined} (derived)
- ``qualimon_mailbox_oldest_awaiting_review_timestamp_seconds`` gauge {mailbox} (derived; 0: none)
- ``qualimon_verdicts_in_review`` gauge {commitment}                  (derived)
- ``qualimon_calllog_last_ingest_timestamp_seconds`` gauge {source}
- ``qualimon_calllog_rows_rejected_total`` counter {source, reason ∈ CALLLOG_REJECT_REASONS}
- ``qualimon_last_probe_sent_timestamp_seconds`` gauge {site} (derived; sites with a planned channel)
- ``qualimon_fleet_role`` gauge {task ∈ monitor.fleet.tasks.fleet_tasks(config)} (1 = this instance holds it)
- ``qualimon_fleet_instances`` gauge (instances running on the database, this one included)

Histogram buckets contain every commitment's nominal threshold (seconds,
rings × cadence, working days × 86 400, business hours × 3 600), so the
bucket ``le="<threshold>"`` divided by ``_count`` is the on-time share of the
answered probes without interpolation.

Writers (the runner, the watchers, the call-log importer) call the plain
methods of `Metrics`; the database-derived gauges are set by `apply_snapshot`,
from a `DerivedSnapshot` that a background task computes.  In a fleet only
the instance holding the `refresh` task computes it, and the others leave
those gauges out of their exposition (`export_derived`), so they count once.
A scrape reads memory only and never touches the database.

How the values are kept and served fast is `monitor.metrics.exposition`'s
business; `/metrics` itself is `monitor.metrics.http`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry

import monitor
from monitor.config.channels import ChannelSpec
from monitor.config.models import Commitment, Config, Site
from monitor.fleet.tasks import fleet_tasks
from monitor.metrics.exposition import Exposition, Family, FamilySpec, Kind, LabelValues, register

log = logging.getLogger("qualimon.metrics")

DAY = 86_400.0
HOUR = 3_600.0

# ---------------------------------------------------------------------------
# bounded label values

#: Decided verdicts, counted network-wide in qualimon_verdicts_total.
VERDICTS = ("met", "missed", "void")
#: The verdicts a site's compliance is made of (met / (met + missed)); the others (pending, void...)
#: per site are in the database (Site board, API), not worth a series per site × commitment each.
SAMPLE_VERDICTS = ("met", "missed")
#: The compliance window exported per site (the API computes any period).
WINDOWS = ("30d",)
MESSAGE_BUCKETS = ("matched", "unrelated", "held", "quarantined")
REVIEW_BUCKETS = ("held", "quarantined")
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
# covers both (a histogram has one list for all its series).  The histograms
# are network-level (one series per commitment), so a bucket costs a few
# lines, not one per site.  The thresholds are added to it by `delay_buckets`.
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
    within = commitment.deadline_rule
    if within.working_days is not None:
        return within.working_days * DAY
    assert within.business_hours is not None  # Within guarantees exactly one unit
    return within.business_hours * HOUR


def delay_buckets(config: Config) -> tuple[float, ...]:
    thresholds = (nominal_threshold_seconds(c) for c in config.commitments.values() if c.within is not None)
    return tuple(sorted({*BASE_DELAY_BUCKETS, *thresholds}))


def ring_buckets(config: Config) -> tuple[float, ...]:
    calls = [c for c in config.commitments.values() if config.channels[c.channel].calls]
    thresholds = (c.threshold_seconds for c in calls if c.threshold_seconds is not None)
    return tuple(sorted({*BASE_RING_BUCKETS, *thresholds}))


# ---------------------------------------------------------------------------
# label layout derived from the config


class UnknownLabel(ValueError):
    """A label value outside the start-up set (raised in strict mode only)."""


MAX_WARNINGS = 100  # distinct dropped label sets worth a log line; beyond, stay quiet

#: At most this many series carry one site's label, all metrics and commitments together
#: (docs/design.md §6, "Budget"; tests/monitor/test_metrics_budget.py holds it).
SITE_BUDGET = 30


def waits_for_answers(spec: ChannelSpec) -> bool:
    """Whether a probe of this channel stays open after it is sent, waiting for answers.

    A call is judged when it ends: its probes are open for the length of a call
    and its commitments are never overdue for longer, so per-site open and
    overdue series for them would be zeros that cost one series per site each."""
    return not spec.calls


@dataclass(frozen=True)
class Layout:
    """Every label combination the config implies, computed once, in config order."""

    site_channels: tuple[tuple[str, str], ...]
    site_commitments: tuple[tuple[str, str], ...]
    planned_site_channels: tuple[tuple[str, str], ...]
    call_sites: tuple[str, ...]
    channels: tuple[str, ...]              # channels some site has
    commitments: tuple[str, ...]           # commitments of those channels
    timed_commitments: tuple[str, ...]     # those with a deadline (quality ones have none)
    written_commitments: tuple[str, ...]   # of office-calendar channels (business delay)
    channel_responses: tuple[tuple[str, str], ...]
    open_site_channels: tuple[tuple[str, str], ...]        # per-site open probes (derived)
    overdue_site_commitments: tuple[tuple[str, str], ...]  # per-site overdue probes (derived)
    planned_sites: tuple[str, ...]         # per-site watchdog (derived)
    mailboxes: tuple[str, ...]
    sources: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Config, source_ids: Sequence[str] = ()) -> Layout:
        specs = config.channels
        pairs = [(s, ch) for s in config.sites for ch in config.site_channels(s)]
        used = {ch for _, ch in pairs}
        commitments = tuple(cid for cid, c in config.commitments.items() if c.channel in used)
        timed = tuple(cid for cid in commitments if config.commitments[cid].within is not None)
        waiting = [(s, ch) for s, ch in pairs if waits_for_answers(specs[ch])]
        planned = tuple((s.id, ch) for s, ch in pairs if _planned(config, s, ch))
        return cls(
            site_channels=tuple((s.id, ch) for s, ch in pairs),
            site_commitments=tuple((s.id, cid) for s, ch in pairs for cid in config.commitments_for(ch)),
            planned_site_channels=planned,
            call_sites=tuple(dict.fromkeys(s.id for s, ch in pairs if specs[ch].calls)),
            channels=tuple(ch for ch in specs if ch in used),
            commitments=commitments,
            # A quality commitment has no deadline: no delay to observe, nothing overdue.
            timed_commitments=timed,
            # Business delay (time inside working days) describes written answers;
            # a call is answered in seconds, where it would only repeat the wall clock.
            written_commitments=tuple(cid for cid in timed if specs[config.commitments[cid].channel].office_calendar),
            channel_responses=tuple((ch, kind) for ch in specs if ch in used for kind in specs[ch].responses),
            open_site_channels=tuple((s.id, ch) for s, ch in waiting),
            overdue_site_commitments=tuple((s.id, cid) for s, ch in waiting for cid in config.commitments_for(ch)
                                           if cid in timed),
            planned_sites=tuple(dict.fromkeys(site for site, _ in planned)),
            mailboxes=tuple(config.mailboxes),
            sources=tuple(dict.fromkeys(source_ids)),
        )


def _planned(config: Config, site: Site, channel: str) -> bool:
    # The "no probe sent in 7 days" alert watches the planner; a channel with
    # every quota at 0 is deliberately paused and must not trip it.
    return any(slot.per_month > 0 or slot.auto for slot in config.channels[channel].plan(site.section(channel)))


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
    #: (site, commitment, window, verdict ∈ met/missed/pending/void) -> probes (met and missed are exported)
    samples: Mapping[tuple[str, str, str, str], int] = field(default_factory=dict)
    #: (site, channel) -> probes sent and still waiting for at least one verdict
    probes_open: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: (site, commitment) -> probes past that commitment's deadline with no qualifying
    #: answer yet (pending past the deadline, or missed and still watched for a late answer)
    probes_overdue: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: (site, channel) -> age of the oldest open probe, 0 when none is open
    oldest_open_probe_age_seconds: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: (site, channel) -> last sent_at in the store: the sends of the whole fleet, for the watchdog
    #: (after a restart all of them; then the recent ones, see `monitor.derived.compute_snapshot`)
    last_probe_sent: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    #: call-log source -> last successful ingest in the store; same purpose
    calllog_last_ingest: Mapping[str, datetime] = field(default_factory=dict)
    #: (mailbox, held|quarantined) -> messages no auditor attached or dismissed yet
    awaiting_review: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: (mailbox,) -> arrival (epoch seconds) of the oldest of them, 0 when none
    oldest_awaiting_review: Mapping[tuple[str], float] = field(default_factory=dict)
    #: (commitment,) -> probes whose verdict of it is `review`
    verdicts_in_review: Mapping[tuple[str], int] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# the metrics


def _epoch(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError(f"{at!r} is naive; instants must be timezone-aware (UTC)")
    return at.timestamp()


def _known_reason(reason: str, reasons: Mapping[str, str]) -> str:
    return reason if reason in reasons else "other"


#: The families computed from the database (`apply_snapshot`), exported only while `export_derived` is on.
DERIVED = ("probes_open", "probes_overdue", "oldest_open_age", "compliance", "samples", "last_sent",
           "awaiting_review", "oldest_review", "in_review")


def _definitions(config: Config, lay: Layout) -> dict[str, tuple[FamilySpec, Iterable[LabelValues]]]:
    """Every family (exposition order) with every series the config implies."""
    sc, scm = ("site", "channel"), ("site", "commitment")
    delays = delay_buckets(config)
    channels = [(ch,) for ch in lay.channels]
    commitments = [(cid,) for cid in lay.commitments]
    targets = [(cid,) for cid in config.commitments]
    wall_clock = [(cid,) for cid, c in config.commitments.items() if c.threshold_seconds is not None]
    call_sources = [(source,) for source in CALL_SOURCES] if lay.call_sites else []
    mailboxes, sources = [(m,) for m in lay.mailboxes], [(s,) for s in lay.sources]
    windows = _product(lay.site_commitments, WINDOWS)

    def spec(name: str, kind: Kind, doc: str, labels: Sequence[str], buckets: tuple[float, ...] = ()) -> FamilySpec:
        return FamilySpec(name, kind, doc, tuple(labels), buckets)

    return {
        "build_info": (spec("qualimon_build_info", "gauge", "qualimon version running (value 1)", ["version"]),
                       [(monitor.__version__,)]),
        "probes_sent": (spec("qualimon_probes_sent", "counter", "Probes sent by this instance", ["channel"]),
                        channels),
        "send_failures": (spec("qualimon_probe_send_failures", "counter", "Probes the monitor failed to send (void)",
                               ["channel", "reason"]), _product(channels, SEND_FAILURE_REASONS)),
        "responses": (spec("qualimon_responses", "counter", "Messages matched to a probe, by kind",
                           ["channel", "kind"]), lay.channel_responses),
        "verdicts": (spec("qualimon_verdicts", "counter", "Decided verdicts per probe and commitment",
                          ["commitment", "verdict"]), _product(commitments, VERDICTS)),
        "delay": (spec("qualimon_response_delay_seconds", "histogram", "Wall-clock delay of answers",
                       ["commitment"], delays), [(cid,) for cid in lay.timed_commitments]),
        "business_delay": (spec("qualimon_response_delay_business_seconds", "histogram",
                                "Delay of answers counted inside working days", ["commitment"], delays),
                           [(cid,) for cid in lay.written_commitments]),
        "probes_open": (spec("qualimon_probes_open", "gauge", "Probes waiting for a verdict (from the database)", sc),
                        lay.open_site_channels),
        "probes_overdue": (spec("qualimon_probes_overdue", "gauge",
                                "Probes past a deadline with no qualifying answer yet (from the database)", scm),
                           lay.overdue_site_commitments),
        "oldest_open_age": (spec("qualimon_oldest_open_probe_age_seconds", "gauge",
                                 "Age of the oldest open probe of any site (from the database)", ["channel"]),
                            channels),
        "compliance": (spec("qualimon_commitment_compliance_ratio", "gauge",
                            "Share of decided probes that met the commitment (from the database)",
                            [*scm, "window"]), windows),
        "samples": (spec("qualimon_commitment_samples", "gauge",
                         "Decided probes per verdict in the window (from the database)",
                         [*scm, "window", "verdict"]), _product(windows, SAMPLE_VERDICTS)),
        "target": (spec("qualimon_commitment_target_ratio", "gauge", "Configured target ratio", ["commitment"]),
                   targets),
        "threshold": (spec("qualimon_commitment_threshold_seconds", "gauge", "Configured wall-clock threshold",
                           ["commitment"]), wall_clock),
        "ring": (spec("qualimon_call_ring_seconds", "histogram", "Ringing time until answer", ["source"],
                      ring_buckets(config)), call_sources),
        "calls": (spec("qualimon_calls", "counter", "Calls by outcome", ["source", "outcome"]),
                  _product(call_sources, CALL_OUTCOMES)),
        "mailbox_up": (spec("qualimon_mailbox_up", "gauge", "1 when the mystery mailbox is reachable", ["mailbox"]),
                       mailboxes),
        "mailbox_success": (spec("qualimon_mailbox_last_success_timestamp_seconds", "gauge",
                                 "Last successful mailbox check", ["mailbox"]), mailboxes),
        "mailbox_messages": (spec("qualimon_mailbox_messages", "counter",
                                  "Messages read from the mailbox, by the bucket each landed in",
                                  ["mailbox", "bucket"]),
                             _product(mailboxes, MESSAGE_BUCKETS)),
        "awaiting_review": (spec("qualimon_mailbox_awaiting_review", "gauge",
                                 "Held or quarantined messages no auditor attached or dismissed (from the database)",
                                 ["mailbox", "bucket"]), _product(mailboxes, REVIEW_BUCKETS)),
        "oldest_review": (spec("qualimon_mailbox_oldest_awaiting_review_timestamp_seconds", "gauge",
                               "Arrival of the oldest message awaiting review, 0 when none (from the database)",
                               ["mailbox"]), mailboxes),
        "in_review": (spec("qualimon_verdicts_in_review", "gauge",
                           "Probes whose verdict is review: a held message awaits an auditor (from the database)",
                           ["commitment"]), commitments),
        "calllog_ingest": (spec("qualimon_calllog_last_ingest_timestamp_seconds", "gauge",
                                "Last successful call-log ingest", ["source"]), sources),
        "rows_rejected": (spec("qualimon_calllog_rows_rejected", "counter", "Call-log rows not imported",
                               ["source", "reason"]), _product(sources, CALLLOG_REJECT_REASONS)),
        "last_sent": (spec("qualimon_last_probe_sent_timestamp_seconds", "gauge",
                           "Last probe sent to the site on a planned channel, by any instance (from the database)",
                           ["site"]), [(site,) for site in lay.planned_sites]),
        "fleet_role": (spec("qualimon_fleet_role", "gauge", "1 when this instance holds the singleton task",
                            ["task"]), [(task,) for task in fleet_tasks(config)]),
        "fleet_instances": (spec("qualimon_fleet_instances", "gauge",
                                 "Instances running on the database, this one included", []), [()]),
    }


class Metrics:
    """All qualimon metrics on one registry, with the writers' methods."""

    build_info: Family
    probes_sent: Family
    send_failures: Family
    responses: Family
    verdicts: Family
    delay: Family
    business_delay: Family
    probes_open: Family
    probes_overdue: Family
    oldest_open_age: Family
    compliance: Family
    samples: Family
    target: Family
    threshold: Family
    ring: Family
    calls: Family
    mailbox_up: Family
    mailbox_success: Family
    mailbox_messages: Family
    awaiting_review: Family
    oldest_review: Family
    in_review: Family
    calllog_ingest: Family
    rows_rejected: Family
    last_sent: Family
    fleet_role: Family
    fleet_instances: Family

    def __init__(self, registry: CollectorRegistry, config: Config, source_ids: Sequence[str] = (),
                 *, strict: bool = False):
        """`strict` raises `UnknownLabel` on a value outside the start-up set (tests, to catch
        wiring bugs); otherwise the write is dropped with one warning, because the store can
        legitimately hold probes of a site that has since left the config."""
        self.strict = strict
        self._warned: set[tuple[str, LabelValues]] = set()
        self.layout = lay = Layout.from_config(config, source_ids)
        self._site_channels = frozenset(lay.site_channels)
        self._site_commitments = frozenset(lay.site_commitments)
        self._planned = frozenset(lay.planned_site_channels)
        self._call_sites = frozenset(lay.call_sites)
        # The store's timestamps already raised, by key (see `apply_snapshot`).
        self._seen_sent: Mapping[tuple[str, str], datetime] = {}
        self._seen_ingest: Mapping[str, datetime] = {}
        definitions = _definitions(config, lay)
        self._exposition = Exposition(definitions.values())
        for name, family in zip(definitions, self._exposition.families, strict=True):
            setattr(self, name, family)
        self._derived = [getattr(self, name) for name in DERIVED]
        self._exposition.set(self.build_info, 0, 1)
        for cid, commitment in config.commitments.items():
            self._exposition.set(self.target, self.target.index[(cid,)], commitment.target_ratio)
            if commitment.threshold_seconds is not None:
                self._exposition.set(self.threshold, self.threshold.index[(cid,)], commitment.threshold_seconds)
        self._exposition.set(self.fleet_instances, 0, 1)
        register(registry, self._exposition)

    # ---- label checks

    def _refuse(self, shown: str, labels: LabelValues, message: str) -> None:
        if self.strict:
            raise UnknownLabel(message)
        if len(self._warned) < MAX_WARNINGS and (shown, labels) not in self._warned:
            self._warned.add((shown, labels))
            log.warning(message)

    def _series(self, family: Family, *labels: str) -> int | None:
        index = family.index.get(labels)
        if index is None:
            shown, named = family.spec.shown, dict(zip(family.spec.labelnames, labels, strict=False))
            self._refuse(shown, labels, f"{shown}{named} is not a series of this config (labels are config names "
                         "and known enum values); the update is dropped")
        return index

    def _known(self, known: frozenset[Any], key: Any, what: str) -> bool:
        """Whether `key` (a site, or a site and its channel or commitment) is in the config; else refused."""
        if key in known:
            return True
        self._refuse(what, key if isinstance(key, tuple) else (key,),
                     f"{what} {key!r} is not in this config; the update is dropped")
        return False

    def _inc(self, family: Family, *labels: str, amount: float = 1.0) -> None:
        series = self._series(family, *labels)
        if series is not None:
            self._exposition.add(family, series, amount)

    def _observe(self, family: Family, labels: LabelValues, value: float) -> None:
        series = self._series(family, *labels)
        if series is not None:
            self._exposition.observe(family, series, value)

    def _set_timestamp(self, family: Family, labels: LabelValues, value: float) -> None:
        # Writers and the store refresh both feed these; never move back in time
        # (the store may lag the live writers by one refresh).
        series = family.index.get(labels)
        if series is not None:
            self._exposition.raise_to(family, series, value)

    # ---- writers: the runner

    def probe_sent(self, site: str, channel: str, at: datetime) -> None:
        sent = _epoch(at)  # a naive instant is refused before anything is counted
        if not self._known(self._site_channels, (site, channel), "site and channel"):
            return
        self._inc(self.probes_sent, channel)
        # One-off probes on a paused channel count, but do not arm the watchdog.
        if (site, channel) in self._planned:
            self._set_timestamp(self.last_sent, (site,), sent)

    def send_failed(self, site: str, channel: str, reason: str) -> None:
        """`reason` is one of SEND_FAILURE_REASONS or free text, see `send_failure_reason`."""
        if self._known(self._site_channels, (site, channel), "site and channel"):
            self._inc(self.send_failures, channel, send_failure_reason(reason))

    def response(self, site: str, channel: str, kind: str) -> None:
        """A written answer matched to a probe (phone answers go to `call`)."""
        if self._known(self._site_channels, (site, channel), "site and channel"):
            self._inc(self.responses, channel, kind)

    def verdict(self, site: str, commitment: str, verdict: str,
                delay_seconds: float | None = None, business_delay_seconds: float | None = None) -> None:
        """A decided verdict; delays are observed for answers (a late answer too).

        A `void` verdict is the monitor's own failure, so its delays say
        nothing about the site and are not observed. The business delay is
        kept for email commitments only (see `Layout`); for calls it is ignored.
        The `le="<threshold>"` bucket over `_count` is the on-time share of the
        *answered* probes; unanswered misses are only in `verdicts_total`.
        """
        if not self._known(self._site_commitments, (site, commitment), "site and commitment"):
            return
        self._inc(self.verdicts, commitment, verdict)
        if verdict not in ("met", "missed"):
            return
        if delay_seconds is not None:
            self._observe(self.delay, (commitment,), delay_seconds)
        written = self.business_delay.index.get((commitment,))
        if business_delay_seconds is not None and written is not None:
            self._exposition.observe(self.business_delay, written, business_delay_seconds)

    def call(self, site: str, source: str, outcome: str, ring_seconds: float | None = None) -> None:
        """A mystery call or a call-log record; pass `ring_seconds` for answered calls."""
        if not self._known(self._call_sites, site, "calling site"):
            return
        self._inc(self.calls, source, outcome)
        if ring_seconds is not None:
            self._observe(self.ring, (source,), ring_seconds)

    # ---- writers: watchers and importers

    def mailbox_status(self, mailbox: str, up: bool, at: datetime | None = None) -> None:
        series = self._series(self.mailbox_up, mailbox)
        if series is None:
            return
        self._exposition.set(self.mailbox_up, series, 1.0 if up else 0.0)
        if up and at is not None:
            self._exposition.set(self.mailbox_success, self.mailbox_success.index[(mailbox,)], _epoch(at))

    def mailbox_message(self, mailbox: str, bucket: str) -> None:
        """A message read from `mailbox` landed in `bucket`."""
        self._inc(self.mailbox_messages, mailbox, bucket)

    def calllog_ingested(self, source: str, at: datetime) -> None:
        if self._series(self.calllog_ingest, source) is not None:
            self._set_timestamp(self.calllog_ingest, (source,), _epoch(at))

    def calllog_rejected(self, source: str, reason: str, count: int = 1) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        self._inc(self.rows_rejected, source, _known_reason(reason, CALLLOG_REJECT_REASONS), amount=count)

    # ---- the fleet

    def fleet(self, held: Iterable[str], instances: int) -> None:
        """Which tasks this instance holds (1) or not (0), and how many instances run.  Tasks outside the
        config's (a kind's own) have no series and are left out."""
        held = set(held)
        for (task,), series in self.fleet_role.index.items():
            self._exposition.set(self.fleet_role, series, 1.0 if task in held else 0.0)
        self._exposition.set(self.fleet_instances, 0, float(instances))

    # ---- the background refresh

    def export_derived(self, on: bool) -> None:
        """Whether this instance exports the database-derived families (`DERIVED`).

        In a fleet only the holder of the refresh exports them, so that a
        query over instances neither doubles nor mixes them; an instance that
        does not hold it shows none of their series, not zeros.  Off takes
        effect at once; on takes effect with the next `apply_snapshot`, so a
        new holder never shows the zeros or the stale values it had while
        standing by.  A new `Metrics` exports them (one instance alone)."""
        self._exposition.show(self._derived, on, at_next_defer=on)

    @property
    def exports_derived(self) -> bool:
        """Whether the derived families are in the exposition now (or will be at the next snapshot)."""
        return self._exposition.showing(self._derived)

    def apply_snapshot(self, snapshot: DerivedSnapshot) -> None:
        """Set the database-derived gauges from memory (no I/O); cheap enough for the event loop.

        The gauges (up to ~200 000 entries at 10 000 sites) are turned into
        values by the next reader, in its thread (see `Exposition.defer`), so
        the snapshot's mappings must not change afterwards (`compute_snapshot`
        builds new ones each time).  The timestamps are raised now, but only
        those that changed since the previous snapshot: raising the others
        again would change nothing, and all 20 000 cost ~50 ms."""
        self._exposition.defer([
            (self.compliance, snapshot.compliance_ratio),
            (self.samples, snapshot.samples),
            (self.probes_open, snapshot.probes_open),
            (self.probes_overdue, snapshot.probes_overdue),
            (self.oldest_open_age, _OldestByChannel(snapshot.oldest_open_probe_age_seconds)),
            (self.awaiting_review, snapshot.awaiting_review),
            (self.oldest_review, snapshot.oldest_awaiting_review),
            (self.in_review, snapshot.verdicts_in_review),
        ])
        sent, ingested = snapshot.last_probe_sent, snapshot.calllog_last_ingest
        stamps: list[tuple[Family, LabelValues, datetime]] = [
            (self.last_sent, (site,), at) for (site, channel), at in _changed(sent, self._seen_sent).items()
            if (site, channel) in self._planned]
        stamps += [(self.calllog_ingest, (source,), at) for source, at in _changed(ingested, self._seen_ingest).items()]
        self._exposition.raise_many([(family, family.index[labels], _epoch(at)) for family, labels, at in stamps
                                     if labels in family.index])
        self._seen_sent, self._seen_ingest = sent, ingested


class _OldestByChannel(Mapping[tuple[str], float]):
    """(site, channel) → age, read as (channel,) → the oldest over sites; computed by the reader that needs it."""

    def __init__(self, by_site: Mapping[tuple[str, str], float]):
        self._by_site = by_site
        self._oldest: dict[tuple[str], float] | None = None

    def _computed(self) -> dict[tuple[str], float]:
        if self._oldest is None:
            oldest: dict[tuple[str], float] = {}
            for (_, channel), age in self._by_site.items():
                oldest[(channel,)] = max(age, oldest.get((channel,), 0.0))
            self._oldest = oldest
        return self._oldest

    def __getitem__(self, key: tuple[str]) -> float:
        return self._computed()[key]

    def __iter__(self) -> Iterator[tuple[str]]:
        return iter(self._computed())

    def __len__(self) -> int:
        return len(self._computed())


def _changed(new: Mapping[Any, datetime], old: Mapping[Any, datetime]) -> dict[Any, datetime]:
    return {key: at for key, at in new.items() if old.get(key) != at}
