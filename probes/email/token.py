"""Reference tokens: the short `QP-7K2M9` code each mystery email carries so that its answer can be found.

Pure code, no I/O.  A token must survive what happens to a reply on its way
back: a human quoting it (`> Réf. QP-7K2M9`), a client lower-casing or
re-encoding it (RFC 2047, quoted-printable, HTML entities, typographic
hyphens), a soft line break cutting it in two, a plus-address
(`jeanne.martin+qp-7k2m9@…`).  Success means `find_tokens` finds it in all of
those and nowhere else.
"""

from __future__ import annotations

import random
import re
import unicodedata
from email.utils import formataddr, parseaddr

PREFIX = "QP"
LENGTH = 5
# Crockford's base32 without 0 O 1 I L (read or typed one for another) and U
# (accidental words): 30 symbols, 30**5 ≈ 24 million tokens.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"

_SEPARATORS = "-_\u2010\u2011\u2012\u2013\u2014\u2015\u2212 "
_TOKEN = re.compile(
    rf"(?<![0-9A-Za-z]){PREFIX}[{re.escape(_SEPARATORS)}]?([{ALPHABET}]{{{LENGTH}}})(?![0-9A-Za-z])",
    re.IGNORECASE,
)
# Characters that mailers and word processors slip into text without a trace on screen.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
# A quoted-printable soft line break left in text that was not decoded.
_SOFT_BREAK = re.compile(r"=\r?\n")


def new_token(rng: random.Random) -> str:
    """A fresh token such as `QP-7K2M9`; pass `random.SystemRandom()` in production, a seeded Random in tests."""
    return f"{PREFIX}-" + "".join(rng.choice(ALPHABET) for _ in range(LENGTH))


def canonical_token(token: str) -> str | None:
    """`qp-7k2m9`, `QP‑7K2M9`, `QP7K2M9` → `QP-7K2M9`; None when it is not a token."""
    match = _TOKEN.fullmatch(_prepare(token.strip()))
    return f"{PREFIX}-{match.group(1).upper()}" if match else None


def find_tokens(text: str) -> list[str]:
    """Every token in the text, canonical, without repeats, in order of appearance."""
    # A dict keeps the order and makes each repeat check O(1): a list made a hostile reply full of
    # tokens cost quadratic time on the event loop (30,000 tokens: 5 s).
    found = dict.fromkeys(f"{PREFIX}-{match.group(1).upper()}" for match in _TOKEN.finditer(_prepare(text)))
    return list(found)


def strip_tokens(text: str) -> str:
    """The text with every token replaced by a space (to compare subjects without them)."""
    return _TOKEN.sub(" ", _prepare(text))


def _prepare(text: str) -> str:
    # NFKC folds full-width letters, the non-breaking hyphen and NBSP into
    # their plain forms; soft breaks and invisible characters are removed so
    # that a token cut by a mailer is whole again.
    text = _SOFT_BREAK.sub("", text)
    return unicodedata.normalize("NFKC", text).translate(_INVISIBLE)


def plus_address(addr: str, token: str) -> str:
    """`jeanne.martin@probes.example.net` + `QP-7K2M9` → `jeanne.martin+qp-7k2m9@probes.example.net`.

    A display name, if any, is kept.  Raises ValueError for an address
    without a domain or a malformed token (both come from our own config).
    """
    name, spec = parseaddr(addr)
    local, at, domain = spec.rpartition("@")
    canonical = canonical_token(token)
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {addr!r}")
    if canonical is None:
        raise ValueError(f"not a reference token: {token!r}")
    tagged = f"{local}+{canonical.lower()}@{domain}"
    return formataddr((name, tagged)) if name else tagged


def token_from_address(addr: str) -> str | None:
    """The token of a plus-address (`…+qp-7k2m9@…` → `QP-7K2M9`), or None."""
    _, spec = parseaddr(addr)
    local = (spec or addr).rpartition("@")[0]
    for tag in reversed(local.split("+")[1:]):
        canonical = canonical_token(tag)
        if canonical is not None:
            return canonical
    return None
