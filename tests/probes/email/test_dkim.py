"""Local DKIM verification (`dkim: verify`) against a real DNS server on loopback holding the signer's key."""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
from collections.abc import Iterator

import dkim
import dns.message
import dns.rrset
import pytest

from probes.email.auth import Auth
from probes.email.dkimcheck import txt_lookup, verify_dkim
from tests.support.integration import need_binary

MESSAGE = (b"From: Accueil <contact.mvh@example.org>\r\nTo: jeanne.martin@probes.example.net\r\n"
           b"Subject: RE: Horaires\r\nDate: Thu, 7 May 2026 10:15:00 +0200\r\nMessage-ID: <a1@example.org>\r\n\r\n"
           b"Bonjour, nous sommes ouverts de 10 h \xc3\xa0 18 h.\r\n")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """(private key PEM, the TXT record publishing its public half), made with the openssl command."""
    need_binary("openssl", "openssl")
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "private.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(private), "2048"], check=True,
                   capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"], check=True,
                            capture_output=True).stdout
    return private.read_bytes(), f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def serve_txt(records: dict[str, str], sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(4096)
        except TimeoutError:
            continue
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        name = str(query.question[0].name).rstrip(".")
        if name in records:
            text = records[name]
            chunks = " ".join(f'"{text[i:i + 250]}"' for i in range(0, len(text), 250))
            response.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "TXT", chunks))
        else:
            response.set_rcode(3)  # NXDOMAIN
        sock.sendto(response.to_wire(), peer)


@pytest.fixture
def resolver(keys: tuple[bytes, str]) -> Iterator[str]:
    """`host:port` of a DNS server answering s2026._domainkey.example.org with the public key."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stop = threading.Event()
    thread = threading.Thread(target=serve_txt, args=({"s2026._domainkey.example.org": keys[1]}, sock, stop),
                              daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    sock.close()


def signed(private: bytes, message: bytes = MESSAGE) -> bytes:
    signature = dkim.sign(message, b"s2026", b"example.org", private, include_headers=[b"from", b"subject", b"to"])
    return signature + message


def test_a_valid_signature_of_the_from_domain_passes(keys, resolver) -> None:
    assert verify_dkim(signed(keys[0]), "example.org", txt_lookup(resolver)) == Auth("pass", "dkim", "example.org")


def test_a_changed_body_or_another_domain_fails(keys, resolver) -> None:
    tampered = signed(keys[0]).replace(b"18 h", b"20 h")
    assert verify_dkim(tampered, "example.org", txt_lookup(resolver)).result == "fail"
    assert verify_dkim(signed(keys[0]), "example.com", txt_lookup(resolver)).result == "fail"  # not aligned


def test_no_signature_is_none_and_a_silent_resolver_is_not_the_senders_fault(keys) -> None:
    assert verify_dkim(MESSAGE, "example.org", txt_lookup("127.0.0.1:1")) == Auth()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        lookup = txt_lookup(f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.5)
        assert verify_dkim(signed(keys[0]), "example.org", lookup) == Auth()
    finally:
        silent.close()




async def test_a_reply_matched_by_its_sender_counts_when_our_own_dkim_check_passes(keys, resolver, tmp_path,
                                                                                    sqlite_template) -> None:
    from probes.email.pipeline import ReplyPipeline
    from tests.probes.email.test_pipeline import fetched, world
    from tests.support import databases

    store, pipeline, probe_id = await world(databases.fresh_sqlite(sqlite_template, tmp_path))
    mailbox = pipeline.config.mailboxes["mystery"].model_copy(
        update={"trust": None, "dkim": "verify", "dns_resolver": resolver})
    config = pipeline.config.model_copy(update={"mailboxes": {"mystery": mailbox}})
    checking = ReplyPipeline(pipeline.recorder, pipeline.probes, config, pipeline.clock)
    reply = MESSAGE.replace(b"From: Accueil <contact.mvh@example.org>", b"From: Accueil <contact.pp@example.org>")
    try:
        assert await checking.handle(fetched(reply.replace(b"a1@", b"a2@"), 1)) == "held:human_reply:correspondent"
        assert await checking.handle(fetched(signed(keys[0], reply), 2)) == "matched:human_reply:correspondent"
        [signed_row, unsigned_row] = await store.messages("mystery")
        assert unsigned_row.message.auth == {"result": "none", "method": None, "domain": None}
        assert signed_row.message.auth == {"result": "pass", "method": "dkim", "domain": "example.org"}
        assert {c: v.verdict for c, v in (await store.verdicts_for(probe_id)).items()} == {
            "email.ack": "met", "email.reply": "met"}
    finally:
        await store.close()
