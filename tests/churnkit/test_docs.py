"""The generated reference docs are current (regenerate with `make docs`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnkit.docs import GENERATED
from churnkit.features import all_features

DOCS = Path(__file__).parents[2] / "docs"


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_committed_docs_match_the_code(name):
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == GENERATED[name](), f"docs/{name} is stale: run `make docs`"


def test_every_feature_and_column_is_documented():
    features_md = (DOCS / "features.md").read_text(encoding="utf-8")
    for feature in all_features():
        assert f"`{feature.name}`" in features_md
    contract = (DOCS / "data-contract.md").read_text(encoding="utf-8")
    for column in ("status_at", "resolved_at", "unsubscribed_at", "converted_at"):
        assert f"`{column}`" in contract and "learned later" in contract
