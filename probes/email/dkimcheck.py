"""Our own DKIM verification (dkimpy), for a mailbox whose provider adds no Authentication-Results.

`verify_dkim(raw, from_domain, resolver)` checks every DKIM-Signature of the
message and returns `Auth("pass", "dkim", d)` for the first valid one whose
signing domain is aligned with the From domain, `Auth("fail", "dkim", d)`
when signatures exist but none verifies, and `none` without a signature.
Keys are looked up with dnspython at the mailbox's `dns_resolver`
(`host[:port]`), or the system's resolver.  It blocks on DNS: the pipeline
runs it in a thread.  It never raises: a broken signature is a failure, an
unreachable resolver leaves the result `none` (our failure says nothing of
the sender).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import dkim
import dns.exception
import dns.resolver

from probes.email.auth import NONE, Auth, aligned

log = logging.getLogger(__name__)

TxtLookup = Callable[..., "bytes | None"]
MAX_SIGNATURES = 5
_SIGNATURE = re.compile(rb"(?im)^dkim-signature\s*:")


class ResolverDown(Exception):
    """The DNS server did not answer: we cannot tell, which is not the sender's fault."""


def txt_lookup(resolver: str | None, timeout: float = 5.0) -> TxtLookup:
    """A dkimpy `dnsfunc` asking `host[:port]` (or the system's resolver) for TXT records."""
    client = dns.resolver.Resolver(configure=resolver is None)
    if resolver is not None:
        host, _, port = resolver.rpartition(":") if resolver.count(":") == 1 else (resolver, "", "")
        client.nameservers = [host]
        client.port = int(port) if port else 53
    client.lifetime = timeout

    def lookup(name: bytes, timeout: float = timeout) -> bytes | None:
        try:
            answer = client.resolve(name.decode("ascii", "replace").rstrip("."), "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise ResolverDown(type(exc).__name__) from None
        return b"".join(b"".join(record.strings) for record in answer)

    return lookup


def verify_dkim(raw: bytes, from_domain: str, lookup: TxtLookup) -> Auth:
    count = len(_SIGNATURE.findall(raw[:256 * 1024]))
    if count == 0:
        return NONE
    failed: str | None = None
    for index in range(min(count, MAX_SIGNATURES)):
        try:
            checker = dkim.DKIM(raw)
            valid = checker.verify(idx=index, dnsfunc=lookup)
            domain = (checker.domain or b"").decode("ascii", "replace").lower()
        except ResolverDown:
            log.warning("DKIM: the DNS resolver did not answer; the sender stays unauthenticated")
            return NONE
        except Exception:  # noqa: BLE001 - dkimpy raises many kinds of errors on broken signatures
            valid, domain = False, ""
        if valid and aligned(domain, from_domain):
            return Auth("pass", "dkim", domain)
        failed = failed or domain or None
    return Auth("fail", "dkim", failed)
