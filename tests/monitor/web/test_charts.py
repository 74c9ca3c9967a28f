"""Delay histograms: fixed bins around the threshold, met over missed, no-answer apart, valid inline SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from monitor.config.models import Commitment
from monitor.web.charts import (
    BINS,
    DelayHistogram,
    describe,
    histogram_svg,
    measure_for,
)

SVG = "{http://www.w3.org/2000/svg}"


def commitment(**within: float) -> Commitment:
    return Commitment.model_validate({"channel": "phone" if "rings" in within else "email", "within": within})


def test_delays_fall_into_bins_of_a_sixth_of_the_threshold() -> None:
    hist = DelayHistogram(threshold=60.0)
    for delay, verdict in [(0, "met"), (9.9, "met"), (10, "met"), (59, "met"), (61, "missed"), (500, "missed")]:
        hist.add(delay, verdict)
    assert hist.met[:BINS // 2] == [2, 1, 0, 0, 0, 1]
    assert hist.missed[BINS // 2] == 1          # just past the threshold
    assert hist.missed[BINS] == 1               # beyond twice the threshold: the overflow bin


def test_no_answer_is_counted_apart_and_void_or_pending_not_at_all() -> None:
    hist = DelayHistogram(threshold=25.0)
    hist.add(None, "missed")
    hist.add(3.0, "void")
    hist.add(None, "pending")
    assert (hist.no_answer, hist.total) == (1, 1)


def test_merging_adds_bin_by_bin() -> None:
    a, b = DelayHistogram(10.0), DelayHistogram(10.0)
    a.add(1, "met")
    b.add(1, "met")
    b.add(None, "missed")
    a.merge(b)
    assert (a.met[0], a.no_answer, a.total) == (2, 1, 3)


def test_calls_are_judged_on_wall_clock_seconds_with_an_exact_threshold() -> None:
    measure = measure_for(commitment(rings=5))
    assert (measure.column, measure.threshold, measure.exact, measure.threshold_text) == (
        "delay_seconds", 25.0, True, "25 s")


def test_working_day_deadlines_are_drawn_on_business_delay_as_a_nominal_line() -> None:
    measure = measure_for(commitment(working_days=5))
    assert (measure.column, measure.threshold, measure.exact, measure.unit, measure.threshold_text) == (
        "business_delay_seconds", 5 * 86400.0, False, "working days", "5 working days")


def test_the_svg_is_well_formed_with_a_threshold_line_and_a_text_equivalent() -> None:
    hist = measure_for(commitment(rings=5)).histogram()
    for delay in (12, 12, 40):
        hist.add(delay, "met" if delay < 25 else "missed")
    hist.add(None, "missed")
    root = ET.fromstring(histogram_svg(hist, "phone.answer, Petit Palais"))
    assert root.tag == f"{SVG}svg" and root.attrib["role"] == "img"
    assert root.find(f"{SVG}title").text == "phone.answer, Petit Palais"
    assert root.find(f"{SVG}desc").text == describe(hist) == (
        "4 decided probes: 2 answered in time, 1 answered too late, 1 without an answer; threshold 25 s")
    line = next(e for e in root.iter(f"{SVG}line") if e.attrib.get("class") == "threshold")
    assert line.attrib["x1"] == line.attrib["x2"]
    bars = [e for e in root.iter(f"{SVG}rect") if e.attrib.get("class") in ("met", "missed")]
    assert sorted(b.find(f"{SVG}title").text for b in bars) == ["1 missed (late)", "1 without answer", "2 met"]
    assert any(t.text and "threshold 25 s" in t.text for t in root.iter(f"{SVG}text"))


def test_the_bar_heights_are_proportional_to_the_counts() -> None:
    hist = DelayHistogram(threshold=60.0)
    for _ in range(4):
        hist.add(1, "met")
    hist.add(1, "missed")
    hist.add(1, "missed")
    rects = {e.attrib["class"]: float(e.attrib["height"])
             for e in ET.fromstring(histogram_svg(hist, "x")).iter(f"{SVG}rect") if "class" in e.attrib}
    assert abs(rects["met"] / rects["missed"] - 2.0) < 0.01


def test_a_hostile_title_stays_text_and_pattern_ids_differ_between_charts() -> None:
    one = histogram_svg(DelayHistogram(10.0), "<script>alert(1)</script>")
    two = histogram_svg(DelayHistogram(10.0), "other chart")
    assert "<script>" not in one and "&lt;script&gt;" in one
    ids = [ET.fromstring(svg).find(f"{SVG}defs/{SVG}pattern").attrib["id"] for svg in (one, two)]
    assert ids[0] != ids[1]


def test_an_empty_histogram_still_draws_axes_and_says_so() -> None:
    svg = histogram_svg(DelayHistogram(86400.0, exact=False, unit="working days", scale=86400.0,
                                       threshold_text="1 working day"), "email.ack")
    root = ET.fromstring(svg)
    assert not [e for e in root.iter(f"{SVG}rect") if e.attrib.get("class") in ("met", "missed")]
    assert root.find(f"{SVG}desc").text.startswith("0 decided probes")
    assert "threshold 1 working day (nominal)" in svg
