"""Email probe: mystery emails sent through our SMTP server, answers read from the mystery mailbox.

`probe` sends, `pipeline` turns mailbox messages into recorded answers,
`message`/`classify`/`match`/`token` are the pure parts they share.
"""

from monitor.kinds import ProbeKind
from probes.email.probe import reconcile, run

KIND = ProbeKind("email", run, reconcile)
