"""split_reply: what the desk wrote, and what of ours it quotes, for each client's way of quoting."""

from __future__ import annotations

import pytest

from probes.email.quoting import html_reply_text, split_reply

OURS = "Bonjour,\nPourriez-vous me confirmer vos horaires ?\nJeanne Martin"
ANSWER = "Bonjour,\nNous sommes ouverts de 10 h à 18 h.\nL'accueil"


def quoted(text: str, prefix: str = "> ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


CASES = {
    "thunderbird attribution": f"{ANSWER}\n\nLe 07/05/2026 à 10:15, Jeanne Martin a écrit :\n{quoted(OURS)}",
    "gmail attribution with address": f"{ANSWER}\n\nLe jeu. 7 mai 2026 à 10:15, Jeanne Martin "
                                      f"<jeanne.martin@probes.example.net> a écrit :\n\n{quoted(OURS)}",
    "attribution wrapped over two lines": f"{ANSWER}\n\nLe jeu. 7 mai 2026 à 10:15, Jeanne Martin <jeanne.martin@"
                                          f"probes.example.net> a\nécrit :\n{quoted(OURS)}",
    "english attribution": f"{ANSWER}\n\nOn Thu, May 7, 2026 at 10:15 AM Jeanne Martin wrote:\n{quoted(OURS)}",
    "outlook message d'origine": f"{ANSWER}\n\n-----Message d'origine-----\nDe : Jeanne Martin\nEnvoyé : jeudi 7 mai"
                                 f" 2026 10:15\nÀ : accueil\nObjet : Horaires\n\n{OURS}",
    "outlook original message": f"{ANSWER}\n\n-----Original Message-----\nFrom: Jeanne Martin\nSent: Thursday\n"
                                f"To: accueil\nSubject: Horaires\n\n{OURS}",
    "outlook header block after underscores": f"{ANSWER}\n\n{'_' * 32}\nDe : Jeanne Martin <j@probes.example.net>"
                                              f"\nEnvoyé : jeudi 7 mai 2026 10:15\nÀ : accueil\nObjet : Horaires"
                                              f"\n\n{OURS}",
    "samsung separator": f"{ANSWER}\n\n-------- Message d'origine --------\nDe : Jeanne\n\n{OURS}",
    "forwarded message": f"{ANSWER}\n\n---------- Forwarded message ---------\nFrom: Jeanne\n\n{OURS}",
    "apple forward": f"{ANSWER}\n\nDébut du message réexpédié :\n\n{OURS}",
    "top-posted over a bare > block": f"{ANSWER}\n\n{quoted(OURS)}",
}


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_the_answer_and_the_quote_are_told_apart(text: str) -> None:
    answer, quote = split_reply(text)
    assert answer == ANSWER
    assert "Pourriez-vous me confirmer vos horaires ?" in quote and "Nous sommes ouverts" not in quote


def test_interleaved_answers_keep_every_line_the_desk_wrote() -> None:
    text = ("Le 07/05/2026 à 10:15, Jeanne Martin a écrit :\n> Bonjour,\n> Êtes-vous ouverts le lundi ?\n"
            "Non, nous sommes fermés le lundi.\n> Et le dimanche ?\nOui, de 10 h à 18 h.")
    answer, quote = split_reply(text)
    assert answer == "Non, nous sommes fermés le lundi.\nOui, de 10 h à 18 h."
    assert quote == "Bonjour,\nÊtes-vous ouverts le lundi ?\nEt le dimanche ?"


def test_a_message_without_a_quote_is_all_answer() -> None:
    assert split_reply(ANSWER + "\r\n") == (ANSWER, "")
    assert split_reply("") == ("", "")


def test_an_answer_that_merely_mentions_a_sender_is_not_cut() -> None:
    text = "Bonjour,\nDe : notre service des publics, vous aurez une réponse.\nCordialement"
    assert split_reply(text) == (text, "")


@pytest.mark.parametrize("markup", [
    '<div>{a}</div><div id="divRplyFwdMsg"><b>De :</b> Jeanne<br><b>Envoyé :</b> jeudi<br><b>Objet :</b> x</div>{o}',
    '<div>{a}</div><div id="x_divRplyFwdMsg"><b>From:</b> Jeanne</div>{o}',
    '<div dir="ltr">{a}</div><div class="gmail_quote"><div class="gmail_attr">Le jeu. 7 mai 2026, Jeanne a écrit'
    ' :</div><blockquote class="gmail_quote">{o}</blockquote></div>',
    '<html><body>{a}<blockquote type="cite">{o}</blockquote></body></html>',
], ids=["outlook divRplyFwdMsg", "owa x_divRplyFwdMsg", "gmail_quote", "apple blockquote"])
def test_html_replies_split_like_plain_ones(markup: str) -> None:
    html = markup.format(a="".join(f"<p>{line}</p>" for line in ANSWER.splitlines()),
                         o="".join(f"<p>{line}</p>" for line in OURS.splitlines()))
    answer, quote = split_reply(html_reply_text(html))
    assert answer == ANSWER
    assert "Pourriez-vous me confirmer vos horaires ?" in quote
