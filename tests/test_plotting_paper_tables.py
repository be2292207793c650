"""The Table V/VI figure draws the computed means and paired differences, and the paper's differences beside them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from collapse_lab.plotting.paper_tables import plot_paper_table
from collapse_lab.results.paper_tables import TABLE5, table5_frame, table6_frame


def _results():
    rows = []
    for i, (a, b) in enumerate([(0.780, 0.790), (0.790, 0.795), (0.785, 0.800)]):
        rows.append(dict(dataset="movielens-100k", variant="vanilla-mean@pnn", n=1, seed=2024 + i, member="ensemble",
                         test_auc=a, test_logloss=0.5))
        rows.append(dict(dataset="movielens-100k", variant="kdef@pnn+final+ecn", n=3, seed=2024 + i, member="0",
                         test_auc=b, test_logloss=0.5))
    return pd.DataFrame(rows)


def test_the_figure_draws_means_paired_differences_and_the_papers_differences():
    table = table5_frame(_results())
    assert table6_frame(_results()).empty and len(table) == len(TABLE5)
    assert set(table["paper_dataset"]) == {"ML-1M"}
    fig, (left, right) = plot_paper_table(table)
    y_of = dict(zip([t.get_text() for t in left.get_yticklabels()], left.get_yticks(), strict=True))
    # the means: the marker line of the left errorbar holds (AUC %, y) for the two rows with data
    marker = next(line for line in left.lines if line.get_marker() == "o")
    drawn = dict(zip(marker.get_ydata(), marker.get_xdata(), strict=True))
    assert drawn[y_of["PNN"]] == pytest.approx(np.mean([78.0, 79.0, 78.5]))
    assert drawn[y_of["KDEF_PNN"]] == pytest.approx(np.mean([79.0, 79.5, 80.0]))
    diff = next(line for line in right.lines if line.get_marker() == "o")
    assert dict(zip(diff.get_ydata(), diff.get_xdata(), strict=True)) == {
        y_of["KDEF_PNN"]: pytest.approx(np.mean([1.0, 0.5, 1.5]))}
    paper = next(line for line in right.lines if line.get_marker() == "D")
    paper_d = dict(zip(paper.get_ydata(), paper.get_xdata(), strict=True))
    assert paper_d[y_of["KDEF_PNN"]] == pytest.approx(90.67 - 90.42)  # Table V, ML-1M column
    assert paper_d[y_of["w/o all (mean fusion)"]] == pytest.approx(90.51 - 90.75)
