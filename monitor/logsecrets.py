"""A logging filter that removes the config's secrets from every record, in every form they travel in.

Our own code never logs a secret, but with `-v` libraries log the wire:
aioimaplib logs each IMAP command it sends at DEBUG and scrubs the password
only as given, while `LOGIN` sends it quoted (`"pa\\"ss\\\\word"`), and logs
the bytes' repr (`\\xc3\\xb6` for `ö`); SMTP AUTH sends it in base64 (PLAIN:
after `\\0user\\0`, at any alignment; LOGIN: alone); database URLs carry it
percent-encoded.  So `SecretRedactor` knows every secret of the config
(`config_secrets`) in all those forms (`secret_forms`) and replaces each
with `***` in the formatted message, the traceback and the stack of every
record that reaches a handler it is installed on.

`install()` puts the one `REDACTOR` on every handler of the root logger; the
CLI calls it right after configuring logging, and `remember(config)` each
time it loads a config.  Tests do the same through the CLI's own functions,
and `reset()` after each test, so that no test's log assertions pass because
an earlier one taught the redactor its secrets.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import traceback
import weakref
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url

MASK = "***"
MIN_DERIVED = 4  # shorter encoded fragments (a base64 core of a tiny secret) would mask ordinary text


def imap_quoted(secret: str) -> str:
    """The inside of an IMAP quoted string (RFC 3501), as aioimaplib's `quoted()` writes it."""
    return secret.replace("\\", "\\\\").replace('"', '\\"')


def _repr_forms(text: str) -> set[str]:
    """How `repr()` shows `text` inside a str and inside UTF-8 bytes, with either quote escaped or not."""
    forms = set()
    for shown in (repr(text)[1:-1], repr(text.encode("utf-8", "surrogateescape"))[2:-1]):
        forms |= {shown, shown.replace("\\'", "'"), shown.replace('"', '\\"'), shown.replace("\\'", "'")
                  .replace('"', '\\"')}
    return forms


def _base64_cores(secret: str) -> set[str]:
    """The base64 characters that depend on `secret` alone, at each of the three byte alignments."""
    data = secret.encode("utf-8", "surrogateescape")
    cores = set()
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + data).decode()
        first = -(-8 * pad // 6)                 # the first character made only of the secret's bits
        last = 8 * (pad + len(data)) // 6        # past the last one
        cores.add(encoded[first:last])
    return cores


def secret_forms(secret: str) -> set[str]:
    """Every way `secret` may show in a log line: raw, IMAP-quoted, repr, JSON, URL-encoded, base64."""
    wire = {secret, imap_quoted(secret)}
    forms = set(wire)
    for text in wire:
        forms |= _repr_forms(text)
        forms |= {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
    forms |= {quote(secret, safe=""), quote_plus(secret), quote(secret)}
    derived = {f for f in forms | _base64_cores(secret) if len(f) >= MIN_DERIVED}
    return derived | {secret}


# ---------------------------------------------------------------- secrets of a config


def config_secrets(config: BaseModel) -> set[str]:
    """Every secret value held in the config: `SecretStr` fields, and passwords inside URLs (the database)."""
    return {s for s in _walk(config) if s}


def _walk(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        yield secret
        yield from _url_password(secret)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, str) and "://" in value:
        yield from _url_password(value)


def _url_password(text: str) -> Iterator[str]:
    if "://" not in text:
        return
    try:
        password = make_url(text).password
    except Exception:  # not a database URL: nothing to find in it
        return
    if password:
        yield str(password)


# ---------------------------------------------------------------- the filter


class SecretRedactor(logging.Filter):
    """Replaces known secrets in a record's message, traceback and stack; never drops a record."""

    def __init__(self) -> None:
        super().__init__()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def clear(self) -> None:
        self._forms, self._pattern = set(), None

    def add(self, secrets: Iterable[str]) -> None:
        new = set().union(*(secret_forms(s) for s in secrets if s)) - self._forms
        if new:
            self._forms |= new
            # Longest first: a form that contains another is masked whole.
            self._pattern = re.compile("|".join(map(re.escape, sorted(self._forms, key=len, reverse=True))))

    def redact(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        record.msg, record.args = self.redact(_message(record)), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string: show its parts rather than lose the record
        return f"{record.msg!r} % {record.args!r}"


REDACTOR = SecretRedactor()
_installed: weakref.WeakSet[logging.Handler] = weakref.WeakSet()


def install(handlers: Iterable[logging.Handler] | None = None) -> None:
    """Put `REDACTOR` on `handlers` (default: every handler of the root logger), once each."""
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        if REDACTOR not in handler.filters:
            handler.addFilter(REDACTOR)
            _installed.add(handler)


def reset() -> None:
    """Take `REDACTOR` off every handler it was put on and forget every secret (between tests)."""
    for handler in list(_installed):
        handler.removeFilter(REDACTOR)
    _installed.clear()
    REDACTOR.clear()


def remember(config: BaseModel) -> None:
    """Redact this config's secrets from now on."""
    REDACTOR.add(config_secrets(config))
