"""Sample sizes that can decide: `needed` in compliance rows and `qualimon plan-size`, against hand computations."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cli import main
from monitor.compliance import MAX_NEEDED, Z95, compliance, to_conclude, wilson, z_for
from monitor.config import load_config
from monitor.store.records import NewProbe, VerdictRecord
from monitor.store.store import Store
from tests.conftest import paris_in


def hand_wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The textbook formula, written out again so the test does not trust the code it checks."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_zero_of_three_against_ninety_percent_is_already_non_compliant() -> None:
    # Upper bound z²/(n + z²) = 3.8415 / 6.8415 = 0.5615 < 0.9: no more probe is needed.
    assert hand_wilson(0, 3)[1] == pytest.approx(0.5615, abs=1e-4)
    result = to_conclude(0, 3, 0.9)
    assert result.non_compliant == 0 and result.needed == 0
    assert result.compliant == 81  # 81 met in a row to prove 90 % after three misses
    assert hand_wilson(81, 84)[0] >= 0.9 > hand_wilson(80, 83)[0]


def test_nine_of_ten_against_ninety_percent_needs_43_more_met_or_3_more_missed() -> None:
    assert hand_wilson(9, 10) == pytest.approx((0.5958, 0.9821), abs=1e-4)  # straddles 0.9
    result = to_conclude(9, 10, 0.9)
    assert (result.compliant, result.non_compliant, result.needed) == (43, 3, 43)
    assert hand_wilson(52, 53)[0] >= 0.9 > hand_wilson(51, 52)[0]
    assert hand_wilson(9, 13)[1] < 0.9 <= hand_wilson(9, 12)[1]


def test_forty_five_of_fifty_against_ninety_percent_needs_63_more_met_or_5_more_missed() -> None:
    assert hand_wilson(45, 50) == pytest.approx((0.7864, 0.9565), abs=1e-4)
    result = to_conclude(45, 50, 0.9)
    assert (result.compliant, result.non_compliant, result.needed) == (63, 5, 63)
    assert hand_wilson(108, 113)[0] >= 0.9 > hand_wilson(107, 112)[0]
    assert hand_wilson(45, 55)[1] < 0.9 <= hand_wilson(45, 54)[1]


def test_a_site_below_its_target_points_to_non_compliant() -> None:
    assert (to_conclude(8, 10, 0.9).needed, to_conclude(8, 10, 0.9).non_compliant) == (2, 2)
    assert to_conclude(7, 10, 0.9).needed == 0  # its upper bound, 0.89, is already below 0.9


def test_with_nothing_decided_it_counts_what_proves_compliance() -> None:
    result = to_conclude(0, 0, 0.9)
    assert (result.compliant, result.non_compliant, result.needed) == (35, 1, 35)
    assert 35 / (35 + Z95 ** 2) >= 0.9 > 34 / (34 + Z95 ** 2)  # the low bound of k of k is k / (k + z²)


def test_a_target_of_one_hundred_percent_can_never_be_proved() -> None:
    assert to_conclude(10, 10, 1.0).compliant is None and to_conclude(10, 10, 1.0).needed is None
    assert to_conclude(9, 10, 1.0).needed == 0  # one miss already concludes


def test_a_lower_confidence_needs_fewer_probes() -> None:
    assert z_for(0.95) == Z95 and z_for(0.9) == pytest.approx(1.6449, abs=1e-4)
    assert to_conclude(9, 10, 0.9, z_for(0.8)).needed < to_conclude(9, 10, 0.9).needed < \
        to_conclude(9, 10, 0.9, z_for(0.99)).needed  # type: ignore[operator]


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60), st.sampled_from([0.5, 0.7, 0.85, 0.9, 0.95]))
def test_the_search_finds_the_first_concluding_count(met: int, missed: int, target: float) -> None:
    n = met + missed
    result = to_conclude(met, n, target)

    def low(k: int) -> float:
        bounds = wilson(met + k, n + k)
        return bounds[0] if bounds else 0.0

    def high(k: int) -> float:
        bounds = wilson(met, n + k)
        return bounds[1] if bounds else 1.0

    first_met = next(k for k in range(MAX_NEEDED) if low(k) >= target)
    first_missed = next(k for k in range(MAX_NEEDED) if high(k) < target)
    assert (result.compliant, result.non_compliant) == (first_met, first_missed)


def test_compliance_rows_carry_needed() -> None:
    row = compliance("petit-palais", "email.reply", {"met": 9, "missed": 1}, 0.9, 10)
    assert row.public()["needed"] == 43 and row.status == "compliant"
    assert compliance("petit-palais", "email.reply", {}, 0.9, 10).needed == 35
    wide = compliance("petit-palais", "email.reply", {"met": 9, "missed": 1}, 0.9, 10, confidence=0.8)
    assert wide.ci_low is not None and row.ci_low is not None and wide.ci_low > row.ci_low


# ---------------------------------------------------------------- the command


async def _results(config_path: Path, site: str, commitment: str, met: int, missed: int, first: datetime) -> None:
    config = load_config(config_path)
    store = Store.open(config.database)
    channel = config.commitments[commitment].channel
    async with store.write() as tx:
        for i in range(met + missed):
            at = first + timedelta(hours=i)
            probe = NewProbe(site=site, channel=channel, planned_at=at, purpose="open")
            await tx.insert_probes([probe], at)
            await tx.save_verdict(VerdictRecord(probe.id, commitment, site, channel, "met" if i < met else "missed",
                                                at, at, None, None, None, False, None, at), exists=False)
    await store.close()


def test_plan_size_prints_what_each_site_still_needs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = paris_in(tmp_path)
    assert main(["db", "upgrade", "-c", str(config)]) == 0
    january = datetime(2026, 1, 12, 9, tzinfo=UTC)
    asyncio.run(_results(config, "petit-palais", "phone.answer", 9, 1, january))
    asyncio.run(_results(config, "musee-carnavalet", "phone.answer", 0, 3, january))
    asyncio.run(_results(config, "petit-palais", "email.reply", 45, 5, datetime(2025, 12, 1, tzinfo=UTC)))
    capsys.readouterr()

    assert main(["plan-size", "-c", str(config), "--period", "2026-Q1", "--format", "json"]) == 0
    rows = {(r["site"], r["commitment"]): r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == 14 * 5
    pp = rows[("petit-palais", "phone.answer")]  # target 0.85 there
    assert (pp["n"], pp["met"]) == (10, 9)
    assert (pp["to_compliant"], pp["to_non_compliant"], pp["needed"]) == tuple(
        getattr(to_conclude(9, 10, 0.85), k) for k in ("compliant", "non_compliant", "needed"))
    assert pp["per_month"] == 8 and pp["months"] == round(pp["needed"] / 8, 1)
    assert rows[("musee-carnavalet", "phone.answer")]["needed"] == 0
    assert rows[("petit-palais", "email.reply")]["n"] == 0  # December is not in Q1
    assert rows[("petit-palais", "email.reply")]["needed"] == to_conclude(0, 0, 0.9).needed

    assert main(["plan-size", "-c", str(config), "--period", "2026-Q1"]) == 0
    out = capsys.readouterr().out
    assert "Wilson interval at 95%" in out and "2026-Q1 (2026-01-01 to 2026-03-31 inclusive)" in out
    line = next(line for line in out.splitlines() if line.startswith("petit-palais") and "phone.answer" in line)
    assert f"  {pp['needed']}  " in line


def test_plan_size_explains_a_period_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = paris_in(tmp_path)
    assert main(["db", "upgrade", "-c", str(config)]) == 0
    assert main(["plan-size", "-c", str(config), "--period", "2026-Q5"]) == 2
    assert "Q1 to Q4" in capsys.readouterr().err
