"""Simulated museum desks for the demo: an SMTP server that answers like real ones do.

One aiosmtpd server plays both our mail provider and the museums' desks:
blind copies to our own address land in the demo Maildir; mail to a museum
gets that museum's behaviour, written back into the Maildir after a delay:

- `signed_reply` a person answers after a short while, signed with a name, a function and a number
                 (Thunderbird style): every reply-quality criterion met;
- `reply`        a person answers after a short while, signed only « L'accueil » or « Le service des
                 publics » (the answer's quality then misses `signed` and `contact`);
- `ack_then_reply` an auto-acknowledgement at once, a person later (Outlook style, no In-Reply-To);
- `silent`       never answers;
- `bounce`       the address does not exist: a DSN 5.1.1 comes back.

Everything stays on loopback and in the demo's temp dir.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import socket
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

from aiosmtpd.smtp import SMTP as SMTPServer

log = logging.getLogger("qualimon.demo")

# A reply that meets every quality criterion: greeting, an answer, closing, a person with a function, a number.
SIGNED_REPLY = ("Bonjour Madame,\n\nLe musée est ouvert du mardi au dimanche de 10 h à 18 h ; la réservation "
                "n'est pas obligatoire, sauf pour les groupes (tarif de groupe : 8 € par personne).\n\n"
                "Bien cordialement,\n\nClaire Dubois\nChargée d'accueil\nTél. 01 99 00 12 34")
REPLIES = (
    "Bonjour,\n\nMerci pour votre message. Le musée est ouvert du mardi au dimanche de 10 h à 18 h ; "
    "la réservation n'est pas obligatoire.\n\nBien cordialement,\nL'accueil",
    "Bonjour Madame,\n\nNous avons bien reçu votre demande et vous confirmons que c'est possible. "
    "N'hésitez pas à nous rappeler au besoin.\n\nCordialement,\nLe service des publics",
)
AUTO_ACK = ("Bonjour,\n\nNous accusons réception de votre message, qui sera traité dans les meilleurs délais.\n\n"
            "Ceci est un message automatique, merci de ne pas y répondre.")


class Maildir:
    """Deliver into new/ the way an MDA does: write in tmp/, then rename."""

    counter = itertools.count()

    def __init__(self, root: Path):
        self.root = root
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def deliver(self, raw: bytes) -> Path:
        name = f"{time.time():.6f}.P{os.getpid()}Q{next(self.counter)}.{socket.gethostname()}"
        tmp, final = self.root / "tmp" / name, self.root / "new" / name
        tmp.write_bytes(raw)
        os.replace(tmp, final)  # atomic: a reader never sees half a message
        return final


class DeskHandler:
    DEFAULT_DELAYS = {"reply": 25.0, "ack": 3.0, "late_reply": 70.0, "bounce": 4.0}

    def __init__(self, maildir: Maildir, own_address: str, behaviours: Mapping[str, str],
                 delays: Mapping[str, float] | None = None):
        self.maildir = maildir
        self.own_address = own_address.lower()
        self.behaviours = {k.lower(): v for k, v in behaviours.items()}
        self.delays = {**self.DEFAULT_DELAYS, **(delays or {})}
        self.tasks: set[asyncio.Task[None]] = set()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        raw = envelope.original_content or envelope.content
        probe = message_from_bytes(raw, policy=SMTP)
        for recipient in envelope.rcpt_tos:
            recipient = recipient.lower()
            if recipient == self.own_address:
                self.maildir.deliver(raw)
            else:
                self._later(self._answer(recipient, probe))
        return "250 2.0.0 Ok: queued"

    def _later(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, desk: str, probe: EmailMessage) -> None:
        behaviour = self.behaviours.get(desk, "silent")
        if behaviour == "signed_reply":
            await self._after("reply", lambda: reply(desk, probe, SIGNED_REPLY))
        elif behaviour == "reply":
            await self._after("reply", lambda: reply(desk, probe, random.choice(REPLIES)))
        elif behaviour == "ack_then_reply":
            await self._after("ack", lambda: auto_ack(desk, probe))
            await self._after("late_reply", lambda: reply(desk, probe, REPLIES[1], outlook=True))
        elif behaviour == "bounce":
            await self._after("bounce", lambda: bounce(desk, probe))

    async def _after(self, delay: str, build) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(self.delays[delay] * random.uniform(0.7, 1.3))
        self.maildir.deliver(build().as_bytes())

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _base(sender: str, probe: EmailMessage, subject: str) -> EmailMessage:
    answer = EmailMessage()
    answer["From"] = sender
    answer["To"] = probe["From"]
    answer["Subject"] = subject
    answer["Date"] = format_datetime(datetime.now(timezone.utc))
    answer["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    return answer


def reply(desk: str, probe: EmailMessage, text: str, outlook: bool = False) -> EmailMessage:
    answer = _base(desk, probe, ("RE: " if outlook else "Re: ") + str(probe["Subject"]))
    if not outlook:  # Outlook-style replies often lose the threading headers; the quoted text still matches
        answer["In-Reply-To"] = probe["Message-ID"]
        answer["References"] = probe["Message-ID"]
    quoted = "\n".join("> " + line for line in probe.get_content().splitlines())
    answer.set_content(f"{text}\n\n{quoted}\n")
    return answer


def auto_ack(desk: str, probe: EmailMessage) -> EmailMessage:
    answer = _base(desk, probe, "Réponse automatique : " + str(probe["Subject"]))
    answer["Auto-Submitted"] = "auto-replied"
    answer["In-Reply-To"] = probe["Message-ID"]
    answer.set_content(AUTO_ACK)
    return answer


def bounce(desk: str, probe: EmailMessage) -> MIMEMultipart:
    """A Postfix-style DSN: multipart/report with the failed recipient and the probe's headers."""
    dsn = MIMEMultipart("report", report_type="delivery-status")
    dsn["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.org>"
    dsn["To"] = probe["From"]
    dsn["Subject"] = "Undelivered Mail Returned to Sender"
    dsn["Date"] = format_datetime(datetime.now(timezone.utc))
    dsn["Message-ID"] = make_msgid(domain="mx.example.org")
    dsn["Auto-Submitted"] = "auto-replied"
    dsn.attach(MIMEText(f"This is the mail system at host mx.example.org.\n\n<{desk}>: host mx.example.org "
                        "said: 550 5.1.1 User unknown\n", "plain", "utf-8"))
    status = MIMEBase("message", "delivery-status")
    status.set_payload([_fields({"Reporting-MTA": "dns; mx.example.org"}),
                        _fields({"Final-Recipient": f"rfc822; {desk}", "Action": "failed", "Status": "5.1.1",
                                 "Diagnostic-Code": "smtp; 550 5.1.1 User unknown"})])
    dsn.attach(status)
    headers = MIMEBase("text", "rfc822-headers")
    headers.set_payload(probe.as_string().split("\n\n", 1)[0] + "\n")
    dsn.attach(headers)
    return dsn


def _fields(values: Mapping[str, str]) -> Message:
    block = Message()
    for name, value in values.items():
        block[name] = value
    return block


async def start_desks(handler: DeskHandler, host: str = "127.0.0.1", port: int = 0) -> asyncio.AbstractServer:
    """aiosmtpd's Controller cannot bind port 0 here; a server on the running loop can."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SMTPServer(handler, hostname="desks.example.org"), host, port)
