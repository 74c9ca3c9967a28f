"""Who sent a message, as far as our own receiving server can tell (pure).

Anyone can write `From: contact.mvh@example.org`.  What a forger cannot do
is make *our* receiving server (the mailbox's `trust.authserv_id`) record a
DKIM, SPF or DMARC pass for the museum's domain.  `authenticate` believes
only the `Authentication-Results` headers (RFC 8601, parsed with `authres`)
that carry our authserv-id and sit above the first `Received` header written
for a hop from outside (`trust.internal_hosts`): the same header lower down
came with the message and proves nothing.

The result is one `Auth(result, method, domain)`:

- `pass` with `dmarc` when DMARC passed for the From domain; else `dkim`
  with the signing domain when a signature aligned with the From domain
  passed; else `spf` with the envelope domain when it is aligned;
- `fail` when DMARC failed, or DKIM / SPF failed and nothing passed;
- `none` when our server said nothing we can believe (no trust settings,
  no results, or only others' results).

`local_dkim` (see `dkimcheck.py`) adds a verification of our own for
providers that add no results (`dkim: verify`).  Nothing here raises on
hostile input: an unparsable header is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any, Literal

import authres

from monitor.config.models import MailTrust

Result = Literal["pass", "fail", "none"]
LOCAL_HOSTS = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "[127.0.0.1]", "::1", "[::1]"})
MAX_HEADERS = 500


@dataclass(frozen=True)
class Auth:
    result: Result = "none"
    method: str | None = None   # dmarc | dkim | spf
    domain: str | None = None   # the domain that passed or failed

    def public(self) -> dict[str, Any]:
        return {"result": self.result, "method": self.method, "domain": self.domain}

    def passes_for(self, domain: str) -> bool:
        """Authenticated for `domain` or a domain aligned with it (organisational alignment, relaxed)."""
        return self.result == "pass" and self.domain is not None and aligned(self.domain, domain)


NONE = Auth()


def aligned(a: str, b: str) -> bool:
    """Relaxed alignment (RFC 7489): one domain is the other or a subdomain of it."""
    a, b = a.strip().strip(".").lower(), b.strip().strip(".").lower()
    return bool(a and b) and (a == b or a.endswith("." + b) or b.endswith("." + a))


def authenticate(raw: bytes, from_domain: str, trust: MailTrust | None) -> Auth:
    """What our receiving server's results say about the sender of `raw`; `none` without trust settings."""
    if trust is None or not from_domain:
        return NONE
    try:
        results = trusted_results(raw, trust)
    except Exception:  # noqa: BLE001 - a header no parser can read is not evidence of anything
        return NONE
    return judge(results, from_domain)


def trusted_results(raw: bytes, trust: MailTrust) -> list[Any]:
    """The authres results of the Authentication-Results headers our own server wrote."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:256 * 1024]).raw_items()
    ours = {trust.authserv_id.lower(), *(h.lower() for h in trust.internal_hosts), *LOCAL_HOSTS}
    found: list[Any] = []
    for count, (name, value) in enumerate(headers):
        if count >= MAX_HEADERS:
            break
        lowered = name.strip().lower()
        if lowered == "received" and not _from_ours(value, ours):
            break  # everything below came with the message from outside
        if lowered == "authentication-results":
            parsed = _parse(value)
            if parsed is not None and str(parsed.authserv_id).lower() == trust.authserv_id.lower():
                found.extend(parsed.results)
    return found


_RECEIVED_FROM = re.compile(r"^\s*from\s+(\S+)", re.IGNORECASE)


def _from_ours(value: str, ours: set[str]) -> bool:
    match = _RECEIVED_FROM.match(" ".join(str(value).split()))
    return match is None or match.group(1).strip("()").lower() in ours


def _parse(value: str) -> Any:
    text = " ".join(str(value).encode("ascii", "replace").decode().split())
    try:
        return authres.AuthenticationResultsHeader.parse_value(text)
    except Exception:  # noqa: BLE001 - authres raises its own syntax errors and others on hostile text
        return None


def judge(results: list[Any], from_domain: str) -> Auth:
    """One verdict from the believed results, DMARC first (it already checks alignment)."""
    by_method: dict[str, list[tuple[str, str]]] = {}
    for result in results:
        method = str(getattr(result, "method", "")).lower()
        by_method.setdefault(method, []).append((str(getattr(result, "result", "")).lower(), _domain_of(result)))
    dmarc = by_method.get("dmarc", [])
    for outcome, domain in dmarc:
        if outcome == "pass" and (not domain or aligned(domain, from_domain)):
            return Auth("pass", "dmarc", domain or from_domain)
    if any(outcome == "fail" for outcome, _ in dmarc):
        return Auth("fail", "dmarc", from_domain)
    for method in ("dkim", "spf"):
        for outcome, domain in by_method.get(method, []):
            if outcome == "pass" and domain and aligned(domain, from_domain):
                return Auth("pass", method, domain)
    for method in ("dkim", "spf"):
        for outcome, domain in by_method.get(method, []):
            if outcome in ("fail", "permerror", "softfail"):
                return Auth("fail", method, domain or None)
    return NONE


# The property each method names its domain with (RFC 8601 §2.7).
_DOMAIN_PROPERTIES = {"dkim": ("header.d", "header.i"), "dmarc": ("header.from",),
                      "spf": ("smtp.mailfrom", "smtp.helo")}


def _domain_of(result: Any) -> str:
    wanted = _DOMAIN_PROPERTIES.get(str(getattr(result, "method", "")).lower(), ())
    for key in wanted:
        for prop in getattr(result, "properties", ()) or ():
            if f"{prop.type}.{prop.name}".lower() == key and prop.value:
                return str(prop.value).rpartition("@")[2].strip().lower()
    return ""
