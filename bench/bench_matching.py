"""Reply matching with 10,000 open probes: the shingle index versus scanning every probe, in the same run.

The 10,000 probes are composed by the real `compose` from the shipped
templates (21 requests), for 1,000 sites and 3 personas, and their
fingerprints loaded into a `ShingleIndex`.  The 20,000 incoming messages
mix what a mailbox receives: 35 % replies quoting a probe under a new
subject (plain `>` quotes, Outlook « De : … » blocks, HTML blockquotes,
re-wrapped at 72 columns), 15 % quoting only the first half of the request,
20 % threaded replies (In-Reply-To), 30 % unrelated (newsletters, personal
mail, spam).  Each message goes through what the pipeline does between the
bytes and the match: `parse_message`, `classify`, the message's shingle
hashes, the index search, and `match_message` with the candidate probes
(those found by Message-ID and by the index).

The naive baseline is the same path with `ShingleIndex.naive_search`, which
scores every open probe; it runs on the first `--naive` messages (default
1,000: all 20,000 would take minutes) of the same list, and both are checked
to give the same matches there.

    .venv/bin/python bench/bench_matching.py [--probes 10000] [--messages 20000] [--naive 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import machine
from monitor.config import parse_config
from probes.email.classify import classify
from probes.email.compose import compose, default_template_dir, load_templates, seeded
from probes.email.match import Match, ProbeRef, match_message
from probes.email.message import normalize_message_id, parse_message
from probes.email.pipeline import message_hashes
from probes.email.shingles import QuoteHit, ShingleIndex, fingerprint, unpack

NOW = datetime(2026, 5, 7, 9, tzinfo=UTC)
NAMES = ("Maison de Victor Hugo", "Musée Carnavalet", "Petit Palais", "Musée Cernuschi", "Maison de Balzac",
         "Musée Zadkine", "Musée Bourdelle", "Palais Galliera", "Musée Cognacq-Jay", "Bibliothèque Forney")


def config_text(sites: int) -> str:
    lines = ["calendars: {offices: {}}", "commitments: {}", "mailboxes:"]
    for name, person in (("jeanne", "Jeanne Martin"), ("paul", "Paul Durand"), ("ines", "Inès Moreau")):
        lines.append(f'  {name}: {{address: "{person} <{name}@probes.example.net>", maildir: /tmp/unused}}')
    lines.append("sites:")
    for i in range(sites):
        lines.append(f'  - {{id: s{i:04d}, name: "{NAMES[i % len(NAMES)]} {i}", calendar: offices, '
                     f"email: {{address: accueil.{i:04d}@example.org, mailboxes: {{jeanne: 2, paul: 1, ines: 1}}}}}}")
    return "\n".join(lines) + "\n"


def make_probes(count: int, sites: int) -> tuple[list[ProbeRef], dict[str, str], dict[str, str]]:
    """(refs, body by probe id, subject by probe id), composed like real probes."""
    config = parse_config(config_text(sites), environ={})
    templates = load_templates(default_template_dir())
    refs, bodies, subjects = [], {}, {}
    for number in range(count):
        probe_id = f"P{number:06d}"
        site = config.sites[number % sites]
        rng = seeded(probe_id)
        mailbox = config.mailboxes[rng.choice(["jeanne", "jeanne", "paul", "ines"])]
        sent_at = NOW - timedelta(days=number % 20, minutes=number % 600)
        composed = compose(rng.choice(templates), site=site, mailbox=mailbox, token="QP-7K2M9",
                           message_id=f"<{probe_id}@probes.example.net>", now=sent_at, rng=rng)
        bodies[probe_id], subjects[probe_id] = composed.body, composed.subject
        refs.append(ProbeRef(probe_id, f"QP-{number:05d}", f"<{probe_id}@probes.example.net>",
                             site.email.address if site.email else "", composed.subject, sent_at,
                             sent_at + timedelta(days=40)))
    return refs, bodies, subjects


def quoted(body: str) -> str:
    return "\n".join("> " + line for line in body.splitlines())


def make_messages(count: int, refs: list[ProbeRef], bodies: dict[str, str], rng: random.Random
                  ) -> list[tuple[bytes, str | None]]:
    """(raw message, the probe it answers or None)."""
    messages = []
    for number in range(count):
        ref = rng.choice(refs)
        body, kind = bodies[str(ref.probe_id)], rng.random()
        head = (f"From: Accueil <{ref.site_address}>\r\nTo: jeanne@probes.example.net\r\n"
                f"Message-ID: <m{number}@example.org>\r\nDate: Thu, 7 May 2026 11:00:00 +0200\r\n")
        if kind < 0.12:
            raw, answers = head + f"Subject: Votre demande\r\n\r\nBonjour, c'est possible.\r\n\r\n{quoted(body)}", True
        elif kind < 0.24:
            raw, answers = head + ("Subject: Informations\r\n\r\nBonjour,\r\nOui.\r\n\r\n____\r\nDe : Jeanne\r\n"
                                   f"Envoyé : jeudi\r\nÀ : accueil\r\nObjet : question\r\n\r\n{body}"), True
        elif kind < 0.35:
            html = "".join(f"<p>{line}</p>" for line in body.splitlines())
            raw = head + ("Subject: Re:\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Oui.</p>"
                          f"<blockquote>{html}</blockquote></body></html>")
            answers = True
        elif kind < 0.50:
            words = body.split()
            raw, answers = head + f"Subject: Re\r\n\r\nOui.\r\n\r\n{quoted(' '.join(words[:len(words) // 2]))}", True
        elif kind < 0.70:
            raw = head + f"Subject: Re: {ref.subject}\r\nIn-Reply-To: {ref.message_id}\r\n\r\nBonjour, oui.\r\n"
            answers = True
        else:
            raw = head.replace(ref.site_address, f"lettre{number % 50}@example.net") + (
                "Subject: La lettre de la semaine\r\nList-Unsubscribe: <mailto:u@example.net>\r\n\r\n"
                + "Cette semaine au musée : expositions, conférences et ateliers pour tous. " * 8)
            answers = False
        messages.append((raw.encode("utf-8"), str(ref.probe_id) if answers else None))
    return messages


Search = Callable[[set[int]], list[QuoteHit]]


def match_one(raw: bytes, search: Search, by_message_id: dict[str, ProbeRef], by_id: dict[str, ProbeRef]
              ) -> Match | None:
    message = parse_message(raw)
    classify(message)
    hits = search(message_hashes(message))
    candidates = {str(by_id[h.probe_id].probe_id): by_id[h.probe_id] for h in hits[:8]}
    for reference in (*message.in_reply_to, *message.references):
        found = by_message_id.get(normalize_message_id(reference))
        if found is not None:
            candidates[str(found.probe_id)] = found
    return match_message(message, list(candidates.values()), received_at=NOW, quotes=hits)


def run(name: str, messages: list[tuple[bytes, str | None]], search: Search, by_message_id: dict[str, ProbeRef],
        by_id: dict[str, ProbeRef]) -> tuple[list[Match | None], list[float], float]:
    results, timings = [], []
    started = time.perf_counter()
    for raw, _ in messages:
        begun = time.perf_counter()
        results.append(match_one(raw, search, by_message_id, by_id))
        timings.append(time.perf_counter() - begun)
    return results, timings, time.perf_counter() - started


def found_wrong(wanted: str | None, found: str | None) -> bool:
    return found is not None and found != wanted


def same_text(outcome: tuple[str | None, str | None, str | None], bodies: dict[str, str]) -> bool:
    wanted, found, _ = outcome
    return wanted is not None and found is not None and bodies[wanted] == bodies[found]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[94] if len(values) >= 2 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--naive", type=int, default=1_000)
    parser.add_argument("--sites", type=int, default=1_000)
    args, _ = parser.parse_known_args()
    rng = random.Random(20261206)
    print(f"- machine: {machine()}\n- date: {datetime.now(UTC):%Y-%m-%d}\n")
    started = time.perf_counter()
    refs, bodies, _ = make_probes(args.probes, args.sites)
    index = ShingleIndex()
    for ref in refs:
        index.add(str(ref.probe_id), unpack(fingerprint(bodies[str(ref.probe_id)])))
    by_message_id = {normalize_message_id(r.message_id): r for r in refs}
    by_id = {str(r.probe_id): r for r in refs}
    messages = make_messages(args.messages, refs, bodies, rng)
    print(f"set-up: {len(refs)} probes composed and indexed, {len(messages)} messages built in "
          f"{time.perf_counter() - started:.1f} s\n")
    indexed, index_times, index_total = run("index", messages, index.search, by_message_id, by_id)
    sample = messages[: args.naive]
    naive, naive_times, naive_total = run("naive", sample, index.naive_search, by_message_id, by_id)
    same = sum(1 for a, b in zip(indexed, naive, strict=False) if a == b)
    outcomes = [(wanted, found.probe_id if found else None, found.method if found else None)
                for (_, wanted), found in zip(messages, indexed, strict=True)]
    right = sum(1 for wanted, found, _ in outcomes if found == wanted)
    missed = sum(1 for wanted, found, _ in outcomes if wanted is not None and found is None)
    wrong = [(w, f, m) for w, f, m in outcomes if found_wrong(w, f)]
    print("| matcher | messages | seconds | messages/s | p50 ms | p95 ms |\n|---|---:|---:|---:|---:|---:|")
    for name, times, total in (("shingle index (`ShingleIndex.search`)", index_times, index_total),
                               ("naive scan of every open probe", naive_times, naive_total)):
        print(f"| {name} | {len(times)} | {total:.2f} | {len(times) / total:,.0f} | "
              f"{statistics.median(times) * 1000:.2f} | {p95(times) * 1000:.2f} |")
    ratio = (len(index_times) / index_total) / (len(naive_times) / naive_total)
    print(f"\n- index / naive throughput: {ratio:.0f}×; same match on the {len(sample)} messages both read: "
          f"{same}/{len(sample)}")
    print(f"- right: {right}/{len(messages)} ({sum(1 for _, w in messages if w is None)} of them unrelated and "
          f"matched to nothing); answers matched to nothing: {missed}; matched to another probe: {len(wrong)}, "
          f"of which to a probe of the same site with the same body: {sum(1 for w in wrong if same_text(w, bodies))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
