"""Sender authentication: only our receiving server's results, above the hop from outside, are believed."""

from __future__ import annotations

from monitor.config.models import MailTrust
from probes.email.auth import Auth, aligned, authenticate

TRUST = MailTrust(authserv_id="mx.probes.example.net")
OURS = ("Authentication-Results: mx.probes.example.net; dkim=pass header.d=example.org header.s=s1;\r\n"
        " spf=pass smtp.mailfrom=example.org; dmarc=pass header.from=example.org\r\n")
OUTSIDE = ("Received: from mail.example.org (mail.example.org [192.0.2.25]) by mx.probes.example.net;"
           " Thu, 7 May 2026\r\n")
INTERNAL = "Received: from mx.probes.example.net by imap.probes.example.net with LMTP; Thu, 7 May 2026\r\n"
BODY = "From: Accueil <contact.mvh@example.org>\r\nSubject: RE: Horaires\r\n\r\nBonjour.\r\n"


def result(headers: str, trust: MailTrust | None = TRUST, domain: str = "example.org") -> Auth:
    return authenticate((headers + BODY).encode(), domain, trust)


def test_our_servers_dmarc_pass_above_the_outside_hop_is_believed() -> None:
    assert result(INTERNAL + OURS + OUTSIDE) == Auth("pass", "dmarc", "example.org")


def test_the_same_results_below_the_outside_hop_came_with_the_message_and_prove_nothing() -> None:
    assert result(OUTSIDE + OURS) == Auth()


def test_another_servers_results_are_ignored() -> None:
    assert result(OURS.replace("mx.probes.example.net", "mx.example.com") + OUTSIDE) == Auth()


def test_without_trust_settings_nothing_is_believed() -> None:
    assert result(OURS + OUTSIDE, trust=None) == Auth()


def test_dmarc_fail_is_a_failure_and_dkim_alone_passes_when_aligned() -> None:
    failing = "Authentication-Results: mx.probes.example.net; dmarc=fail header.from=example.org\r\n"
    assert result(failing + OUTSIDE).result == "fail"
    dkim = "Authentication-Results: mx.probes.example.net; dkim=pass header.d=mail.example.org\r\n"
    assert result(dkim + OUTSIDE) == Auth("pass", "dkim", "mail.example.org")
    unaligned = "Authentication-Results: mx.probes.example.net; dkim=pass header.d=example.com\r\n"
    assert result(unaligned + OUTSIDE) == Auth()


def test_a_header_no_parser_can_read_is_ignored_and_never_raises() -> None:
    assert result("Authentication-Results: mx.probes.example.net; dkim=\x00\xff((\r\n" + OUTSIDE) == Auth()
    assert authenticate(b"\xff\xfe\x00garbage", "example.org", TRUST) == Auth()


def test_alignment_is_relaxed_to_subdomains() -> None:
    assert aligned("mail.example.org", "example.org") and aligned("example.org", "EXAMPLE.ORG.")
    assert not aligned("example.org.evil.example.com", "example.org") and not aligned("", "example.org")
