"""Evidence file names: one harmless component each, always .txt, never outside evidence/."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from monitor.report.evidence import evidence_href, safe_component


@pytest.mark.parametrize(("name", "safe"), [
    ("human_reply-17.eml", "human_reply-17.eml"),
    ("../../etc/passwd", "etc_passwd"),
    (".htaccess", "htaccess"),
    ("a b<c>.html", "a_b_c_.html"),
    ("", "item"),
    ("...", "item"),
    ("réponse été.eml", "r_ponse_t_.eml"),
    ("C:\\Windows\\x.bat", "C_Windows_x.bat"),
])
def test_names_are_reduced_to_a_harmless_component(name: str, safe: str) -> None:
    assert safe_component(name) == safe


def test_long_names_are_cut() -> None:
    assert len(safe_component("x" * 500)) == 80


@pytest.mark.parametrize("name", ["reply.eml", "page.html", "../../../index.html", "trace.sip", "x.svg"])
def test_every_evidence_file_ends_in_txt_inside_its_probe_folder(name: str) -> None:
    href = PurePosixPath(evidence_href("01J0PROBE", 42, name))
    assert href.suffix == ".txt"
    assert href.parts[:2] == ("evidence", "01J0PROBE") and len(href.parts) == 3 and ".." not in href.parts
    assert href.name.startswith("42-")
