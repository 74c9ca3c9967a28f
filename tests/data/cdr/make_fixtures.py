"""Write the Master.csv fixtures of this directory from readable call descriptions.

The fixtures are committed; this script documents how they were made and
remakes them byte for byte:  .venv/bin/python tests/data/cdr/make_fixtures.py

Only fictional numbers are used: the sites are +33 1 99 00 12 34 and
+33 1 99 00 12 35, callers are +33 1 99 00 9x xx (ARCEP fiction block).
Stamps are Europe/Paris wall-clock time, as a PBX with usegmtime=no writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAMP = "%Y-%m-%d %H:%M:%S"


@dataclass
class Row:
    """One CDR leg; `start` is local wall-clock, `ring` + `talk` = duration."""

    start: str
    dst: str
    src: str
    ring: int
    talk: int
    disposition: str
    uniqueid: str = ""
    linkedid: str = ""
    sequence: int = 0
    member: str = "accueil-1"
    lastapp: str = "Dial"
    end_override: str | None = None  # for stamps written across a DST change

    def fields(self, width: int) -> list[str]:
        start = datetime.strptime(self.start, STAMP)
        answer = start + timedelta(seconds=self.ring) if self.disposition == "ANSWERED" else None
        end = self.end_override or (start + timedelta(seconds=self.ring + self.talk)).strftime(STAMP)
        channel = f"PJSIP/trunk-{self.sequence:08x}"
        base = ["", self.src, self.dst, "from-trunk", f'"Appelant" <{self.src}>', channel,
                f"PJSIP/{self.member}-{self.sequence + 0x100:08x}", self.lastapp, f"PJSIP/{self.member},30",
                self.start, answer.strftime(STAMP) if answer else "", end, str(self.ring + self.talk),
                str(self.talk), self.disposition, "DOCUMENTATION"]
        if width == 16:
            return base
        if width == 18:
            return base + [self.uniqueid, ""]
        return base + [self.uniqueid, "", "", self.linkedid, str(self.sequence)]


def line(fields: list[str]) -> str:
    """As cdr_csv.c writes: strings quoted, numbers and empty stamps bare."""
    out = []
    for index, value in enumerate(fields):
        bare = index in (12, 13, 20) or (index in (10, 11) and not value)
        out.append(value if bare else '"' + value.replace('"', '""') + '"')
    return ",".join(out) + "\n"


SITE1, SITE2 = "0199001234", "+33199001234"
DAY = "2026-06-16"  # a Tuesday

LINKED = [
    # answered after 12 s, national format
    Row(f"{DAY} 10:05:00", SITE1, "0199009001", 12, 95, "ANSWERED", "1781597100.1", "1781597100.1", 1),
    # answered after 31 s: too slow for 5 rings
    Row(f"{DAY} 10:20:00", SITE2, "+33199009002", 31, 60, "ANSWERED", "1781598000.2", "1781598000.2", 2),
    # nobody answers, the caller gives up after 40 s; 00-prefixed international format
    Row(f"{DAY} 10:40:00", "0033199001235", "0199009003", 40, 0, "NO ANSWER", "1781599200.3", "1781599200.3", 3),
    # busy; trunk DID without '+'
    Row(f"{DAY} 11:00:00", "33199001235", "0199009004", 3, 0, "BUSY", "1781600400.4", "1781600400.4", 4),
    # queue call ringing three desks (legs not adjacent: another call ends in between)
    Row(f"{DAY} 11:30:00", SITE1, "0199009005", 18, 0, "NO ANSWER", "1781602200.5", "1781602200.5", 5, "accueil-1", "Queue"),
    Row(f"{DAY} 11:30:05", SITE2, "0199009013", 4, 20, "ANSWERED", "1781602205.13", "1781602205.13", 13, "accueil-4"),
    Row(f"{DAY} 11:30:00", SITE1, "0199009005", 18, 0, "NO ANSWER", "1781602200.5", "1781602200.5", 6, "accueil-3", "Queue"),
    Row(f"{DAY} 11:30:00", SITE1, "0199009005", 18, 122, "ANSWERED", "1781602200.5", "1781602200.5", 7, "accueil-2", "Queue"),
    # queue call nobody answers: one desk times out at 30 s, the caller hangs up at 45 s
    Row(f"{DAY} 12:00:00", SITE1, "0199009006", 30, 0, "NO ANSWER", "1781604000.6", "1781604000.6", 8, "accueil-1", "Queue"),
    Row(f"{DAY} 12:00:02", SITE1, "0199009006", 43, 0, "NO ANSWER", "1781604000.6", "1781604000.6", 9, "accueil-2", "Queue"),
    # the caller hangs up after 8 s, before the 25 s commitment can be judged
    Row(f"{DAY} 14:00:00", SITE1, "0199009007", 8, 0, "NO ANSWER", "1781611200.7", "1781611200.7", 10),
    # the PBX could not reach the desk phone / the network was congested
    Row(f"{DAY} 14:30:00", SITE1, "0199009008", 0, 0, "FAILED", "1781613000.8", "1781613000.8", 11),
    Row(f"{DAY} 15:00:00", "01.99.00.12.35", "0199009009", 1, 0, "CONGESTION", "1781614800.9", "1781614800.9", 12),
    # after closing time the IVR message answers after 2 s
    Row(f"{DAY} 19:30:00", SITE1, "0199009010", 2, 28, "ANSWERED", "1781631000.10", "1781631000.10", 14, "ivr", "Playback"),
    # an internal call between two desk extensions: not a call to a site
    Row(f"{DAY} 16:00:00", "102", "101", 5, 40, "ANSWERED", "1781618400.11", "1781618400.11", 15, "accueil-2"),
]

NO_LINKEDID = [  # loguniqueid + loguserfield, no newcdrcolumns: legs share the caller's uniqueid
    Row(f"{DAY} 09:10:00", SITE1, "0199009021", 7, 50, "ANSWERED", "1781593800.21"),
    Row(f"{DAY} 09:20:00", SITE2, "0199009022", 26, 0, "NO ANSWER", "1781594400.22"),
    Row(f"{DAY} 09:30:00", SITE1, "0199009023", 10, 0, "NO ANSWER", "1781595000.23", member="accueil-1"),
    Row(f"{DAY} 09:30:00", SITE1, "0199009023", 10, 33, "ANSWERED", "1781595000.23", member="accueil-2"),
    Row(f"{DAY} 09:40:00", SITE1, "0199009024", 2, 0, "BUSY", "1781595600.24"),
]

BARE = [  # the cdr_csv defaults: 16 columns, no identifier at all
    Row(f"{DAY} 10:00:00", SITE1, "0199009031", 9, 70, "ANSWERED", sequence=31),
    Row(f"{DAY} 10:01:00", SITE1, "0199009032", 29, 0, "NO ANSWER", sequence=32),
    Row(f"{DAY} 10:02:00", SITE2, "0199009033", 1, 0, "BUSY", sequence=33),
]

DST = [
    # spring forward, 29 March 2026: 01:59:50 CET + 20 s = 03:00:10 CEST
    Row("2026-03-29 01:59:50", SITE1, "0199009041", 20, 0, "NO ANSWER", "1774745990.41", "1774745990.41", 41,
        end_override="2026-03-29 03:00:10"),
    # fall back, 25 October 2026: from 02:59:50 CEST, 20 s later it is 02:00:10 CET
    Row("2026-10-25 02:59:50", SITE1, "0199009042", 5, 15, "ANSWERED", "1792889990.42", "1792889990.42", 42,
        end_override="2026-10-25 02:00:10"),
    # a 55-minute call across the repeated hour: 02:10 CEST → 02:05 CET
    Row("2026-10-25 02:10:00", SITE1, "0199009043", 12, 3288, "ANSWERED", "1792887000.43", "1792887000.43", 43,
        end_override="2026-10-25 02:05:00"),
    # wholly inside the repeated hour: read as the first (summer-time) pass
    Row("2026-10-25 02:30:00", SITE1, "0199009044", 6, 54, "ANSWERED", "1792888200.44", "1792888200.44", 44),
]


def corrupt_rows() -> list[bytes]:
    """100 rows, exactly 5 of them broken, each a different way."""
    lines = []
    for n in range(100):
        minute = f"{8 + n // 12:02d}:{(n % 12) * 5:02d}:00"
        uid = f"1781590000.{100 + n}"
        row = Row(f"{DAY} {minute}", SITE1 if n % 2 else SITE2, f"01990090{n % 100:02d}", 5 + n % 30, 40,
                  "ANSWERED" if n % 3 else "NO ANSWER", uid, uid, 100 + n)
        if row.disposition == "NO ANSWER":
            row.talk = 0
        fields = row.fields(21)
        if n == 9:
            fields = fields[:12]  # wrong column count: the line was cut
        elif n == 29:
            fields[9] = "2026-06-31 10:00:00"  # no 31st of June
        elif n == 49:
            fields[12] = "-5"  # negative duration
        elif n == 89:
            fields[2] = ""  # empty dialled number
        data = line(fields).encode()
        if n == 69:
            data = data.replace(b"Appelant", b"Appel\xe9\xff")  # latin-1 bytes in a UTF-8 log
        lines.append(data)
    return lines


def main() -> None:
    (HERE / "master_linkedid.csv").write_text("".join(line(r.fields(21)) for r in LINKED))
    (HERE / "master_no_linkedid.csv").write_text("".join(line(r.fields(18)) for r in NO_LINKEDID))
    (HERE / "master_bare.csv").write_text("".join(line(r.fields(16)) for r in BARE))
    (HERE / "master_dst.csv").write_text("".join(line(r.fields(21)) for r in DST))
    (HERE / "master_corrupt.csv").write_bytes(b"".join(corrupt_rows()))


if __name__ == "__main__":
    main()
