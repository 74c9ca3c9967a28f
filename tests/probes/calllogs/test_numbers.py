"""Dialled-number normalisation, caller pseudonyms and excerpt redaction."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.calllogs.numbers import NumberKind, normalise_number, pseudonymise, redact


@pytest.mark.parametrize("raw", [
    "0199001234", "01 99 00 12 34", "01.99.00.12.34", "01-99-00-12-34", "+33199001234", "+33 1 99 00 12 34",
    "0033199001234", "0033 1 99 00 12 34", "33199001234", "tel:+33199001234", "sip:0199001234@pbx.example.org",
    " 01 99 00 12 34 ",
])
def test_it_normalises_every_common_spelling_of_a_french_number_to_e164(raw: str) -> None:
    assert normalise_number(raw) == (NumberKind.public, "+33199001234")


def test_it_keeps_numbers_already_in_e164_as_they_are() -> None:
    assert normalise_number("+33199009001") == (NumberKind.public, "+33199009001")


@pytest.mark.parametrize("raw", ["101", "s", "*97", "queue-accueil", "2001"])
def test_it_recognises_pbx_extensions_as_internal(raw: str) -> None:
    assert normalise_number(raw)[0] is NumberKind.internal


@pytest.mark.parametrize("raw", ["", "   ", "01 99 ZZ 12 34", "+0123456789", "+33", "1234567", "01 99 00 12 34 56 78"])
def test_it_calls_empty_or_malformed_numbers_invalid(raw: str) -> None:
    assert normalise_number(raw)[0] is NumberKind.invalid


@given(st.integers(min_value=0, max_value=9999), st.sampled_from(["", " ", ".", "-"]))
def test_it_normalises_any_fictional_number_however_it_is_spaced(tail: int, sep: str) -> None:
    digits = f"{tail:04d}"
    national = sep.join(["01", "99", "00", digits[:2], digits[2:]])
    assert normalise_number(national) == (NumberKind.public, f"+3319900{digits}")


def test_it_drops_the_caller_when_no_pseudonym_key_is_configured() -> None:
    assert pseudonymise("0199009001", None) is None


def test_it_gives_the_same_caller_the_same_pseudonym_whatever_the_spelling() -> None:
    key = b"secret"
    assert pseudonymise("01 99 00 90 01", key) == pseudonymise("+33199009001", key)
    assert pseudonymise("0199009001", key) != pseudonymise("0199009002", key)
    assert pseudonymise("0199009001", key) != pseudonymise("0199009001", b"another key")


def test_it_gives_no_pseudonym_to_anonymous_callers_so_they_are_not_linked() -> None:
    assert pseudonymise("Anonyme", b"k") is None
    assert pseudonymise("", b"k") is None


def test_it_never_puts_the_caller_number_in_the_pseudonym() -> None:
    assert "9001" not in (pseudonymise("0199009001", b"k") or "")


def test_it_masks_phone_numbers_but_keeps_dates_and_times_readable_in_excerpts() -> None:
    text = '"0199009001","+33 1 99 00 12 34","2026-06-16 10:05:00",107,95'
    assert redact(text) == '"<num>","<num>","2026-06-16 10:05:00",107,95'


def test_it_caps_excerpt_length() -> None:
    assert len(redact("x" * 1000)) == 160
