"""Was the answer good?  The reply-quality criteria, explainable, in French and English (pure).

`grade(answer, needs, language)` reads the answer a desk wrote — the reply's
text with the quoted part removed (`quoting.split_reply`) — and judges seven
criteria.  Each one says whether it is met, whether the machine is sure, the
span of the answer that satisfied it (offsets into `answer`, and its text) or
the reason it did not:

- `greeting`: « Madame, Monsieur », « Bonjour … », « Dear … » near the top;
- `closing`: « Cordialement », « Bien à vous », « Kind regards »…;
- `signed`: a person's name *and* a service or function in the signature,
  not only a generic name (« L'accueil », « Le service des publics »);
  a name whose first name is not in the list of common first names is
  reported met but uncertain;
- `contact`: a phone number or an e-mail address to come back to (our own
  addresses excluded);
- `answers_question`: what the template's question needs (`Needs`: a time,
  a day range, a date, a price, a booking route, access words, or the
  template's own words), found in the answer; a long answer without any is
  uncertain (it may say it in other words), a template without needs too;
- `not_holding`: not a mere acknowledgement (« nous avons bien reçu votre
  demande », « nous reviendrons vers vous ») — an acknowledgement that also
  answers the question is not a holding reply;
- `language`: the answer is in the request's language (French or English),
  counted on common words; too few of them to tell is uncertain.

The matching runs on a folded copy of the text (lower case, accents off,
typographic apostrophes made plain) that keeps every character at its place,
so spans point into the original.  Success means: any text at all gives an
`Assessment` (never an exception), and the same text always gives the same
one.  The assessment is what the email kind records as an `assessment`
event (`Assessment.data()`); auditors then confirm or correct each criterion.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from probes.email.message import parse_message
from probes.email.quoting import split_reply

VERSION = 1
CRITERIA = ("greeting", "closing", "signed", "contact", "answers_question", "not_holding", "language")
LANGUAGES = ("fr", "en")
MAX_ANSWER_CHARS = 20_000  # a desk's answer is a few hundred characters; the rest is not graded
SPAN_CHARS = 200           # evidence text kept per criterion
SUBSTANTIAL_WORDS = 25     # an answer this long may answer in words no detector knows: uncertain
BARE_WORDS = 12            # shorter than this and answering nothing: a bare « c'est noté »


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str

    def data(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}


@dataclass(frozen=True)
class CriterionResult:
    name: str
    met: bool
    certain: bool
    reason: str                 # what satisfied it, or why it failed, in words
    span: Span | None = None    # the evidence in the answer, when there is one

    def data(self) -> dict[str, Any]:
        return {"met": self.met, "certain": self.certain, "reason": self.reason,
                "span": self.span.data() if self.span else None}


@dataclass(frozen=True)
class Needs:
    """What a template's question needs in an answer: any one of the `any` kinds or of the `words`."""

    any: tuple[str, ...] = ()
    words: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.any and not self.words

    def describe(self) -> str:
        parts = [k.replace("_", " ") for k in self.any] + [f"« {w} »" for w in self.words[:5]]
        return ", ".join(parts) or "nothing specific"


@dataclass(frozen=True)
class Assessment:
    answer: str
    language: str               # detected: fr, en or unknown
    expected_language: str
    criteria: tuple[CriterionResult, ...]
    needs: Needs = field(default_factory=Needs)

    def get(self, name: str) -> CriterionResult:
        return next(c for c in self.criteria if c.name == name)

    @property
    def score(self) -> float:
        return sum(c.met for c in self.criteria) / len(self.criteria) if self.criteria else 0.0

    @property
    def uncertain(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.criteria if not c.certain)

    def data(self) -> dict[str, Any]:
        """The payload of the `assessment` event."""
        return {"grader": VERSION, "answer": self.answer, "language": self.language,
                "expected_language": self.expected_language, "score": round(self.score, 4),
                "needs": {"any": list(self.needs.any), "words": list(self.needs.words)},
                "criteria": {c.name: c.data() for c in self.criteria}}


# ---------------------------------------------------------------- folding

def _fold_table() -> dict[int, str]:
    """Lower case without accents, one character for one, so offsets stay valid (Latin scripts)."""
    table: dict[int, str] = {}
    for code in range(0x250):
        char = chr(code)
        low = (unicodedata.normalize("NFKD", char)[:1] or char).lower()
        if len(low) == 1 and low != char:
            table[code] = low
    for code, plain in {0x2019: "'", 0x2018: "'", 0x02BC: "'", 0x00A0: " ", 0x202F: " ", 0x2009: " ",
                        0x2013: "-", 0x2014: "-", 0x2011: "-"}.items():
        table[code] = plain
    return table


_FOLD = _fold_table()


def fold(text: str) -> str:
    """Same length as `text`: lower case, accents off, typographic apostrophes, spaces and dashes plain."""
    return text.translate(_FOLD)


def _words(*alternatives: str) -> str:
    return "|".join(alternatives)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


# ---------------------------------------------------------------- vocabulary (folded forms)

WEEKDAYS_FR = _words("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
WEEKDAYS_EN = _words("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS_FR = _words("janvier", "fevrier", "mars", "avril", "mai", "juin", "juillet", "aout", "septembre",
                   "octobre", "novembre", "decembre")
MONTHS_EN = _words("january", "february", "march", "april", "may", "june", "july", "august", "september",
                   "october", "november", "december")

GREETING = _rx(r"^[ \t]*(?:(?:bonjour|bonsoir|hello|hi|dear|good (?:morning|afternoon|evening)|greetings)\b"
               r"|(?:chere?s?|tres chere?s?) (?:madame|monsieur|mademoiselle|visiteu\w+|amie?s?)\b"
               r"|(?:madame|monsieur|mesdames|messieurs|mademoiselle)\b)[^\n]{0,60}")
CLOSING = _rx(r"\b(?:bien cordialement|tres cordialement|cordialement|bien a vous|bien amicalement|amicalement"
              r"|(?:tres )?sinceres salutations|salutations (?:distinguees|cordiales|respectueuses)"
              r"|(?:je vous prie|veuillez|nous vous prions)(?: de)? (?:d'agreer|agreer|recevoir|croire|accepter)"
              r"|(?:belle|bonne|excellente) (?:journee|soiree|fin de journee|semaine|visite|continuation)"
              r"|au plaisir de vous (?:accueillir|recevoir|voir|lire)|a (?:tres )?bientot|respectueusement"
              r"|en vous souhaitant (?:une|un) \w+|best regards|kind regards|warm regards|warmest regards"
              r"|regards|sincerely|yours (?:sincerely|faithfully|truly)|best wishes|all the best|with thanks"
              r"|many thanks|thank you again)\b[^\n]{0,40}")
HOLDING = _rx(
    r"\b(?:nous avons (?:bien )?(?:recu|pris connaissance de) (?:votre|vos)\b"
    r"|(?:votre|vos) (?:demande|message|courriel|mail|e-mail|question)s? (?:a|ont) (?:bien )?ete "
    r"(?:recue?s?|enregistree?s?|prise?s? en compte|transmise?s?)"
    r"|(?:nous )?accusons (?:bonne )?reception|accuse de reception"
    r"|nous (?:reviendrons|revenons|reviendrons tres vite) vers vous|je reviens vers vous (?:des|au plus)"
    r"|nous vous (?:repondrons|recontacterons|tiendrons informee?s?|apporterons une reponse)"
    r"|(?:dans|sous) les (?:meilleurs|plus brefs) delais"
    r"|(?:a ete|sera|est) (?:transmise?|transferee?|redirigee?) (?:au|a|aux|vers)"
    r"|(?:sera|est en cours de) trait\w+|un (?:conseiller|agent|collegue) vous (?:repondra|recontactera)"
    r"|merci (?:beaucoup )?(?:pour|de) votre (?:message|courriel|mail|e-mail|demande)"
    r"|thank you for your (?:message|e-?mail|enquiry|inquiry)"
    r"|we (?:have )?received your|we will (?:get back|come back|reply|respond|be in touch|answer)"
    r"|(?:has|have) been forwarded to|will be (?:processed|handled|answered|dealt with)"
    r"|we are looking into (?:it|your)|(?:an|one of our) (?:agent|advisor|colleague)s? will (?:reply|contact))")

# A person's name in a signature: optional title, then two to four capitalised words (or a title and one).
NAME_WORD = r"[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ'’]+(?:-[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ'’]+)?|[A-ZÀ-ÖØ-Þ]{2,}(?:-[A-ZÀ-ÖØ-Þ]{2,})?"
TITLE = r"(?:M\.|Mme|Mlle|Mr\.?|Mrs\.?|Ms\.?|Dr\.?|Monsieur|Madame)"
PERSON = re.compile(
    rf"(?<![\w'’])(?:{TITLE}\s+(?:(?:{NAME_WORD})\s+)?(?:{NAME_WORD})"
    rf"|(?:{NAME_WORD})(?:\s+(?:de|du|des|d'|le|la|van|von)?\s*(?:{NAME_WORD})){{1,3}}"
    rf"|(?:{NAME_WORD})\s+[A-Z]\.|[A-Z]\.\s?(?:{NAME_WORD}))(?![\w'’])")
FIRST_NAME_ALONE = re.compile(rf"^\s*(?:{NAME_WORD})\s*(?:[,–—-]|$)")
FUNCTION = _rx(
    r"\b(?:service|accueil|charge(?:e)? (?:de|d')|responsable|direct(?:eur|rice|ion)|departement|pole|bureau"
    r"|conseill\w+|agent|assistant\w*|coordinat\w+|mediat\w+|secretariat|billetterie|reservations?|publics"
    r"|communication|administrat\w+|regisseu\w+|conservat\w+|documentaliste|bibliothecaire|hote(?:sse)?"
    r"|chef (?:de|d')|adjoint\w*|standard|guichet|boutique|librairie|relations? (?:avec les )?(?:publics|visiteurs)"
    r"|visitor(?:s)? services|front desk|officer|manager|coordinator|head of|team leader|curator|librarian"
    r"|reception(?:ist)?|customer (?:service|care)|education|events?)\b")
GENERIC_NAME_WORDS = frozenset(fold(w) for w in (
    "accueil", "service", "services", "équipe", "team", "musée", "museum", "maison", "paris",
    "billetterie", "publics", "public", "direction", "information", "informations", "réservation", "réservations",
    "contact", "bureau", "mairie", "bibliothèque", "library", "the", "desk", "office", "visitor", "visitors",
    "bonne", "belle", "journée", "cordialement", "bien", "merci", "madame", "monsieur", "salutations", "sincères",
    "palais",
    "le", "la", "les", "l", "du", "de", "des", "pôle", "département", "atelier", "ateliers", "exposition",
    "expositions", "boutique", "librairie", "galerie", "centre", "fondation", "ville", "hôtel", "collections",
    "objets", "trouvés", "standard", "mairie", "conservation", "communication", "bonjour", "kind", "best",
    "regards", "dear", "hello", "votre", "vous", "nous", "notre", "cet", "cette", "tél", "tel", "mail",
    "email", "courriel", "avenue", "rue", "place", "boulevard", "quai", "france", "carnavalet", "zadkine",
    "balzac", "cernuschi", "bourdelle", "cognacq", "jay", "galliera", "romantique",
    "vie", "moulin", "libération", "catacombes", "crypte", "archéologique",
))
FIRST_NAMES = frozenset(fold(n) for n in """
Adèle Adrien Agathe Agnès Aïcha Alain Albert Alexandre Alexandra Alexis Alice Aline Amandine Amélie Ana Anaïs André
Andrée Anne Annie Anthony Antoine Antoinette Arnaud Arthur Audrey Aurélie Aurélien Axel Baptiste Béatrice Benjamin
Benoît Bernadette Bernard Bertrand Brigitte Bruno Camille Carole Caroline Catherine Cécile Céline Chantal Charles
Charlotte Chloé Christelle Christian Christiane Christine Christophe Claire Clara Claude Claudine Clément Colette
Coralie Corinne Cyril Damien Daniel Danièle Danielle David Delphine Denis Denise Didier Dominique Dylan Élise
Elisabeth Élisabeth Éliane Élodie Éloïse Emma Emmanuel Emmanuelle Éric Estelle Étienne Eva Fabien Fabienne Fabrice
Farid Fatima Fatou Florence Florian Francis Franck François Françoise Frédéric Frédérique Gabriel Gaëlle Gaëtan
Geneviève Georges Gérard Germaine Gilbert Gilles Ginette Grégory Guillaume Guy Hélène Henri Hervé Hugo Hugues
Inès Irène Isabelle Jacqueline Jacques Jade Jean Jeanne Jérémy Jérôme Joël Joëlle Jonathan Joseph Josiane Julie
Julien Juliette Justine Karim Karine Kevin Laetitia Laure Laurence Laurent Léa Léo Léon Lina Linda Lise Louis Louise
Luc Lucas Lucie Lucien Lucienne Ludovic Lydie Madeleine Malik Manon Marc Marcel Margaux Margot Marguerite Maria Marie
Marine Marion Martine Mathieu Mathilde Matthieu Maurice Maxime Mélanie Michel Michèle Michelle Mickaël Mireille
Mohamed Monique Morgane Muriel Mylène Nadia Nadine Nathalie Nathan Nicolas Nicole Noémie Océane Odette Olivier
Olivia Pascal Pascale Patrice Patricia Patrick Paul Paule Pauline Philippe Pierre Quentin Rachel Raphaël Raymond
Régis Rémi Rémy René Renée Richard Robert Roger Romain Rose Sabine Salomé Samia Samuel Sandra Sandrine Sarah Sébastien
Serge Simon Simone Sofia Solène Sophie Stéphane Stéphanie Suzanne Sylvain Sylvie Thérèse Théo Thierry Thomas Timothée
Valentin Valérie Véronique Victor Vincent Virginie Xavier Yann Yannick Yasmine Yves Yvette Yvonne Zoé
James John Robert Michael William Mary Patricia Jennifer Linda Elizabeth Susan Jessica Sarah Karen Emily Emma Olivia
Oliver Harry George Jack Charlie Sophia Amelia Grace Hannah Rebecca Laura Kate Anna Peter Mark Helen Ruth
""".split())

PHONE = _rx(r"(?<![\d+])(?:(?:\+|00)33\s?(?:\(0\)\s?)?[1-9]|0[1-9])(?:[ .\-]?\d{2}){4}(?!\d)"
            r"|(?<![\d+])(?:\+|00)(?!33)[1-9]\d{0,2}(?:[ .\-]?\d{2,4}){3,5}(?!\d)")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

DETECTORS: Mapping[str, re.Pattern[str]] = {
    "time": _rx(r"\b(?:(?:[01]?\d|2[0-3])\s?h\s?(?:[0-5]\d)?(?![a-z])|(?:[01]?\d|2[0-3])[:.][0-5]\d\b"
                r"|(?:[01]?\d|2[0-3]) heures?\b|(?:1[0-2]|0?[1-9])(?::[0-5]\d)?\s?(?:am|pm|a\.m\.|p\.m\.)"
                r"|midi\b|minuit\b|noon\b|midday\b)"),
    "day_range": _rx(rf"\b(?:(?:du|de|from) (?:{WEEKDAYS_FR}|{WEEKDAYS_EN}) (?:au|a|to|through|until) "
                     rf"(?:{WEEKDAYS_FR}|{WEEKDAYS_EN})|tous les jours|7 ?j(?:ours)? ?(?:/|sur) ?7|every day|daily"
                     rf"|week-?ends?|(?:{WEEKDAYS_FR}|{WEEKDAYS_EN})s?)\b"),
    "date": _rx(rf"\b(?:\d{{1,2}}(?:er)? (?:{MONTHS_FR})|(?:{MONTHS_EN}) \d{{1,2}}(?:st|nd|rd|th)?"
                rf"|\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{MONTHS_EN})|\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?"
                rf"|(?:en|in|au mois de|d'ici) (?:{MONTHS_FR}|{MONTHS_EN}))\b"),
    "price": _rx(r"(?:\d+(?:[.,]\d{1,2})?\s?(?:€|euros?\b|eur\b)|€\s?\d+|\b(?:gratuit\w*|tarifs?|prix|plein tarif"
                 r"|tarif reduit|free (?:admission|of charge|entry)|admission is free|ticket prices?|fee)\b)"),
    "booking": _rx(r"\b(?:reserv\w*(?: de (?:vos|votre|votre|un|une) \w+)? (?:(?:est|n'est pas|reste|sera) )?"
                   r"(?:obligatoire|conseillee?|recommandee?|necessaire|indispensable|possible|en ligne|sur |par |au "
                   r"|aupres|via |a l'adresse|des maintenant)|(?:sur|via) (?:notre|le) site|billetterie|formulaire"
                   r"|inscri\w+ (?:(?:est|se fait|sont) )?(?:sur |par |en ligne|aupres|obligatoire|a l'accueil)"
                   r"|book(?:ing)? (?:online|on|through|via|at|in advance|is (?:required|recommended))"
                   r"|ticket office|box office|online booking)|https?://\S+|\bwww\.\S+"),
    "access": _rx(r"\b(?:ascenseurs?|rampes?|accessib\w+|pmr|fauteuils?|plain-?pied|boucles? (?:magnetique|a "
                  r"induction)s?|handicap\w*|mobilite reduite|wheelchairs?|lifts?|elevators?|ramps?|step-free"
                  r"|accessible)\b"),
    "phone": PHONE,
    "email": EMAIL,
}
NEED_KINDS = tuple(DETECTORS)

STOPWORDS = {
    "fr": frozenset("le la les de des du un une et est nous vous pour pas que qui dans sur avec sont au aux ce cette "
                    "votre vos notre nos il elle je ne se sa son ses par plus ou mais etre avons etes sommes ete "
                    "tres bien peut pouvez merci ici aussi tout toute tous entre sans chez bonjour madame monsieur "
                    "cordialement bonne journee oui non c l d j n qu".split()),
    "en": frozenset("the an and is are we you for not that which in on with be this your our it of to at from "
                    "have has will can please thank thanks would could there here also all any been very hello dear "
                    "regards kind best yes no".split()),
}
WORD = re.compile(r"[a-z]+")  # « c'est » counts « c » and « est »: elisions are French evidence too
MIN_LANGUAGE_WORDS = 4


# ---------------------------------------------------------------- the grader


def grade(answer: str, needs: Needs | None = None, expected_language: str = "fr", *,
          own_addresses: Collection[str] = ()) -> Assessment:
    """Judge every criterion on `answer` (the reply without its quote)."""
    text = (answer or "")[:MAX_ANSWER_CHARS]
    folded = fold(text)
    needs = needs or Needs()
    expected = expected_language if expected_language in LANGUAGES else "fr"
    language, counts = detect_language(folded)
    greeting = _greeting(text, folded)
    closing = _closing(text, folded)
    substance = _substance_words(folded, greeting.span, closing.span)
    answered = _answers_question(text, folded, needs, substance)
    criteria = (
        greeting,
        closing,
        _signed(text, folded, closing.span),
        _contact(text, folded, {a.lower() for a in own_addresses}),
        answered,
        _not_holding(text, folded, answered, substance),
        _language(text, folded, language, counts, expected),
    )
    return Assessment(text, language, expected, criteria, needs)


def _span(text: str, start: int, end: int) -> Span:
    return Span(start, end, text[start:end][:SPAN_CHARS].strip())


def _greeting(text: str, folded: str) -> CriterionResult:
    head_end = _nth_line_end(folded, 3)
    match = GREETING.search(folded, 0, head_end)
    if match:
        end = min(match.end(), folded.find("\n", match.start()) if "\n" in folded[match.start():] else match.end())
        span = _span(text, match.start(), end)
        return CriterionResult("greeting", True, True, f"greets the reader: « {span.text} »", span)
    return CriterionResult("greeting", False, True, "no greeting (« Bonjour », « Madame, Monsieur »…) "
                                                    "in the first lines")


def _nth_line_end(text: str, n: int) -> int:
    """Where the n-th non-empty line ends."""
    seen = 0
    position = 0
    for line in text.split("\n"):
        position += len(line) + 1
        if line.strip():
            seen += 1
            if seen >= n:
                break
    return min(position, len(text))


def _closing(text: str, folded: str) -> CriterionResult:
    matches = list(CLOSING.finditer(folded))
    if not matches:
        return CriterionResult("closing", False, True, "no closing formula (« Cordialement », « Bien à vous »…)")
    last = matches[-1]
    span = _span(text, last.start(), last.end())
    return CriterionResult("closing", True, True, f"closes with « {span.text} »", span)


def _signature_lines(text: str, after: Span | None) -> list[tuple[int, str]]:
    """(offset, line) of the signature: the lines after the closing formula, else the last few lines."""
    lines: list[tuple[int, str]] = []
    offset = 0
    for line in text.split("\n"):
        lines.append((offset, line))
        offset += len(line) + 1
    if after is not None:
        tail = [(o, line) for o, line in lines if o + len(line) > after.end]
        if tail and tail[0][0] < after.end:  # the closing line itself: keep what follows it on the line
            first_offset, first = tail[0]
            cut = after.end - first_offset
            tail[0] = (after.end, first[cut:])
        found = [(o, line) for o, line in tail if line.strip()]
        if found:
            return found[:8]
    return [(o, line) for o, line in lines if line.strip()][-6:]


def _signed(text: str, folded: str, closing: Span | None) -> CriterionResult:
    lines = _signature_lines(text, closing)
    person = _person(lines)
    function = _function(lines, folded)
    if person is None:
        generic = lines[-1][1].strip() if lines and (closing is not None or len(lines) > 1) else ""
        reason = (f"signed only « {generic[:80]} », no person's name" if generic and len(generic) < 80
                  else "no signature with a person's name")
        return CriterionResult("signed", False, True, reason, None)
    span, known = person
    if function is None:
        return CriterionResult("signed", False, known, f"a name (« {span.text} ») but no service or function",
                               None)
    whole = _span(text, min(span.start, function.start), max(span.end, function.end))
    if not known:
        return CriterionResult("signed", True, False, f"« {span.text} » looks like a name (first name not known) "
                                                      f"with « {function.text} »", whole)
    return CriterionResult("signed", True, True, f"signed by « {span.text} », « {function.text} »", whole)


def _person(lines: Sequence[tuple[int, str]]) -> tuple[Span, bool] | None:
    """The first person's name in the signature lines, and whether its first word is a known first name."""
    candidates: list[tuple[Span, bool]] = []
    for offset, line in lines:
        for match in PERSON.finditer(line):
            words = re.split(r"[\s.]+", match.group(0).strip())
            names = [w for w in words if w and not re.fullmatch(TITLE, w) and w.lower() not in ("de", "du", "des",
                                                                                              "d'", "le", "la")]
            if not names or any(fold(w.lower().strip("'’")) in GENERIC_NAME_WORDS for w in names):
                continue
            titled = bool(re.match(TITLE, match.group(0)))
            known = titled or any(fold(w.split("-")[0].lower()) in FIRST_NAMES for w in names[:2])
            candidates.append((Span(offset + match.start(), offset + match.end(), match.group(0).strip()), known))
        alone = FIRST_NAME_ALONE.match(line)
        if alone and not candidates:
            word = alone.group(0).strip(" ,–—-")
            if fold(word.lower()) in FIRST_NAMES:
                start = offset + line.index(word)
                candidates.append((Span(start, start + len(word), word), False))
    if not candidates:
        return None
    return next((c for c in candidates if c[1]), candidates[0])


def _function(lines: Sequence[tuple[int, str]], folded: str) -> Span | None:
    for offset, line in lines:
        match = FUNCTION.search(folded, offset, offset + len(line))
        if match:
            end = offset + len(line)
            return Span(match.start(), end, line[match.start() - offset:].strip()[:SPAN_CHARS])
    return None


def _contact(text: str, folded: str, own: set[str]) -> CriterionResult:
    phone = PHONE.search(folded)
    if phone:
        span = _span(text, phone.start(), phone.end())
        return CriterionResult("contact", True, True, f"a phone number: {span.text}", span)
    for match in EMAIL.finditer(text):
        if match.group(0).lower().strip(".") not in own:
            span = _span(text, match.start(), match.end())
            return CriterionResult("contact", True, True, f"an address to write to: {span.text}", span)
    return CriterionResult("contact", False, True, "no phone number or e-mail address to come back to")


def _substance_words(folded: str, greeting: Span | None, closing: Span | None) -> int:
    """Words of the body (between the greeting and the closing) outside the sentences that only acknowledge."""
    start = greeting.end if greeting else 0
    end = closing.start if closing else len(folded)
    sentences = re.split(r"[.!?\n]+", folded[start:end] if end > start else folded[start:])
    return sum(len(WORD.findall(sentence)) for sentence in sentences if not HOLDING.search(sentence))


def _answers_question(text: str, folded: str, needs: Needs, words: int) -> CriterionResult:
    if needs.empty:
        substantial = words >= SUBSTANTIAL_WORDS
        return CriterionResult("answers_question", substantial, False,
                               "the template says nothing of what its question needs: an auditor must confirm"
                               + ("" if substantial else " (and the answer is short)"))
    found = _first_need(folded, needs)
    if found is not None:
        kind, start, end = found
        span = _span(text, start, end)
        return CriterionResult("answers_question", True, True, f"gives {kind.replace('_', ' ')}: « {span.text} »",
                               span)
    reason = f"none of what the question needs ({needs.describe()}) is in the answer"
    if words >= SUBSTANTIAL_WORDS:
        return CriterionResult("answers_question", False, False, reason + "; it is long enough to answer in other "
                                                                         "words: an auditor should read it")
    return CriterionResult("answers_question", False, True, reason)


def _first_need(folded: str, needs: Needs) -> tuple[str, int, int] | None:
    hits: list[tuple[int, int, str]] = []
    for kind in needs.any:
        match = DETECTORS[kind].search(folded)
        if match:
            hits.append((match.start(), match.end(), kind))
    for word in needs.words:
        match = re.search(rf"(?<!\w){re.escape(fold(word.lower()))}", folded)
        if match:
            end = match.end() + len(re.match(r"\w*", folded[match.end():]).group(0))  # type: ignore[union-attr]
            hits.append((match.start(), end, f"« {word} »"))
    if not hits:
        return None
    start, end, kind = min(hits)
    return kind, start, end


def _not_holding(text: str, folded: str, answered: CriterionResult, substance: int) -> CriterionResult:
    holding = HOLDING.search(folded)
    if holding is None:
        span = answered.span or _body_span(text, folded)
        if span is None or (not answered.met and substance < BARE_WORDS):
            return CriterionResult("not_holding", False, True,
                                   "a bare acknowledgement: nothing in it answers the question", None)
        return CriterionResult("not_holding", True, True, "no holding formula: the reply answers", span)
    phrase = _span(text, holding.start(), holding.end())
    if answered.met:
        return CriterionResult("not_holding", True, answered.certain,
                               f"acknowledges (« {phrase.text} ») but also answers", answered.span or phrase)
    return CriterionResult("not_holding", False, answered.certain,
                           f"a holding reply: « {phrase.text} », and no answer to the question", phrase)


def _body_span(text: str, folded: str) -> Span | None:
    """The first line of substance: not the greeting, at least four words."""
    offset = 0
    for line in text.split("\n"):
        if len(WORD.findall(fold(line))) >= 4 and not GREETING.match(fold(line)):
            return _span(text, offset, offset + len(line))
        offset += len(line) + 1
    return None


def detect_language(folded: str) -> tuple[str, dict[str, int]]:
    """fr, en or unknown, from the common words of each language the text uses."""
    counts = dict.fromkeys(LANGUAGES, 0)
    for word in WORD.findall(folded):
        for language in LANGUAGES:
            if word in STOPWORDS[language]:
                counts[language] += 1
    best = max(LANGUAGES, key=lambda language: counts[language])
    if counts[best] == 0 or list(counts.values()).count(counts[best]) > 1:
        return "unknown", counts
    return best, counts


LANGUAGE_NAMES = {"fr": "French", "en": "English", "unknown": "no language that can be told"}


def _language(text: str, folded: str, language: str, counts: Mapping[str, int], expected: str) -> CriterionResult:
    total = sum(counts.values())
    certain = total >= MIN_LANGUAGE_WORDS and counts.get(language, 0) >= 2 * (total - counts.get(language, 0))
    tally = ", ".join(f"{counts[k]} {LANGUAGE_NAMES[k]}" for k in LANGUAGES)
    if language == expected:
        return CriterionResult("language", True, certain, f"in {LANGUAGE_NAMES[language]} ({tally} common words)",
                               _language_span(text, folded, language))
    return CriterionResult("language", False, certain and language != "unknown",
                           f"in {LANGUAGE_NAMES[language]} ({tally} common words); the request was in "
                           f"{LANGUAGE_NAMES[expected]}")


def _language_span(text: str, folded: str, language: str) -> Span | None:
    """The line that says the most in that language (its common words), first of equals."""
    best: tuple[int, int, int] | None = None
    offset = 0
    for line in folded.split("\n"):
        hits = sum(w in STOPWORDS[language] for w in WORD.findall(line))
        if hits >= 2 and (best is None or hits > best[0]):
            best = (hits, offset, offset + len(line))
        offset += len(line) + 1
    return _span(text, best[1], best[2]) if best else None


# ---------------------------------------------------------------- needs of a template


def parse_needs(data: object) -> Needs:
    """A template's `needs:` section ({any: [kinds], words: [words]}); ValueError says what is wrong."""
    if data is None:
        return Needs()
    if not isinstance(data, dict) or set(data) - {"any", "words"}:
        raise ValueError("needs: must be a mapping with 'any' (kinds) and/or 'words' (a list of words)")
    kinds = _strings(data.get("any"), "needs.any")
    unknown = [k for k in kinds if k not in DETECTORS]
    if unknown:
        raise ValueError(f"needs.any: unknown kind {unknown[0]!r}; use some of {', '.join(NEED_KINDS)}")
    return Needs(tuple(kinds), tuple(w for w in _strings(data.get("words"), "needs.words") if w.strip()))


def _strings(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: must be a list of words")
    return list(value)


def request_language(text: str) -> str:
    """The language a request was written in (French unless it is clearly English)."""
    language, _ = detect_language(fold(text))
    return language if language in LANGUAGES else "fr"


# ---------------------------------------------------------------- from a stored message


def answer_text(raw: bytes) -> str:
    """What the desk wrote: the message's text (plain part, else its HTML as text) without the quote."""
    body = parse_message(raw, body_limit=MAX_ANSWER_CHARS * 4).body
    return split_reply(body)[0]


def assess_reply(raw: bytes, needs: Needs | None = None, expected_language: str = "fr", *,
                 own_addresses: Collection[str] = ()) -> Assessment:
    """`grade` the answer found in a stored message (the bytes kept as evidence)."""
    return grade(answer_text(raw), needs, expected_language, own_addresses=own_addresses)
