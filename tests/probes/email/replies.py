"""The reply-quality corpus: answers desks really write, each built the way its mail client builds it.

Every case is a desk's answer (what a person typed), the template of the
question it answers, the client that sends it (which decides how our
request is quoted: `>` lines, an attribution, Outlook's header block, HTML
only, ISO-8859-1…) and the verdict expected of each criterion.  `build`
turns a case and the request we sent into the raw message a mailbox would
hold, so the same corpus runs through the pure grader and, end to end,
through qualimon's real pipeline and Dovecot.

All addresses are under example.org/.net and every number is in the
+33 1 99 00 fiction block.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.mime.text import MIMEText
from email.policy import default
from email.utils import format_datetime, make_msgid
from html import escape
from pathlib import Path

from monitor.config.models import Mailbox, Site
from probes.email.compose import Template, compose, default_template_dir, load_template

DESK = "contact.mvh@example.org"
OUR_ADDRESS = "jeanne.martin@probes.example.net"
ENGLISH_TEMPLATES = Path(__file__).resolve().parents[2] / "data" / "templates-en"
ALL_MET = dict.fromkeys(("greeting", "closing", "signed", "contact", "answers_question", "not_holding",
                         "language"), True)


@dataclass(frozen=True)
class Case:
    id: str
    template: str          # file stem in config/templates (or tests/data/templates-en)
    client: str            # how the reply is built: see CLIENTS
    answer: str            # what the desk typed
    expected: dict[str, bool]
    uncertain: frozenset[str] = field(default_factory=frozenset)   # criteria the machine must flag as unsure
    sender: str = "Accueil <contact.mvh@example.org>"

    def __str__(self) -> str:
        return self.id


def met_except(*failing: str) -> dict[str, bool]:
    return {name: name not in failing for name in ALL_MET}


CASES: tuple[Case, ...] = (
    Case("full-answer-thunderbird", "horaires", "thunderbird",
         "Bonjour Madame,\n\nLe musée est ouvert du mardi au dimanche de 10 h à 18 h, y compris ce jour-là. "
         "La réservation n'est pas nécessaire, mais elle vous évitera la file d'attente.\n\nBien cordialement,\n\n"
         "Claire Dubois\nChargée d'accueil – Maison de Victor Hugo\nTél. 01 99 00 12 34", ALL_MET),
    Case("holding-reply-outlook", "horaires", "outlook_text",
         "Bonjour,\n\nNous avons bien reçu votre demande et nous reviendrons vers vous dans les meilleurs délais."
         "\n\nCordialement,\nL'équipe de l'accueil",
         met_except("signed", "contact", "answers_question", "not_holding")),
    Case("unsigned-answer-gmail", "horaires", "gmail",
         "Bonjour,\n\nNous sommes ouverts de 10h à 18h tous les jours sauf le lundi.\n\nBonne journée",
         met_except("signed", "contact")),
    Case("generic-signature-service", "groupe", "thunderbird",
         "Bonjour Madame,\n\nPour un groupe de 15 personnes, la réservation est obligatoire au moins trois "
         "semaines à l'avance. Le tarif de groupe est de 8 € par personne.\n\nCordialement,\n"
         "Le service des publics\nMusée Carnavalet", met_except("signed", "contact")),
    Case("formal-answer-outlook-html", "groupe", "outlook_html",
         "Madame,\n\nNous vous remercions de l'intérêt que vous portez au musée. Les visites de groupe se "
         "réservent sur notre site www.example.org/groupes ou par téléphone au 01 99 00 45 67. Le tarif est de "
         "120 € pour une visite commentée d'une heure.\n\nJe vous prie d'agréer, Madame, l'expression de mes "
         "salutations distinguées.\n\nMarc Lefèvre\nResponsable des réservations\nMusée Carnavalet\n"
         "marc.lefevre@example.org", ALL_MET),
    Case("accessibility-answer-gmail", "accessibilite", "gmail",
         "Bonjour,\n\nLe musée est entièrement accessible en fauteuil roulant : entrée de plain-pied, ascenseurs "
         "vers toutes les salles. L'accompagnateur entre gratuitement.\n\nBonne journée,\n"
         "Camille Roux, accueil du Petit Palais\n01 99 00 23 45", ALL_MET),
    Case("signed-but-says-nothing", "accessibilite", "thunderbird",
         "Bonjour,\n\nMerci pour votre message. N'hésitez pas à venir nous voir.\n\nCordialement,\n"
         "Sophie Martin\nAccueil", met_except("contact", "answers_question", "not_holding")),
    Case("english-answer-to-a-french-question", "horaires", "gmail",
         "Hello,\n\nThank you for your message. The museum is open from Tuesday to Sunday, 10 am to 6 pm. "
         "There is no need to book.\n\nKind regards,\nEmily Clarke\nVisitor Services\n+33 1 99 00 12 34",
         met_except("language")),
    Case("english-answer-to-an-english-question", "opening-hours", "gmail",
         "Hello,\n\nThank you for your message. The museum is open from Tuesday to Sunday, 10 am to 6 pm. "
         "There is no need to book.\n\nKind regards,\nEmily Clarke\nVisitor Services\n+33 1 99 00 12 34",
         ALL_MET),
    Case("english-holding-reply", "opening-hours", "outlook_text",
         "Dear Ms Martin,\n\nWe have received your email and will get back to you as soon as possible.\n\n"
         "Best regards,\nThe Visitor Team", met_except("signed", "contact", "answers_question", "not_holding")),
    Case("english-holding-reply-to-a-french-question", "groupe", "outlook_text",
         "Dear Madam,\n\nWe have received your email and will get back to you shortly.\n\nBest regards,\n"
         "The Visitor Team",
         met_except("signed", "contact", "answers_question", "not_holding", "language")),
    Case("mobile-top-post", "horaires", "mobile",
         "Oui c'est ouvert samedi de 10h à 18h\n\nEnvoyé de mon iPhone",
         met_except("greeting", "closing", "signed", "contact")),
    Case("acknowledges-and-answers", "horaires", "thunderbird",
         "Bonjour,\n\nNous avons bien reçu votre message. Le musée sera ouvert ce jour-là de 10 h à 18 h.\n\n"
         "Cordialement,\nJulien Petit\nAccueil et billetterie\n01 99 00 56 78", ALL_MET),
    Case("forwarded-to-another-service", "groupe", "outlook_text",
         "Bonjour,\n\nVotre demande a été transmise au service des réservations, qui vous répondra.\n\n"
         "Cordialement,\nAccueil du musée", met_except("signed", "contact", "answers_question", "not_holding")),
    Case("price-only-answer", "groupe", "apple",
         "Bonjour,\n\nLe tarif de groupe est de 7 € par personne à partir de 10 personnes.\n\nCordialement\n\n"
         "Nadia Benali\nService des publics", met_except("contact")),
    Case("lost-object-found", "objet-perdu", "thunderbird",
         "Bonjour Madame,\n\nBonne nouvelle : votre objet a bien été retrouvé. Vous pouvez venir le chercher à "
         "l'accueil du mardi au dimanche, muni d'une pièce d'identité.\n\nBien à vous,\n\nThomas Girard\n"
         "Agent d'accueil\nTél : 01 99 00 78 90", ALL_MET),
    Case("lost-object-we-will-look", "objet-perdu", "gmail",
         "Bonjour,\n\nNous allons nous renseigner auprès de nos équipes et nous reviendrons vers vous.\n\n"
         "Cordialement,\nL'accueil", met_except("signed", "contact", "answers_question", "not_holding")),
    Case("lost-object-not-found", "objet-perdu", "outlook_html",
         "Bonjour,\n\nMalheureusement aucun objet correspondant n'a été déposé depuis votre visite. Nous vous "
         "conseillons de rappeler la semaine prochaine.\n\nCordialement,\nMme Leroy\nAccueil\n01 99 00 11 22",
         ALL_MET),
    Case("workshop-full-answer", "atelier", "apple",
         "Bonjour,\n\nNous proposons des ateliers pour les 7-12 ans pendant les vacances, le mercredi et le "
         "samedi à 14 h 30. L'inscription se fait en ligne sur www.example.org/ateliers ; le tarif est de 10 € "
         "par enfant.\n\nBelle journée,\nLucie Moreau\nMédiatrice culturelle\nlucie.moreau@example.org",
         ALL_MET),
    Case("workshop-vague-long-answer", "atelier", "thunderbird",
         "Bonjour,\n\nMerci beaucoup pour votre intérêt pour nos activités destinées au jeune public. Notre "
         "équipe de médiation conçoit chaque saison des propositions variées qui plaisent beaucoup aux familles, "
         "et nous serions ravis d'accueillir votre fils lors d'une prochaine occasion.\n\nCordialement,\n"
         "Pierre Lambert\nService des publics", met_except("contact", "answers_question"),
         uncertain=frozenset({"answers_question"})),
    Case("catalogue-answer", "exposition", "gmail",
         "Bonjour,\n\nLe catalogue de cette exposition est encore disponible à la librairie-boutique du musée "
         "au prix de 29 €. Il peut aussi être commandé par correspondance.\n\nCordialement,\n"
         "Isabelle Fontaine\nLibrairie-boutique\n01 99 00 33 44", ALL_MET),
    Case("html-only-outlook-answer", "horaires", "html_only",
         "Bonjour Madame Martin,\n\nLe musée sera ouvert ce jour-là de 10h00 à 18h00. Nous vous conseillons de "
         "réserver vos billets en ligne.\n\nCordialement,\n\nAntoine Mercier\nAccueil des publics\n"
         "T. +33 1 99 00 65 43", ALL_MET),
    Case("legacy-latin1-new-subject", "groupe", "latin1",
         "Madame,\n\nLes visites de groupe ont lieu le jeudi ; le tarif est de 6 euros par personne. Merci de "
         "réserver au 01 99 00 98 76.\n\nSalutations distinguées,\n\nG. Martin\nSecrétariat",
         ALL_MET, uncertain=frozenset({"signed"})),
    Case("name-without-function", "horaires", "thunderbird",
         "Bonjour,\n\nOui, nous sommes ouverts ce jour-là de 10h à 18h.\n\nCordialement,\nJulie Bernard",
         met_except("signed", "contact")),
    Case("unknown-first-name", "horaires", "apple",
         "Bonjour,\n\nLe musée est ouvert de 10 h à 18 h du mardi au dimanche.\n\nCordialement,\n\n"
         "Ksenia Vasquez\nChargée d'accueil\n01 99 00 22 33", ALL_MET, uncertain=frozenset({"signed"})),
    Case("no-greeting-phone-only", "horaires", "outlook_text",
         "Nous sommes ouverts tous les jours de 10h à 18h sauf le lundi. Pour toute question : 01 99 00 44 55."
         "\n\nL'accueil", met_except("greeting", "closing", "signed")),
    Case("receipt-with-a-phone-number", "groupe", "thunderbird",
         "Bonjour,\n\nVotre message a bien été reçu. Il sera traité dans les meilleurs délais. Pour une demande "
         "urgente, vous pouvez joindre l'accueil au 01 99 00 10 10.\n\nCordialement,\nLe service des publics",
         met_except("signed", "answers_question", "not_holding")),
    Case("apple-mail-accessibility", "accessibilite", "apple",
         "Bonjour,\n\nOui, le musée est accessible aux personnes à mobilité réduite grâce à un ascenseur situé à "
         "l'entrée principale.\n\nBien cordialement,\n\nHélène Garnier\nResponsable accueil\nMaison de Balzac\n"
         "01 99 00 87 65", ALL_MET),
    Case("answer-below-the-quote", "horaires", "bottom_post",
         "Bonjour,\n\nNous sommes ouverts de 10 h à 18 h.\n\nCordialement,\nSophie Laurent\nAccueil",
         met_except("contact")),
    Case("only-the-quote-mentions-the-day", "horaires", "thunderbird",
         "Bonjour,\n\nC'est noté, bonne visite !\n\nL'équipe",
         met_except("signed", "contact", "answers_question", "not_holding")),
    Case("one-line-signature-with-dash", "groupe", "gmail",
         "Bonjour,\n\nLa visite commentée de groupe coûte 90 € et se réserve au 01 99 00 76 54.\n\n"
         "Bien à vous,\nClaire Dubois — Service des publics", ALL_MET),
    Case("ticketing-system-receipt", "groupe", "ticketing",
         "Bonjour,\n\nNous accusons réception de votre demande n°1234. Un conseiller vous répondra sous "
         "48 heures.\n\nCordialement,\nLe service clients",
         met_except("signed", "contact", "answers_question", "not_holding")),
    Case("english-full-answer-outlook", "groupe", "outlook_html",
         "Dear Ms Martin,\n\nGroup visits must be booked online at www.example.org/groups; the guided tour costs "
         "90 € for up to 25 people.\n\nBest regards,\n\nJames Walker\nGroup bookings officer\n+33 1 99 00 31 32",
         met_except("language")),
    Case("bare-ok", "atelier", "mobile", "Ok.",
         met_except("greeting", "closing", "signed", "contact", "answers_question", "not_holding", "language"),
         uncertain=frozenset({"language"})),
    Case("colleague-with-direct-address", "exposition", "thunderbird",
         "Bonjour,\n\nJe regrette, ce catalogue est épuisé. Vous pouvez écrire à ma collègue de la librairie, "
         "sophie.marchand@example.org, qui vous dira s'il sera réédité.\n\nBien cordialement,\n"
         "Paul Durand\nDocumentaliste", ALL_MET),
)


# ---------------------------------------------------------------- the request we sent


def template(name: str) -> Template:
    base = ENGLISH_TEMPLATES if (ENGLISH_TEMPLATES / f"{name}.yaml").exists() else default_template_dir()
    return load_template(base / f"{name}.yaml")


def request_for(case: Case, seed: int = 7) -> EmailMessage:
    """The mystery email this case answers, composed like the probe does (fixed draw)."""
    site = Site(id="maison-victor-hugo", name="Maison de Victor Hugo", calendar="offices",
                email={"address": DESK})
    mailbox = Mailbox(address=f"Jeanne Martin <{OUR_ADDRESS}>", maildir="/tmp/unused")
    composed = compose(template(case.template), site=site, mailbox=mailbox, token="QP-7K2M9",
                       message_id="<20260504080200.qp7k2m9@probes.example.net>",
                       now=datetime(2026, 5, 4, 8, 2, tzinfo=UTC), rng=random.Random(seed))
    return composed.message


# ---------------------------------------------------------------- the clients


ATTRIBUTION_FR = "Le lun. 4 mai 2026 à 10:02, Jeanne Martin <jeanne.martin@probes.example.net> a écrit :"


def _request_text(request: EmailMessage) -> str:
    body = request.get_body(("plain",))
    return body.get_content() if body is not None else ""


def _quoted(text: str) -> str:
    return "\n".join(("> " + line) if line else ">" for line in text.splitlines())


def _outlook_block(request: EmailMessage) -> str:
    return ("-----Message d'origine-----\nDe : Jeanne Martin <jeanne.martin@probes.example.net>\n"
            "Envoyé : lundi 4 mai 2026 10:02\nÀ : " + DESK + f"\nObjet : {request['Subject']}\n\n"
            + _request_text(request))


def _html(text: str) -> str:
    return "<br>\n".join(escape(line) for line in text.splitlines())


def _plain(case: Case, request: EmailMessage, body: str, *, subject: str | None = None,
           threaded: bool = True, charset: str = "utf-8") -> EmailMessage:
    message = _headers(case, request, subject, threaded)
    message.set_content(body, charset=charset)
    return message


def _headers(case: Case, request: EmailMessage, subject: str | None, threaded: bool) -> EmailMessage:
    message = EmailMessage(policy=default)
    message["From"] = case.sender
    message["To"] = f"Jeanne Martin <{OUR_ADDRESS}>"
    message["Subject"] = subject if subject is not None else f"RE: {request['Subject']}"
    message["Date"] = format_datetime(datetime(2026, 5, 4, 14, 30, tzinfo=UTC))
    message["Message-ID"] = make_msgid(domain="example.org")
    if threaded:
        message["In-Reply-To"] = request["Message-ID"]
        message["References"] = request["Message-ID"]
    return message


def build(case: Case, request: EmailMessage) -> bytes:
    """The raw reply, as `case.client` would send it in answer to `request`."""
    return CLIENTS[case.client](case, request)


def _thunderbird(case: Case, request: EmailMessage) -> bytes:
    text = f"{case.answer}\n\n{ATTRIBUTION_FR}\n{_quoted(_request_text(request))}\n"
    return _plain(case, request, text).as_bytes()


def _bottom_post(case: Case, request: EmailMessage) -> bytes:
    text = f"{ATTRIBUTION_FR}\n{_quoted(_request_text(request))}\n\n{case.answer}\n"
    return _plain(case, request, text).as_bytes()


def _apple(case: Case, request: EmailMessage) -> bytes:
    attribution = "Le 4 mai 2026 à 10:02, Jeanne Martin <jeanne.martin@probes.example.net> a écrit :"
    text = f"{case.answer}\n\n{attribution}\n\n{_quoted(_request_text(request))}\n"
    return _plain(case, request, text).as_bytes()


def _mobile(case: Case, request: EmailMessage) -> bytes:
    text = f"{case.answer}\n\n> Le 4 mai 2026 à 10:02, Jeanne Martin a écrit :\n{_quoted(_request_text(request))}\n"
    return _plain(case, request, text).as_bytes()


def _outlook_text(case: Case, request: EmailMessage) -> bytes:
    return _plain(case, request, f"{case.answer}\n\n{_outlook_block(request)}\n", threaded=False).as_bytes()


def _gmail(case: Case, request: EmailMessage) -> bytes:
    # Gmail wraps its attribution line at 76 columns.
    wrapped = ATTRIBUTION_FR.replace(" a écrit :", "\na écrit :")
    text = f"{case.answer}\n\n{wrapped}\n\n{_quoted(_request_text(request))}\n"
    html = (f'<div dir="ltr">{_html(case.answer)}</div><br><div class="gmail_quote"><div dir="ltr" '
            f'class="gmail_attr">{escape(ATTRIBUTION_FR)}<br></div><blockquote class="gmail_quote" '
            f'style="margin:0px 0px 0px 0.8ex">{_html(_request_text(request))}</blockquote></div>')
    message = _plain(case, request, text)
    message.add_alternative(html, subtype="html")
    return message.as_bytes()


def _outlook_html_part(case: Case, request: EmailMessage) -> str:
    return (f'<html><body><div class="WordSection1"><p class="MsoNormal">{_html(case.answer)}</p></div>'
            '<hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg" dir="ltr"><font face="Calibri">'
            "<b>De :</b> Jeanne Martin &lt;jeanne.martin@probes.example.net&gt;<br><b>Envoyé :</b> lundi 4 mai "
            f"2026 10:02<br><b>À :</b> {DESK}<br><b>Objet :</b> {escape(str(request['Subject']))}</font>"
            f"<div>&nbsp;</div></div><div>{_html(_request_text(request))}</div></body></html>")


def _outlook_html(case: Case, request: EmailMessage) -> bytes:
    message = _plain(case, request, f"{case.answer}\n\n{_outlook_block(request)}\n", threaded=False)
    message["Thread-Index"] = "AdrB2zQx5f7f0cVnTKmJ8m6gqL3h4A=="
    message.add_alternative(_outlook_html_part(case, request), subtype="html")
    return message.as_bytes()


def _html_only(case: Case, request: EmailMessage) -> bytes:
    message = _headers(case, request, None, threaded=False)
    message.set_content(_outlook_html_part(case, request), subtype="html")
    return message.as_bytes()


def _latin1(case: Case, request: EmailMessage) -> bytes:
    """A legacy client: ISO-8859-1, no threading headers, our request pasted below."""
    text = f"{case.answer}\n\n{_outlook_block(request)}\n"
    message = MIMEText(text, "plain", "iso-8859-1")
    for name, value in _headers(case, request, None, threaded=False).items():
        message[name] = value
    return message.as_bytes()


def _ticketing(case: Case, request: EmailMessage) -> bytes:
    subject = f"[Ticket #1234] {request['Subject']}"
    text = f"{case.answer}\n\n--- Votre message ---\n{_quoted(_request_text(request))}\n"
    return _plain(case, request, text, subject=subject).as_bytes()


CLIENTS = {"thunderbird": _thunderbird, "bottom_post": _bottom_post, "apple": _apple, "mobile": _mobile,
           "outlook_text": _outlook_text, "gmail": _gmail, "outlook_html": _outlook_html, "html_only": _html_only,
           "latin1": _latin1, "ticketing": _ticketing}
