"""Hostile input never raises: random bytes, mutated corpus messages, random text and structures."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.email.classify import Classification, classify
from probes.email.match import match_message, normalize_subject
from probes.email.message import (
    AutoHeaders,
    DeliveryStatus,
    Disposition,
    ParsedMessage,
    decode_header_value,
    parse_message,
)
from probes.email.token import find_tokens
from tests.probes.email.corpus import PROBES, corpus_files

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CORPUS = [path.read_bytes() for path in corpus_files()]


def survives(raw: bytes) -> None:
    message = parse_message(raw)
    assert isinstance(message, ParsedMessage)
    assert isinstance(classify(message), Classification)
    match_message(message, PROBES)
    match_message(message, PROBES, received_at=datetime(2026, 5, 8, tzinfo=UTC))


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(raw: bytes) -> None:
    survives(raw)


@st.composite
def mutated_corpus_message(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(0, 3))):
        mutation = draw(st.sampled_from(["flip", "truncate", "duplicate_header", "insert", "delete_line"]))
        data = MUTATIONS[mutation](draw, data)
    return bytes(data)


def _flip(draw: st.DrawFn, data: bytearray) -> bytearray:
    if data:
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= 1 << draw(st.integers(0, 7))
    return data


def _truncate(draw: st.DrawFn, data: bytearray) -> bytearray:
    return data[: draw(st.integers(0, len(data)))]


def _lines(data: bytearray) -> list[bytes]:
    return bytes(data).split(b"\n")


def _duplicate_header(draw: st.DrawFn, data: bytearray) -> bytearray:
    lines = _lines(data)
    header_end = lines.index(b"\r") if b"\r" in lines else lines.index(b"") if b"" in lines else len(lines)
    if header_end == 0:
        return data
    index = draw(st.integers(0, header_end - 1))
    copies = draw(st.integers(1, 50))
    return bytearray(b"\n".join(lines[: index + 1] + [lines[index]] * copies + lines[index + 1 :]))


def _insert(draw: st.DrawFn, data: bytearray) -> bytearray:
    position = draw(st.integers(0, len(data)))
    chunk = draw(st.sampled_from([b"\r\n\r\n", b"--", b"=?utf-8?B?", b"?=", b"=\r\n", b"\xff\xfe", b"<", b";",
                                  b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n",
                                  b"Content-Transfer-Encoding: base64\r\n", b"\x00"]))
    return data[:position] + chunk + data[position:]


def _delete_line(draw: st.DrawFn, data: bytearray) -> bytearray:
    lines = _lines(data)
    if not lines:
        return data
    del lines[draw(st.integers(0, len(lines) - 1))]
    return bytearray(b"\n".join(lines))


MUTATIONS = {"flip": _flip, "truncate": _truncate, "duplicate_header": _duplicate_header, "insert": _insert,
             "delete_line": _delete_line}


@FUZZ
@given(mutated_corpus_message())
def test_mutated_corpus_messages_never_raise(raw: bytes) -> None:
    survives(raw)


@FUZZ
@given(st.text(max_size=300))
def test_header_decoding_and_text_helpers_never_raise(text: str) -> None:
    assert isinstance(decode_header_value(text), str)
    assert isinstance(find_tokens(text), list)
    assert isinstance(normalize_subject(text), str)


_TEXT = st.text(max_size=60)
_DATES = st.none() | st.datetimes(timezones=st.just(UTC))
_STRUCTURES = st.builds(
    ParsedMessage,
    message_id=_TEXT,
    in_reply_to=st.tuples(_TEXT),
    subject=_TEXT,
    from_addr=_TEXT,
    to=st.tuples(_TEXT),
    date=_DATES,
    report_type=st.sampled_from(["", "delivery-status", "disposition-notification"]),
    headers=st.builds(AutoHeaders, auto_submitted=_TEXT, precedence=_TEXT, list_id=_TEXT, return_path=_TEXT,
                      x_failed_recipients=_TEXT),
    body=st.text(max_size=300),
    delivery_status=st.lists(st.builds(DeliveryStatus, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT), max_size=3).map(tuple),
    disposition=st.none() | st.builds(Disposition, _TEXT, _TEXT, _TEXT),
)


@FUZZ
@given(_STRUCTURES)
def test_any_parsed_message_structure_classifies_and_matches(message: ParsedMessage) -> None:
    assert classify(message).kind in ("human_reply", "auto_reply", "bounce", "read_receipt")
    match_message(message, PROBES)
