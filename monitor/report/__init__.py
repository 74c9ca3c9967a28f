"""The audit report of a period (`qualimon report --period 2026-Q3 [--site ID] -o DIR`).

`build_report(store, config, period, site, out_dir, now)` writes a
self-contained HTML report (network index, one page per site, evidence
files) and returns the index path; `parse_period` reads the period names
auditors use and raises `PeriodError` with the accepted forms otherwise.
"""

from monitor.report.build import ReportError, build_report
from monitor.report.period import Period, PeriodError, parse_period

__all__ = ["Period", "PeriodError", "ReportError", "build_report", "parse_period"]
