"""Reply-quality criteria on the corpus of real-shaped answers, and the quote they must not read."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.channels import EMAIL
from probes.email.compose import TemplateError, default_template_dir, load_template, load_templates
from probes.email.quality import (
    CRITERIA,
    Needs,
    assess_reply,
    fold,
    grade,
    parse_needs,
    request_language,
)
from probes.email.quoting import split_reply
from tests.probes.email.replies import ALL_MET, CASES, OUR_ADDRESS, Case, build, request_for, template


def assess(case: Case):  # type: ignore[no-untyped-def]
    chosen = template(case.template)
    return assess_reply(build(case, request_for(case)), chosen.needs, request_language(chosen.body),
                        own_addresses=[OUR_ADDRESS])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_it_grades_each_corpus_answer_as_an_auditor_would(case: Case) -> None:
    assessment = assess(case)

    assert {c.name: c.met for c in assessment.criteria} == case.expected
    assert set(assessment.uncertain) == case.uncertain


@pytest.mark.parametrize("case", CASES, ids=str)
def test_each_criterion_gives_its_evidence_span_or_the_reason_it_failed(case: Case) -> None:
    assessment = assess(case)

    for result in assessment.criteria:
        assert result.reason.strip(), result.name
        if result.met:
            assert result.span is not None, f"{result.name} met without evidence"
            assert result.span.text and result.span.text in assessment.answer[result.span.start:result.span.end]


def test_the_corpus_covers_the_shapes_the_issue_lists() -> None:
    assert len(CASES) >= 30
    holding = [c for c in CASES if not c.expected["not_holding"]]
    english = [c for c in CASES if c.answer.startswith(("Hello", "Dear"))]
    assert len(holding) >= 5 and len(english) >= 4
    assert any(c.expected["signed"] for c in CASES) and any(not c.expected["signed"] for c in CASES)
    assert any(c.expected["answers_question"] for c in CASES) and any(not c.expected["answers_question"]
                                                                      for c in CASES)
    assert len({c.client for c in CASES}) >= 8
    assert sum(c.expected == ALL_MET for c in CASES) >= 8


def test_the_quote_of_our_request_never_answers_for_the_desk() -> None:
    case = next(c for c in CASES if c.id == "only-the-quote-mentions-the-day")
    raw = build(case, request_for(case))

    assert "samedi" in raw.decode() or "dimanche" in raw.decode() or "vendredi" in raw.decode()
    assert not assess(case).get("answers_question").met


def test_an_acknowledgement_that_also_answers_is_not_a_holding_reply() -> None:
    result = grade("Bonjour,\n\nNous avons bien reçu votre message : nous sommes ouverts de 10 h à 18 h.",
                   Needs(("time",))).get("not_holding")

    assert result.met and result.certain and "also answers" in result.reason


def test_a_generic_signature_is_not_a_person() -> None:
    result = grade("Bonjour,\n\nOui.\n\nCordialement,\nLe service des publics\nMusée Carnavalet").get("signed")

    assert not result.met and "no person" in result.reason


def test_our_own_address_is_no_way_to_come_back() -> None:
    text = "Bonjour,\n\nVous nous avez écrit depuis jeanne.martin@probes.example.net.\n\nCordialement"

    assert not grade(text, own_addresses=[OUR_ADDRESS]).get("contact").met
    assert grade(text).get("contact").met


def test_a_template_without_needs_leaves_the_answer_to_an_auditor() -> None:
    result = grade("Bonjour,\n\n" + "Nous avons regardé votre question avec attention et voici ce que nous "
                   "pouvons vous dire à ce sujet, en détail et avec plaisir, pour votre prochaine venue chez "
                   "nous au musée.\n").get("answers_question")

    assert result.met and not result.certain and "auditor" in result.reason


def test_the_request_language_is_read_from_the_request() -> None:
    assert request_language(load_template(default_template_dir() / "horaires.yaml").body) == "fr"
    assert request_language(template("opening-hours").body) == "en"
    assert request_language("") == "fr"


def test_every_shipped_template_says_what_its_question_needs() -> None:
    for chosen in load_templates(default_template_dir()):
        assert not chosen.needs.empty, chosen.name


def test_a_template_naming_an_unknown_need_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    path.write_text("subjects: [a]\nbody: b\nneeds: {any: [weather]}\n", encoding="utf-8")

    with pytest.raises(TemplateError, match="unknown kind 'weather'"):
        load_template(path)


def test_needs_are_optional_and_checked() -> None:
    assert parse_needs(None) == Needs()
    assert parse_needs({"words": ["catalogue"]}) == Needs((), ("catalogue",))
    for bad in ("time", {"any": "time"}, {"anything": []}, {"words": [1]}):
        with pytest.raises(ValueError):
            parse_needs(bad)


def test_the_email_channel_declares_exactly_the_criteria_the_grader_judges() -> None:
    assert tuple(EMAIL.criteria) == CRITERIA


def test_folding_keeps_every_offset() -> None:
    text = "Écrit à l’accueil : « Œuvre » — Straße İ"

    assert len(fold(text)) == len(text)
    assert fold("Réservation À L’ACCUEIL") == "reservation a l'accueil"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000), st.sampled_from(["fr", "en", "de", ""]))
def test_any_text_gets_an_assessment_and_never_an_exception(text: str, language: str) -> None:
    assessment = grade(text, Needs(("time", "price"), ("catalogue",)), language)

    assert [c.name for c in assessment.criteria] == list(CRITERIA)
    for result in assessment.criteria:
        if result.span is not None:
            assert 0 <= result.span.start <= result.span.end <= len(assessment.answer)


# ---------------------------------------------------------------- quoting


ANSWER = "Bonjour,\n\nOui, ouvert de 10 h à 18 h.\n\nCordialement,\nClaire Dubois\nAccueil"


@pytest.mark.parametrize("quote", [
    "Le lun. 4 mai 2026 à 10:02, Jeanne Martin <jeanne.martin@probes.example.net> a écrit :\n> Bonjour,\n> samedi ?",
    "Le lun. 4 mai 2026 à 10:02, Jeanne Martin <jeanne.martin@probes.example.net>\na écrit :\n\n> samedi ?",
    "On Mon, May 4, 2026 at 10:02 AM Jeanne Martin <jeanne.martin@probes.example.net> wrote:\n> samedi ?",
    "-----Message d'origine-----\nDe : Jeanne Martin\nEnvoyé : lundi 4 mai 2026 10:02\nÀ : contact\n\nsamedi ?",
    "-----Original Message-----\nFrom: Jeanne Martin\nSent: Monday\nTo: contact\nSubject: x\n\nsamedi ?",
    "________________________________\nDe : Jeanne Martin\nEnvoyé : lundi\nObjet : x\nsamedi ?",
    "De : Jeanne Martin <jeanne.martin@probes.example.net>\nEnvoyé : lundi 4 mai 2026 10:02\nÀ : a\n\nsamedi ?",
    "> Bonjour,\n> samedi ?",
], ids=["attribution", "wrapped-attribution", "english-attribution", "message-d-origine", "original-message",
        "underscores", "outlook-header-block", "marked-lines"])
def test_split_reply_keeps_the_answer_and_sets_the_quote_apart(quote: str) -> None:
    answer, quoted = split_reply(f"{ANSWER}\n\n{quote}\n")

    assert answer == ANSWER
    assert "samedi" in quoted and "samedi" not in answer


def test_an_answer_written_below_the_quote_is_kept() -> None:
    text = f"Le 4 mai 2026 à 10:02, Jeanne Martin a écrit :\n> Bonjour,\n> samedi ?\n\n{ANSWER}\n"

    answer, quoted = split_reply(text)

    assert answer == ANSWER and "samedi" in quoted


def test_a_sentence_that_merely_starts_like_an_attribution_stays_in_the_answer() -> None:
    text = "Le musée est ouvert.\n\nLe 4 mai, Jeanne a écrit :\n> samedi ?"

    answer, quoted = split_reply(text)

    assert answer == "Le musée est ouvert." and "samedi ?" in quoted


def test_a_reply_without_quote_is_all_answer() -> None:
    assert split_reply(ANSWER) == (ANSWER, "")
