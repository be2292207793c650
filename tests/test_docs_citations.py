"""The project documents itself: every citation of a documentation page points into ``docs/`` and names a
section that exists there; nothing cites the former internal reference pages (which users do not have)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("collapse_lab", "tests", "bench", "configs", "analyses", "figures", "README.md", "REPRODUCTION.md",
           "Makefile", "pyproject.toml", "CITATION.cff")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".ipynb", ".sh", ".toml", ".cff", ".txt", ""}
PAGES = ("method", "metrics", "data", "performance", "architecture")
#: ``docs/<page>.md`` optionally quoted, then its sections: §4, §6.1, §2.3–2.4, §1.5/§7.5, §4, §8.2
CITATION = re.compile(r"docs/(?P<page>[a-z]+)\.md`*\s+(?P<sections>§[\d.]+(?:–[\d.]+|\s*(?:,|/|and)\s*§[\d.]+)*)")
#: a bare former page name (``paper.md``, ``metrics.md`` ...) not preceded by ``docs/``
BARE = re.compile(r"(?<![\w/.])(?:shared/docs/)?(?:paper|metrics|style|performance|data)\.md\b")


def _files():
    for entry in SCANNED:
        path = ROOT / entry
        candidates = path.rglob("*") if path.is_dir() else [path]
        for p in candidates:
            skipped = "__pycache__" in p.parts or any(part.startswith(".venv") for part in p.parts)  # bench venvs
            if p.is_file() and p.suffix in SUFFIXES and not skipped and p.name != Path(__file__).name:
                yield p


def _sections(page: str) -> set:
    """Section numbers of a docs page: headings ``## 4.`` / ``### 6.1`` and bold list labels ``**4.10**``."""
    text = (ROOT / "docs" / f"{page}.md").read_text(encoding="utf-8")
    found = set(re.findall(r"^#+\s+(\d+(?:\.\d+)*)\.?\s", text, re.M))
    found |= set(re.findall(r"^\*\*(\d+(?:\.\d+)+)\*\*", text, re.M))
    return found


def test_no_citation_of_pages_outside_the_repository():
    offenders = [f"{p.relative_to(ROOT)}:{i}: {line.strip()[:100]}"
                 for p in _files() for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if BARE.search(line) or "shared/docs" in line]
    assert not offenders, "\n".join(offenders)


def test_every_docs_citation_names_an_existing_section():
    sections = {page: _sections(page) for page in PAGES}
    missing, seen = [], 0
    for p in _files():
        for m in CITATION.finditer(p.read_text(encoding="utf-8")):
            page = m.group("page")
            assert page in sections, f"{p.relative_to(ROOT)}: docs/{page}.md does not exist"
            for number in re.findall(r"\d+(?:\.\d+)*", m.group("sections")):
                seen += 1
                if number not in sections[page]:
                    missing.append(f"{p.relative_to(ROOT)}: docs/{page}.md §{number}")
    assert seen > 50  # the code base cites its docs throughout; a broken pattern would find none
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("page", PAGES)
def test_docs_pages_have_numbered_sections(page):
    assert {"1", "2"} <= _sections(page)
