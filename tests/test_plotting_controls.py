"""Figure 16 (KDEF against its ablations and the capacity control) and figures 1-3 leaving those controls to it,
on a synthetic results table of the ``ml100k`` recipes plus its controls."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from collapse_lab.plotting import plot_controls
from collapse_lab.plotting.figures import FIGURES, draw_figure, render_figures
from collapse_lab.plotting.style import VARIANT_STYLES, has_data
from collapse_lab.results import load_results
from collapse_lab.results import tables as T

SEEDS = (0, 1, 2)
#: variant -> (method, N values, ensemble AUC offset in points over vanilla-mean)
PAPER = {"vanilla-mean": ("vanilla", (1, 2, 4), 0.0), "vanilla-sum": ("vanilla", (2, 4), -0.05),
         "kd": ("kd", (2, 4), 0.10), "dml": ("dml", (2, 4), 0.15), "kdef": ("kdef", (2, 4), 0.30)}
CONTROLS = {"kdef-kd-only": ("kdef", (2, 4), 0.20), "kdef-dml-only": ("kdef", (2, 4), 0.22),
            "kdef-uniform": ("kdef", (2, 4), 0.25), "vanilla-mean-capacity": ("vanilla", (2, 4), 0.05)}
ABLATIONS = ["kdef-kd-only", "kdef-dml-only", "kdef-uniform"]


def _results(recipes) -> pd.DataFrame:
    """results.csv rows (ensemble and students) of every recipe, N and seed; the capacity control has one student."""
    rng = np.random.default_rng(0)
    rows = []
    for variant, (method, ns, offset) in recipes.items():
        for n, seed in ((n, s) for n in ns for s in SEEDS):
            run = f"{variant}-n{n}-s{seed}"
            ens = 0.78 + 0.002 * np.log2(n) + offset / 100 + 0.0008 * rng.standard_normal()
            k = 1 if variant == "vanilla-mean-capacity" else n
            students = [ens - 0.001 * (j + 1) * (k > 1) for j in range(k)]
            base = {"run": run, "variant": variant, "dataset": "synthetic", "method": method, "fusion": "mean",
                    "n": n, "seed": seed, "git_commit": "x", "run_dir": f"runs/{run}"}
            rows.append({**base, "member": "ensemble", "test_auc": ens, "ensemble_auc": ens,
                         "best_student_auc": max(students), "worst_student_auc": min(students),
                         "gap": ens - max(students)})
            rows += [{**base, "member": str(j), "test_auc": auc} for j, auc in enumerate(students)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("controls") / "results.csv"
    _results({**PAPER, **CONTROLS}).to_csv(path, index=False)
    return path


def _labels(ax):
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def _legend(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_fig16_draws_kdef_its_controls_and_the_paired_differences(table):
    results = load_results(table).results
    fig, axes = plot_controls(T.controls_table(results))
    assert len(axes) == 3 and all(has_data(ax) for ax in axes)
    assert _labels(axes[0]) == ["vanilla-mean", "vanilla-mean-capacity", "kdef", *ABLATIONS]
    assert _legend(fig) == _labels(axes[0]) + ["single model"]
    assert "kdef − ablation" in axes[1].get_title() and "capacity" in axes[2].get_title()
    assert [c.get_label() for c in axes[1].containers] == ABLATIONS
    assert [c.get_label() for c in axes[2].containers] == ["vanilla-mean-capacity"]
    # KDEF minus the ablation at N = 2, the mean over seeds of the paired differences, in AUC points
    runs = results[(results["member"] == "ensemble") & (results["n"] == 2)].set_index(["variant", "seed"])
    expected = ((runs.loc["kdef", "ensemble_auc"] - runs.loc["kdef-uniform", "ensemble_auc"]) * 100).mean()
    uniform = next(c for c in axes[1].containers if c.get_label() == "kdef-uniform")
    assert uniform.lines[0].get_ydata()[0] == pytest.approx(expected)
    # KDEF stays vermillion and solid; its ablations share its hue but not a colour or a line style
    lines = {line.get_label(): line for line in axes[0].get_lines()}
    assert to_hex(lines["kdef"].get_color()).upper() == VARIANT_STYLES["kdef"]["color"]
    assert lines["kdef"].get_linestyle() == "-"
    family = [lines[v] for v in ["kdef", *ABLATIONS]]
    assert len({to_hex(line.get_color()) for line in family}) == 4
    assert len({line.get_linestyle() for line in family}) == 4 and len({line.get_marker() for line in family}) == 4


def test_fig16_is_drawn_by_the_figures_command_and_skipped_without_controls(table, tmp_path):
    report = render_figures(table, out_dir=tmp_path / "with", formats=("png",), only=["fig16"])
    assert list(report.written) == ["fig16_controls"] and not report.skipped
    index = json.loads((tmp_path / "with" / "figures.json").read_text())
    assert index["figures"][0]["caption"].startswith("synthetic; seeds 0, 1, 2 (3); N ∈ {1, 2, 4}")
    plain = tmp_path / "plain" / "results.csv"
    plain.parent.mkdir()
    _results(PAPER).to_csv(plain, index=False)
    report = render_figures(plain, formats=("png",), only=["fig1", "fig16"])
    spec = next(f for f in FIGURES if f.stem == "fig16_controls")
    assert list(report.written) == ["fig1_ensemble_auc"]
    assert report.skipped == {"fig16_controls": f"needs {spec.needs}"}
    assert json.loads((plain.parent / "figures.json").read_text())["skipped"] == report.skipped


def test_figs_1_to_3_leave_the_controls_to_fig16(table):
    collected = load_results(table)
    for name in ("fig1", "fig2", "fig3"):
        entries = " ".join(_legend(draw_figure(collected, name).figure))
        assert "kdef" in entries and not any(v in entries for v in CONTROLS), name
    # fig 4 keeps every recipe with students (the one-student capacity control has none)
    assert set(ABLATIONS) <= set(_legend(draw_figure(collected, "fig4").figure))


def test_figs_1_to_3_keep_the_controls_of_a_sweep_without_the_papers_recipes(tmp_path):
    path = tmp_path / "results.csv"
    _results({v: CONTROLS[v] for v in ABLATIONS}).to_csv(path, index=False)
    collected = load_results(path)
    assert _legend(draw_figure(collected, "fig1").figure) == ABLATIONS
    assert draw_figure(collected, "fig16").figure is None  # no KDEF to take the differences from
