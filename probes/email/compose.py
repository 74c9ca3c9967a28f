"""Mystery emails that read like a member of the public wrote them (pure).

A template (config/templates/*.yaml) gives several subjects, a body and
lists of choices; `compose` picks one of each at random, fills the site and
the persona (the mailbox's display name and signature) in.  The reference
token is shown only when the mailbox asks for it (`token: subject` appends
« (Réf. QP-7K2M9) » to the subject, `token: body` a last line): answers are
matched by their threading headers and by the text of ours they quote
(`shingles.fingerprint` of the body is kept with the probe), so by default
nothing marks the message as a probe.

The headers are those of the persona's mail client: `From`, `To`,
`Subject`, `Date` (Paris time), a `Message-ID` on the sending domain in the
client's style, `MIME-Version`, `Content-Language`, the client's
`User-Agent` or `X-Mailer`.  On purpose there is no `Auto-Submitted`,
`Precedence`, list, bulk or tracking header: any of them would make the
museum's auto-responder stay silent (and `email.ack` measures exactly that
auto-acknowledgement), or tell the desk the message is not a person's.

`compose_for` draws everything from a random generator seeded by the probe's
id, so `qualimon probes sample` shows exactly what a planned probe will say.
"""

from __future__ import annotations

import random
import re
import string
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from monitor.config.models import Config, Mailbox, Site
from probes.email.quality import Needs, parse_needs
from probes.email.shingles import fingerprint

DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")
COMMON = {
    "greeting": ("Bonjour", "Bonjour Madame, Monsieur", "Madame, Monsieur", "Bonjour,"),
    "thanks": ("Merci d'avance pour votre réponse.", "Je vous remercie par avance.",
               "Merci beaucoup, bonne journée.", "En vous remerciant, bien cordialement,"),
}
PARIS = ZoneInfo("Europe/Paris")


class TemplateError(ValueError):
    """A template file is unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class Template:
    name: str
    subjects: tuple[str, ...]
    body: str
    choices: dict[str, tuple[str, ...]]
    needs: Needs = Needs()  # what an answer to this question contains (reply-quality grading)


def default_template_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "config" / "templates"


def template_dir(config: Config, base: Path | None = None) -> Path:
    """`templates:` from the config (relative to the working directory, then to `base`), else the shipped ones."""
    if not config.templates:
        return default_template_dir()
    path = Path(config.templates)
    if not path.is_absolute() and not path.exists() and base is not None:
        path = base / path
    return path


def load_templates(directory: Path) -> list[Template]:
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise TemplateError(f"no *.yaml mail templates in {directory}; see config/templates/README.md")
    return [load_template(f) for f in files]


def load_template(path: Path) -> Template:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"{path}: cannot be read as YAML ({exc})") from None
    if not isinstance(data, dict) or not data.get("subjects") or not isinstance(data.get("body"), str):
        raise TemplateError(f"{path}: needs 'subjects' (a list) and 'body' (text)")
    choices = {str(k): tuple(str(x) for x in v) for k, v in (data.get("choices") or {}).items()}
    try:
        needs = parse_needs(data.get("needs"))
    except ValueError as exc:
        raise TemplateError(f"{path}: {exc}") from None
    template = Template(path.stem, tuple(str(s) for s in data["subjects"]), data["body"], choices, needs)
    _check_placeholders(path, template)
    return template


def _check_placeholders(path: Path, template: Template) -> None:
    known = set(COMMON) | set(template.choices) | {"site_name", "signature", "name", "day", "last_day", "month"}
    for text in (*template.subjects, template.body):
        for _, field, _, _ in string.Formatter().parse(text):
            if field and field not in known:
                raise TemplateError(f"{path}: unknown placeholder {{{field}}}; known: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class Composed:
    message: EmailMessage
    template: str
    subject: str
    body: str

    @property
    def fingerprint(self) -> bytes:
        """Hashes of the body's word shingles, kept with the probe to recognise a reply that quotes it."""
        return fingerprint(self.body)


def compose(template: Template, *, site: Site, mailbox: Mailbox, token: str, message_id: str,
            now: datetime, rng: random.Random, reply_to: str | None = None) -> Composed:
    values = _values(template, site, mailbox, now, rng)
    subject = rng.choice(template.subjects).format(**values)
    body = _tidy(template.body.format(**values))
    if mailbox.token == "subject":
        subject = f"{subject} (Réf. {token})"
    elif mailbox.token == "body":
        body = f"{body}\nRéf. {token}\n"
    message = EmailMessage()
    message["From"] = _address(mailbox.display_name, mailbox.email)
    message["To"] = site.email.address if site.email else ""
    if reply_to:
        message["Reply-To"] = _address(mailbox.display_name, reply_to)
    message["Subject"] = subject
    message["Date"] = format_datetime(now.astimezone(PARIS))
    message["Message-ID"] = message_id
    if mailbox.client.header != "none":
        message[mailbox.client.header] = mailbox.client.value
    message.set_content(body, charset="utf-8")
    message["Content-Language"] = "fr"  # after set_content, which replaces every Content-* header
    return Composed(message, template.name, subject, body)


def new_message_id(mailbox: Mailbox, rng: random.Random) -> str:
    """A Message-ID on the sending domain, shaped like a mail client's (a UUID), not like a bulk mailer's."""
    return f"<{uuid.UUID(int=rng.getrandbits(128), version=4)}@{mailbox.domain}>"


def persona_choice(config: Config, site: Site, rng: random.Random) -> str:
    """The mailbox (persona) that writes this probe: drawn by the weights of the site's rotation."""
    weights = config.mailbox_weights(site)
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def seeded(probe_id: str) -> random.Random:
    """The generator every choice of one probe is drawn from: the same probe always reads the same."""
    return random.Random(f"qualimon-probe:{probe_id}")


def _values(template: Template, site: Site, mailbox: Mailbox, now: datetime,
            rng: random.Random) -> dict[str, str]:
    local = now.astimezone(PARIS)
    values = {key: rng.choice(options) for key, options in COMMON.items()}
    values |= {key: rng.choice(options) for key, options in template.choices.items()}
    values |= {
        "site_name": site.name,
        "signature": (mailbox.signature or mailbox.display_name or mailbox.email.split("@")[0]).strip(),
        "name": mailbox.display_name or mailbox.email.split("@")[0],
        "day": _day(local + timedelta(days=rng.randint(5, 20))),
        "last_day": _day(local - timedelta(days=rng.randint(2, 6)), past=True),
        "month": MONTHS[(local.month + rng.randint(0, 1)) % 12],
    }
    values["greeting"] = values["greeting"].rstrip(",")
    return values


def _day(day: datetime, past: bool = False) -> str:
    text = f"{DAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]}"
    return f"{DAYS[day.weekday()]} dernier" if past and day.day % 2 else text


def _tidy(body: str) -> str:
    """Collapse the blank lines an empty choice leaves behind."""
    return re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"


def _address(name: str, addr: str) -> Address:
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)
