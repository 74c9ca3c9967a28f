"""Reply-quality grading throughput over 100,000 stored answers, one core, beside a naive grader.

`.venv/bin/python bench/bench_grading.py [--answers 100000]` stores the answers in a SQLite file
the way qualimon keeps evidence (one raw message per row: the 35 real-shaped answers of the
corpus, tests/probes/email/replies.py, each quoting requests drawn from 60 seeds, every row with
its own Message-ID), then reads them back in batches and grades each as the pipeline does
(`quality.assess_reply`: parse, drop the quote, seven criteria), timing every answer.  The naive
baseline does the same job the obvious way in the same run: the stdlib email parser, every line
tried against every quote marker, and each criterion a loop of one regular expression per phrase
over a freshly folded copy of the text.  Both read the same rows; the database reads are timed
apart.  Prints answers/s, p50/p95/max per answer and the ratio.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import unicodedata
from email import message_from_bytes
from email.policy import default
from html import unescape
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.email.quality import assess_reply, request_language
from tests.probes.email.replies import CASES, OUR_ADDRESS, build, request_for, template

SEEDS = 60
BATCH = 2000


def store_answers(path: Path, count: int) -> list[tuple[str, str]]:
    """Write `count` raw answers into an evidence-like table; returns (template, language) per case."""
    distinct = [(case, build(case, request_for(case, seed))) for seed in range(SEEDS) for case in CASES]
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE evidence (id INTEGER PRIMARY KEY, case_index INTEGER, data BLOB)")
    rows = []
    for i in range(count):
        case_index = i % len(distinct)
        raw = distinct[case_index][1].replace(b"Message-ID: <", f"Message-ID: <{i}.".encode(), 1)
        rows.append((i, case_index % len(CASES), raw))
        if len(rows) == BATCH:
            db.executemany("INSERT INTO evidence VALUES (?, ?, ?)", rows)
            rows.clear()
    db.executemany("INSERT INTO evidence VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()
    return [(case.template, "") for case in CASES]


def grade_all(path: Path, grade: object) -> tuple[list[float], float]:
    """(seconds per answer, seconds spent reading the database)."""
    needs = {case.template: template(case.template) for case in CASES}
    settings = [(needs[c.template].needs, request_language(needs[c.template].body)) for c in CASES]
    db = sqlite3.connect(path)
    cursor = db.execute("SELECT case_index, data FROM evidence ORDER BY id")
    times: list[float] = []
    reading = 0.0
    while True:
        started = time.perf_counter()
        batch = cursor.fetchmany(BATCH)
        reading += time.perf_counter() - started
        if not batch:
            break
        for case_index, raw in batch:
            want, language = settings[case_index]
            started = time.perf_counter()
            grade(raw, want, language)  # type: ignore[operator]
            times.append(time.perf_counter() - started)
    db.close()
    return times, reading


def qualimon_grade(raw: bytes, needs: object, language: str) -> object:
    return assess_reply(raw, needs, language, own_addresses=[OUR_ADDRESS])  # type: ignore[arg-type]


# ---------------------------------------------------------------- the naive baseline

NAIVE_PHRASES = {
    "greeting": ["bonjour", "bonsoir", "madame", "monsieur", "cher", "chère", "dear", "hello", "hi ", "good morning"],
    "closing": ["cordialement", "bien à vous", "salutations", "je vous prie", "veuillez agréer", "bonne journée",
                "belle journée", "bonne visite", "à bientôt", "regards", "sincerely", "best wishes"],
    "holding": ["nous avons bien reçu", "bien été reçu", "accusons réception", "reviendrons vers vous",
                "meilleurs délais", "a été transmise", "sera traité", "vous répondra", "merci pour votre message",
                "we have received", "will get back", "has been forwarded"],
    "function": ["service", "accueil", "chargé", "responsable", "direct", "conseill", "agent", "médiat",
                 "secrétariat", "billetterie", "librairie", "boutique", "officer", "manager", "visitor services"],
    "time": [r"\d{1,2} ?h ?\d{0,2}", r"\d{1,2}:\d{2}", r"\d{1,2} ?(am|pm)", "midi"],
    "day_range": ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche", "tous les jours",
                  "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "every day"],
    "date": [r"\d{1,2} (janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre)",
             r"\d{1,2}/\d{1,2}"],
    "price": [r"\d+ ?€", r"\d+ euros?", "tarif", "gratuit", "prix", "free"],
    "booking": ["réserv", "billetterie", "formulaire", "inscription", "www.", "http", "book"],
    "access": ["ascenseur", "rampe", "accessib", "pmr", "fauteuil", "plain-pied", "handicap", "wheelchair", "lift"],
    "fr": [" le ", " la ", " les ", " de ", " des ", " et ", " est ", " nous ", " vous ", " pour ", " que "],
    "en": [" the ", " and ", " is ", " are ", " we ", " you ", " for ", " that ", " with ", " your "],
}
QUOTE_MARKERS = [r"^>", r"a écrit :$", r"wrote:$", r"^-----", r"^De :", r"^From:", r"^_{20,}"]


def naive_fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def naive_text(raw: bytes) -> str:
    message = message_from_bytes(raw, policy=default)
    part = message.get_body(("plain", "html"))
    text = part.get_content() if part is not None else ""
    if part is not None and part.get_content_type() == "text/html":
        text = unescape(re.sub(r"<[^>]+>", "\n", text))
    kept = []
    for line in text.splitlines():
        if any(re.search(marker, line.strip()) for marker in QUOTE_MARKERS):
            break
        kept.append(line)
    return "\n".join(kept)


def naive_any(name: str, text: str) -> bool:
    return any(re.search(naive_fold(phrase), naive_fold(text)) for phrase in NAIVE_PHRASES[name])


def naive_grade(raw: bytes, needs: object, language: str) -> dict[str, bool]:
    text = naive_text(raw)
    lines = [line for line in text.splitlines() if line.strip()]
    tail = "\n".join(lines[-5:])
    kinds = list(getattr(needs, "any", ())) or ["time"]
    answers = any(naive_any(kind, text) for kind in kinds if kind in NAIVE_PHRASES)
    words = re.findall(r"\w+", naive_fold(" ".join(lines[:1] or [""])))
    return {
        "greeting": naive_any("greeting", "\n".join(lines[:3])),
        "closing": naive_any("closing", text),
        "signed": naive_any("function", tail) and bool(re.search(r"[A-Z][a-z]+ [A-Z][a-z]+", tail)),
        "contact": bool(re.search(r"0\d( ?\d{2}){4}|\+33|@", text)),
        "answers_question": answers,
        "not_holding": answers or not naive_any("holding", text),
        "language": sum(naive_fold(f" {text} ").count(w) for w in NAIVE_PHRASES[language or "fr"]) > 1
        and bool(words),
    }


def summary(name: str, times: list[float]) -> tuple[float, float]:
    total = sum(times)
    ordered = sorted(times)
    p50, p95 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.95)]
    print(f"| {name} | {len(times) / total:,.0f} | {p50 * 1e3:.3f} | {p95 * 1e3:.3f} | {ordered[-1] * 1e3:.2f} |",
          flush=True)
    return len(times) / total, p95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--answers", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qualimon-bench-grading-") as tmp:
        path = Path(tmp) / "answers.db"
        started = time.perf_counter()
        store_answers(path, args.answers)
        print(f"stored {args.answers} answers in {time.perf_counter() - started:.1f} s "
              f"({path.stat().st_size / 1e6:.1f} MB)", flush=True)
        grade_all(path, qualimon_grade)  # warm-up pass over the same rows: caches and page cache alike
        ours, read_ours = grade_all(path, qualimon_grade)
        naive, read_naive = grade_all(path, naive_grade)
    print("\n| grader | answers/s (one core) | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    ours_rate, ours_p95 = summary("qualimon (`assess_reply`)", ours)
    naive_rate, naive_p95 = summary("naive baseline", naive)
    print(f"| **ratio** | **{ours_rate / naive_rate:.1f}×** | | **{naive_p95 / ours_p95:.1f}×** | |")
    print(f"\nreading the rows: {read_ours:.2f} s / {read_naive:.2f} s (not in the figures above); "
          f"mean {statistics.mean(ours) * 1e3:.3f} ms vs {statistics.mean(naive) * 1e3:.3f} ms per answer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
