"""Reading a PDF the way a person would: its text (`pdftotext`), its pages as pictures (`pdftoppm`), its fonts.

Debian `poppler-utils`; tests that use it go through `need_binary`, so they skip
with the reason when it is missing (and fail under QUALIMON_REQUIRE_INTEGRATION=1).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.integration import need_binary


def pdf_pages(path: Path) -> list[str]:
    """The text of each page (pdftotext separates pages with a form feed)."""
    tool = need_binary("pdftotext", "poppler-utils")
    out = subprocess.run([tool, "-layout", str(path), "-"], capture_output=True, text=True, check=True, timeout=120)
    pages = out.stdout.split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def pdf_fonts(path: Path) -> list[dict[str, str]]:
    """`pdffonts`' table: name, type, embedded (emb) and subset (sub) per font."""
    tool = need_binary("pdffonts", "poppler-utils")
    lines = subprocess.run([tool, str(path)], capture_output=True, text=True, check=True, timeout=60).stdout
    rows = []
    for line in lines.splitlines()[2:]:
        fields = line.split()
        if len(fields) >= 7:
            # name type [type words…] encoding emb sub uni object ID
            rows.append({"name": fields[0], "emb": fields[-5], "sub": fields[-4]})
    return rows


def render_pages(path: Path, out_dir: Path, first: int = 1, last: int = 1, dpi: int = 60) -> list[Path]:
    """PNG pictures of pages first..last."""
    tool = need_binary("pdftoppm", "poppler-utils")
    subprocess.run([tool, "-png", "-r", str(dpi), "-f", str(first), "-l", str(last), str(path),
                    str(out_dir / "page")], check=True, timeout=120)
    return sorted(out_dir.glob("page*.png"))


def ink(path: Path, page: int, out_dir: Path) -> float:
    """Share of dark pixels on one page (0 for a blank page), from a grey-level rendering (PGM, unfiltered)."""
    tool = need_binary("pdftoppm", "poppler-utils")
    subprocess.run([tool, "-gray", "-r", "30", "-f", str(page), "-l", str(page), str(path), str(out_dir / "grey")],
                   check=True, timeout=120)
    [pgm] = sorted(out_dir.glob("grey*.pgm"))
    data = pgm.read_bytes()
    magic, width, height, maximum, pixels = data.split(maxsplit=4)
    assert magic == b"P5" and int(maximum) == 255
    count = int(width) * int(height)
    pgm.unlink()
    return sum(1 for value in pixels[:count] if value < 160) / count
