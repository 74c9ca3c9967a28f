"""HTML helpers: one escaping function, status colours that always come with words, readable figures."""

from __future__ import annotations

import pytest

from monitor.compliance import compliance
from monitor.web.html import (
    compliance_table,
    document,
    esc,
    fmt_ci,
    fmt_delay,
    fmt_ratio,
    status_class,
    status_colour,
    status_label,
    tag,
)
from tests.support.chromium import parse_dom, table_rows

HOSTILE = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>&amp;"


def test_esc_turns_markup_and_both_quotes_into_text() -> None:
    assert esc(HOSTILE) == ("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot;&gt;"
                            "&lt;img src=x onerror=alert(1)&gt;&amp;amp;")


def test_esc_of_none_is_empty_and_of_numbers_is_their_text() -> None:
    assert (esc(None), esc(0), esc(12.5)) == ("", "0", "12.5")


def test_tag_escapes_content_and_attributes() -> None:
    assert tag("td", HOSTILE, class_='a" onclick="x') == (
        '<td class="a&quot; onclick=&quot;x">' + esc(HOSTILE) + "</td>")


@pytest.mark.parametrize(("status", "css", "label"), [
    ("compliant", "st-ok", "compliant"),
    ("non_compliant", "st-bad", "non-compliant"),
    ("insufficient_data", "st-na", "insufficient data"),
])
def test_each_status_has_its_class_and_words(status: str, css: str, label: str) -> None:
    assert (status_class(status), status_label(status)) == (css, label)


def test_status_colours_are_green_red_and_grey() -> None:
    assert status_colour("compliant") == "#c9ecd2"
    assert status_colour("non_compliant") == "#f7c6c1"
    assert status_colour("insufficient_data") == "#e3e3e3"


def test_an_unknown_status_is_grey_never_green() -> None:
    assert status_colour("surprise") == status_colour("insufficient_data")


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "–"), (0, "0 s"), (4.25, "4.2 s"), (12, "12 s"), (119.6, "2 min 00 s"), (99.6, "100 s"), (200, "3 min 20 s"),
    (3 * 3600 + 5 * 60, "3 h 05 min"), (47 * 3600, "47 h 00 min"), (3 * 86400 + 4 * 3600, "3 d 4 h"),
])
def test_delays_read_like_a_person_would_say_them(seconds: float | None, text: str) -> None:
    assert fmt_delay(seconds) == text


def test_ratios_and_intervals_have_one_decimal_and_a_dash_when_unknown() -> None:
    assert (fmt_ratio(0.9), fmt_ratio(None), fmt_ci(0.5551, 0.98), fmt_ci(None, None)) == (
        "90.0%", "–", "55.5–98.0%", "–")


def test_the_compliance_table_shows_every_field_and_escapes_site_html() -> None:
    row = compliance("petit-palais", "email.reply", {"met": 9, "missed": 1, "pending": 2, "void": 3, "review": 1},
                     0.9, 10)
    html = compliance_table([row], {"petit-palais": esc("<b>Petit Palais</b>")}, caption="Q3 <2026>")
    table = parse_dom(html).find("table")
    assert table is not None and "<b>" not in html and "Q3 &lt;2026&gt;" in html
    assert table_rows(table) == [{
        "site": "<b>Petit Palais</b>", "commitment": "email.reply", "n": "10", "met": "9", "missed": "1",
        "pending": "2", "review": "1", "void": "3", "ratio": "90.0%", "interval": fmt_ci(row.ci_low, row.ci_high),
        "target": "90%", "status": "✓ compliant", "needed": "43"}]
    tr = table.find("tr", data_site="petit-palais")
    assert tr is not None and float(tr.attrs["data-ratio"]) == row.ratio and tr.attrs["data-status"] == "compliant"


def test_a_document_carries_no_script_and_its_title_is_escaped() -> None:
    html = document("<script>x</script>", "<p>body</p>", "p{}", csp_meta="default-src 'none'")
    assert "<script" not in html
    assert "<title>&lt;script&gt;x&lt;/script&gt;</title>" in html
    assert '<meta http-equiv="Content-Security-Policy" content="default-src &#x27;none&#x27;">' in html
