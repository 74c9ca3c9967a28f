"""Quoted-text matching: shingles survive what replies do to our text; the index finds what a full scan finds."""

from __future__ import annotations

import random
import textwrap
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from probes.email.match import ProbeRef, match_message
from probes.email.message import parse_message
from probes.email.shingles import QuoteHit, ShingleIndex, fingerprint, normalize, shingle_hashes, unpack

BODY = ("Bonjour Madame, Monsieur,\n\nJe prévois de venir au Petit Palais samedi 13 juin avec ma mère. Pourriez-vous "
        "me confirmer vos horaires ce jour-là, et me dire s'il est conseillé de réserver à l'avance ?\n\n"
        "Merci d'avance pour votre réponse.\nJeanne Martin\n")
OTHER = BODY.replace("Petit Palais", "Musée Carnavalet").replace("samedi 13 juin", "mardi 2 juin").replace(
    "ma mère", "deux amies")
T0 = datetime(2026, 6, 1, 8, tzinfo=UTC)


def index_of(**bodies: str) -> ShingleIndex:
    index = ShingleIndex()
    for probe_id, body in bodies.items():
        index.add(probe_id, unpack(fingerprint(body)))
    return index


def test_normalizing_removes_case_accents_punctuation_quote_markers_and_line_breaks() -> None:
    assert normalize("> Réservez-vous\n>> à L'AVANCE ?") == ["reservez", "vous", "a", "l", "avance"]


def test_a_rewrapped_quoted_html_or_latin1_copy_of_our_text_is_found_whole() -> None:
    index = index_of(ours=BODY, other=OTHER)
    rewrapped = "\n".join("> " + line for line in textwrap.wrap(BODY.replace("\n", " "), 60))
    html = parse_message(("Content-Type: text/html; charset=iso-8859-1\n\n<p>Oui.</p><blockquote>"
                          + BODY.replace("\n", "<br>") + "</blockquote>").encode("latin-1")).body
    for text in (rewrapped, html, "Oui, bien sûr.\n\n" + BODY):
        [best, *_] = index.search(shingle_hashes(text))
        assert best.probe_id == "ours" and best.containment == 1.0


def test_a_text_that_quotes_nothing_of_ours_finds_nothing() -> None:
    index = index_of(ours=BODY)
    assert index.search(shingle_hashes("Merci d'avance pour votre réponse. Bonne journée, à bientôt !")) == []
    assert index.search(set()) == []


def test_removed_probes_are_no_longer_found() -> None:
    index = index_of(ours=BODY)
    index.remove("ours")
    assert len(index) == 0 and index.search(shingle_hashes(BODY)) == []


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=60))
def test_the_index_finds_what_scanning_every_probe_finds(seed: int, probes: int) -> None:
    rng = random.Random(seed)
    words = "bonjour visite groupe musée horaires samedi enfants tarif réserver accueil merci".split()
    bodies = {f"p{i}": " ".join(rng.choice(words) for _ in range(rng.randint(5, 60))) for i in range(probes)}
    index = index_of(**bodies)
    message = shingle_hashes(rng.choice(list(bodies.values())) + " " + " ".join(rng.choices(words, k=20)))
    assert {h.probe_id for h in index.search(message)} <= {h.probe_id for h in index.naive_search(message)}
    best = index.naive_search(message)
    if best:
        assert index.search(message)[0].containment == best[0].containment


def ref(probe_id: str, sent: datetime) -> ProbeRef:
    return ProbeRef(probe_id, "QP-7K2M9", f"<{probe_id}@probes.example.net>", "contact.pp@example.org", "Horaires",
                    sent, sent + timedelta(days=30))


def test_the_best_quoted_open_probe_wins_and_a_closed_one_quoted_better_stops_the_match() -> None:
    message = parse_message(b"From: x@example.org\n\nOui.")
    hits = [QuoteHit("closed", 40, 1.0, 30.0), QuoteHit("open", 30, 0.75, 3.0)]
    assert match_message(message, [ref("open", T0)], quotes=hits) is None
    tie = [QuoteHit("older", 40, 1.0, 20.0), QuoteHit("newer", 40, 0.98, 19.5)]
    found = match_message(message, [ref("older", T0), ref("newer", T0 + timedelta(days=1))], quotes=tie)
    assert found is not None and (found.probe_id, found.method) == ("newer", "quoted_text")
