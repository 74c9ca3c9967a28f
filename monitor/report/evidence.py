"""Evidence files next to the report: raw messages and SIP traces, written so that no browser runs them.

Evidence bytes are hostile (a reply can be any HTML an attacker likes), so
they are never inlined into a page.  Each item is written byte for byte to
`evidence/<probe>/<id>-<name>.txt`: the name is reduced to `[A-Za-z0-9._-]`
(no path separators, no leading dot) and always ends in `.txt`, so a click
shows plain text instead of rendering HTML or opening `.eml` as a web
archive.  The bytes written are hashed again and compared with the digest
recorded when the evidence was stored; `evidence/SHA256SUMS` lists the
recorded digests so `sha256sum -c SHA256SUMS` re-checks the copy.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from monitor.store.inlists import stream_in
from monitor.store.schema import Evidence
from monitor.store.store import Store

EVIDENCE_DIR = "evidence"
STREAM_BATCH = 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class EvidenceFile:
    probe_id: str
    name: str            # as stored: display it escaped, never use it as a path
    href: str            # relative to the report directory, POSIX separators
    sha256: str          # as recorded when stored
    size: int
    content_type: str
    intact: bool         # the bytes written hash to the recorded digest


def safe_component(text: str, limit: int = 80) -> str:
    """One harmless path component: no separators, no leading dot, never empty."""
    cleaned = _UNSAFE.sub("_", text).strip("._-")[:limit].strip("._-")
    return cleaned or "item"


def evidence_href(probe_id: str, evidence_id: int, name: str) -> str:
    return f"{EVIDENCE_DIR}/{safe_component(probe_id)}/{evidence_id}-{safe_component(name)}.txt"


async def write_evidence(store: Store, probe_ids: Sequence[str], out_dir: Path) -> dict[str, list[EvidenceFile]]:
    """Copy the evidence of these probes under `out_dir`; returns what was written, per probe."""
    written: dict[str, list[EvidenceFile]] = defaultdict(list)
    if not probe_ids:
        return written
    def query(chunk: list[str]) -> Any:
        return (select(Evidence.id, Evidence.probe_id, Evidence.name, Evidence.content_type, Evidence.sha256,
                       Evidence.size, Evidence.data)
                .where(Evidence.probe_id.in_(chunk)).order_by(Evidence.id)
                .execution_options(yield_per=STREAM_BATCH))

    async with store.read() as conn:
        async for row in stream_in(conn, probe_ids, query):
            written[row.probe_id].append(_write_one(out_dir, row))
    return written


def _write_one(out_dir: Path, row: Any) -> EvidenceFile:
    data = bytes(row.data or b"")
    href = evidence_href(row.probe_id, row.id, row.name)
    path = out_dir / href
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return EvidenceFile(row.probe_id, row.name, href, row.sha256, len(data), row.content_type,
                        hashlib.sha256(data).hexdigest() == row.sha256)

