"""Email probe: mystery emails sent through our SMTP server, answers read from the mystery mailbox.

`probe` sends, the watchers (`imap`, `maildir_watch`) read the mailbox,
`pipeline` turns what they read into recorded answers; `message`,
`classify`, `match` and `token` are the pure parts they share.
"""

from monitor.kinds import ProbeKind
from probes.email.background import observed_until, watch_mailboxes
from probes.email.probe import reconcile, run, sample

KIND = ProbeKind("email", run, reconcile, background=watch_mailboxes, observed_until=observed_until, sample=sample)
