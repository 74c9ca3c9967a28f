"""Headless Chromium for the page tests: the DOM after rendering, a screenshot, a PDF print.

Each `render` starts one Chromium with a fresh profile (so no state leaks
between runs), no network services of its own, and returns the DOM as the
browser built it, i.e. after any script *would* have run: a test that finds
the page title unchanged and no injected element proves hostile text stayed
text.  Starts take about a second, so tests render several pages at once
with `render_many` and share the results.  `parse_dom` reads the dumped DOM
back into a small queryable tree (standard library only).

Screenshots and PDFs go to `test-artifacts/` at the repository root
(git-ignored), kept for a human to look at after a run.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from tests.support.integration import need_binary

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio")
WINDOW = "--window-size=1280,2000"
TIMEOUT_SECONDS = 60.0


def chromium() -> str:
    """The Chromium binary; skips on a laptop without it, fails in CI (QUALIMON_REQUIRE_INTEGRATION=1)."""
    return need_binary("chromium", "chromium")


@dataclass(frozen=True)
class Job:
    url: str
    screenshot: str | None = None       # file name under test-artifacts/
    pdf: str | None = None              # print to PDF instead of dumping the DOM


@dataclass(frozen=True)
class Rendered:
    url: str
    dom: str
    screenshot: Path | None
    pdf: Path | None


async def render(binary: str, job: Job) -> Rendered:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / job.screenshot if job.screenshot else None
    pdf = ARTIFACTS / job.pdf if job.pdf else None
    with tempfile.TemporaryDirectory(prefix="qualimon-chromium-") as profile:
        args = [*FLAGS, f"--user-data-dir={profile}"]
        if pdf is not None:
            args += ["--no-pdf-header-footer", f"--print-to-pdf={pdf}"]
        else:
            args += ["--dump-dom", WINDOW] + ([f"--screenshot={shot}"] if shot else [])
        out = await _run(binary, [*args, job.url])
    return Rendered(job.url, out, shot, pdf)


async def render_many(binary: str, jobs: dict[str, Job]) -> dict[str, Rendered]:
    """Render several pages in parallel Chromium processes."""
    results = await asyncio.gather(*(render(binary, job) for job in jobs.values()))
    return dict(zip(jobs, results))


async def _run(binary: str, args: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(binary, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"chromium did not finish within {TIMEOUT_SECONDS:.0f} s: {args[-1]}") from None
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        raise AssertionError(f"chromium exited with {proc.returncode} on {args[-1]}: " + " | ".join(tail))
    return out.decode("utf-8", errors="replace")


# ---------------------------------------------------------------- reading the DOM back


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self, tag: str | None = None) -> Iterator[Node]:
        if tag is None or self.tag == tag:
            yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter(tag)

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [n for n in self.iter(tag) if all(n.attrs.get(k) == v for k, v in wanted.items())]

    def find(self, tag: str, **attrs: str) -> Node | None:
        found = self.find_all(tag, **attrs)
        return found[0] if found else None


VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
                 "wbr"}


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID_ELEMENTS:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_dom(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def table_rows(table: Node) -> list[dict[str, str]]:
    """A table's body rows as {header text: cell text}, headers from its thead."""
    head = table.find("thead")
    headers = [th.text().strip() for th in head.iter("th")] if head else []
    body = table.find("tbody") or table
    rows = []
    for tr in body.iter("tr"):
        cells = [c for c in tr.children if isinstance(c, Node) and c.tag in ("td", "th")]
        rows.append({h: c.text().strip() for h, c in zip(headers, cells)})
    return rows
