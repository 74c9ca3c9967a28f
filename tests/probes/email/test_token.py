"""Reference tokens: generation, finding them in mangled text, plus-addresses."""

from __future__ import annotations

import random
import re

import pytest

from probes.email.token import (
    ALPHABET,
    canonical_token,
    find_tokens,
    new_token,
    plus_address,
    strip_tokens,
    token_from_address,
)


def test_it_makes_tokens_from_the_unambiguous_alphabet() -> None:
    rng = random.Random(7)
    tokens = {new_token(rng) for _ in range(2000)}

    assert all(re.fullmatch(rf"QP-[{ALPHABET}]{{5}}", token) for token in tokens)
    assert not set("01ILOU") & set(ALPHABET)
    assert len(tokens) > 1990  # 24 million possibilities: collisions are rare


def test_the_same_seed_gives_the_same_tokens() -> None:
    assert new_token(random.Random(1)) == new_token(random.Random(1))


@pytest.mark.parametrize(
    "text",
    [
        "RE: Horaires — Réf. QP-7K2M9",
        "> Réf. QP-7K2M9",
        ">> > réf. qp-7k2m9",
        "Réf.\u00a0QP\u20117K2M9",  # NBSP and non-breaking hyphen (Outlook autocorrect)
        "QP\u20137K2M9",  # en dash
        "QP_7K2M9",
        "QP 7K2M9",
        "QP7K2M9",
        "ＱＰ－７Ｋ２Ｍ９",  # full width
        "QP-7K=\r\n2M9",  # quoted-printable soft break left in
        "QP-7K\u00ad2M9",  # soft hyphen
        "QP-7K\u200b2M9",  # zero-width space
        "jeanne.martin+qp-7k2m9@probes.example.net",
        "(QP-7K2M9)",
    ],
)
def test_it_finds_the_token_however_it_was_mangled(text: str) -> None:
    assert find_tokens(text) == ["QP-7K2M9"]


@pytest.mark.parametrize("text", ["QP-7K2M9X", "XQP-7K2M9", "QP-7K2M", "QP-7K2M0", "QP-ILOU1", "EQP-ABCDE", ""])
def test_it_does_not_find_tokens_where_there_are_none(text: str) -> None:
    assert find_tokens(text) == []


def test_it_lists_each_token_once_in_order() -> None:
    assert find_tokens("QP-R4TWX then qp-7k2m9 then QP-R4TWX") == ["QP-R4TWX", "QP-7K2M9"]


def test_canonical_token_accepts_only_a_whole_token() -> None:
    assert canonical_token(" qp-7k2m9 ") == "QP-7K2M9"
    assert canonical_token("Réf. QP-7K2M9") is None


def test_strip_tokens_removes_them() -> None:
    assert strip_tokens("Horaires — Réf. QP-7K2M9").split() == ["Horaires", "—", "Réf."]


def test_plus_address_round_trips() -> None:
    tagged = plus_address("jeanne.martin@probes.example.net", "QP-7K2M9")

    assert tagged == "jeanne.martin+qp-7k2m9@probes.example.net"
    assert token_from_address(tagged) == "QP-7K2M9"
    assert token_from_address("Jeanne <JEANNE.MARTIN+QP-7K2M9@probes.example.net>") == "QP-7K2M9"


def test_plus_address_keeps_the_display_name() -> None:
    tagged = plus_address("Jeanne Martin <jeanne.martin@probes.example.net>", "QP-7K2M9")

    assert tagged == "Jeanne Martin <jeanne.martin+qp-7k2m9@probes.example.net>"


def test_an_address_without_a_token_tag_has_no_token() -> None:
    assert token_from_address("jeanne.martin@probes.example.net") is None
    assert token_from_address("jeanne.martin+newsletter@probes.example.net") is None
    assert token_from_address("") is None


@pytest.mark.parametrize(("addr", "token"), [("no-domain", "QP-7K2M9"), ("a@example.org", "QP-0000")])
def test_plus_address_refuses_bad_input(addr: str, token: str) -> None:
    with pytest.raises(ValueError):
        plus_address(addr, token)
