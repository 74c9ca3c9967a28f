"""`make demo` runs the main job: the demo starts, answers /healthz, and verdicts appear."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.conftest import ROOT
from tests.support.integration import free_port
from tests.support.pdf import ink, pdf_pages, render_pages


def healthz(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


def status(workdir: Path) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "monitor", "status", "-c", str(workdir / "demo.yaml"),
                          "--format", "json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout) if out.returncode == 0 else []


def test_the_demo_serves_healthz_and_fills_with_verdicts(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen([sys.executable, "-m", "monitor", "demo", "--duration", "60", "--pace", "0.1",
                             "--listen", f"127.0.0.1:{port}", "--workdir", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while (body := healthz(port)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert body is not None and body["status"] == "ok", body
        rows: list[dict] = []
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            rows = status(tmp_path)
            decided = {(r["site"], r["commitment"]): (r["met"], r["missed"]) for r in rows}
            if decided.get(("maison-victor-hugo", "email.quality"), (0, 0))[0] and \
                    decided.get(("maison-de-balzac", "email.quality"), (0, 0))[1] and \
                    decided.get(("maison-victor-hugo", "email.reply"), (0, 0))[0] and \
                    decided.get(("musee-zadkine", "email.reply"), (0, 0))[1] and \
                    decided.get(("musee-carnavalet", "phone.answer"), (0, 0))[1] and \
                    decided.get(("maison-de-balzac", "phone.out_of_hours"), (0, 0))[0]:
                break
            time.sleep(1)
        by_key = {(r["site"], r["commitment"]): r for r in rows}
        assert by_key[("maison-victor-hugo", "email.reply")]["met"] >= 1   # a person replied
        assert by_key[("musee-zadkine", "email.reply")]["missed"] >= 1     # the address bounces
        assert by_key[("musee-carnavalet", "phone.answer")]["missed"] >= 1  # busy
        assert by_key[("maison-de-balzac", "phone.out_of_hours")]["met"] >= 1  # the answering machine
        assert by_key[("maison-victor-hugo", "email.quality")]["met"] >= 1  # signed, with a number
        assert by_key[("maison-de-balzac", "email.quality")]["missed"] >= 1  # signed « L'accueil »
    finally:
        demo.terminate()
        try:
            demo.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0
    the_demos_period_as_a_pdf(tmp_path)


def the_demos_period_as_a_pdf(workdir: Path) -> None:
    """The PDF report of the demo's period renders, with a section per site and the chain result on its cover."""
    month = datetime.now(ZoneInfo("Europe/Paris")).strftime("%Y-%m")
    out = subprocess.run([sys.executable, "-m", "monitor", "report", "-c", str(workdir / "demo.yaml"), "--period",
                          month, "--format", "pdf", "-o", str(workdir / "report")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    pdf = Path(out.stdout.strip())
    pages = pdf_pages(pdf)
    assert month in pages[0] and "Event log intact" in pages[0]
    text = ["".join(page.split()) for page in pages]
    for site in ("Maison de Victor Hugo", "Musée Carnavalet", "Petit Palais", "Musée Zadkine", "Maison de Balzac"):
        assert any(page.startswith("".join(site.split())) for page in text), site
    assert any("Answerquality" in page for page in text)
    assert render_pages(pdf, workdir, 1, 2) and ink(pdf, 1, workdir) > 0.005
