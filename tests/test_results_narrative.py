"""Prose for the notebooks: numbers from the tables, recipes selected with the single model kept."""

from __future__ import annotations

import pandas as pd
import pytest

from collapse_lab.errors import UserError
from collapse_lab.results import Prose, describe_claims, describe_vs_n, select_recipes


def _results():
    return pd.DataFrame({"variant": ["vanilla-mean", "vanilla-mean", "kd", "dml"], "n": [1, 2, 2, 2],
                         "seed": [0, 0, 0, 0], "member": ["ensemble"] * 4})


def test_select_recipes_keeps_the_single_model_and_rejects_unknown_names():
    assert select_recipes(_results(), None) is not None and len(select_recipes(_results(), None)) == 4
    kept = select_recipes(_results(), ["kd"])
    assert list(zip(kept["variant"], kept["n"], strict=True)) == [("vanilla-mean", 1), ("kd", 2)]
    with pytest.raises(UserError, match="unknown recipe 'kdf'; these results hold: dml, kd, vanilla-mean"):
        select_recipes(_results(), ["kdf"])


def test_prose_renders_as_markdown_and_reports_missing_claims_and_metrics():
    text = describe_claims(pd.DataFrame(columns=["claim"]), ["C3"])
    assert isinstance(text, Prose) and text._repr_markdown_() == text
    assert text == "**C3**: not measurable on these runs (no quantity could be computed)."
    summary = pd.DataFrame({"variant": ["kd"], "n": [2], "metric": ["gap"], "mean": [0.01], "ci_low": [float("nan")],
                            "ci_high": [float("nan")], "runs": [1]})
    assert describe_vs_n(summary, "gap", scale=100.0).endswith("- kd: 1.000 (one run, no interval) at N = 2")
    with pytest.raises(UserError, match="no 'auc' in the summary; metrics: gap"):
        describe_vs_n(summary, "auc")
