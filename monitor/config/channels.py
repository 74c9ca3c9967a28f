"""What the configuration knows about each probe channel, so that no channel is hard-coded elsewhere.

A `ChannelSpec` is the config-side half of a probe kind: the answers a
commitment of that channel may count, its defaults, the `during` purposes it
distinguishes, and, for a kind that is not built into the `Site` model, the
model of its per-site section (`sites[].<channel>:`).  The built-in email
and phone channels are described here; a kind shipped elsewhere registers its
own spec (see `monitor/kinds.py`), and the composition root passes every
registered spec to the loader, so a config that uses the kind validates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel


@dataclass(frozen=True)
class PlanSlot:
    """One stream of planned probes of a site: `per_month` instants drawn in the eligible time `when`."""

    purpose: str          # stored on each probe; a commitment's `during` selects on it
    per_month: int        # 0 for an auto slot: the planner allocates it
    when: Literal["window", "open", "closed"]  # planner.email_window any day | opening hours | outside them
    spaced: bool = False  # keep `planner.min_gap_minutes` between two of them (calls to one desk)
    auto_max: int | None = None  # `per_month: auto`: a share of the channel's budget, at most this many

    @property
    def auto(self) -> bool:
        return self.auto_max is not None


def planned(per_month: Any, max_per_month: Any = None) -> tuple[int, int | None]:
    """(per_month, auto_max) of a site section's `per_month` (a count, or `auto` with `max_per_month`)."""
    if per_month == "auto":
        return 0, int(max_per_month or 0)
    return int(per_month), None


PlanFn = Callable[[Any], tuple[PlanSlot, ...]]  # the site's section of this channel -> its plan slots


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    answers: tuple[str, ...]                 # response kinds a commitment of this channel may count
    default_counts: tuple[str, ...]          # what counts when a commitment says nothing
    default_target: float                    # share of decided probes that must meet a commitment
    plan: PlanFn                             # how the planner draws this channel's probes for a site
    purposes: tuple[str, ...] = ()           # values of `during` besides `any` (phone: open, closed)
    office_calendar: bool = False            # deadlines run on the site's office calendar (written answers)
    exclusive: bool = False                  # at most one probe of this channel at a time per site
    responses: tuple[str, ...] = ()          # response kinds counted in qualimon_responses_total
    calls: bool = False                      # its probes are calls, counted in qualimon_calls_total
    site_model: type[BaseModel] | None = None  # the `sites[].<name>` section, for kinds not built into Site
    # The quality criteria its answers are graded on (`kind: quality` commitments), each with its default
    # requirement: `required` (the answer fails without it), `optional` (only counts in the score) or `off`.
    criteria: Mapping[str, str] = field(default_factory=dict)

    def purpose_at(self, is_open: bool) -> str:
        """The purpose of a probe made now, outside the plan (`qualimon probe`)."""
        if not self.purposes:
            return "standard"
        return self.purposes[0] if is_open else self.purposes[-1]


def _email_plan(section: Any) -> tuple[PlanSlot, ...]:
    per_month, auto_max = planned(section.per_month, section.max_per_month)
    return (PlanSlot("standard", per_month, "window", auto_max=auto_max),)


def _phone_plan(section: Any) -> tuple[PlanSlot, ...]:
    per_month, auto_max = planned(section.per_month, section.max_per_month)
    return (PlanSlot("open", per_month, "open", spaced=True, auto_max=auto_max),
            PlanSlot("closed", section.out_of_hours_per_month, "closed", spaced=True))


REQUIRED, OPTIONAL, OFF = "required", "optional", "off"
EMAIL_CRITERIA = {"greeting": OPTIONAL, "closing": OPTIONAL, "signed": REQUIRED, "contact": REQUIRED,
                  "answers_question": REQUIRED, "not_holding": REQUIRED, "language": REQUIRED}
EMAIL = ChannelSpec("email", answers=("human_reply", "auto_reply"), default_counts=("human_reply",),
                    default_target=0.90, plan=_email_plan, office_calendar=True,
                    responses=("human_reply", "auto_reply", "bounce"), criteria=EMAIL_CRITERIA)
PHONE = ChannelSpec("phone", answers=("answered",), default_counts=("answered",), default_target=0.85,
                    plan=_phone_plan, purposes=("open", "closed"), exclusive=True, calls=True)
BUILT_IN: Mapping[str, ChannelSpec] = {spec.name: spec for spec in (EMAIL, PHONE)}

CONTEXT_KEY = "channels"


def channels_in(context: Any) -> Mapping[str, ChannelSpec]:
    """The channels a validation runs with: those passed by the loader, else the built-in ones."""
    if isinstance(context, Mapping) and CONTEXT_KEY in context:
        channels: Mapping[str, ChannelSpec] = context[CONTEXT_KEY]
        return channels
    return BUILT_IN
