"""Typed, frozen configuration models (docs/design.md §3).

Every model forbids unknown keys, so a typo is an error instead of a silently
ignored setting.  Secrets are `SecretStr`, so they print as `**********` in
reprs, logs and tracebacks.  Cross-references between sections (a site naming
a calendar, a mailbox or a phone line) are checked in `crossrefs.py`, which
works on the raw document so that they are reported together with every
other error.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Mapping
from datetime import date, time
from email.utils import parseaddr
from enum import Enum
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from monitor.config.channels import BUILT_IN, OFF, ChannelSpec, channels_in
from probes.calllogs.asterisk_csv import MasterCsvOptions
from probes.calllogs.asterisk_sql import AsteriskSqlOptions
from probes.calllogs.generic_csv import GenericCsvMapping

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"
COMMITMENT_ID = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Role(str, Enum):
    viewer = "viewer"
    auditor = "auditor"
    admin = "admin"


# --------------------------------------------------------------------------
# small parsed value types


class TimeSlot(Frozen):
    """One opening slot of a day, local time; `end` may be 24:00."""

    start: time
    end_minutes: int  # minutes after local midnight, up to 1440

    @property
    def start_minutes(self) -> int:
        return self.start.hour * 60 + self.start.minute


def parse_slot(text: str) -> TimeSlot:
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a time slot; write it like '10:00-18:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{text!r} has an impossible time")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        raise ValueError(f"{text!r} ends before it starts (slots cannot cross midnight; split them)")
    return TimeSlot(start=time(h1, m1), end_minutes=end)


def parse_day_spec(spec: str) -> tuple[int, ...]:
    """'tue-sun' -> (1..6), 'sat,sun' -> (5, 6), 'daily' -> all; Monday is 0."""
    if spec.strip().lower() in ("daily", "all", "mon-sun"):
        return tuple(range(7))
    days: list[int] = []
    for part in spec.lower().split(","):
        part = part.strip()
        if "-" in part:
            first, _, last = part.partition("-")
            a, b = _weekday(first), _weekday(last)
            span = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
            days.extend(span)
        else:
            days.append(_weekday(part))
    return tuple(sorted(set(days)))


def _weekday(name: str) -> int:
    name = name.strip()
    if name not in WEEKDAYS:
        raise ValueError(f"{name!r} is not a weekday; use one of {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(name)


# --------------------------------------------------------------------------
# calendars


class HolidaySource(Frozen):
    country: str = Field(default="FR", description="ISO country code for public holidays (`holidays` package).")
    subdivision: str | None = Field(
        default=None, description="E.g. `57` (Moselle) or `6AE` (Alsace) for Alsace-Moselle's extra holidays.")

    @model_validator(mode="after")
    def _known_to_holidays(self) -> HolidaySource:
        import holidays

        try:
            holidays.country_holidays(self.country, subdiv=self.subdivision, years=2026)
        except NotImplementedError:
            raise ValueError(f"country {self.country!r} is not known to the holidays package") from None
        except Exception as exc:  # holidays raises NotImplementedError or ValueError
            raise ValueError(f"subdivision {self.subdivision!r} is not known for {self.country}: {exc}") from None
        return self


Closure = str  # 'YYYY-MM-DD', 'YYYY-MM-DD..YYYY-MM-DD' or recurring 'MM-DD'


def parse_closure(text: str) -> tuple[date, date] | tuple[int, int]:
    """A dated closure gives (first, last); a recurring one gives (month, day)."""
    text = text.strip()
    if re.fullmatch(r"\d{2}-\d{2}", text):
        month, day = int(text[:2]), int(text[3:])
        date(2024, month, day)  # leap year: accepts 02-29, rejects 02-30
        return (month, day)
    first, sep, last = text.partition("..")
    start = date.fromisoformat(first.strip())
    end = date.fromisoformat(last.strip()) if sep else start
    if end < start:
        raise ValueError(f"closure {text!r} ends before it starts")
    return (start, end)


class CalendarConfig(Frozen):
    working_days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(
        default=("mon", "tue", "wed", "thu", "fri"),
        description="Days counted by `working_days` deadlines (public holidays and closures excepted).")
    holidays: HolidaySource | None = Field(default_factory=HolidaySource,
                                           description="Public holidays; `null` for none.")
    closures: tuple[Closure, ...] = Field(
        default=(), description="Days closed: `2026-12-24`, a range `2026-08-01..2026-08-15`, or yearly `05-01`.")
    opening_hours: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Weekdays → slots, e.g. `{tue-sun: [\"10:00-12:30\", \"13:30-18:00\"]}`; needed for calls.")
    open_on_holidays: bool = Field(
        default=False,
        description="Opening hours also apply on public holidays (many museums open on them); closures always close.",
    )
    timezone: str | None = Field(default=None, description="Defaults to the top-level timezone.")

    @field_validator("closures", mode="before")
    @classmethod
    def _dates_as_text(cls, value: object) -> object:
        # YAML turns an unquoted 2026-12-24 into a date; accept it as written.
        if isinstance(value, list):
            return [v.isoformat() if isinstance(v, date) else v for v in value]
        return value

    @field_validator("closures")
    @classmethod
    def _closures_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                parse_closure(item)
            except ValueError as exc:
                raise ValueError(
                    f"closure {item!r} is not 'YYYY-MM-DD', 'YYYY-MM-DD..YYYY-MM-DD' or 'MM-DD' ({exc})"
                ) from None
        return value

    @field_validator("opening_hours")
    @classmethod
    def _hours_parse(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        seen: dict[int, str] = {}
        for spec, slots in value.items():
            for day in parse_day_spec(spec):
                if day in seen:
                    raise ValueError(f"{WEEKDAYS[day]} is listed twice (in {seen[day]!r} and {spec!r})")
                seen[day] = spec
            parsed = sorted((parse_slot(s) for s in slots), key=lambda s: s.start_minutes)
            for before, after in zip(parsed, parsed[1:]):
                if after.start_minutes < before.end_minutes:
                    raise ValueError(f"slots of {spec!r} overlap")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz_known(cls, value: str | None) -> str | None:
        return value if value is None else check_timezone(value)

    def weekly_slots(self) -> dict[int, tuple[TimeSlot, ...]]:
        """Weekday (Monday 0) -> sorted opening slots."""
        result: dict[int, tuple[TimeSlot, ...]] = {}
        for spec, slots in self.opening_hours.items():
            parsed = tuple(sorted((parse_slot(s) for s in slots), key=lambda s: s.start_minutes))
            for day in parse_day_spec(spec):
                result[day] = parsed
        return result


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone such as 'Europe/Paris'") from None
    return value


# --------------------------------------------------------------------------
# commitments


class Within(Frozen):
    """Exactly one way of expressing a deadline."""

    working_days: Annotated[int, Field(ge=1, le=366)] | None = Field(
        default=None, description="Due at the end (24:00) of the N-th working day after the day it was sent.")
    business_hours: Annotated[float, Field(gt=0, le=10000)] | None = Field(
        default=None, description="The clock runs only inside the calendar's opening hours.")
    seconds: Annotated[float, Field(gt=0)] | None = Field(default=None, description="Plain elapsed time.")
    rings: Annotated[float, Field(gt=0, le=100)] | None = Field(
        default=None, description="R rings of `ring_cadence_seconds` each (plain elapsed time).")

    @model_validator(mode="after")
    def _exactly_one(self) -> Within:
        given = [k for k in ("working_days", "business_hours", "seconds", "rings") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of working_days, business_hours, seconds, rings"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def unit(self) -> str:
        return next(k for k in ("working_days", "business_hours", "seconds", "rings") if getattr(self, k) is not None)

    @property
    def amount(self) -> float:
        return getattr(self, self.unit)


Requirement = Literal["required", "optional", "off"]


class Commitment(Frozen):
    channel: Annotated[str, Field(pattern=SLUG)] = Field(
        description="Which probes the commitment judges: a probe channel (`email`, `phone`, or a registered kind).")
    kind: Literal["delay", "quality"] = Field(
        default="delay",
        description="`delay`: the first counted answer must come by the deadline (`within`). `quality`: the "
                    "first counted answer is graded on named criteria (`criteria`) and meets the commitment "
                    "when every required one holds; it has no deadline (email answers).")
    within: Within | None = Field(default=None, description="The deadline: exactly one of its keys "
                                                            "(delay commitments only).")
    criteria: dict[str, Requirement] | None = Field(
        default=None,
        description="Quality commitments: criterion → `required`, `optional` (counts in the score only) or "
                    "`off`; criteria not named keep the channel's default (email: greeting and closing optional, "
                    "signed, contact, answers_question, not_holding and language required).")
    counts: tuple[str, ...] | None = Field(
        default=None, description="What counts as an answer (email: human_reply, auto_reply; phone: answered). "
                                "Default: email human_reply; phone answered.")
    target: Annotated[float, Field(gt=0, le=1)] | None = Field(
        default=None, description="Share of decided probes that must meet it (default 0.90 email, 0.85 phone).")
    during: Annotated[str, Field(pattern=SLUG)] = Field(
        default="any", description="Phone only: calls placed inside (`open`) or outside (`closed`) opening hours; "
                                   "`any` for both.")
    ring_cadence_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        default=5.0, description="Seconds per ring (the French cadence is 5 s).")

    @model_validator(mode="before")
    @classmethod
    def _channel_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        """Fill `counts` and `target` from the channel, so every later reader sees the value that applies."""
        if not isinstance(data, dict):
            return data
        spec = channels_in(info.context).get(str(data.get("channel")))
        if spec is None:
            return data
        filled = dict(data)
        if filled.get("counts") is None:
            filled["counts"] = spec.default_counts
        if filled.get("target") is None:
            filled["target"] = spec.default_target
        criteria = filled.get("criteria")
        if filled.get("kind") == "quality" and (criteria is None or isinstance(criteria, dict)):
            filled["criteria"] = {**spec.criteria, **(criteria or {})}
        return filled

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str, info: ValidationInfo) -> str:
        channels = channels_in(info.context)
        if value not in channels:
            raise ValueError(f"unknown channel {value!r}; use one of {', '.join(sorted(channels))}")
        return value

    @model_validator(mode="after")
    def _fits_channel(self, info: ValidationInfo) -> Commitment:
        spec = channels_in(info.context)[self.channel]
        counts = self.counts or ()
        wrong = [c for c in counts if c not in spec.answers]
        if wrong or not counts:
            raise ValueError(f"counts {list(counts)} do not apply to the {self.channel} channel; "
                             f"use some of {list(spec.answers)}")
        self._fits_kind(spec)
        if self.during != "any" and self.during not in spec.purposes:
            if not spec.purposes:
                raise ValueError(f"'during' does not apply to {self.channel} commitments")
            raise ValueError(f"during: {self.during!r} is not known for {self.channel}; "
                             f"use any, {', '.join(spec.purposes)}")
        return self

    def _fits_kind(self, spec: ChannelSpec) -> None:
        if self.kind == "delay":
            if self.within is None:
                raise ValueError("give within: the deadline (working_days, business_hours, seconds or rings); "
                                 "or kind: quality for a commitment on the answer's content")
            if self.criteria is not None:
                raise ValueError("criteria apply to quality commitments: add kind: quality, or drop criteria")
            return
        if self.within is not None:
            raise ValueError("a quality commitment has no deadline (it grades the answer whenever it came): "
                             "drop within")
        if not spec.criteria:
            raise ValueError(f"kind: quality needs a channel whose answers are graded; {self.channel} answers "
                             "have no quality criteria")
        unknown = [name for name in self.criteria or {} if name not in spec.criteria]
        if unknown:
            raise ValueError(f"unknown criterion {unknown[0]!r}; use some of {', '.join(spec.criteria)}")
        if all(value == OFF for value in (self.criteria or {}).values()):
            raise ValueError("every criterion is off: turn at least one on (required or optional)")

    @property
    def is_quality(self) -> bool:
        return self.kind == "quality"

    @property
    def deadline_rule(self) -> Within:
        """The deadline of a delay commitment (validation guarantees it has one)."""
        if self.within is None:
            raise ValueError("a quality commitment has no deadline")
        return self.within

    @property
    def required_criteria(self) -> tuple[str, ...]:
        return tuple(name for name, need in (self.criteria or {}).items() if need == "required")

    @property
    def graded_criteria(self) -> tuple[str, ...]:
        """The criteria that count in the score: every one not `off`."""
        return tuple(name for name, need in (self.criteria or {}).items() if need != OFF)

    @property
    def answer_kinds(self) -> tuple[str, ...]:
        return self.counts or ()  # filled from the channel by validation

    @property
    def target_ratio(self) -> float:
        return self.target or 0.0  # filled from the channel by validation

    @property
    def threshold_seconds(self) -> float | None:
        """Wall-clock threshold, for commitments measured in plain time."""
        if self.within is None:
            return None
        if self.within.seconds is not None:
            return self.within.seconds
        if self.within.rings is not None:
            return self.within.rings * self.ring_cadence_seconds
        return None


# --------------------------------------------------------------------------
# mailboxes and phone lines


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerConfig(Frozen):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        default=None, description="Default: 587 (starttls), 465/993 (implicit), 25/143 (none).")
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    insecure: bool = Field(default=False, description="Allow tls: none towards a non-loopback host.")
    username: str | None = None
    password: SecretStr | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    ca_file: str | None = Field(
        default=None, description="PEM file of the CA that signed the server's certificate (an internal relay); "
                                  "default: the system's CAs. Certificates are always verified.")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    @model_validator(mode="after")
    def _plaintext_only_on_loopback(self) -> ServerConfig:
        if self.tls == "none" and not self.insecure and not is_loopback(self.host):
            raise ValueError(
                f"tls: none would send the password in clear to {self.host}; "
                "use starttls or implicit, or set insecure: true beside it"
            )
        return self


class SmtpConfig(ServerConfig):
    def port_or_default(self) -> int:
        return self.port or {"starttls": 587, "implicit": 465, "none": 25}[self.tls]


class ImapConfig(ServerConfig):
    tls: Literal["starttls", "implicit", "none"] = "implicit"
    folder: str = "INBOX"
    poll_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=60.0, description="Polling interval when the server does not offer IDLE.")
    idle: bool = True

    @model_validator(mode="after")
    def _no_starttls(self) -> ImapConfig:
        if self.tls == "starttls":
            raise ValueError("IMAP STARTTLS is not supported (aioimaplib lacks it); use tls: implicit on port 993")
        return self

    def port_or_default(self) -> int:
        return self.port or {"implicit": 993, "none": 143}[self.tls]


class MailTrust(Frozen):
    authserv_id: str = Field(description="The authserv-id our receiving server writes in Authentication-Results "
                                         "(RFC 8601), e.g. `mx.probes.example.net`: only its results are believed.")
    internal_hosts: tuple[str, ...] = Field(
        default=(), description="Our own relays besides `authserv_id` (and localhost): results above a `Received` "
                                "from anywhere else are believed, results below it never.")
    bounce_domains: tuple[str, ...] = Field(
        default=(), description="Domains of our provider's mail servers, besides the mailbox's own: an "
                                "authenticated bounce from them counts without quoting our Message-ID.")


THUNDERBIRD = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.12.2"


class MailClient(Frozen):
    header: Literal["User-Agent", "X-Mailer", "none"] = "User-Agent"
    value: str = Field(default=THUNDERBIRD, description="What the persona's mail client says it is.")


EVIDENCE_MAX_BYTES = 10 * 1024 * 1024


class Mailbox(Frozen):
    address: str = Field(description="The mystery user, e.g. `Jeanne Martin <jeanne.martin@probes.example.net>`.")
    smtp: SmtpConfig | None = Field(default=None, description="Where probes are submitted (our server).")
    imap: ImapConfig | None = Field(default=None, description="Where answers are read (IDLE when offered).")
    maildir: str | None = Field(default=None, description="Instead of imap: a Maildir on this host.")
    bcc_self: bool = Field(
        default=True,
        description="Send each probe a blind copy to this mailbox: after a crash mid-send, finding the copy "
                    "proves the message left, so it is neither lost nor sent twice.")
    plus_addressing: bool = Field(
        default=False,
        description="Set Reply-To to local+TOKEN@domain (only if the provider delivers subaddresses).")
    token: Literal["off", "subject", "body"] = Field(
        default="off", description="Show the reference token (`Réf. QP-7K2M9`) in the subject, at the end of the "
                                   "body, or not at all: answers are matched by Message-ID and quoted text.")
    trust: MailTrust | None = Field(
        default=None, description="Whose sender authentication to believe. Without it, an answer matched only "
                                  "by its sender, and a bounce not quoting our Message-ID, are held for review.")
    dkim: Literal["off", "verify"] = Field(
        default="off", description="Verify DKIM signatures here (dkimpy) when the provider adds no results.")
    dns_resolver: str | None = Field(
        default=None, description="`host[:port]` of the DNS server for DKIM keys; default: the system's.")
    evidence_max_bytes: Annotated[int, Field(ge=64 * 1024, le=1024 * 1024 * 1024)] = Field(
        default=EVIDENCE_MAX_BYTES, description="Largest answer kept whole as evidence; beyond, its headers and "
                                                "first part are kept, with the whole size and SHA-256.")
    signature: str | None = Field(default=None, description="How the persona signs (default: the display name).")
    client: MailClient = Field(default_factory=MailClient,
                               description="The mail client header the persona's messages carry.")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        check_email_address(parseaddr(value)[1], value)
        return value

    @field_validator("dns_resolver")
    @classmethod
    def _resolver(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
            if not host or (port and not port.isdigit()):
                raise ValueError(f"{value!r} is not host[:port] of a DNS server")
        return value

    @model_validator(mode="after")
    def _one_reader(self) -> Mailbox:
        if self.imap is not None and self.maildir is not None:
            raise ValueError("give imap or maildir, not both")
        if self.imap is None and self.maildir is None:
            raise ValueError("give imap or maildir: replies must be read somewhere")
        return self

    @property
    def email(self) -> str:
        return parseaddr(self.address)[1]

    @property
    def display_name(self) -> str:
        return parseaddr(self.address)[0]

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2].lower()


def check_email_address(addr: str, shown: str | None = None) -> str:
    local, at, domain = addr.rpartition("@")
    if not at or not local or "." not in domain or " " in addr or domain.startswith("."):
        raise ValueError(f"{shown or addr!r} is not a valid address")
    return addr


class SipConfig(Frozen):
    proxy: str = Field(description="The trunk, e.g. `sip:trunk.example.net:5060;transport=udp` (or tcp).")
    username: str | None = Field(default=None, description="For digest authentication (401/407).")
    password: SecretStr | None = None
    from_: str = Field(alias="from", description="Our identity, e.g. `sip:+33199001000@trunk.example.net`.")
    register_: bool = Field(default=False, alias="register", description="REGISTER with the trunk and keep it refreshed.")
    local_host: str | None = Field(default=None, description="Our address in Via/Contact (default: the socket's).")
    max_ring_seconds: Annotated[float, Field(gt=0, le=600)] = Field(
        default=60.0, description="Ringing longer than this: we CANCEL (no_answer). Keep it above every threshold.")
    hold_seconds: Annotated[float, Field(ge=0, le=600)] = Field(
        default=3.0, description="How long we stay on an answered call before BYE.")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("proxy", "from_")
    @classmethod
    def _sip_uri(cls, value: str) -> str:
        if not re.match(r"^sips?:", value):
            raise ValueError(f"{value!r} is not a SIP URI (sip:host[:port][;transport=udp|tcp])")
        return value


class PhoneLine(Frozen):
    sip: SipConfig


# --------------------------------------------------------------------------
# sites


AUTO = "auto"
PerMonth = Annotated[int, Field(ge=0, le=1000)] | Literal["auto"]
MaxPerMonth = Annotated[int, Field(ge=1, le=1000)] | None


def check_auto(per_month: int | str, max_per_month: int | None) -> None:
    """`per_month: auto` goes with `max_per_month`, and `max_per_month` only with it."""
    if per_month == AUTO and max_per_month is None:
        raise ValueError("per_month: auto needs max_per_month: the most probes the site may get in a month")
    if per_month != AUTO and max_per_month is not None:
        raise ValueError("max_per_month applies to per_month: auto only")


class SiteEmail(Frozen):
    address: str = Field(description="The site's published address.")
    per_month: PerMonth = Field(
        default=4, description="Mystery emails planned per month; 0 plans none (`qualimon probe` still works); "
                               "`auto`: a share of `planner.auto.budget.email`, allocated where it decides most.")
    max_per_month: MaxPerMonth = Field(default=None, description="With `per_month: auto`: the most a month gives it.")
    mailbox: str | None = Field(default=None, description="Mailbox that sends; default: the only one.")
    mailboxes: dict[Annotated[str, Field(pattern=SLUG)], Annotated[int, Field(ge=1, le=1000)]] | None = Field(
        default=None, description="Instead of `mailbox`: several personas take turns, each mailbox with a weight "
                                  "(`{jeanne: 2, paul: 1}`: Jeanne writes two probes in three).")

    @model_validator(mode="after")
    def _auto(self) -> SiteEmail:
        check_auto(self.per_month, self.max_per_month)
        return self

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_email_address(value)

    @model_validator(mode="after")
    def _one_way_to_name_mailboxes(self) -> SiteEmail:
        if self.mailbox is not None and self.mailboxes is not None:
            raise ValueError("give mailbox or mailboxes, not both")
        if self.mailboxes is not None and not self.mailboxes:
            raise ValueError("mailboxes needs at least one mailbox and its weight")
        return self


class SitePhone(Frozen):
    number: str = Field(description="The site's published number, international form `+33199001234`.")
    per_month: PerMonth = Field(
        default=8, description="Mystery calls per month inside opening hours (`phone.answer`); `auto`: a share of "
                               "`planner.auto.budget.phone`, allocated where it decides most.")
    max_per_month: MaxPerMonth = Field(default=None, description="With `per_month: auto`: the most a month gives it.")
    out_of_hours_per_month: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=0, description="Calls per month outside opening hours (`phone.out_of_hours`).")
    line: str | None = Field(default=None, description="Phone line that calls; default: the only one.")

    @model_validator(mode="after")
    def _auto(self) -> SitePhone:
        check_auto(self.per_month, self.max_per_month)
        return self

    @field_validator("number")
    @classmethod
    def _e164(cls, value: str) -> str:
        compact = re.sub(r"[\s.()-]", "", value)
        if not E164.match(compact):
            raise ValueError(f"{value!r} is not an international number like '+33199001234'")
        return compact


class Site(Frozen):
    id: Annotated[str, Field(pattern=SLUG)] = Field(description="A slug: the `site` label of every metric.")
    name: str
    calendar: str = Field(description="Calendar with the opening hours calls are planned in.")
    office_calendar: str | None = Field(
        default=None, description="Calendar of working days for written answers (default: `calendar`).")
    email: SiteEmail | None = None
    phone: SitePhone | None = None

    @property
    def email_calendar(self) -> str:
        return self.office_calendar or self.calendar

    def section(self, channel: str) -> Any:
        """The site's settings for `channel` (`email:`, `phone:`, or a registered kind's), None if it has none."""
        return getattr(self, channel, None) if channel in type(self).model_fields else None


# --------------------------------------------------------------------------
# service settings


class HttpConfig(Frozen):
    listen: str = Field(default="127.0.0.1:9137", description="host:port of /healthz, /metrics, / and /api/v1.")
    metrics_token: SecretStr | None = Field(default=None, description="Bearer token /metrics then requires.")
    status_page_details: bool | None = Field(
        default=None,
        description="Show reply subjects and sender names, and the details of the monitor's health checks "
                    "(host names, file paths), on the open status page (`/`). Default: only when listening on "
                    "loopback, since the former are museum staff's personal data and the latter describe our "
                    "infrastructure.")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
            raise ValueError(f"{value!r} is not host:port")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def shows_reply_details(self) -> bool:
        return self.status_page_details if self.status_page_details is not None else is_loopback(self.host)


class ApiToken(Frozen):
    name: Annotated[str, Field(pattern=SLUG)] = Field(description="Who holds it (recorded as `by` in regrades).")
    role: Role = Field(description="viewer: aggregates; auditor: + probes, evidence, export; admin: all.")
    token: SecretStr = Field(description="At least 16 characters.")

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("a token must be at least 16 characters long")
        return value


class AutoPlanConfig(Frozen):
    """How `per_month: auto` sites share a network-wide budget (monitor/planner.py, `allocate`)."""

    budget: dict[Annotated[str, Field(pattern=SLUG)], Annotated[int, Field(ge=0, le=10_000_000)]] = Field(
        default_factory=dict,
        description="Probes per month shared by the `per_month: auto` sites, per channel, e.g. `{email: 6000}`.")
    min_per_month: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=1, description="What every auto site gets, decided or not (capped by its max_per_month).")
    period: Literal["month", "quarter", "year"] = Field(
        default="quarter", description="The results the allocation weighs: those of the current month, quarter "
                                       "or year (the period an audit concludes on).")


class PlannerConfig(Frozen):
    email_window: str = Field(default="08:00-20:00", description="Local hours at which a person would write.")
    out_of_hours_window: str = Field(
        default="08:00-21:00",
        description="Local hours for out-of-hours calls; opening hours are cut out of it.",
    )
    min_gap_minutes: Annotated[int, Field(ge=0, le=1440)] = Field(
        default=30, description="Least time between two planned calls to one site.")
    months_ahead: Annotated[int, Field(ge=0, le=3)] = Field(
        default=1, description="Months planned beyond the current one.")
    interval_seconds: Annotated[float, Field(gt=0)] = Field(default=3600.0, description="How often planning runs.")
    seed: int | None = Field(default=None, description="Fix the random draw (tests, demos).")
    auto: AutoPlanConfig = Field(default_factory=AutoPlanConfig,
                                 description="The budget `per_month: auto` sites share, and how it is allocated.")

    @field_validator("email_window", "out_of_hours_window")
    @classmethod
    def _slot(cls, value: str) -> str:
        parse_slot(value)
        return value


class RunnerConfig(Frozen):
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=120.0, description="A probe running longer is void (timeout).")
    dispatch_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=10.0, description="How often due probes are claimed.")
    sweep_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=60.0, description="How often passed deadlines are turned into misses.")
    max_concurrency: Annotated[int, Field(ge=1, le=1000)] = Field(default=20, description="Probes running at once.")
    claim_grace_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=30.0, description="Added to the timeout: after that, a claim left by a dead process is recovered.")
    max_attempts: Annotated[int, Field(ge=1, le=20)] = Field(
        default=5, description="Tries for a probe whose sending fails on our side before it is voided.")
    retry_base_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=60.0, description="First retry delay after a transient failure of ours; doubles each time.")
    watch_days: Annotated[float, Field(gt=0, le=365)] = Field(
        default=30.0, description="How long after its deadline an email probe is still watched for a late answer."
    )


class FleetConfig(Frozen):
    """Several `qualimon run` instances on one PostgreSQL database (README "Running a fleet")."""

    failover_seconds: Annotated[float, Field(ge=1, le=600)] = Field(
        default=15.0, description="A singleton task (planner, sweeper, refresh, a mailbox, a call log) whose holder "
        "dies, freezes or loses its database connection has a new holder within this time.")


class CallLogSource(Frozen):
    """A call log to read: Asterisk Master.csv, an Asterisk SQL `cdr` table, or an operator CSV export."""

    kind: Literal["asterisk_csv", "asterisk_sql", "generic_csv"]
    path: str | None = Field(default=None, description="The file, for asterisk_csv and generic_csv.")
    url: SecretStr | None = Field(default=None, description="SQLAlchemy async URL of the CDR database.")
    poll_seconds: Annotated[float, Field(gt=0, le=86400)] = 60.0
    csv: MasterCsvOptions | None = None
    sql: AsteriskSqlOptions | None = None
    mapping: GenericCsvMapping | None = None
    caller_key: SecretStr | None = Field(
        default=None, description="Key that turns callers' numbers into pseudonyms; without it they are dropped.")

    @model_validator(mode="after")
    def _settings_fit_kind(self) -> CallLogSource:
        if self.kind in ("asterisk_csv", "generic_csv") and not self.path:
            raise ValueError(f"a {self.kind} source needs path: the file to read")
        if self.kind == "asterisk_sql" and self.url is None:
            raise ValueError("an asterisk_sql source needs url, e.g. mysql+aiomysql://reader:${CDR_PASSWORD}@pbx/asterisk")
        if self.kind == "generic_csv" and self.mapping is None:
            raise ValueError("a generic_csv source needs mapping: which column holds what")
        misplaced = {"csv": "asterisk_csv", "sql": "asterisk_sql", "mapping": "generic_csv"}
        for key, kind in misplaced.items():
            if getattr(self, key) is not None and self.kind != kind:
                raise ValueError(f"{key} applies to {kind} sources only")
        return self


class ComplianceConfig(Frozen):
    min_samples: Annotated[int, Field(ge=1)] = Field(
        default=10, description="Below this many decided probes, an interval straddling the target is "
                                "`insufficient_data`.")
    confidence: Annotated[float, Field(ge=0.5, le=0.999)] = Field(
        default=0.95, description="Confidence of the Wilson interval (`ci_low`, `ci_high`) and of `needed`, the "
                                  "probes still needed before the interval leaves the target.")


class Config(Frozen):
    timezone: str = Field(default="Europe/Paris", description="IANA zone of the calendars (DST-aware).")
    database: str = Field(default="sqlite+aiosqlite:///qualimon.db",
                          description="SQLAlchemy URL: SQLite (aiosqlite) or `postgresql+asyncpg://…`.")
    http: HttpConfig = Field(default_factory=HttpConfig)
    tokens: tuple[ApiToken, ...] = ()
    calendars: dict[Annotated[str, Field(pattern=SLUG)], CalendarConfig]
    commitments: dict[Annotated[str, Field(pattern=COMMITMENT_ID)], Commitment]
    mailboxes: dict[Annotated[str, Field(pattern=SLUG)], Mailbox] = Field(default_factory=dict)
    phone_lines: dict[Annotated[str, Field(pattern=SLUG)], PhoneLine] = Field(default_factory=dict)
    templates: str | None = Field(default=None, description="Directory of mail templates (default: the shipped ones).")
    sites: tuple[Site, ...]
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    compliance: ComplianceConfig = Field(default_factory=ComplianceConfig)
    call_logs: dict[Annotated[str, Field(pattern=SLUG)], CallLogSource] = Field(default_factory=dict)
    fleet: FleetConfig = Field(default_factory=FleetConfig)

    # The channels this config was validated with (the registered probe kinds'); see config/channels.py.
    _channels: Mapping[str, ChannelSpec] = PrivateAttr(default_factory=lambda: BUILT_IN)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_timezone(value)

    @model_validator(mode="after")
    def _remember_channels(self, info: ValidationInfo) -> Config:
        self._channels = channels_in(info.context)
        return self

    # ---- channels

    @property
    def channels(self) -> Mapping[str, ChannelSpec]:
        return self._channels

    def site_channels(self, site: Site) -> tuple[str, ...]:
        """The channels `site` has settings for, in registration order."""
        return tuple(name for name in self._channels if site.section(name) is not None)

    def calendar_id_for(self, site: Site, channel: str) -> str:
        """Written answers run on the office calendar (jours ouvrés), calls on the site's opening hours."""
        spec = self._channels.get(channel)
        return site.office_calendar or site.calendar if spec is not None and spec.office_calendar else site.calendar

    # ---- lookups used everywhere; cross-references are guaranteed by crossrefs.py

    def site(self, site_id: str) -> Site:
        for site in self.sites:
            if site.id == site_id:
                return site
        raise KeyError(f"no site {site_id!r} in the config; known: {', '.join(s.id for s in self.sites)}")

    def commitments_for(self, channel: str) -> dict[str, Commitment]:
        return {cid: c for cid, c in self.commitments.items() if c.channel == channel}

    def calendar_tz(self, calendar_id: str) -> str:
        return self.calendars[calendar_id].timezone or self.timezone

    def mailbox_for(self, site: Site) -> tuple[str, Mailbox]:
        """The site's mailbox; with a rotation, the first of it (see `mailbox_weights`)."""
        name = next(iter(self.mailbox_weights(site)))
        return name, self.mailboxes[name]

    def mailbox_weights(self, site: Site) -> dict[str, int]:
        """The mailboxes that write to `site`, each with its weight in the rotation."""
        if site.email is not None and site.email.mailboxes:
            return dict(site.email.mailboxes)
        return {(site.email.mailbox if site.email else None) or next(iter(self.mailboxes)): 1}

    def line_for(self, site: Site) -> tuple[str, PhoneLine]:
        name = (site.phone.line if site.phone else None) or next(iter(self.phone_lines))
        return name, self.phone_lines[name]


def config_model(channels: Mapping[str, ChannelSpec]) -> type[Config]:
    """`Config`, with a `sites[].<name>` section for every registered channel not built into `Site`."""
    sections = tuple((name, spec.site_model) for name, spec in channels.items()
                     if spec.site_model is not None and name not in Site.model_fields)
    return _with_sections(sections) if sections else Config


@cache
def _with_sections(sections: tuple[tuple[str, type[BaseModel]], ...]) -> type[Config]:
    fields: dict[str, Any] = {name: (model | None, None) for name, model in sections}
    site = create_model("Site", __base__=Site, **fields)
    return create_model("Config", __base__=Config, sites=(tuple[site, ...], ...))  # type: ignore[valid-type]
