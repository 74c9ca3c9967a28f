"""Digest authentication against the published test vectors (RFC 2617 §3.5, RFC 7616 §3.9.1)."""

from __future__ import annotations

import pytest

from probes.phone.sip.digest import (
    DigestError,
    authorization,
    can_answer,
    choose_challenge,
    digest_response,
    parse_challenge,
)

RFC7616 = dict(
    username="Mufasa",
    password="Circle of Life",
    method="GET",
    uri="/dir/index.html",
    cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    nc=1,
)


def rfc7616_challenge(algorithm: str):
    return parse_challenge(
        'Digest realm="http-auth@example.org", qop="auth, auth-int", '
        f"algorithm={algorithm}, "
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )


def test_it_matches_the_rfc_2617_md5_example() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    response = digest_response(
        challenge, username="Mufasa", password="Circle Of Life", method="GET",
        uri="/dir/index.html", cnonce="0a4f113b", nc=1,
    )
    assert response == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_it_matches_the_rfc_7616_examples(algorithm: str, expected: str) -> None:
    assert digest_response(rfc7616_challenge(algorithm), **RFC7616) == expected  # type: ignore[arg-type]


def test_it_answers_without_qop_in_the_rfc_2069_form() -> None:
    challenge = parse_challenge('Digest realm="example.net", nonce="n"')
    header = authorization(challenge, username="u", password="p", method="INVITE", uri="sip:x@example.net", cnonce="c")
    assert "qop" not in header and "cnonce" not in header and "algorithm=MD5" in header


def test_it_prefers_sha_256_when_the_trunk_offers_both() -> None:
    chosen = choose_challenge(['Digest realm="r", nonce="1", algorithm=MD5', 'Digest realm="r", nonce="2", algorithm=SHA-256'])
    assert chosen.algorithm == "SHA-256"


def test_it_writes_every_field_a_registrar_checks() -> None:
    header = authorization(rfc7616_challenge("SHA-256"), **RFC7616)  # type: ignore[arg-type]
    for part in ('username="Mufasa"', 'realm="http-auth@example.org"', 'uri="/dir/index.html"', "qop=auth",
                 "nc=00000001", 'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"', "algorithm=SHA-256",
                 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
                 'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"'):
        assert part in header


def test_the_sess_variant_hashes_the_nonces_into_ha1() -> None:
    plain = digest_response(rfc7616_challenge("SHA-256"), **RFC7616)  # type: ignore[arg-type]
    sess = digest_response(rfc7616_challenge("SHA-256-sess"), **RFC7616)  # type: ignore[arg-type]
    assert plain != sess and len(sess) == 64


@pytest.mark.parametrize(
    "value",
    [
        'Digest realm="r", nonce="n", qop="auth-int"',
        'Digest realm="r", nonce="n", algorithm=SHA-1',
        'Basic realm="r"',
        'Digest realm="r", nonce="n", algorithm=MD5-sess',
    ],
)
def test_it_refuses_challenges_it_cannot_answer(value: str) -> None:
    assert not can_answer(parse_challenge(value))
    with pytest.raises(DigestError):
        choose_challenge([value])


def test_quoted_values_may_hold_commas_and_escaped_quotes() -> None:
    challenge = parse_challenge(r'Digest realm="a, \"b\"", nonce=xyz, stale=TRUE')
    assert (challenge.realm, challenge.nonce, challenge.stale) == ('a, "b"', "xyz", True)
