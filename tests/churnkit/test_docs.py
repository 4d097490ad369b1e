"""The generated reference docs are current (regenerate with `make docs`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from churnkit.docs import GENERATED, SECTIONS
from churnkit.features import all_features

DOCS = Path(__file__).parents[2] / "docs"


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_committed_docs_match_the_code(name):
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == GENERATED[name](), f"docs/{name} is stale: run `make docs`"


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_generated_parts_of_the_hand_written_docs_match_the_code(name):
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == SECTIONS[name](committed), f"docs/{name} is stale: run `make docs`"


def test_every_feature_and_column_is_documented():
    features_md = (DOCS / "features.md").read_text(encoding="utf-8")
    for feature in all_features():
        assert f"`{feature.name}`" in features_md
    contract = (DOCS / "data-contract.md").read_text(encoding="utf-8")
    for column in ("status_at", "resolved_at", "unsubscribed_at", "converted_at"):
        assert f"`{column}`" in contract and "learned later" in contract


ROOT = DOCS.parent
#: A cited section: docs/NAME.md "Heading", or docs/NAME.md ("Heading", "Heading", ...).
_CITATION = re.compile(r'docs/(domain|architecture)\.md (\("[^)]*\)|"[^"]*")')


def _project_texts() -> dict[str, str]:
    paths = [ROOT / "README.md", *sorted(DOCS.glob("*.md")),
             *sorted((ROOT / "benchmarks").glob("*.md"))]
    for package in ("churnkit", "training", "serving", "tests", "benchmarks", "notebooks"):
        for pattern in ("*.py", "*.yaml", "*.ipynb"):
            paths += sorted((ROOT / package).rglob(pattern))
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in paths}


def test_code_and_docs_cite_sections_that_exist_in_the_repository():
    headings = {name: {" ".join(line.lstrip("#").split())
                       for line in (DOCS / f"{name}.md").read_text(encoding="utf-8").splitlines()
                       if line.startswith("#")}
                for name in ("domain", "architecture")}
    texts = _project_texts()
    outside = ("DOMAIN", "DESIGN")  # the docs that lived outside the repository
    assert not [path for path, text in texts.items()
                if any(f"{name}.md" in text for name in outside)]
    # a section cited across lines of a comment loses the comment markers
    cited = [(path, doc, " ".join(re.sub(r"#:?", " ", section).split()))
             for path, text in texts.items() for doc, group in _CITATION.findall(text)
             for section in re.findall(r'"([^"]*)"', group)]
    assert len(cited) > 10
    missing = [(path, doc, section) for path, doc, section in cited
               if section not in headings[doc] and section != "<section>"]
    assert not missing, f"cited sections that docs/ does not have: {missing}"
