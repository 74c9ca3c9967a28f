"""HTML building blocks shared by the status page and the audit report.

Everything here returns *finished* HTML text.  Values that came from outside
(reply subjects, sender names, reasons, site names from the config) go
through `esc()` exactly once, at the point where they are put into markup;
helpers that take plain values escape them themselves, so a caller cannot
forget.  Status and verdict colours always come with a text label too, so a
page printed in black and white, or read by a screen reader, says the same.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.compliance import Compliance

# compliance status -> (css class, background colour, text label, symbol)
STATUS_STYLE: dict[str, tuple[str, str, str, str]] = {
    "compliant": ("st-ok", "#c9ecd2", "compliant", "✓"),
    "non_compliant": ("st-bad", "#f7c6c1", "non-compliant", "✗"),
    "insufficient_data": ("st-na", "#e3e3e3", "insufficient data", "?"),
}
VERDICT_COLOUR = {"met": "#1e7b34", "missed": "#b3261e", "void": "#6b6b6b", "pending": "#8a6d00",
                  "review": "#6a3d9a"}


def esc(value: object) -> str:
    """The one escaping function: text (or None) to HTML-safe text, quotes included for attributes."""
    if value is None:
        return ""
    return html.escape(str(value), quote=True)


def attrs(values: Mapping[str, object | None]) -> str:
    """` name="value"` pairs, escaped; None values are left out."""
    return "".join(f' {name}="{esc(v)}"' for name, v in values.items() if v is not None)


def tag(name: str, text: object, **attributes: object | None) -> str:
    """An element with escaped text content (`class_` spells `class`)."""
    fixed = {k.rstrip("_").replace("_", "-"): v for k, v in attributes.items()}
    return f"<{name}{attrs(fixed)}>{esc(text)}</{name}>"


def status_class(status: str) -> str:
    return STATUS_STYLE.get(status, STATUS_STYLE["insufficient_data"])[0]


def status_colour(status: str) -> str:
    """Background colour for a compliance status; unknown statuses are grey, never green."""
    return STATUS_STYLE.get(status, STATUS_STYLE["insufficient_data"])[1]


def status_label(status: str) -> str:
    return STATUS_STYLE.get(status, STATUS_STYLE["insufficient_data"])[2]


def status_symbol(status: str) -> str:
    return STATUS_STYLE.get(status, STATUS_STYLE["insufficient_data"])[3]


# ---------------------------------------------------------------- numbers and instants


def fmt_ratio(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio * 100:.1f}%"


def fmt_ci(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "–"
    return f"{low * 100:.1f}–{high * 100:.1f}%"


def fmt_target(target: float) -> str:
    return f"{target * 100:g}%"


def fmt_delay(seconds: float | None) -> str:
    """A delay as a person reads it: `12 s`, `3 min 20 s`, `2 h 05 min`, `3 d 4 h`."""
    if seconds is None:
        return "–"
    total = round(seconds)
    if total < 120:
        return f"{seconds:.0f} s" if seconds >= 10 or seconds == int(seconds) else f"{seconds:.1f} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def fmt_local(instant: datetime | None, tz: str) -> str:
    """An instant in the config's time zone, to the minute (auditors think in local time)."""
    if instant is None:
        return "–"
    return instant.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def fmt_local_exact(instant: datetime, tz: str) -> str:
    return instant.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds")


# ---------------------------------------------------------------- compliance


def compliance_summary(c: Compliance) -> str:
    """One sentence with every figure of a cell: the tooltip and the screen-reader text."""
    if c.n == 0:
        return (f"{c.site}, {c.commitment}: {status_label(c.status)}, no decided probe "
                f"({c.pending} pending, {c.review} in review, {c.void} void), target {fmt_target(c.target)}")
    return (f"{c.site}, {c.commitment}: {status_label(c.status)}, {c.met} of {c.n} met ({fmt_ratio(c.ratio)}), "
            f"interval {fmt_ci(c.ci_low, c.ci_high)}, target {fmt_target(c.target)}, "
            f"{c.pending} pending, {c.review} in review, {c.void} void, {fmt_needed(c.needed)}")


def fmt_needed(needed: int | None) -> str:
    """`needed` in words: what it takes to conclude."""
    if needed is None:
        return "no number of probes can conclude"
    if needed == 0:
        return "concluded"
    return f"{needed} more decided probe{'s' if needed > 1 else ''} to conclude"


def compliance_data_attrs(c: Compliance) -> str:
    """Exact figures as data attributes, so tests and scrapers need not parse the display text."""
    return attrs({"data-site": c.site, "data-commitment": c.commitment, "data-status": c.status,
                  "data-n": c.n, "data-met": c.met, "data-missed": c.missed, "data-pending": c.pending,
                  "data-review": c.review, "data-void": c.void, "data-ratio": _num(c.ratio),
                  "data-ci-low": _num(c.ci_low), "data-ci-high": _num(c.ci_high), "data-target": _num(c.target),
                  "data-needed": "" if c.needed is None else c.needed})


def _num(value: float | None) -> str:
    return "" if value is None else repr(value)


COMPLIANCE_HEADERS = ("site", "commitment", "n", "met", "missed", "pending", "review", "void", "ratio", "interval",
                      "target", "status", "needed")


def compliance_table(rows: Iterable[Compliance], site_cell: Mapping[str, str] | None = None,
                     caption: str = "") -> str:
    """The full compliance table (docs/design.md §5 columns).  `site_cell` maps a site id to ready HTML (a link)."""
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in COMPLIANCE_HEADERS)
    body = "\n".join(_compliance_row(c, (site_cell or {}).get(c.site)) for c in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<table class="compliance">{cap}<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody></table>")


def _compliance_row(c: Compliance, site_html: str | None) -> str:
    cells = [
        f'<th scope="row">{site_html or esc(c.site)}</th>', tag("td", c.commitment),
        *(f'<td class="num">{v}</td>' for v in (c.n, c.met, c.missed, c.pending, c.review, c.void)),
        f'<td class="num">{esc(fmt_ratio(c.ratio))}</td>', f'<td class="num">{esc(fmt_ci(c.ci_low, c.ci_high))}</td>',
        f'<td class="num">{esc(fmt_target(c.target))}</td>', status_badge(c.status),
        f'<td class="num">{"–" if c.needed is None else c.needed}</td>',
    ]
    return f"<tr{compliance_data_attrs(c)}>{''.join(cells)}</tr>"


def status_badge(status: str) -> str:
    """A table cell that says the status in words and a symbol, coloured for those who see colour."""
    return (f'<td class="status {status_class(status)}">'
            f'<span aria-hidden="true">{esc(status_symbol(status))} </span>{esc(status_label(status))}</td>')


def document(title: str, body: str, css: str, *, csp_meta: str | None = None) -> str:
    """A complete HTML5 page with inline CSS and no script."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="{esc(csp_meta)}">' if csp_meta else ""
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8">{meta}'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="referrer" content="no-referrer">'
            f"<title>{esc(title)}</title><style>{css}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")
