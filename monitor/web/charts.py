"""Delay histograms against a commitment's threshold, drawn as inline SVG (no script, no font, no file).

A `DelayHistogram` has fixed bins from 0 to twice the threshold plus an
overflow bin, so it can be filled while streaming a million verdicts in
constant memory.  Each bin stacks the answers that met the commitment
(solid green) over those that missed it (red, hatched so the difference
survives black-and-white printing); probes with no answer at all have no
delay and get their own bar on the right.  The threshold is a dashed line;
when it is only nominal (working-day deadlines end at midnight of the N-th
working day, so the exact allowance varies per probe) the caption says so
and the colours, which come from the real verdicts, remain the truth.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from monitor.config.models import Commitment
from monitor.web.html import VERDICT_COLOUR, esc

BINS = 12
WIDTH, HEIGHT = 520, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 12, 22, 44


@dataclass(frozen=True)
class Measure:
    """Which delay a commitment is judged on, and how its threshold reads on that delay's axis."""

    column: str            # verdict column: delay_seconds or business_delay_seconds
    threshold: float       # seconds
    exact: bool            # False when the deadline is a calendar rule, not a fixed duration
    unit: str              # axis unit, e.g. "s" or "working days"
    scale: float           # seconds per unit
    threshold_text: str    # e.g. "25 s", "5 working days"

    def histogram(self) -> DelayHistogram:
        return DelayHistogram(self.threshold, self.exact, self.unit, self.scale, self.threshold_text)


def measure_for(commitment: Commitment) -> Measure:
    within = commitment.deadline_rule
    threshold = commitment.threshold_seconds
    if threshold is not None:
        unit, scale = unit_for(threshold)
        return Measure("delay_seconds", threshold, True, unit, scale, fmt_amount(threshold))
    if within.working_days is not None:
        n = within.working_days
        return Measure("business_delay_seconds", n * 86400.0, False, "working days", 86400.0,
                       f"{n} working day{'s' if n > 1 else ''}")
    assert within.business_hours is not None
    hours = within.business_hours
    return Measure("business_delay_seconds", hours * 3600.0, False, "h", 3600.0, f"{hours:g} business hours")


@dataclass
class DelayHistogram:
    threshold: float
    exact: bool = True
    unit: str = ""                      # axis unit; chosen from the threshold when empty
    scale: float = 0.0
    threshold_text: str = ""
    met: list[int] = field(default_factory=lambda: [0] * (BINS + 1))      # last bin: beyond 2 × threshold
    missed: list[int] = field(default_factory=lambda: [0] * (BINS + 1))
    no_answer: int = 0

    def axis(self) -> tuple[str, float]:
        return (self.unit, self.scale) if self.unit and self.scale > 0 else unit_for(self.threshold)

    def threshold_label(self) -> str:
        return self.threshold_text or fmt_amount(self.threshold)

    @property
    def width(self) -> float:
        return 2 * self.threshold / BINS

    def add(self, delay: float | None, verdict: str) -> None:
        """Count one decided verdict; `delay` None means the service never answered."""
        if verdict not in ("met", "missed"):
            return
        if delay is None:
            self.no_answer += 1
            return
        index = min(int(max(delay, 0.0) // self.width), BINS) if self.width > 0 else BINS
        (self.met if verdict == "met" else self.missed)[index] += 1

    def merge(self, other: DelayHistogram) -> None:
        self.met = [a + b for a, b in zip(self.met, other.met)]
        self.missed = [a + b for a, b in zip(self.missed, other.missed)]
        self.no_answer += other.no_answer

    @property
    def total(self) -> int:
        return sum(self.met) + sum(self.missed) + self.no_answer


def unit_for(seconds: float) -> tuple[str, float]:
    """A readable unit for axis labels, chosen from the threshold's size."""
    if seconds >= 2 * 86400:
        return "d", 86400.0
    if seconds >= 2 * 3600:
        return "h", 3600.0
    if seconds >= 120:
        return "min", 60.0
    return "s", 1.0


def fmt_amount(seconds: float) -> str:
    unit, scale = unit_for(seconds)
    return f"{seconds / scale:g} {unit}"


def histogram_svg(hist: DelayHistogram, title: str, label: str = "delay") -> str:
    """The chart as an `<svg>` element with a text equivalent in `<title>`/`<desc>`."""
    unit, scale = hist.axis()
    bars = BINS + 2  # the bins, the overflow bin, the no-answer bar
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bar_w = plot_w / bars
    peak = max([m + s for m, s in zip(hist.met, hist.missed)] + [hist.no_answer, 1])
    # One pattern id per chart: several charts share a page and ids must stay unique.
    pattern = "hatch-" + hashlib.sha256(title.encode()).hexdigest()[:10]
    parts = [_svg_head(title, describe(hist), pattern), _axes(plot_w, plot_h, peak)]
    for i in range(BINS + 1):
        parts.append(_stack(LEFT + i * bar_w, bar_w, plot_h, peak, hist.met[i], hist.missed[i], pattern))
    parts.append(_stack(LEFT + (BINS + 1) * bar_w, bar_w, plot_h, peak, 0, hist.no_answer, pattern,
                        no_answer=True))
    threshold_x = LEFT + (BINS / 2) * bar_w
    nominal = "" if hist.exact else " (nominal)"
    parts.append(f'<line class="threshold" x1="{threshold_x:.1f}" y1="{TOP - 6}" x2="{threshold_x:.1f}" '
                 f'y2="{TOP + plot_h}" stroke="#000" stroke-width="1.5" stroke-dasharray="5,3"/>')
    parts.append(f'<text x="{threshold_x + 4:.1f}" y="{TOP - 8}" font-size="11">threshold '
                 f'{esc(hist.threshold_label())}{nominal}</text>')
    parts.append(_x_labels(bar_w, plot_h, hist.threshold, scale, unit, label))
    parts.append("</svg>")
    return "".join(parts)


def describe(hist: DelayHistogram) -> str:
    """The chart in words, for screen readers and for the printed page's caption."""
    met, missed = sum(hist.met), sum(hist.missed)
    return (f"{hist.total} decided probes: {met} answered in time, {missed} answered too late, "
            f"{hist.no_answer} without an answer; threshold {hist.threshold_label()}"
            + ("" if hist.exact else " (nominal)"))


def _svg_head(title: str, desc: str, pattern: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{WIDTH}" '
            f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">'
            f"<title>{esc(title)}</title><desc>{esc(desc)}</desc>"
            f'<defs><pattern id="{pattern}" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><rect width="6" height="6" fill="'
            f'{VERDICT_COLOUR["missed"]}"/><line x1="0" y1="0" x2="0" y2="6" stroke="#fff" '
            'stroke-width="2"/></pattern></defs>')


def _axes(plot_w: float, plot_h: float, peak: int) -> str:
    base = TOP + plot_h
    return (f'<line x1="{LEFT}" y1="{base}" x2="{LEFT + plot_w}" y2="{base}" stroke="#333"/>'
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}" stroke="#333"/>'
            f'<text x="{LEFT - 4}" y="{TOP + 4}" font-size="10" text-anchor="end">{peak}</text>'
            f'<text x="{LEFT - 4}" y="{base}" font-size="10" text-anchor="end">0</text>')


def _stack(x: float, w: float, plot_h: float, peak: int, met: int, missed: int, pattern: str, *,
           no_answer: bool = False) -> str:
    base = TOP + plot_h
    out = []
    met_h = plot_h * met / peak
    missed_h = plot_h * missed / peak
    if met:
        out.append(f'<rect class="met" x="{x + 1:.1f}" y="{base - met_h:.1f}" width="{w - 2:.1f}" '
                   f'height="{met_h:.1f}" fill="{VERDICT_COLOUR["met"]}"><title>{met} met</title></rect>')
    if missed:
        what = "without answer" if no_answer else "missed (late)"
        out.append(f'<rect class="missed" x="{x + 1:.1f}" y="{base - met_h - missed_h:.1f}" width="{w - 2:.1f}" '
                   f'height="{missed_h:.1f}" fill="url(#{pattern})" stroke="{VERDICT_COLOUR["missed"]}">'
                   f"<title>{missed} {what}</title></rect>")
    return "".join(out)


def _x_labels(bar_w: float, plot_h: float, threshold: float, scale: float, unit: str, label: str) -> str:
    y = TOP + plot_h + 14
    ticks = [(0, "0"), (BINS / 2, f"{threshold / scale:g}"), (BINS, f"{2 * threshold / scale:g}")]
    out = [f'<text x="{LEFT + i * bar_w:.1f}" y="{y}" font-size="10" text-anchor="middle">{esc(t)}</text>'
           for i, t in ticks]
    out.append(f'<text x="{LEFT + (BINS + 0.5) * bar_w:.1f}" y="{y}" font-size="10" text-anchor="middle">&gt;</text>')
    out.append(f'<text x="{LEFT + (BINS + 1.5) * bar_w:.1f}" y="{y}" font-size="10" '
               'text-anchor="middle">none</text>')
    out.append(f'<text x="{LEFT + (BINS / 2) * bar_w:.1f}" y="{y + 18}" font-size="11" '
               f'text-anchor="middle">{esc(label)} ({esc(unit)}); right: beyond 2× threshold, no answer</text>')
    return "".join(out)
