"""References between config sections, checked on the raw document.

Working on plain data (not on validated models) lets these checks run even
when some other part of the file is invalid, so `check-config` can report
every problem at once.  Each check yields `(path, message)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Path_ = tuple[str | int, ...]


def check_references(data: dict[str, Any]) -> list[tuple[Path_, str]]:
    return [*_site_references(data), *_duplicate_site_ids(data), *_ring_long_enough(data), *_auto_has_budget(data)]


def _names(data: dict[str, Any], section: str) -> list[str]:
    value = data.get(section)
    return [str(k) for k in value] if isinstance(value, dict) else []


def _sites(data: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    sites = data.get("sites")
    if isinstance(sites, list):
        for index, site in enumerate(sites):
            if isinstance(site, dict):
                yield index, site


def _known(names: list[str]) -> str:
    return ", ".join(names) if names else "none defined"


def _site_references(data: dict[str, Any]) -> Iterator[tuple[Path_, str]]:
    calendars = _names(data, "calendars")
    mailboxes = _names(data, "mailboxes")
    lines = _names(data, "phone_lines")
    for i, site in _sites(data):
        for key in ("calendar", "office_calendar"):
            name = site.get(key)
            if isinstance(name, str) and name not in calendars:
                yield ("sites", i, key), f"unknown calendar {name!r}; known: {_known(calendars)}"
        yield from _channel_reference(i, site, "email", "mailbox", mailboxes, "mailboxes")
        yield from _rotation_reference(i, site, mailboxes)
        yield from _channel_reference(i, site, "phone", "line", lines, "phone_lines")
        yield from _calls_need_opening_hours(data, i, site)
    yield from _business_hours_need_opening_hours(data)


def _channel_reference(i: int, site: dict[str, Any], channel: str, key: str,
                       known: list[str], section: str) -> Iterator[tuple[Path_, str]]:
    settings = site.get(channel)
    if not isinstance(settings, dict):
        return
    name = settings.get(key)
    if channel == "email" and isinstance(settings.get("mailboxes"), dict):
        return  # a rotation names its mailboxes (checked by _rotation_reference)
    if isinstance(name, str):
        if name not in known:
            yield ("sites", i, channel, key), f"unknown {key} {name!r}; known: {_known(known)}"
    elif not known:
        yield ("sites", i, channel), f"the site has {channel} probes but no {section} are defined"
    elif len(known) > 1:
        yield ("sites", i, channel, key), f"several {section} exist ({_known(known)}); name the one to use"


def _rotation_reference(i: int, site: dict[str, Any], known: list[str]) -> Iterator[tuple[Path_, str]]:
    settings = site.get("email")
    rotation = settings.get("mailboxes") if isinstance(settings, dict) else None
    if not isinstance(rotation, dict):
        return
    for name in rotation:
        if name not in known:
            yield ("sites", i, "email", "mailboxes", name), f"unknown mailbox {name!r}; known: {_known(known)}"


def _has_opening_hours(data: dict[str, Any], calendar: Any) -> bool:
    calendars = data.get("calendars")
    if not isinstance(calendars, dict) or not isinstance(calendar, str) or calendar not in calendars:
        return True  # an unknown calendar is already reported
    settings = calendars[calendar]
    return isinstance(settings, dict) and bool(settings.get("opening_hours"))


def _calls_need_opening_hours(data: dict[str, Any], i: int, site: dict[str, Any]) -> Iterator[tuple[Path_, str]]:
    phone = site.get("phone")
    if isinstance(phone, dict) and not _has_opening_hours(data, site.get("calendar")):
        yield ("sites", i, "calendar"), (
            f"calendar {site.get('calendar')!r} has no opening_hours, so calls cannot be planned "
            "inside (or outside) them; add opening_hours to it"
        )


def _business_hours_need_opening_hours(data: dict[str, Any]) -> Iterator[tuple[Path_, str]]:
    commitments = data.get("commitments")
    if not isinstance(commitments, dict):
        return
    for cid, commitment in commitments.items():
        if not isinstance(commitment, dict):
            continue
        within = commitment.get("within")
        if not isinstance(within, dict) or "business_hours" not in within:
            continue
        channel = commitment.get("channel")
        for _, site in _sites(data):
            if channel not in site:
                continue
            calendar = (site.get("office_calendar") or site.get("calendar")) if channel == "email" else site.get("calendar")
            if not _has_opening_hours(data, calendar):
                yield ("commitments", cid, "within", "business_hours"), (
                    f"site {site.get('id')!r} uses calendar {calendar!r}, which has no opening_hours "
                    "for the business-hours clock to run in"
                )


def _duplicate_site_ids(data: dict[str, Any]) -> Iterator[tuple[Path_, str]]:
    first_seen: dict[str, int] = {}
    for i, site in _sites(data):
        site_id = site.get("id")
        if not isinstance(site_id, str):
            continue
        if site_id in first_seen:
            yield ("sites", i, "id"), f"duplicate site id {site_id!r} (first used by sites[{first_seen[site_id]}])"
        else:
            first_seen[site_id] = i


DEFAULT_MAX_RING_SECONDS = 60.0  # SipConfig.max_ring_seconds
DEFAULT_CADENCE = 5.0  # Commitment.ring_cadence_seconds


def _ring_long_enough(data: dict[str, Any]) -> Iterator[tuple[Path_, str]]:
    """A line that hangs up before a phone commitment's threshold would blame the site for our CANCEL."""
    threshold = max(_phone_thresholds(data), default=None)
    lines = data.get("phone_lines")
    if threshold is None or not isinstance(lines, dict):
        return
    for name, line in lines.items():
        sip = line.get("sip") if isinstance(line, dict) else None
        if not isinstance(sip, dict):
            continue
        max_ring = sip.get("max_ring_seconds", DEFAULT_MAX_RING_SECONDS)
        if isinstance(max_ring, (int, float)) and max_ring <= threshold:
            yield ("phone_lines", name, "sip", "max_ring_seconds"), (
                f"{max_ring:g} s would cancel calls before the {threshold:g} s a phone commitment allows, "
                "and count them as missed; ring longer than every threshold")


def _phone_thresholds(data: dict[str, Any]) -> Iterator[float]:
    commitments = data.get("commitments")
    if not isinstance(commitments, dict):
        return
    for commitment in commitments.values():
        if not isinstance(commitment, dict) or commitment.get("channel") != "phone":
            continue
        within = commitment.get("within")
        cadence = commitment.get("ring_cadence_seconds", DEFAULT_CADENCE)
        if not isinstance(within, dict) or not isinstance(cadence, (int, float)):
            continue
        if isinstance(within.get("seconds"), (int, float)):
            yield float(within["seconds"])
        elif isinstance(within.get("rings"), (int, float)):
            yield float(within["rings"]) * cadence


def _auto_has_budget(data: dict[str, Any]) -> Iterator[tuple[Path_, str]]:
    """`per_month: auto` shares the channel's network budget: there must be one."""
    planner = data.get("planner")
    auto = planner.get("auto") if isinstance(planner, dict) else None
    budget = auto.get("budget") if isinstance(auto, dict) else None
    budgets = budget if isinstance(budget, dict) else {}
    for i, site in _sites(data):
        for channel, settings in site.items():
            if isinstance(settings, dict) and settings.get("per_month") == "auto" and channel not in budgets:
                yield ("sites", i, channel, "per_month"), (
                    f"per_month: auto shares planner.auto.budget.{channel}, which is not set; give the probes "
                    f"per month that the auto sites share, e.g. planner: {{auto: {{budget: {{{channel}: 600}}}}}}")
