"""Compliance figures against hand-computed cases and known Wilson bounds."""

from __future__ import annotations

import pytest

from monitor.compliance import compliance, wilson


def test_wilson_bounds_match_published_values() -> None:
    # Newcombe (1998), table I: 81/263 → 0.2553–0.3662; 15/148 → 0.0624–0.1605.
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    low, high = wilson(15, 148)
    assert (round(low, 4), round(high, 4)) == (0.0624, 0.1605)


def test_wilson_bounds_at_the_edges_stay_inside_zero_and_one() -> None:
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0
    assert wilson(0, 0) is None


def test_void_and_pending_probes_are_left_out_of_the_ratio() -> None:
    c = compliance("petit-palais", "email.reply", {"met": 9, "missed": 1, "void": 5, "pending": 3}, 0.90, 10)
    assert (c.n, c.met, c.missed, c.void, c.pending) == (10, 9, 1, 5, 3)
    assert c.ratio == 0.9


def test_all_void_means_no_data_not_a_failure() -> None:
    c = compliance("petit-palais", "email.reply", {"void": 12}, 0.90, 10)
    assert (c.n, c.ratio, c.ci_low, c.ci_high, c.status) == (0, None, None, None, "insufficient_data")


def test_zero_samples_means_insufficient_data() -> None:
    c = compliance("petit-palais", "email.reply", {}, 0.90, 10)
    assert (c.n, c.ratio, c.status) == (0, None, "insufficient_data")


def test_a_ratio_exactly_at_the_target_is_compliant() -> None:
    c = compliance("petit-palais", "phone.answer", {"met": 17, "missed": 3}, 0.85, 10)
    assert c.ratio == 0.85 and c.status == "compliant"


def test_few_samples_whose_interval_straddles_the_target_are_insufficient() -> None:
    below = compliance("petit-palais", "email.reply", {"met": 4, "missed": 1}, 0.90, 10)
    assert below.ratio == 0.8 and below.ci_low < 0.90 <= below.ci_high
    assert below.status == "insufficient_data"


def test_few_samples_clearly_below_the_target_are_already_non_compliant() -> None:
    c = compliance("petit-palais", "email.reply", {"met": 0, "missed": 5}, 0.90, 10)
    assert c.ci_high < 0.90 and c.status == "non_compliant"


def test_enough_samples_decide_even_when_the_interval_straddles() -> None:
    c = compliance("petit-palais", "email.reply", {"met": 26, "missed": 4}, 0.90, 10)
    assert c.ci_low < 0.90 <= c.ci_high and c.status == "non_compliant"  # 86.7 % < 90 % on 30 probes


def test_the_public_row_has_the_design_fields() -> None:
    row = compliance("petit-palais", "email.reply", {"met": 1}, 0.9, 10).public()
    assert list(row) == ["site", "commitment", "n", "met", "missed", "pending", "review", "void", "ratio", "ci_low",
                         "ci_high", "target", "status", "needed"]
