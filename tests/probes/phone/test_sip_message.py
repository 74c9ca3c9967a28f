"""Parsing and building SIP messages: the grammar bits the caller relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.phone.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
    redacted,
    split_list,
    to_bytes,
    with_tag,
)

RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"v: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKabc;rport=5062\r\n"
    b"f: <sip:+33199001000@example.net>;tag=a1\r\n"
    b"t: <sip:+33199001234@example.net>;tag=b2\r\n"
    b"i: call-1@test\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Record-Route: <sip:p2.example.net;lr>,\r\n <sip:p1.example.net;lr>\r\n"
    b"l: 0\r\n\r\n"
)


def test_it_expands_compact_header_names_and_joins_folded_lines() -> None:
    message = parse_message(RINGING)
    assert isinstance(message, SipResponse)
    assert (message.status, message.reason) == (180, "Ringing")
    assert message.headers.get("Call-ID") == "call-1@test"
    assert message.headers.get("via") == "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKabc;rport=5062"
    assert message.headers.get_all("Record-Route") == ["<sip:p2.example.net;lr>", "<sip:p1.example.net;lr>"]


def test_it_reads_the_body_by_content_length_and_ignores_trailing_bytes() -> None:
    data = b"INVITE sip:+33199001234@example.net SIP/2.0\r\nCall-ID: x\r\nContent-Length: 3\r\n\r\nv=0junk"
    message = parse_message(data)
    assert isinstance(message, SipRequest) and message.body == b"v=0"


def test_it_refuses_a_body_shorter_than_its_content_length() -> None:
    with pytest.raises(SipParseError, match="Content-Length"):
        parse_message(b"SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nshort")


@pytest.mark.parametrize("data", [b"", b"hello\r\n\r\n", b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n", b"no blank line"])
def test_it_refuses_what_is_not_a_sip_message(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)


def test_the_stream_framer_cuts_messages_across_reads_and_skips_keepalives() -> None:
    framer = StreamFramer()
    two = RINGING + b"\r\n\r\n" + RINGING.replace(b"180 Ringing", b"200 OK")
    frames = framer.feed(two[:50]) + framer.feed(two[50:170]) + framer.feed(two[170:])
    assert [parse_message(f).status for f in frames] == [180, 200]  # type: ignore[union-attr]


def test_the_stream_framer_needs_a_content_length() -> None:
    with pytest.raises(SipParseError, match="Content-Length"):
        StreamFramer().feed(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n")


def test_it_splits_list_headers_only_outside_quotes_and_brackets() -> None:
    assert split_list('"Desk, main" <sip:a@x>, <sip:b@x;p=1,2>') == ['"Desk, main" <sip:a@x>', "<sip:b@x;p=1,2>"]


def test_it_reads_uris_name_addrs_and_vias() -> None:
    uri = parse_uri("sip:trunk.example.net:5080;transport=TCP")
    assert (uri.host, uri.port, uri.transport, uri.user) == ("trunk.example.net", 5080, "tcp", None)
    assert parse_uri("sip:alice:secret@example.net").user == "alice"  # a password in a URI is dropped
    addr = parse_name_addr('"Accueil" <sip:desk@example.net;lr>;tag=9')
    assert (addr.display, addr.uri, addr.tag) == ("Accueil", "sip:desk@example.net;lr", "9")
    assert parse_name_addr("sip:desk@example.net;tag=7").tag == "7"
    via = parse_via("SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bKx;rport")
    assert (via.transport, via.sent_by, via.branch) == ("TCP", "127.0.0.1:5062", "z9hG4bKx")


def test_it_adds_a_tag_to_a_to_header() -> None:
    assert with_tag("<sip:+33199001234@example.net>", "t1") == "<sip:+33199001234@example.net>;tag=t1"


def test_redaction_replaces_credential_values_only() -> None:
    request = SipRequest("INVITE", "sip:x@example.net", Headers((("Authorization", "Digest response=1"), ("To", "<sip:x>"))))
    masked = redacted(request, ["authorization"], "<redacted>")
    assert masked.headers.get("Authorization") == "<redacted>" and masked.headers.get("To") == "<sip:x>"


_token = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":,"), min_size=1, max_size=20)


@given(
    method=st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "REGISTER"]),
    values=st.lists(_token, min_size=1, max_size=6),
    body=st.binary(max_size=200),
)
def test_building_then_parsing_gives_the_same_request(method: str, values: list[str], body: bytes) -> None:
    headers = Headers(tuple((f"X-H{i}", v) for i, v in enumerate(values)))
    request = SipRequest(method, "sip:+33199001234@example.net", headers, body)
    again = parse_message(to_bytes(request))
    assert isinstance(again, SipRequest)
    assert (again.method, again.uri, again.body) == (method, request.uri, body)
    assert again.headers.without("Content-Length") == headers
