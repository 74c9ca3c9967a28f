"""Email probes: mystery emails sent to sites, and the answers found in the mystery mailbox."""
