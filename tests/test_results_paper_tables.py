"""Tables V and VI from a sweep's results rows: means, Student-t intervals and paired differences, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from collapse_lab.results.paper_tables import TABLE5, paper_table, paper_table_markdown, table6_rows


def _rows(variant: str, member: str, aucs, n: int = 1, lls=None):
    lls = lls or [0.3] * len(aucs)
    return [dict(variant=variant, n=n, seed=2024 + i, member=member, test_auc=a, test_logloss=ll)
            for i, (a, ll) in enumerate(zip(aucs, lls, strict=True))]


def test_table5_means_intervals_and_paired_difference():
    pnn = [0.780, 0.790, 0.785]
    kdef_pnn = [0.790, 0.795, 0.800]
    df = pd.DataFrame(_rows("vanilla-mean@pnn", "ensemble", pnn, lls=[0.5, 0.6, 0.7])
                      + _rows("kdef@pnn+final+ecn", "0", kdef_pnn, n=3)
                      + _rows("kdef@pnn+final+ecn", "ensemble", [0.8, 0.8, 0.8], n=3))
    t = paper_table(df, TABLE5).set_index("row")
    half = stats.t.ppf(0.975, 2) * np.std(pnn, ddof=1) / np.sqrt(3)
    assert t.loc["PNN", "seeds"] == 3
    assert t.loc["PNN", "auc_mean"] == pytest.approx(np.mean(pnn))
    assert t.loc["PNN", "auc_hi"] - t.loc["PNN", "auc_mean"] == pytest.approx(half)
    assert t.loc["PNN", "logloss_mean"] == pytest.approx(0.6)
    assert t.loc["PNN", "paper_auc"] == pytest.approx(0.9042)  # ML-1M column of Table V
    d = np.subtract(kdef_pnn, pnn)
    assert t.loc["KDEF_PNN", "diff_seeds"] == 3
    assert t.loc["KDEF_PNN", "diff_auc_mean"] == pytest.approx(d.mean())
    half_d = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert t.loc["KDEF_PNN", "diff_auc_hi"] - d.mean() == pytest.approx(half_d)
    assert t.loc["ECN", "seeds"] == 0 and np.isnan(t.loc["ECN", "auc_mean"])
    assert t.loc["KDEF_Latest", "auc_mean"] == pytest.approx(0.8)
    md = paper_table_markdown(t.reset_index())
    assert "| PNN | 3 | 78.50 [" in md and "| ECN | 0 | – |" in md and "| KDEF_PNN | 3 |" in md


def test_paired_difference_uses_common_seeds_only():
    df = pd.DataFrame(_rows("vanilla-mean@ecn", "ensemble", [0.70, 0.71])
                      + [dict(variant="kdef@pnn+final+ecn", n=3, seed=2025, member="2", test_auc=0.75,
                              test_logloss=0.3)])
    t = paper_table(df, TABLE5).set_index("row")
    assert t.loc["KDEF_ECN", "diff_seeds"] == 1
    assert t.loc["KDEF_ECN", "diff_auc_mean"] == pytest.approx(0.04)
    assert np.isnan(t.loc["KDEF_ECN", "diff_auc_lo"])  # one seed: no interval


def test_table6_rows_pair_each_student_with_its_kdef_member():
    rows = table6_rows(["dcnv2"])
    assert [(r.label, r.variant, r.member, r.paired_with) for r in rows] == [
        ("DCNv2", "vanilla-mean@dcnv2", "ensemble", None), ("KDEF_DCNv2", "kdef@final+ecn+dcnv2", "2", "DCNv2")]
    assert rows[1].paper["ML-1M"] == (0.3031, 90.62)


def test_paper_tables_for_picks_the_tables_a_sweep_holds_and_the_paper_column():
    from collapse_lab.results.paper_tables import paper_column, paper_tables_for

    df = pd.DataFrame(_rows("vanilla-mean@crossnet", "ensemble", [0.70, 0.72])
                      + _rows("kdef@final+ecn+crossnet", "2", [0.74, 0.75], n=3)).assign(dataset="Criteo_x4")
    out = paper_tables_for(df)
    assert list(out) == ["table6"]  # no Table V row in this sweep
    text, table = out["table6"]
    t = table.set_index("row")
    assert t.loc["CrossNetv2", "paper_auc"] == pytest.approx(0.8127)  # the Criteo column, since the data is Criteo
    assert t.loc["KDEF_CrossNetv2", "diff_auc_mean"] == pytest.approx(np.mean([0.04, 0.03]))
    assert "the paper's numbers are its Criteo column" in text and "| KDEF_CrossNetv2 | 2 | 74.50 [" in text
    assert paper_column("movielens-100k") == "ML-1M" and paper_column("KKBox_x1") == "KKBox"
    assert paper_tables_for(df.assign(variant="kd-mean")) == {}
