"""Digest credentials of one SIP exchange (a call or a registration).

Remembers which challenges were answered, so that the same realm
challenging again (without `stale=true`) reads as "credentials refused"
rather than looping, and counts nonce uses for `nc`.
"""

from __future__ import annotations

from collections.abc import Callable

from probes.phone.sip import digest

MAX_AUTH_ROUNDS = 3
REFUSED = "refused"


class Credentials:
    """Digest answers already given, so the same challenge twice means 'refused'."""

    def __init__(self, username: str | None, password: str | None, token: Callable[[int], str]):
        self._username = username
        self._password = password
        self._token = token
        self._challenges: dict[str, digest.Challenge] = {}  # header name -> challenge
        self._answered: set[tuple[str, str]] = set()  # (header name, realm)
        self._nc: dict[str, int] = {}
        self.rounds = 0

    def accept(self, status: int, values: list[str]) -> str | None:
        """Record a 401/407 challenge; None if it can be answered, else why not."""
        header = "Authorization" if status == 401 else "Proxy-Authorization"
        if not self._username or self._password is None:
            return f"the trunk asks for authentication ({status}) but no username/password is configured"
        try:
            challenge = digest.choose_challenge(values)
        except digest.DigestError as exc:
            return f"cannot answer the trunk's challenge: {exc}"
        key = (header, challenge.realm)
        if (key in self._answered and not challenge.stale) or self.rounds >= MAX_AUTH_ROUNDS:
            return REFUSED
        self._answered.add(key)
        self._challenges[header] = challenge
        self._nc[header] = 0
        self.rounds += 1
        return None

    def headers_for(self, method: str, uri: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for header, challenge in self._challenges.items():
            self._nc[header] += 1
            value = digest.authorization(
                challenge,
                username=self._username or "",
                password=self._password or "",
                method=method,
                uri=uri,
                cnonce=self._token(8),
                nc=self._nc[header],
            )
            out.append((header, value))
        return out
