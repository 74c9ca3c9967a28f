"""Bearer-token access control for /api/v1 (docs/design.md §5).

Tokens come from the config (`tokens:`, each with a name and a role) and are
kept in memory only as SHA-256 digests.  A presented token is hashed and
compared with `hmac.compare_digest` against *every* known digest, without
stopping at a match, so the time taken says nothing about which tokens exist.

Roles are ordered: `viewer` (aggregates: sites, commitments, compliance,
calls) < `auditor` (+ probe history, evidence, CSV export, chain
verification, regrading) < `admin` (everything).

- no or unknown token → 401 with `WWW-Authenticate: Bearer`;
- a known token below the endpoint's role → 403 naming both roles;
- no token configured at all → every protected endpoint answers 401 saying
  the API is disabled until `tokens:` is set (there is no anonymous mode:
  probe history holds evidence from real mailboxes).

Nothing here logs or returns a presented token; a 403 names the token by its
config name only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.api.errors import ApiError
from monitor.config.models import ApiToken, Role

RANK = {Role.viewer: 1, Role.auditor: 2, Role.admin: 3}
CHALLENGE = 'Bearer realm="qualimon"'


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return RANK[self.role] >= RANK[needed]


@dataclass(frozen=True)
class _Known:
    digest: bytes
    identity: Identity


def digest(token: str) -> bytes:
    # aiohttp hands header bytes that are not UTF-8 over as lone surrogates: hash them back to those bytes
    # (such a token is simply unknown) instead of failing to encode them.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class Authenticator:
    def __init__(self, tokens: Iterable[ApiToken]):
        self._known = tuple(_Known(digest(t.token.get_secret_value()), Identity(t.name, t.role)) for t in tokens)

    @property
    def enabled(self) -> bool:
        return bool(self._known)

    def identify(self, presented: str) -> Identity | None:
        candidate = digest(presented)
        found: Identity | None = None
        for known in self._known:
            # No early exit: every digest is compared whatever matched before.
            if hmac.compare_digest(candidate, known.digest) and found is None:
                found = known.identity
        return found

    def require(self, authorization: str | None, needed: Role) -> Identity:
        """The caller's identity, or the 401/403 `ApiError` to answer with."""
        if not self.enabled:
            raise unauthorized("the API is disabled: no tokens are configured; add `tokens:` with a name, "
                               "a role and a token from ${ENV} or token_file to the config")
        presented = bearer(authorization)
        if presented is None:
            raise unauthorized("send a token: Authorization: Bearer <token>")
        identity = self.identify(presented)
        if identity is None:
            raise unauthorized("this token is not known", invalid=True)
        if not identity.may(needed):
            raise ApiError(403, "forbidden", f"this endpoint needs the {needed.value} role; token "
                                             f"{identity.name!r} has {identity.role.value}")
        return identity


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def unauthorized(detail: str, *, invalid: bool = False) -> ApiError:
    challenge = CHALLENGE + (', error="invalid_token"' if invalid else "")
    return ApiError(401, "unauthorized", detail, {"WWW-Authenticate": challenge})
