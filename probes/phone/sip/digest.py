"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).

Pure functions: parse a `WWW-Authenticate`/`Proxy-Authenticate` challenge,
pick the strongest one we can answer, and compute the `Authorization`/
`Proxy-Authorization` value.  Supports MD5, SHA-256 and SHA-512-256, their
`-sess` variants, and qop `auth` (or no qop, the RFC 2069 form).  `auth-int`
alone is refused, since trunks do not ask for it on INVITE.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "SHA-512-256": lambda data: hashlib.new("sha512_256", data).hexdigest(),
}
# Strongest first: RFC 8760 §2.4 asks the client to use the first it supports
# in the server's order of preference, and servers list the strongest first;
# we rank ourselves so that a server listing MD5 first still gets SHA-256.
_PREFERENCE = ("SHA-512-256", "SHA-256", "MD5")


class DigestError(ValueError):
    """A challenge that cannot be answered."""


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def nonce(self) -> str:
        return self.params.get("nonce", "")

    @property
    def algorithm(self) -> str:
        return self.params.get("algorithm", "MD5")

    @property
    def stale(self) -> bool:
        return self.params.get("stale", "").lower() == "true"

    @property
    def qops(self) -> tuple[str, ...]:
        raw = self.params.get("qop")
        return tuple(q.strip().lower() for q in raw.split(",")) if raw else ()


def parse_challenge(value: str) -> Challenge:
    scheme, _, rest = value.strip().partition(" ")
    return Challenge(scheme, _parse_auth_params(rest))


def _parse_auth_params(text: str) -> dict[str, str]:
    """'realm="a, b", nonce=x, qop="auth,auth-int"' -> dict (names lowercased)."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        name = text[i:eq].strip().lower()
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        value, i = _read_value(text, i)
        params[name] = value
    return params


def _read_value(text: str, i: int) -> tuple[str, int]:
    if i < len(text) and text[i] == '"':
        out: list[str] = []
        i += 1
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            out.append(text[i])
            i += 1
        return "".join(out), i + 1
    end = text.find(",", i)
    end = len(text) if end < 0 else end
    return text[i:end].strip(), end


def can_answer(challenge: Challenge) -> bool:
    base = _base_algorithm(challenge.algorithm)
    if challenge.scheme.lower() != "digest" or base not in _HASHES or not challenge.nonce:
        return False
    if base == "SHA-512-256" and "sha512_256" not in hashlib.algorithms_available:
        return False
    if challenge.qops and "auth" not in challenge.qops:
        return False  # auth-int only
    sess = challenge.algorithm.upper().endswith("-SESS")
    return not (sess and not challenge.qops)  # -sess needs a cnonce, hence a qop


def choose_challenge(values: Iterable[str]) -> Challenge:
    """The strongest answerable challenge among the header values of one response."""
    answerable = [c for c in map(parse_challenge, values) if can_answer(c)]
    if not answerable:
        raise DigestError("no Digest challenge with MD5, SHA-256 or SHA-512-256 and qop=auth that we can answer")
    return min(answerable, key=lambda c: _PREFERENCE.index(_base_algorithm(c.algorithm)))


def _base_algorithm(algorithm: str) -> str:
    upper = algorithm.upper()
    return upper.removesuffix("-SESS")


def digest_response(
    challenge: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int,
) -> str:
    """The `response` value (RFC 7616 §3.4.1)."""
    h = _HASHES[_base_algorithm(challenge.algorithm)]

    def hash_of(text: str) -> str:
        return h(text.encode("utf-8"))

    ha1 = hash_of(f"{username}:{challenge.realm}:{password}")
    if challenge.algorithm.upper().endswith("-SESS"):
        ha1 = hash_of(f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = hash_of(f"{method}:{uri}")
    if not challenge.qops:
        return hash_of(f"{ha1}:{challenge.nonce}:{ha2}")
    return hash_of(f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")


def authorization(
    challenge: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
) -> str:
    """The full `Authorization`/`Proxy-Authorization` value answering `challenge`."""
    response = digest_response(
        challenge, username=username, password=password, method=method, uri=uri, cnonce=cnonce, nc=nc
    )
    parts = [
        f'username="{_quote(username)}"',
        f'realm="{_quote(challenge.realm)}"',
        f'nonce="{_quote(challenge.nonce)}"',
        f'uri="{_quote(uri)}"',
        f'response="{response}"',
        f"algorithm={challenge.algorithm}",
    ]
    if challenge.qops:
        parts += [f'cnonce="{cnonce}"', "qop=auth", f"nc={nc:08x}"]
    if "opaque" in challenge.params:
        parts.append(f'opaque="{_quote(challenge.params["opaque"])}"')
    return "Digest " + ", ".join(parts)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
