"""Split a reply into what the desk wrote and the part of our message it quotes (pure).

`split_reply(text) -> (answer, quoted)` works on the plain text of a reply
(for an HTML-only reply, the text `message.html_to_text` gives: the HTML
quote containers — Gmail's `gmail_quote`, Outlook's `divRplyFwdMsg`, Apple
Mail's `blockquote` — then survive as the attribution line or header block
that every client writes above them).  The quote starts at the first of:

- an attribution line: « Le lun. 4 mai 2026 à 10:02, Jeanne Martin <…> a
  écrit : », « On Mon, May 4, 2026 at 10:02 AM Jeanne Martin wrote: » (also
  when the client wrapped it over two lines);
- a separator: « -----Message d'origine----- », « -----Original Message----- »,
  « ----- Mail original ----- », « -------- Message transféré -------- »,
  « Begin forwarded message: », or Outlook's line of underscores;
- a header block: « De : … » / « From: … » followed within a few lines by
  « Envoyé : », « Date : », « À : », « Objet : » (or their English names);

and every line starting with `>` is quoted wherever it is.  When an
attribution is followed by `>` lines and then more text (a reply written
*below* the quote), that text is part of the answer: only the attribution
and the `>` lines are the quote.  Success means the answer holds everything
the desk wrote (its signature included) and nothing of ours that a client
marked as a quote; both parts come back stripped.
"""

from __future__ import annotations

import re

_ATTRIBUTION = re.compile(
    r"^\s*(?:le|on|am|el)\b.{0,300}?\b(?:a\s+[ée]crit|wrote|schrieb|escribi[óo])\s*:?\s*$",
    re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}\s*(?:message d.origine|original message|mail original|message original|message transf[ée]r[ée]|"
    r"forwarded message|message d.origine)\s*-{2,}|begin forwarded message:?"
    r"|d[ée]but du message r[ée]exp[ée]di[ée]\s*:?|"
    r"_{20,})\s*$",
    re.IGNORECASE)
_HEADER_FROM = re.compile(r"^\s*\*?(?:de|from|exp[ée]diteur)\s*\*?\s*:", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(?:envoy[ée]|sent|date|[àa]|to|objet|subject|cc|destinataire)\s*\*?\s*:", re.IGNORECASE)
HEADER_WINDOW = 5     # lines after « De : » in which the other header names must appear
ATTRIBUTION_LINES = 3  # an attribution may be wrapped over this many lines


def split_reply(text: str) -> tuple[str, str]:
    """(the answer, the quoted part) of a reply's plain text."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start, width, attribution = _quote_start(lines)
    answer: list[str] = []
    quoted: list[str] = []
    if start is None:
        _split_markers(lines, answer, quoted)
    else:
        _split_markers(lines[:start], answer, quoted)
        quoted.extend(lines[start:start + width])
        rest = lines[start + width:]
        if attribution and _starts_with_marked_quote(rest):
            _split_markers(rest, answer, quoted)
        else:
            quoted.extend(rest)
    return "\n".join(answer).strip(), "\n".join(quoted).strip()


def _quote_start(lines: list[str]) -> tuple[int | None, int, bool]:
    """(first line of the quote, how many lines its marker spans, whether it is an attribution)."""
    for i, line in enumerate(lines):
        if line.lstrip().startswith(">") or not line.strip():
            continue
        if _SEPARATOR.match(line):
            return i, 1, False
        if _HEADER_FROM.match(line) and _header_block_follows(lines, i):
            return i, 0, False
        for width in range(1, ATTRIBUTION_LINES + 1):
            window = lines[i:i + width]
            if not all(part.strip() for part in window) or window[0].rstrip().endswith((".", "!", "?")):
                break  # an attribution is one wrapped line: no blank line inside, no sentence ending first
            joined = " ".join(part.strip() for part in window)
            if len(joined) <= 400 and _ATTRIBUTION.match(joined):
                return i, width, True
    return None, 0, False


def _header_block_follows(lines: list[str], i: int) -> bool:
    return any(_HEADER_NEXT.match(line) for line in lines[i + 1:i + 1 + HEADER_WINDOW])


def _starts_with_marked_quote(rest: list[str]) -> bool:
    first = next((line for line in rest if line.strip()), "")
    return first.lstrip().startswith(">")


def _split_markers(lines: list[str], answer: list[str], quoted: list[str]) -> None:
    for line in lines:
        (quoted if line.lstrip().startswith(">") else answer).append(line)
