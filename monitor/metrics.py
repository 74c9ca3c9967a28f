"""Every Prometheus metric of qualimon (DESIGN §6), defined in one place.

`Metrics(registry, config)` registers the metrics below on the registry it is
given (the service passes its own; tests pass a fresh `CollectorRegistry`) and
creates every label combination the config implies at value 0, so that
`increase()` sees the first event and boards list every site from the first
scrape.  Label values are only config names (site, channel, commitment,
mailbox, source) and the small enums defined here: a value outside the
start-up set is dropped (logged once; `strict=True` raises `UnknownLabel`)
instead of creating a new series, which is what keeps the label sets bounded
(never a probe id, an address or a subject).

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
A scrape therefore reads memory only: `collect()` runs on the event loop and
never touches the database.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.metrics import disable_created_metrics
from pydantic import SecretStr

import monitor
from monitor.config.models import Commitment, Config, Site

Metric: TypeAlias = Counter | Gauge | Histogram

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


class _DroppedChild:
    """Stands in for a series that does not exist, so writers need no special case."""

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


_DROPPED = _DroppedChild()
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
    return tuple((*pair, value) for pair in pairs for value in values)


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
# the metrics


def _epoch(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError(f"{at!r} is naive; instants must be timezone-aware (UTC)")
    return at.timestamp()


def _known_reason(reason: str, reasons: Mapping[str, str]) -> str:
    return reason if reason in reasons else "other"


class Metrics:
    """All qualimon metrics on one registry, with the writers' methods."""

    def __init__(self, registry: CollectorRegistry, config: Config, source_ids: Sequence[str] = (),
                 *, strict: bool = False):
        """`strict` raises `UnknownLabel` on a value outside the start-up set (tests, to catch
        wiring bugs); otherwise the write is dropped with one warning, because the store can
        legitimately hold probes of a site that has since left the config."""
        self.strict = strict
        self._warned: set[tuple[str, tuple[str, ...]]] = set()
        # `_created` series would double every counter and histogram for a value
        # no dashboard or alert reads; the process serves only qualimon metrics.
        disable_created_metrics()
        self.layout = Layout.from_config(config, source_ids)
        self._allowed: dict[Metric, frozenset[tuple[str, ...]]] = {}
        self._stamps: dict[tuple[Metric, tuple[str, ...]], float] = {}
        self._define(registry, config)
        self._create_all_series(config)

    # ---- definitions

    def _define(self, r: CollectorRegistry, config: Config) -> None:
        sc, scm = ("site", "channel"), ("site", "commitment")
        self.build_info = Gauge("qualimon_build_info", "qualimon version running (value 1)", ["version"], registry=r)
        self.probes_sent = Counter("qualimon_probes_sent_total", "Probes sent", sc, registry=r)
        self.send_failures = Counter(
            "qualimon_probe_send_failures_total", "Probes the monitor failed to send (void)", [*sc, "reason"],
            registry=r)
        self.responses = Counter(
            "qualimon_responses_total", "Messages matched to a probe, by kind", [*sc, "kind"], registry=r)
        self.verdicts = Counter(
            "qualimon_verdicts_total", "Decided verdicts per probe and commitment", [*scm, "verdict"], registry=r)
        buckets = delay_buckets(config)
        self.delay = Histogram(
            "qualimon_response_delay_seconds", "Wall-clock delay of answers", scm, buckets=buckets, registry=r)
        self.business_delay = Histogram(
            "qualimon_response_delay_business_seconds", "Delay of answers counted inside working days",
            scm, buckets=buckets, registry=r)
        self.probes_open = Gauge("qualimon_probes_open", "Probes waiting for a verdict (from the database)",
                                 sc, registry=r)
        self.probes_overdue = Gauge("qualimon_probes_overdue", "Probes past a deadline with no qualifying answer yet (from the database)",
                                    scm, registry=r)
        self.oldest_open_age = Gauge("qualimon_oldest_open_probe_age_seconds",
                                     "Age of the oldest open probe (from the database)", sc, registry=r)
        self.compliance = Gauge("qualimon_commitment_compliance_ratio",
                                "Share of decided probes that met the commitment (from the database)",
                                [*scm, "window"], registry=r)
        self.samples = Gauge("qualimon_commitment_samples", "Probes per verdict in the window (from the database)",
                             [*scm, "window", "verdict"], registry=r)
        self.target = Gauge("qualimon_commitment_target_ratio", "Configured target ratio", ["commitment"], registry=r)
        self.threshold = Gauge("qualimon_commitment_threshold_seconds", "Configured wall-clock threshold",
                               ["commitment"], registry=r)
        self.ring = Histogram("qualimon_call_ring_seconds", "Ringing time until answer", ["site", "source"],
                              buckets=ring_buckets(config), registry=r)
        self.calls = Counter("qualimon_calls_total", "Calls by outcome", ["site", "source", "outcome"], registry=r)
        self.mailbox_up = Gauge("qualimon_mailbox_up", "1 when the mystery mailbox is reachable", ["mailbox"],
                                registry=r)
        self.mailbox_success = Gauge("qualimon_mailbox_last_success_timestamp_seconds",
                                     "Last successful mailbox check", ["mailbox"], registry=r)
        self.calllog_ingest = Gauge("qualimon_calllog_last_ingest_timestamp_seconds",
                                    "Last successful call-log ingest", ["source"], registry=r)
        self.rows_rejected = Counter("qualimon_calllog_rows_rejected_total", "Call-log rows not imported",
                                     ["source", "reason"], registry=r)
        self.last_sent = Gauge("qualimon_last_probe_sent_timestamp_seconds", "Last probe sent",
                               sc, registry=r)

    # ---- start-up series

    def _create_all_series(self, config: Config) -> None:
        lay = self.layout
        site_commitment_windows = _product(lay.site_commitments, WINDOWS)
        series: list[tuple[Metric, Iterable[tuple[str, ...]]]] = [
            (self.probes_sent, lay.site_channels),
            (self.send_failures, _product(lay.site_channels, SEND_FAILURE_REASONS)),
            (self.responses, _product(((s, "email") for s in lay.email_sites), RESPONSE_KINDS)),
            (self.verdicts, _product(lay.site_commitments, VERDICTS)),
            (self.delay, lay.site_commitments),
            (self.business_delay, lay.written_site_commitments),
            (self.probes_open, lay.site_channels),
            (self.probes_overdue, lay.site_commitments),
            (self.oldest_open_age, lay.site_channels),
            (self.compliance, site_commitment_windows),
            (self.samples, _product(site_commitment_windows, SAMPLE_VERDICTS)),
            (self.ring, _product(((s,) for s in lay.phone_sites), CALL_SOURCES)),
            (self.calls, _product(_product(((s,) for s in lay.phone_sites), CALL_SOURCES), CALL_OUTCOMES)),
            (self.mailbox_up, ((m,) for m in lay.mailboxes)),
            (self.mailbox_success, ((m,) for m in lay.mailboxes)),
            (self.calllog_ingest, ((s,) for s in lay.sources)),
            (self.rows_rejected, _product(((s,) for s in lay.sources), CALLLOG_REJECT_REASONS)),
            (self.last_sent, lay.planned_site_channels),
        ]
        for metric, combos in series:
            self._allow(metric, combos)
        self.build_info.labels(monitor.__version__).set(1)
        for cid, commitment in config.commitments.items():
            self.target.labels(cid).set(commitment.target_ratio)
            if commitment.threshold_seconds is not None:
                self.threshold.labels(cid).set(commitment.threshold_seconds)

    def _allow(self, metric: Metric, combos: Iterable[tuple[str, ...]]) -> None:
        allowed = frozenset(combos)
        self._allowed[metric] = allowed
        for labels in allowed:
            metric.labels(*labels)

    def _child(self, metric: Metric, *labels: str) -> Any:
        if labels in self._allowed[metric]:
            return metric.labels(*labels)
        shown = metric._name + ("_total" if isinstance(metric, Counter) else "")
        message = (f"{shown}{dict(zip(metric._labelnames, labels))} is not a series of this config "
                   "(labels are config names and known enum values); the update is dropped")
        if self.strict:
            raise UnknownLabel(message)
        if len(self._warned) < MAX_WARNINGS and (shown, labels) not in self._warned:
            self._warned.add((shown, labels))
            log.warning(message)
        return _DROPPED

    def _set_timestamp(self, gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
        # Writers and the store refresh both feed these; never move back in time
        # (the store may lag the live writers by one refresh).
        if labels not in self._allowed[gauge]:
            return
        key = (gauge, labels)
        if value >= self._stamps.get(key, 0.0):
            self._stamps[key] = value
            gauge.labels(*labels).set(value)

    # ---- writers: the runner

    def probe_sent(self, site: str, channel: str, at: datetime) -> None:
        self._child(self.probes_sent, site, channel).inc()
        # One-off probes on a paused channel count, but do not arm the watchdog
        # (the paused channel has no watchdog series, so this is a no-op for it).
        self._set_timestamp(self.last_sent, (site, channel), _epoch(at))

    def send_failed(self, site: str, channel: str, reason: str) -> None:
        """`reason` is one of SEND_FAILURE_REASONS or free text, see `send_failure_reason`."""
        self._child(self.send_failures, site, channel, send_failure_reason(reason)).inc()

    def response(self, site: str, channel: str, kind: str) -> None:
        """A written answer matched to a probe (phone answers go to `call`)."""
        self._child(self.responses, site, channel, kind).inc()

    def verdict(self, site: str, commitment: str, verdict: str,
                delay_seconds: float | None = None, business_delay_seconds: float | None = None) -> None:
        """A decided verdict; delays are observed for answers (a late answer too).

        A `void` verdict is the monitor's own failure, so its delays say
        nothing about the site and are not observed. The business delay is
        kept for email commitments only (see `Layout`); for calls it is ignored.
        The `le="<threshold>"` bucket over `_count` is the on-time share of the
        *answered* probes; unanswered misses are only in `verdicts_total`.
        """
        self._child(self.verdicts, site, commitment, verdict).inc()
        if verdict not in ("met", "missed"):
            return
        if delay_seconds is not None:
            self._child(self.delay, site, commitment).observe(delay_seconds)
        if business_delay_seconds is not None and (site, commitment) in self._allowed[self.business_delay]:
            self.business_delay.labels(site, commitment).observe(business_delay_seconds)

    def call(self, site: str, source: str, outcome: str, ring_seconds: float | None = None) -> None:
        """A mystery call or a call-log record; pass `ring_seconds` for answered calls."""
        self._child(self.calls, site, source, outcome).inc()
        if ring_seconds is not None:
            self._child(self.ring, site, source).observe(ring_seconds)

    # ---- writers: watchers and importers

    def mailbox_status(self, mailbox: str, up: bool, at: datetime | None = None) -> None:
        self._child(self.mailbox_up, mailbox).set(1 if up else 0)
        if up and at is not None:
            self._child(self.mailbox_success, mailbox).set(_epoch(at))

    def calllog_ingested(self, source: str, at: datetime) -> None:
        if self._child(self.calllog_ingest, source) is not _DROPPED:
            self._set_timestamp(self.calllog_ingest, (source,), _epoch(at))

    def calllog_rejected(self, source: str, reason: str, count: int = 1) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        self._child(self.rows_rejected, source, _known_reason(reason, CALLLOG_REJECT_REASONS)).inc(count)

    # ---- the background refresh

    def apply_snapshot(self, snapshot: DerivedSnapshot) -> None:
        """Set the database-derived gauges from memory (cheap; no I/O)."""
        self._set_all(self.compliance, snapshot.compliance_ratio)
        self._set_all(self.samples, snapshot.samples)
        self._set_all(self.probes_open, snapshot.probes_open)
        self._set_all(self.probes_overdue, snapshot.probes_overdue)
        self._set_all(self.oldest_open_age, snapshot.oldest_open_probe_age_seconds)
        self._raise_timestamps(self.last_sent, {k: _epoch(v) for k, v in snapshot.last_probe_sent.items()})
        self._raise_timestamps(self.calllog_ingest,
                               {(k,): _epoch(v) for k, v in snapshot.calllog_last_ingest.items()})

    def _set_all(self, gauge: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
        for labels in self._allowed[gauge]:
            value = float(values.get(labels, 0.0))
            gauge.labels(*labels).set(value if math.isfinite(value) else 0.0)

    def _raise_timestamps(self, gauge: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
        for labels, value in values.items():
            self._set_timestamp(gauge, labels, value)


# ---------------------------------------------------------------------------
# HTTP


def make_metrics_app_handler(registry: CollectorRegistry, token: SecretStr | None) -> Handler:
    """The `/metrics` handler; with a token, only `Authorization: Bearer <token>` is served."""
    serve = make_aiohttp_handler(registry)
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
