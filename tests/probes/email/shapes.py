"""Reply shapes as real mail clients and servers build them, each with the bucket and method it must get.

Each shape is a function of the mystery email as it was sent (`Sent`) that
returns the raw bytes a desk's client, a ticketing system, a colleague or a
mail server would deliver to our mailbox — headers, MIME structure, quoting
conventions and charsets as those clients produce them:

- Outlook desktop (HTML with `divRplyFwdMsg`, `Thread-Index`, with and
  without In-Reply-To), Outlook on the web (`x_divRplyFwdMsg`), Outlook
  mobile, the French « -----Message d'origine----- » and « De : / Envoyé : »
  blocks;
- Gmail (`gmail_quote`, Android top-posting), Apple Mail and iOS
  (`blockquote type="cite"`, « Envoyé de mon iPhone »), Thunderbird
  (format=flowed, « Le … a écrit : »), Samsung Email, French webmails;
- a legacy client in ISO-8859-1 / windows-1252 with a new subject, HTML-only
  replies, our text re-wrapped at 72 columns, quoted-printable soft breaks;
- a ticketing system that rewrites the subject (« [#1234] »), a colleague
  forwarding (« TR: ») and an internal « RE: TR: TR: » chain, a forward as
  attachment;
- raw UTF-8 and undecodable bytes in Message-ID / In-Reply-To / From;
- delivery reports, read receipts, out-of-office, newsletters, spam;
- and the forgeries: a reply and a bounce from someone who merely wrote the
  site's address in `From:`.

`AUTH` is what our receiving server (`mx.probes.example.net`) writes on top
of a message whose sender it authenticated; `FORGED_AUTH` is the same
header carried *inside* a message from outside (below the `Received` of the
hop that brought it), which must not be believed.
"""

from __future__ import annotations

import base64
import html
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

DESK_NAME = "Accueil Maison de Victor Hugo"
MX = "mx.probes.example.net"
SITE_DOMAIN = "example.org"


@dataclass(frozen=True)
class Sent:
    """The mystery email a shape answers, as it left us."""

    subject: str
    body: str
    message_id: str
    sender: str        # "Jeanne Martin <jeanne.martin@probes.example.net>"
    date: str
    desk: str          # the site's published address it went to

    @classmethod
    def of(cls, message: EmailMessage) -> Sent:
        return cls(str(message["Subject"]), message.get_content(), str(message["Message-ID"]),
                   str(message["From"]), str(message["Date"]), str(message["To"]))

    @property
    def address(self) -> str:
        return self.sender.split("<")[-1].rstrip(">")


@dataclass(frozen=True)
class Shape:
    name: str
    build: Callable[[Sent, int], bytes]   # (the probe answered, a number unique to this message)
    bucket: str
    method: str | None = None             # the match method when it answers a probe
    kind: str | None = None               # human_reply, auto_reply, bounce, read_receipt
    reason: str | None = None             # for unrelated messages
    answers: bool = True                  # False: the message answers no probe (its probe is a decoy)


# ---------------------------------------------------------------- header and body helpers


def now() -> str:
    return format_datetime(datetime.now(UTC))


def received(host: str = "mail.example.org", ip: str = "192.0.2.25") -> str:
    return (f"Received: from {host} ({host} [{ip}])\r\n\tby {MX} (Postfix) with ESMTPS id 4Qx7Kd1z2Bz9sRq\r\n"
            f"\tfor <jeanne.martin@probes.example.net>; {now()}\r\n")


def auth(domain: str = SITE_DOMAIN, result: str = "pass") -> str:
    return (f"Authentication-Results: {MX};\r\n\tdkim={result} header.d={domain} header.s=s2026;\r\n"
            f"\tspf={result} smtp.mailfrom={domain};\r\n\tdmarc={result} header.from={domain}\r\n")


def delivered(outside: bool = True, authenticated: bool = False, domain: str = SITE_DOMAIN) -> str:
    """The trace headers our server puts on top: its results (when it authenticated), then its Received."""
    return (auth(domain) if authenticated else "") + (received() if outside else "")


def forged() -> str:
    """Our authserv-id in a header that came with the message, below the hop from outside: worthless."""
    return received("relay.example.com", "198.51.100.7") + auth()


def quoted(body: str, prefix: str = "> ") -> str:
    return "\n".join((prefix + line).rstrip() for line in body.splitlines())


def wrapped(body: str, width: int = 72, prefix: str = "> ") -> str:
    lines: list[str] = []
    for paragraph in body.splitlines():
        lines += textwrap.wrap(paragraph, width - len(prefix)) or [""]
    return "\n".join((prefix + line).rstrip() for line in lines)


def attribution(sent: Sent) -> str:
    return f"Le jeu. 7 mai 2026 à 10:15, {sent.sender} a écrit :"


def outlook_block(sent: Sent, french: bool = True) -> str:
    if french:
        return (f"De : Jeanne Martin <{sent.address}>\nEnvoyé : jeudi 7 mai 2026 10:15\nÀ : {sent.desk}\n"
                f"Objet : {sent.subject}")
    return (f"From: Jeanne Martin <{sent.address}>\nSent: Thursday, May 7, 2026 10:15 AM\nTo: {sent.desk}\n"
            f"Subject: {sent.subject}")


def html_paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(line) or '&nbsp;'}</p>" for line in text.splitlines())


def headers(fields: dict[str, str]) -> str:
    return "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value)


def message(fields: dict[str, str], body: bytes, content_type: str = 'text/plain; charset="utf-8"',
            cte: str = "8bit", trace: str = "") -> bytes:
    head = trace + headers({"MIME-Version": "1.0", **fields, "Content-Type": content_type,
                            "Content-Transfer-Encoding": cte})
    return head.encode("utf-8") + b"\r\n" + body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def alternative(fields: dict[str, str], text: str, markup: str, trace: str = "", n: int = 0) -> bytes:
    boundary = f"_000_PAXPR10MB5136{n:04d}EURP_"
    body = (f"--{boundary}\nContent-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: base64\n\n"
            f"{base64.encodebytes(text.encode()).decode()}\n--{boundary}\n"
            f"Content-Type: text/html; charset=\"utf-8\"\nContent-Transfer-Encoding: base64\n\n"
            f"{base64.encodebytes(markup.encode()).decode()}\n--{boundary}--\n")
    return message(fields, body.encode(), f'multipart/alternative; boundary="{boundary}"', "7bit", trace)


def base(sent: Sent, n: int, subject: str, *, threaded: bool = True, sender: str | None = None,
         domain: str = SITE_DOMAIN, references: bool = True) -> dict[str, str]:
    fields = {"From": sender or f"{DESK_NAME} <{sent.desk}>", "To": sent.sender, "Subject": subject, "Date": now(),
              "Message-ID": make_msgid(f"shape{n}", domain=domain)}
    if threaded:
        fields["In-Reply-To"] = sent.message_id
        if references:
            fields["References"] = sent.message_id
    return fields


ANSWER = "Bonjour Madame,\n\nNous sommes ouverts de 10 h à 18 h, sans réservation.\n\nBien cordialement,\nL'accueil"


# ---------------------------------------------------------------- Outlook


def outlook_desktop_threaded(sent: Sent, n: int) -> bytes:
    fields = base(sent, n, f"RE: {sent.subject}") | {
        "Thread-Topic": sent.subject, "Thread-Index": "AQHa8xJ0k2mV7s1uX0u4YQ==", "X-MS-Has-Attach": "",
        "Content-Language": "fr-FR", "X-MS-Exchange-Organization-SCL": "-1"}
    text = f"{ANSWER}\n\n{'_' * 32}\n{outlook_block(sent)}\n\n{sent.body}"
    markup = (f'<html><head><style>p.MsoNormal{{margin:0}}</style></head><body lang="FR">'
              f'<div class="WordSection1">{html_paragraphs(ANSWER)}</div><hr style="display:inline-block;width:98%">'
              f'<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>De :</b> Jeanne Martin '
              f'&lt;{sent.address}&gt;<br><b>Envoyé :</b> jeudi 7 mai 2026 10:15<br><b>À :</b> {sent.desk}<br>'
              f'<b>Objet :</b> {html.escape(sent.subject)}</font><div>&nbsp;</div></div>'
              f'<div>{html_paragraphs(sent.body)}</div></body></html>')
    return alternative(fields, text, markup, n=n)


def outlook_desktop_new_subject(sent: Sent, n: int) -> bytes:
    """Thread-Index but no In-Reply-To: the desk wrote a new message and pasted ours below."""
    fields = base(sent, n, "Informations pratiques", threaded=False) | {"Thread-Index": "AdrxQ2ZkM1a9bqfTRnOQ8w=="}
    text = f"{ANSWER}\n\n{'_' * 32}\n{outlook_block(sent)}\n\n{sent.body}"
    markup = (f"<html><body>{html_paragraphs(ANSWER)}<div id=\"divRplyFwdMsg\"><b>De :</b> Jeanne Martin<br>"
              f"<b>Envoyé :</b> jeudi 7 mai 2026 10:15<br><b>Objet :</b> {html.escape(sent.subject)}</div>"
              f"{html_paragraphs(sent.body)}</body></html>")
    return alternative(fields, text, markup, n=n)


def owa_html_only(sent: Sent, n: int) -> bytes:
    fields = base(sent, n, f"RE: {sent.subject}", threaded=False) | {
        "X-MS-Exchange-Transport-CrossTenantHeadersStamped": "AM9PR10MB4040"}
    markup = (f'<html><body><div dir="ltr">{html_paragraphs(ANSWER)}</div><hr><div id="x_divRplyFwdMsg" dir="ltr">'
              f'<font style="font-size:11pt"><b>De :</b> Jeanne Martin &lt;{sent.address}&gt;<br><b>Envoyé :</b> '
              f'jeudi 7 mai 2026 10:15<br><b>Objet :</b> {html.escape(sent.subject)}</font></div>'
              f'<div class="x_BodyFragment">{html_paragraphs(sent.body)}</div></body></html>')
    return message(fields, markup.encode(), 'text/html; charset="utf-8"')


def outlook_message_d_origine(sent: Sent, n: int) -> bytes:
    text = f"{ANSWER}\n\n-----Message d'origine-----\n{outlook_block(sent)}\n\n{sent.body}"
    return message(base(sent, n, "Votre demande d'informations", threaded=False), text.encode())


def outlook_english_original_message(sent: Sent, n: int) -> bytes:
    text = (f"Hello,\n\nPlease find our answer below.\n\n-----Original Message-----\n{outlook_block(sent, False)}"
            f"\n\n{sent.body}")
    return message(base(sent, n, "Your request", threaded=False), text.encode())


def outlook_mobile(sent: Sent, n: int) -> bytes:
    text = (f"Bonjour, c'est possible sans réservation.\n\nObtenir Outlook pour iOS\n{'_' * 32}\n"
            f"{outlook_block(sent)}\n\n{sent.body}")
    return message(base(sent, n, f"RE: {sent.subject}", threaded=False) | {"X-Mailer": ""}, text.encode())


def outlook_tr_chain(sent: Sent, n: int) -> bytes:
    """Forwarded twice inside the museum (« TR: TR: »), answered by the last colleague, quoting the chain."""
    colleague = ("De : Marc Petit <marc.petit@example.org>\nEnvoyé : vendredi 8 mai 2026 09:02\n"
                 f"À : Service des publics <publics.mvh@example.org>\nObjet : TR: {sent.subject}\n\nPeux-tu répondre ?")
    text = (f"{ANSWER}\n\n{'_' * 32}\n{colleague}\n\n{'_' * 32}\nDe : Accueil <{sent.desk}>\nEnvoyé : jeudi 7 mai 2026 "
            f"11:00\nÀ : Marc Petit\nObjet : TR: {sent.subject}\n\n{'_' * 32}\n{outlook_block(sent)}\n\n{sent.body}")
    return message(base(sent, n, f"RE: TR: TR: {sent.subject}", threaded=False,
                        sender="Service des publics <publics.mvh@example.org>"), text.encode())


# ---------------------------------------------------------------- Gmail, Apple, Thunderbird, mobiles


def gmail_threaded(sent: Sent, n: int) -> bytes:
    fields = base(sent, n, f"Re: {sent.subject}", domain="mail.gmail.com")
    text = f"{ANSWER}\n\n{attribution(sent)}\n\n{quoted(sent.body)}"
    markup = (f'<div dir="ltr">{html_paragraphs(ANSWER)}</div><br><div class="gmail_quote"><div dir="ltr" '
              f'class="gmail_attr">{html.escape(attribution(sent))}<br></div><blockquote class="gmail_quote" '
              f'style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204)">'
              f"{html_paragraphs(sent.body)}</blockquote></div>")
    return alternative(fields, text, markup, n=n)


def gmail_android_new_subject(sent: Sent, n: int) -> bytes:
    """Top-posted from the Gmail app, the subject rewritten, threading headers lost by a forward-and-reply."""
    text = f"Oui bien sûr, venez quand vous voulez.\n\n{attribution(sent)}\n\n{quoted(sent.body)}"
    markup = (f'<div dir="auto">Oui bien sûr, venez quand vous voulez.</div><br><div class="gmail_quote">'
              f'<div class="gmail_attr">{html.escape(attribution(sent))}</div><blockquote class="gmail_quote">'
              f"{html_paragraphs(sent.body)}</blockquote></div>")
    return alternative(base(sent, n, "Votre visite", threaded=False), text, markup, n=n)


def apple_mail_threaded(sent: Sent, n: int) -> bytes:
    fields = base(sent, n, f"Re: {sent.subject}") | {"X-Mailer": "Apple Mail (2.3774.500.171.1.1)"}
    markup = (f'<html><body style="overflow-wrap: break-word;">{html_paragraphs(ANSWER)}<div><br><blockquote '
              f'type="cite"><div>{html.escape(attribution(sent))}</div><br><div>{html_paragraphs(sent.body)}'
              f"</div></blockquote></div></body></html>")
    return alternative(fields, f"{ANSWER}\n\n{attribution(sent)}\n\n{quoted(sent.body)}", markup, n=n)


def apple_mail_unthreaded(sent: Sent, n: int) -> bytes:
    markup = (f"<html><body>{html_paragraphs(ANSWER)}<blockquote type=\"cite\"><div>{html.escape(attribution(sent))}"
              f"</div>{html_paragraphs(sent.body)}</blockquote></body></html>")
    return message(base(sent, n, "Horaires", threaded=False) | {"X-Mailer": "Apple Mail (2.3774.500.171.1.1)"},
                   markup.encode(), 'text/html; charset="utf-8"')


def ios_top_posted(sent: Sent, n: int) -> bytes:
    text = (f"Bonjour, oui c'est accessible.\n\nEnvoyé de mon iPhone\n\n> Le 7 mai 2026 à 10:15, Jeanne Martin "
            f"<{sent.address}> a écrit :\n> \n{quoted(sent.body)}")
    return message(base(sent, n, f"Re: {sent.subject}", threaded=False) | {"X-Mailer": "iPhone Mail (21E236)"},
                   text.encode())


def thunderbird_flowed(sent: Sent, n: int) -> bytes:
    text = f"{ANSWER}\n\n{attribution(sent)}\n{wrapped(sent.body, 72)}"
    fields = base(sent, n, f"Re: {sent.subject}") | {
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.12.2"}
    return message(fields, text.encode(), 'text/plain; charset="UTF-8"; format=flowed')


def thunderbird_unthreaded(sent: Sent, n: int) -> bytes:
    text = f"{ANSWER}\n\n{attribution(sent)}\n{wrapped(sent.body, 72)}"
    return message(base(sent, n, "Question horaires", threaded=False), text.encode(),
                   'text/plain; charset="UTF-8"; format=flowed')


def samsung_email(sent: Sent, n: int) -> bytes:
    text = (f"Bonjour, nous vous attendons.\n\nEnvoyé depuis mon smartphone Samsung Galaxy.\n\n"
            f"-------- Message d'origine --------\nDe : Jeanne Martin <{sent.address}>\nDate : 07/05/2026 10:15 "
            f"(GMT+01:00)\nÀ : {sent.desk}\nObjet : {sent.subject}\n\n{sent.body}")
    return message(base(sent, n, f"RE: {sent.subject}", threaded=False), text.encode())


def french_webmail(sent: Sent, n: int) -> bytes:
    text = (f"Bonjour,\nc'est noté.\n\n> Message du 07/05/26 10:15\n> De : \"Jeanne Martin\" <{sent.address}>\n"
            f"> A : {sent.desk}\n> Objet : {sent.subject}\n>\n{quoted(sent.body)}")
    return message(base(sent, n, "Re: votre message", threaded=False), text.encode())


def references_only(sent: Sent, n: int) -> bytes:
    fields = base(sent, n, f"Re: {sent.subject}")
    del fields["In-Reply-To"]
    return message(fields, f"{ANSWER}\n".encode())


# ---------------------------------------------------------------- charsets, wrapping, encodings


def legacy_latin1_new_subject(sent: Sent, n: int) -> bytes:
    text = f"Bonjour,\n\nVoici nos réponses, à très bientôt.\n\n{wrapped(sent.body, 76)}"
    return message(base(sent, n, "Réponse à votre courrier", threaded=False) | {"X-Mailer": "Eudora 7.1"},
                   text.encode("latin-1", "replace"), 'text/plain; charset="iso-8859-1"')


def windows1252_quoted_printable(sent: Sent, n: int) -> bytes:
    import quopri

    text = f"Bonjour,\n\nL’accueil vous répond « oui ».\n\n{quoted(sent.body)}"
    body = quopri.encodestring(text.encode("cp1252", "replace"))
    return message(base(sent, n, "RE: votre demande", threaded=False), body, 'text/plain; charset="windows-1252"',
                   "quoted-printable")


def html_only_base64(sent: Sent, n: int) -> bytes:
    markup = (f"<html><body><p>Bonjour,</p><p>Oui, c'est possible.</p><blockquote>{html_paragraphs(sent.body)}"
              f"</blockquote></body></html>")
    return message(base(sent, n, "Re:", threaded=False), base64.encodebytes(markup.encode()),
                   'text/html; charset="utf-8"', "base64")


def rewrapped_72(sent: Sent, n: int) -> bytes:
    return message(base(sent, n, "Votre mail", threaded=False),
                   f"Bonjour,\n\nBien reçu.\n\n{wrapped(sent.body, 72)}\n".encode())


def indented_quote(sent: Sent, n: int) -> bytes:
    """Quoted by indentation only, as some webmails do in plain text."""
    return message(base(sent, n, "Suite à votre message", threaded=False),
                   f"Bonjour,\n\nC'est possible.\n\n{wrapped(sent.body, 70, prefix='    ')}\n".encode())


def partial_quote(sent: Sent, n: int) -> bytes:
    """Only the first lines of our request are quoted (a ticket excerpt, a trimmed reply)."""
    words = sent.body.split()
    excerpt = " ".join(words[: max(25, len(words) * 2 // 3)])
    return message(base(sent, n, "Re: demande", threaded=False), f"Bonjour,\n\nOui.\n\n{quoted(excerpt)}\n".encode())


# ---------------------------------------------------------------- ticketing, forwards


def ticketing_acknowledgement(sent: Sent, n: int) -> bytes:
    text = (f"Bonjour,\n\nVotre demande a bien été enregistrée sous le numéro 1234. Nous vous répondrons sous 5 "
            f"jours ouvrés.\n\n--- Votre message ---\n{sent.body}")
    fields = base(sent, n, f"[#1234] Demande enregistrée : {sent.subject}", threaded=False,
                  sender="Accueil MVH <noreply.tickets@example.org>") | {
        "Auto-Submitted": "auto-generated", "X-Ticket-ID": "1234"}
    return message(fields, text.encode())


def ticketing_agent_reply(sent: Sent, n: int) -> bytes:
    text = (f"## Répondez au-dessus de cette ligne ##\n\n{ANSWER}\n\n--\nTicket #1234\n\n"
            f"Jeanne Martin, le 7 mai 2026 10:15 :\n{sent.body}")
    return message(base(sent, n, "[#1234] Votre demande", threaded=False,
                        sender="Accueil MVH <support.tickets@example.org>"), text.encode())


def colleague_forward(sent: Sent, n: int) -> bytes:
    """A colleague who got our message forwarded (« TR: ») answers from her own address."""
    text = (f"Bonjour Madame,\n\nMa collègue de l'accueil m'a transmis votre message : c'est possible.\n\n"
            f"-------- Message transféré --------\nSujet : {sent.subject}\nDate : {sent.date}\n"
            f"De : Jeanne Martin <{sent.address}>\nPour : {sent.desk}\n\n{sent.body}")
    return message(base(sent, n, f"TR: {sent.subject}", threaded=False,
                        sender="Claire Dupont <claire.dupont@example.org>"), text.encode())


def forward_as_attachment(sent: Sent, n: int) -> bytes:
    boundary = f"fwd-{n:04d}"
    original = (f"From: {sent.sender}\nTo: {sent.desk}\nSubject: {sent.subject}\nDate: {sent.date}\n"
                f"Message-ID: {sent.message_id}\nContent-Type: text/plain; charset=utf-8\n\n{sent.body}")
    body = (f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\nBonjour, voir votre message ci-joint : "
            f"c'est possible.\n--{boundary}\nContent-Type: message/rfc822\nContent-Disposition: inline\n\n"
            f"{original}\n--{boundary}--\n")
    return message(base(sent, n, "Fw: votre demande", threaded=False), body.encode(),
                   f'multipart/mixed; boundary="{boundary}"', "8bit")


# ---------------------------------------------------------------- raw UTF-8 and bytes in headers


def utf8_message_id(sent: Sent, n: int) -> bytes:
    fields = base(sent, n, f"Re: {sent.subject}") | {"Message-ID": f"<réponse.{n}.été@musée.example.org>"}
    return message(fields, f"{ANSWER}\n".encode())


def undecodable_references(sent: Sent, n: int) -> bytes:
    """A relay that mangled an older id into bytes that are no UTF-8, beside ours."""
    raw = message(base(sent, n, f"Re: {sent.subject}") | {"References": f"<BYTES{n}x@example.org> {sent.message_id}"},
                  f"{ANSWER}\n".encode())
    return raw.replace(f"BYTES{n}".encode(), b"\xff\xfe" + str(n).encode())


def utf8_sender(sent: Sent, n: int) -> bytes:
    fields = base(sent, n, "Réponse", threaded=False, sender="Hélène Bénard <hélène.bénard@musée.example.org>")
    return message(fields, f"Bonjour,\n\nOui.\n\n{quoted(sent.body)}\n".encode())


# ---------------------------------------------------------------- matched by sender, authenticated or not


def correspondent_authenticated(sent: Sent, n: int) -> bytes:
    return message(base(sent, n, f"RE: {sent.subject}", threaded=False), b"Bonjour, c'est possible.\n",
                   trace=delivered(authenticated=True))


def correspondent_unauthenticated(sent: Sent, n: int) -> bytes:
    return message(base(sent, n, f"RE: {sent.subject}", threaded=False), b"Bonjour, c'est possible.\n",
                   trace=delivered())


def forged_reply(sent: Sent, n: int) -> bytes:
    """Anyone can write the site's address and a « RE: » of our subject, and paste results of their own."""
    return message(base(sent, n, f"RE: {sent.subject}", threaded=False, domain="example.com"),
                   b"Bonjour, tout est en ordre.\n", trace=forged())


def out_of_office_authenticated(sent: Sent, n: int) -> bytes:
    fields = base(sent, n, f"Réponse automatique : {sent.subject}", threaded=False) | {
        "Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}
    return message(fields, b"Je suis absente jusqu'au 12 mai.", trace=delivered(authenticated=True))


def out_of_office_unauthenticated(sent: Sent, n: int) -> bytes:
    fields = base(sent, n, f"Réponse automatique : {sent.subject}", threaded=False) | {"Auto-Submitted": "auto-replied"}
    return message(fields, b"Je suis absente jusqu'au 12 mai.", trace=delivered())


# ---------------------------------------------------------------- reports


def _report(n: int, subject: str, sender: str, report_type: str, parts: str, trace: str = "") -> bytes:
    boundary = f"report-{n:04d}"
    body = parts.replace("{b}", boundary)
    fields = {"From": sender, "To": "jeanne.martin@probes.example.net", "Subject": subject, "Date": now(),
              "Message-ID": make_msgid(f"report{n}", domain="mx.example.net"), "Auto-Submitted": "auto-replied"}
    return message(fields, body.encode(), f'multipart/report; report-type={report_type}; boundary="{boundary}"',
                   "7bit", trace)


def _dsn_parts(recipient: str, action: str, status: str, original_headers: str = "") -> str:
    parts = (f"--{{b}}\nContent-Type: text/plain\n\nThis is the mail system.\n\n<{recipient}>: {status} "
             f"delivery problem\n--{{b}}\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
             f"Final-Recipient: rfc822; {recipient}\nAction: {action}\nStatus: {status}\n")
    if original_headers:
        parts += f"--{{b}}\nContent-Type: text/rfc822-headers\n\n{original_headers}\n"
    return parts + "--{b}--\n"


def bounce_with_original(sent: Sent, n: int) -> bytes:
    original = f"From: {sent.sender}\nTo: {sent.desk}\nSubject: {sent.subject}\nMessage-ID: {sent.message_id}\n"
    return _report(n, "Undelivered Mail Returned to Sender", "MAILER-DAEMON@mx.example.org", "delivery-status",
                   _dsn_parts(sent.desk, "failed", "5.1.1", original))


def provider_bounce_authenticated(sent: Sent, n: int) -> bytes:
    """Our own provider's server gave up; its notice names the recipient only, and our server authenticated it."""
    return _report(n, "Undelivered Mail Returned to Sender", "MAILER-DAEMON@probes.example.net", "delivery-status",
                   _dsn_parts(sent.desk, "failed", "5.1.1"), trace=auth("probes.example.net"))


def forged_bounce(sent: Sent, n: int) -> bytes:
    """A « delivery failure » naming the site's address, from nobody we can authenticate, quoting nothing of ours."""
    return _report(n, "Undelivered Mail Returned to Sender", "MAILER-DAEMON@example.com", "delivery-status",
                   _dsn_parts(sent.desk, "failed", "5.1.1"), trace=received("relay.example.com", "198.51.100.7"))


def delay_notice(sent: Sent, n: int) -> bytes:
    original = f"From: {sent.sender}\nTo: {sent.desk}\nSubject: {sent.subject}\nMessage-ID: {sent.message_id}\n"
    return _report(n, "Delayed Mail (still being retried)", "MAILER-DAEMON@mx.example.org", "delivery-status",
                   _dsn_parts(sent.desk, "delayed", "4.4.7", original))


def read_receipt(sent: Sent, n: int) -> bytes:
    parts = (f"--{{b}}\nContent-Type: text/plain; charset=utf-8\n\nVotre message a été lu.\n--{{b}}\n"
             f"Content-Type: message/disposition-notification\n\nFinal-Recipient: rfc822; {sent.desk}\n"
             f"Original-Message-ID: {sent.message_id}\nDisposition: manual-action/MDN-sent-manually; displayed\n"
             "--{b}--\n")
    return _report(n, f"Lu : {sent.subject}", sent.desk, "disposition-notification", parts)


# ---------------------------------------------------------------- unrelated


def from_site_about_something_else(sent: Sent, n: int) -> bytes:
    text = "Bonjour,\n\nNous vous confirmons l'inscription de votre association à notre lettre d'information.\n"
    return message(base(sent, n, "Confirmation d'inscription", threaded=False), text.encode(),
                   trace=delivered(authenticated=True))


def newsletter_from_site(sent: Sent, n: int) -> bytes:
    fields = base(sent, n, "La lettre de la Maison de Victor Hugo", threaded=False) | {
        "List-Unsubscribe": "<mailto:unsubscribe@example.org>", "List-Id": "<lettre.example.org>",
        "Precedence": "bulk"}
    return message(fields, "Cette semaine à la Maison de Victor Hugo…\n".encode(), trace=delivered(authenticated=True))


def spam(sent: Sent, n: int) -> bytes:
    fields = {"From": "Offres <promo@example.com>", "To": "jeanne.martin@probes.example.net",
              "Subject": "Gagnez un voyage", "Date": now(), "Message-ID": make_msgid(f"spam{n}", domain="example.com"),
              "X-Spam-Flag": "YES", "X-Spam-Status": "Yes, score=12.3"}
    return message(fields, b"Cliquez ici.\n", trace=received("bulk.example.com", "203.0.113.9"))


def personal(sent: Sent, n: int) -> bytes:
    fields = {"From": "Sophie <sophie@example.net>", "To": "jeanne.martin@probes.example.net",
              "Subject": "Dîner samedi ?", "Date": now(), "Message-ID": make_msgid(f"perso{n}", domain="example.net")}
    return message(fields, b"Tu es libre samedi ?\n")


SHAPES: tuple[Shape, ...] = (
    Shape("outlook_desktop_html_thread_index", outlook_desktop_threaded, "matched", "message_id", "human_reply"),
    Shape("outlook_desktop_new_subject_thread_index_only", outlook_desktop_new_subject, "matched", "quoted_text",
          "human_reply"),
    Shape("owa_html_only_x_divrplyfwdmsg", owa_html_only, "matched", "quoted_text", "human_reply"),
    Shape("outlook_message_d_origine_new_subject", outlook_message_d_origine, "matched", "quoted_text", "human_reply"),
    Shape("outlook_english_original_message", outlook_english_original_message, "matched", "quoted_text",
          "human_reply"),
    Shape("outlook_mobile_top_posted", outlook_mobile, "matched", "quoted_text", "human_reply"),
    Shape("outlook_internal_re_tr_tr_chain", outlook_tr_chain, "matched", "quoted_text", "human_reply"),
    Shape("gmail_threaded_gmail_quote", gmail_threaded, "matched", "message_id", "human_reply"),
    Shape("gmail_android_top_posted_new_subject", gmail_android_new_subject, "matched", "quoted_text", "human_reply"),
    Shape("apple_mail_threaded_blockquote_cite", apple_mail_threaded, "matched", "message_id", "human_reply"),
    Shape("apple_mail_html_only_unthreaded", apple_mail_unthreaded, "matched", "quoted_text", "human_reply"),
    Shape("ios_mail_top_posted", ios_top_posted, "matched", "quoted_text", "human_reply"),
    Shape("thunderbird_format_flowed_threaded", thunderbird_flowed, "matched", "message_id", "human_reply"),
    Shape("thunderbird_unthreaded_wrapped", thunderbird_unthreaded, "matched", "quoted_text", "human_reply"),
    Shape("samsung_email_message_d_origine", samsung_email, "matched", "quoted_text", "human_reply"),
    Shape("french_webmail_message_du", french_webmail, "matched", "quoted_text", "human_reply"),
    Shape("references_without_in_reply_to", references_only, "matched", "message_id", "human_reply"),
    Shape("legacy_iso_8859_1_new_subject", legacy_latin1_new_subject, "matched", "quoted_text", "human_reply"),
    Shape("windows_1252_quoted_printable", windows1252_quoted_printable, "matched", "quoted_text", "human_reply"),
    Shape("html_only_base64_blockquote", html_only_base64, "matched", "quoted_text", "human_reply"),
    Shape("rewrapped_at_72_columns", rewrapped_72, "matched", "quoted_text", "human_reply"),
    Shape("indented_quote_no_markers", indented_quote, "matched", "quoted_text", "human_reply"),
    Shape("partial_quote_of_our_request", partial_quote, "matched", "quoted_text", "human_reply"),
    Shape("ticketing_acknowledgement_rewritten_subject", ticketing_acknowledgement, "matched", "quoted_text",
          "auto_reply"),
    Shape("ticketing_agent_reply", ticketing_agent_reply, "matched", "quoted_text", "human_reply"),
    Shape("colleague_forward_tr", colleague_forward, "matched", "quoted_text", "human_reply"),
    Shape("forward_as_attachment", forward_as_attachment, "matched", "message_id", "human_reply"),
    Shape("raw_utf8_message_id", utf8_message_id, "matched", "message_id", "human_reply"),
    Shape("undecodable_bytes_in_references", undecodable_references, "matched", "message_id", "human_reply"),
    Shape("raw_utf8_sender_address", utf8_sender, "matched", "quoted_text", "human_reply"),
    Shape("correspondent_authenticated", correspondent_authenticated, "matched", "correspondent", "human_reply"),
    Shape("correspondent_unauthenticated", correspondent_unauthenticated, "held", "correspondent", "human_reply"),
    Shape("forged_reply_with_pasted_results", forged_reply, "held", "correspondent", "human_reply"),
    Shape("out_of_office_authenticated", out_of_office_authenticated, "matched", "correspondent", "auto_reply"),
    Shape("out_of_office_unauthenticated", out_of_office_unauthenticated, "held", "correspondent", "auto_reply"),
    Shape("bounce_quoting_our_message_id", bounce_with_original, "matched", "message_id", "bounce"),
    Shape("provider_bounce_authenticated", provider_bounce_authenticated, "matched", "correspondent", "bounce"),
    Shape("forged_bounce", forged_bounce, "held", "correspondent", "bounce"),
    Shape("delay_notice_quoting_our_message_id", delay_notice, "matched", "message_id", "bounce"),
    Shape("read_receipt", read_receipt, "matched", "message_id", "read_receipt"),
    Shape("from_site_about_something_else", from_site_about_something_else, "unrelated",
          reason="from_site_unmatched", answers=False),
    Shape("newsletter_from_site", newsletter_from_site, "unrelated", reason="newsletter", answers=False),
    Shape("spam", spam, "unrelated", reason="spam", answers=False),
    Shape("personal", personal, "unrelated", reason="personal", answers=False),
)
