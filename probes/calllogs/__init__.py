"""Call logs (CDR): the sites' real incoming calls, judged against `phone.answer` like mystery calls.

Readers turn a PBX's or an operator's call log into `CallRecord`s — one per
call as the caller lived it, queue legs merged — and `RejectedRow`s for
rows that cannot be read (never an exception).  They stream in `Batch`es,
each with a cursor to persist once its records are stored; resuming from a
cursor yields nothing already yielded, and re-reading a source from scratch
yields the same record keys, so imports are idempotent.

* `asterisk_csv.iter_master_csv` — Asterisk `Master.csv` (cdr_csv)
* `asterisk_sql.aiter_sql_cdr` — Asterisk SQL `cdr` table (MariaDB, PostgreSQL, SQLite)
* `generic_csv.iter_generic_csv` — operator exports through a `GenericCsvMapping`
* `verdict.map_to_site`, `verdict.judge_call` — which site, open or closed, met / missed / void

Parsing is pure; file and database access are thin layers (`filelines`,
`asterisk_sql.aiter_sql_cdr`).  The runner owns metrics: it counts
`Batch.rejected` by reason in `qualimon_calllog_rows_rejected_total` and
records in `qualimon_calls_total` / `qualimon_call_ring_seconds`
(source="calllog").  Caller numbers never leave this package except as a
keyed pseudonym (`numbers.pseudonymise`).
"""

from probes.calllogs.asterisk_csv import MasterCsvOptions, iter_master_csv, read_master_csv
from probes.calllogs.asterisk_sql import AsteriskSqlOptions, CdrSchemaError, aiter_sql_cdr, read_sql_cdr
from probes.calllogs.generic_csv import GenericCsvMapping, MappingError, iter_generic_csv, read_generic_csv
from probes.calllogs.numbers import normalise_number, pseudonymise
from probes.calllogs.records import (
    Batch,
    CallOutcome,
    CallRecord,
    CursorError,
    FileCursor,
    RejectedRow,
    RejectReason,
    SqlCursor,
)
from probes.calllogs.verdict import CallJudgement, judge_call, map_to_site, sites_by_number

__all__ = [
    "AsteriskSqlOptions", "Batch", "CallJudgement", "CallOutcome", "CallRecord", "CdrSchemaError", "CursorError",
    "FileCursor",
    "GenericCsvMapping", "MappingError", "MasterCsvOptions", "RejectReason", "RejectedRow", "SqlCursor",
    "aiter_sql_cdr", "iter_generic_csv", "iter_master_csv", "judge_call", "map_to_site", "normalise_number",
    "pseudonymise", "read_generic_csv", "read_master_csv", "read_sql_cdr", "sites_by_number",
]
