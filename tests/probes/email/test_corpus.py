"""One table over the whole mail corpus: each message's class, and the probe it answers."""

from __future__ import annotations

import re

import pytest

from probes.email.classify import classify
from probes.email.match import match_message
from probes.email.message import parse_message
from tests.probes.email.corpus import PROBES, Expected, corpus_files, expected_rows

ROWS = expected_rows()


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_it_classifies_and_matches_each_corpus_message(row: Expected) -> None:
    message = parse_message((corpus_files()[0].parent / row.file).read_bytes())

    classification = classify(message)
    match = match_message(message, PROBES)

    assert (classification.kind, classification.bounce or "", classification.status_code, classification.bulk) == (
        row.kind,
        row.bounce,
        row.status_code,
        row.bulk,
    )
    assert row.rule in classification.reason
    found = (match.method, match.probe_id) if match else ("", "")
    assert found == (row.method, row.probe)


def test_every_corpus_file_has_exactly_one_expectation() -> None:
    listed = [row.file for row in ROWS]

    assert sorted(listed) == [path.name for path in corpus_files()]
    assert len(listed) == len(set(listed))


def test_the_corpus_covers_the_acceptance_shapes() -> None:
    kinds = {row.kind for row in ROWS}
    methods = {row.method for row in ROWS}

    assert len(ROWS) >= 45
    assert kinds == {"human_reply", "auto_reply", "bounce", "read_receipt"}
    assert methods == {"message_id", "token", "plus_address", "correspondent", ""}
    assert {row.bounce for row in ROWS if row.kind == "bounce"} == {"permanent", "transient"}


_DOMAIN = re.compile(rb"@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_HOST = re.compile(rb"\b(?:[A-Za-z0-9-]+\.)+(?:org|net|com|fr)\b")
_PHONE = re.compile(rb"\+33[ .]?\d(?:[ .]?\d{2}){4}")


@pytest.mark.parametrize("path", [p for p in corpus_files() if p.name != "random_bytes.eml"], ids=lambda p: p.name)
def test_corpus_uses_only_reserved_domains_and_fiction_numbers(path) -> None:
    raw = path.read_bytes()
    # Quoted-printable soft breaks cut words in two; the decoded body covers base64 parts.
    data = re.sub(rb"=\r?\n", b"", raw) + parse_message(raw).body.encode()

    for domain in _DOMAIN.findall(data) + _HOST.findall(data):
        assert re.search(rb"(^|\.)example\.(org|net|com)$", domain.lower()), domain
    for number in _PHONE.findall(data):
        assert re.sub(rb"[ .]", b"", number).startswith(b"+3319900"), number
