"""The mail corpus of tests/data/mail and the fixed probes its messages answer."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from probes.email.match import ProbeRef

MAIL_DIR = Path(__file__).resolve().parents[2] / "data" / "mail"


def _probe(probe_id: str, token: str, message_id: str, site: str, subject: str, sent: str, until: str) -> ProbeRef:
    def instant(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    return ProbeRef(probe_id, token, message_id, site, subject, instant(sent), instant(until))


# The mystery emails the corpus answers (all sent by jeanne.martin@probes.example.net).
# mvh-0420 and mvh-0505 share a template subject, to exercise ambiguity.
PROBES = (
    _probe("mvh-0505", "QP-7K2M9", "<20260505081502.qp7k2m9.4f1c@probes.example.net>", "contact.mvh@example.org",
           "Horaires d'ouverture pendant les vacances — Réf. QP-7K2M9", "2026-05-05T08:15:02", "2026-05-19T22:00"),
    _probe("mvh-0420", "QP-JX3PA", "<20260420093011.qpjx3pa.77aa@probes.example.net>", "contact.mvh@example.org",
           "Horaires d'ouverture pendant les vacances — Réf. QP-JX3PA", "2026-04-20T09:30:11", "2026-05-20T22:00"),
    _probe("carnavalet-0505", "QP-R4TWX", "<20260505091544.qpr4twx.1b2e@probes.example.net>",
           "accueil.carnavalet@example.org", "Visite de groupe scolaire en juin — Réf. QP-R4TWX",
           "2026-05-05T09:15:44", "2026-05-19T22:00"),
    _probe("petitpalais-0506", "QP-H8NQ3", "<20260506074210.qph8nq3.9c0d@probes.example.net>",
           "contact.petitpalais@example.com", "Accès en fauteuil roulant — Réf. QP-H8NQ3",
           "2026-05-06T07:42:10", "2026-05-20T22:00"),
    _probe("cernuschi-0506", "QP-5CZVD", "<20260506123305.qp5czvd.e4a1@probes.example.net>",
           "info.cernuschi@example.net", "Objet oublié lors de ma visite — Réf. QP-5CZVD",
           "2026-05-06T12:33:05", "2026-05-20T22:00"),
    _probe("disparu-0507", "QP-W9B6E", "<20260507080012.qpw9b6e.0a3f@probes.example.net>",
           "contact@musee-disparu.example.com", "Question sur l'exposition « Paris 1900 » — Réf. QP-W9B6E",
           "2026-05-07T08:00:12", "2026-05-21T22:00"),
    _probe("balzac-0507", "QP-T6GKM", "<20260507101530.qpt6gkm.5d5d@probes.example.net>",
           "accueil.balzac@example.org", "Réservation d'une visite guidée — Réf. QP-T6GKM",
           "2026-05-07T10:15:30", "2026-05-21T22:00"),
    _probe("zadkine-0508", "QP-N7YEB", "<20260508084500.qpn7yeb.c1c1@probes.example.net>",
           "contact.zadkine@example.com", "Demande d'information sur l'atelier — Réf. QP-N7YEB",
           "2026-05-08T08:45:00", "2026-05-22T22:00"),
)


@dataclass(frozen=True)
class Expected:
    file: str
    kind: str
    bounce: str  # "" unless kind == bounce
    status_code: str
    bulk: bool
    rule: str  # a fragment of Classification.reason
    method: str  # "" when the message matches no probe
    probe: str

    def __str__(self) -> str:  # the test id
        return self.file


def expected_rows() -> list[Expected]:
    with (MAIL_DIR / "expected.csv").open(newline="", encoding="utf-8") as handle:
        return [
            Expected(**{**row, "bulk": row["bulk"] == "yes"})  # type: ignore[arg-type]
            for row in csv.DictReader(handle)
        ]


def corpus_files() -> list[Path]:
    return sorted(MAIL_DIR.glob("*.eml"))
