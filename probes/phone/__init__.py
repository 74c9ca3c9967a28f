"""Phone probe: mystery calls placed over a SIP trunk (docs/design.md §2, `phone.answer`, `phone.out_of_hours`)."""

from monitor.kinds import ProbeKind
from probes.phone.probe import reconcile, run

KIND = ProbeKind("phone", run, reconcile)
