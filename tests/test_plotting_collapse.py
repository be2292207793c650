"""Collapse figures 11-13 and the difference panels: tables checked against hand computations and scipy, the
figures against their tables, and figures drawn from a committed results.csv without run directories."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sweep_fixtures import HIDDEN, make_fake_sweep

from collapse_lab.errors import UserError
from collapse_lab.plotting import (
    plot_collapse_map,
    plot_embedding_collapse,
    plot_ensemble_auc,
    plot_metric_over_training,
    render_figures,
)
from collapse_lab.results import collect_results, load_results
from collapse_lab.results import tables as T
from collapse_lab.results.writer import write_results
from collapse_lab.training.spectra import TRACE_COLUMNS

STEPS = (0, 10, 20)
EMB_FIELDS = ("user", "item")


def _trace_value(step: int, layer: int, seed: int, student: int) -> float:
    return 1.0 - 0.001 * step * layer + 0.002 * seed + 0.0001 * student


def _emb_value(step: int, field: int, seed: int) -> float:
    return 0.9 - 0.002 * step - 0.01 * field + 0.003 * seed


def _write_trace(run_dir, n: int, seed: int) -> None:
    rows = []
    for step in STEPS:
        for k in range(n):
            for j in range(len(HIDDEN)):
                rows.append((step, step // 10, str(k), "weights", f"students.{k}.layers.{j}.linear.weight", 8, 8,
                             "effective_rank", 5.0, 5.0, _trace_value(step, j + 1, seed, k)))
        for f, field in enumerate(EMB_FIELDS):
            rows.append((step, step // 10, "shared", "embeddings", f"embedding.tables.{field}.weight", 30, 4,
                         "effective_rank", 3.0, 3.0, _emb_value(step, f, seed)))
    pd.DataFrame(rows, columns=list(TRACE_COLUMNS)).to_csv(run_dir / "spectra_trace.csv", index=False)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    sweep = make_fake_sweep(tmp_path_factory.mktemp("collapse") / "sweep", seeds=(0, 1))
    for run_dir in sorted((sweep / "runs").iterdir()):
        config = json.loads((run_dir / "manifest.json").read_text())["config"]
        _write_trace(run_dir, int(config["n"]), int(config["seed"]))
    return sweep


@pytest.fixture(scope="module")
def results(traced):
    return collect_results(traced).results


def test_collect_reads_the_embedding_change_over_training(results):
    runs = results[results["member"] == "ensemble"]
    # mean over the two tables of the ratio at step 20 minus at step 0: −0.002 × 20
    assert runs["emb_erank_ratio_change"].to_numpy() == pytest.approx(np.full(len(runs), -0.04))
    assert "emb_ia_ratio_change" not in runs  # the trace recorded no IA


def test_trace_table_reads_the_best_student_and_the_mean_over_embedding_tables(results):
    table = T.trace_table(results)
    runs = results[results["member"] == "ensemble"]
    assert set(table["variant"]) == {"single model", "vanilla-mean", "kd", "dml", "kdef"}
    assert set(table.loc[table["variant"] != "single model", "n"]) == {4}  # each recipe at its largest N
    kd = runs[(runs["variant"] == "kd") & (runs["n"] == 4) & (runs["seed"] == 1)].iloc[0]
    mine = table[(table["run"] == kd["run"])].set_index(["step", "matrix"])["value"]
    assert mine[(20, "layer 2")] == pytest.approx(_trace_value(20, 2, 1, int(kd["best_student"])))
    assert mine[(10, "embedding")] == pytest.approx(np.mean([_emb_value(10, f, 1) for f in range(2)]))
    with pytest.raises(UserError, match="trace value must be 'ratio' or 'value'"):
        T.trace_table(results, value="baseline")


def test_fig12_lines_are_seed_means_with_t_bands(results):
    table = T.trace_table(results)
    fig, axes = plot_metric_over_training(table)
    assert [a.get_title() for a in axes] == ["shared embedding", "layer 1 (best student)", "layer 2 (best student)",
                                             "layer 3 (best student)"]
    assert axes[0].get_ylabel() == "effective rank / Gaussian"
    line = next(line for line in axes[0].get_lines() if line.get_label() == "kdef, N = 4")
    expected = [np.mean([np.mean([_emb_value(s, f, seed) for f in range(2)]) for seed in (0, 1)]) for s in STEPS]
    assert line.get_xdata().tolist() == list(STEPS) and line.get_ydata() == pytest.approx(expected)
    # the band is the t interval over the two seeds: two values d = 0.003 apart have s = d/√2, s/√2 = d/2
    band = axes[0].collections[[line.get_label() for line in axes[0].get_lines()
                                if not line.get_label().startswith("_")].index("kdef, N = 4")]
    low = band.get_paths()[0].vertices[:, 1].min()
    half = stats.t.ppf(0.975, 1) * 0.003 / 2
    assert low == pytest.approx(min(expected) - half)


def test_collapse_map_is_the_seed_mean_with_the_embedding_row(results):
    table = T.collapse_map_table(results, "ia_ratio")
    runs = results[results["member"] == "ensemble"]
    kd4 = runs[(runs["variant"] == "kd") & (runs["n"] == 4)]
    row = table[(table["variant"] == "kd") & (table["n"] == 4)].set_index("layer")
    assert row.loc[2, "value"] == pytest.approx(kd4["best_ia_ratio_layer2"].mean()) and row.loc[2, "runs"] == 2
    assert row.loc[0, "value"] == pytest.approx(kd4["emb_ia_ratio_mean"].mean())
    single = runs[(runs["variant"] == "vanilla-mean") & (runs["n"] == 1)]
    kd1 = table[(table["variant"] == "kd") & (table["n"] == 1)].set_index("layer")
    assert kd1.loc[3, "value"] == pytest.approx(single["best_ia_ratio_layer3"].mean())  # the shared single model
    fig, axes = plot_collapse_map(table, "ia_ratio")
    visible = [a for a in axes if a.get_visible()]
    assert [a.get_title() for a in visible] == ["vanilla-mean", "kd", "dml", "kdef"]
    assert [t.get_text() for t in visible[1].get_yticklabels()] == ["embedding", "layer 1", "layer 2", "layer 3"]
    image = visible[1].get_images()[0].get_array()
    assert image[2, -1] == pytest.approx(kd4["best_ia_ratio_layer2"].mean())
    low, high = visible[1].get_images()[0].get_clim()
    assert (low + high) / 2 == pytest.approx(1.0) and high - low >= 0.2  # centred on 1, at least ±0.1 wide


def test_collapse_map_drops_a_recipe_without_a_finite_value(results):
    from collapse_lab.plotting.style import has_data

    table = T.collapse_map_table(results, "ia_ratio")
    missing = table.assign(value=np.where(table["variant"] == "kd", np.nan, table["value"]))
    fig, axes = plot_collapse_map(missing, "ia_ratio")
    visible = [a for a in axes if a.get_visible()]
    assert [a.get_title() for a in visible] == ["vanilla-mean", "dml", "kdef"]  # no all-NaN kd panel
    assert all(np.isfinite(a.get_images()[0].get_array().filled(np.nan)).any() for a in visible)
    fig, axes = plot_collapse_map(table.assign(value=np.nan), "ia_ratio")  # nothing left: nothing drawn
    assert not any(has_data(a) for a in fig.axes if a.get_visible()) and not fig.axes[0].get_images()


def test_difference_table_pairs_seeds_like_scipy(results):
    runs = T.run_table(results)
    table = T.difference_table(runs, "ensemble_auc", "vanilla-mean", scale=100.0)
    assert "vanilla-mean" not in set(table["variant"]) and set(table["n"]) == {2, 4}
    sel = results[results["member"] == "ensemble"]
    a = sel[(sel["variant"] == "kdef") & (sel["n"] == 4)].set_index("seed")["ensemble_auc"].sort_index() * 100
    b = sel[(sel["variant"] == "vanilla-mean") & (sel["n"] == 4)].set_index("seed")["ensemble_auc"].sort_index() * 100
    ref = stats.ttest_rel(a, b).confidence_interval(0.95)
    row = table[(table["variant"] == "kdef") & (table["n"] == 4)].iloc[0]
    assert row["estimate"] == pytest.approx((a - b).mean()) and row["pairs"] == 2
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ref.low, ref.high))
    single = T.difference_table(runs, "ensemble_auc", "single model")
    one = sel[(sel["variant"] == "vanilla-mean") & (sel["n"] == 1)].set_index("seed")["ensemble_auc"].sort_index()
    kd2 = sel[(sel["variant"] == "kd") & (sel["n"] == 2)].set_index("seed")["ensemble_auc"].sort_index()
    got = single[(single["variant"] == "kd") & (single["n"] == 2)].iloc[0]
    assert got["estimate"] == pytest.approx((kd2 - one).mean())
    with pytest.raises(UserError, match="unknown difference baseline 'kd'"):
        T.difference_table(runs, "ensemble_auc", "kd")


def test_fig1_difference_panels_draw_the_paired_estimates(results):
    runs = T.run_table(results)
    fig, axes = plot_ensemble_auc(runs, differences=True)
    assert len(axes) == 3 and [a.get_title() for a in axes[1:]] == ["vs single model (paired by seed)",
                                                                     "vs vanilla-mean (paired by seed)"]
    table = T.difference_table(runs, "ensemble_auc", "vanilla-mean", scale=100.0)
    kdef = next(c for c in axes[2].containers if c.get_label() == "kdef")
    expected = table[table["variant"] == "kdef"].sort_values("n")["estimate"].to_numpy()
    assert kdef.lines[0].get_ydata() == pytest.approx(expected)


def test_fig11_embedding_ratios_vs_n(results):
    table = T.embedding_table(results)
    assert set(table["measure"]) == {"emb_ia_ratio_mean", "emb_erank_ratio_mean"}
    fig, axes = plot_embedding_collapse(table)
    assert len(axes) == 2 and "IA / Gaussian" in axes[0].get_ylabel()
    kd = next(line for line in axes[1].get_lines() if line.get_label() == "kd")
    runs = results[results["member"] == "ensemble"]
    expected = runs[(runs["variant"] == "kd") & (runs["n"] == 4)]["emb_erank_ratio_mean"].mean()
    assert kd.get_xdata()[0] == 1 and kd.get_ydata()[-1] == pytest.approx(expected)


def test_figures_from_a_committed_results_csv(traced, tmp_path):
    """The committed-table path: figures drawn from results.csv alone, those needing the runs skipped (their old
    files and figures.json entries kept), a blank KA figure skipped and its stale files removed."""
    write_results(traced, out_dir=tmp_path)
    render_figures(traced, out_dir=tmp_path, formats=("png",))  # the full drawing, as a sweep leaves it
    results = pd.read_csv(tmp_path / "results.csv")
    ka = [c for c in results.columns if "ka_layer" in c]
    results[ka] = 0.0  # the ml100k situation: KA(τ = 4) = 0 everywhere
    results["run_dir"] = "gone/" + results["run"]  # the run directories are not at hand
    results.to_csv(tmp_path / "results.csv", index=False)
    loaded = load_results(tmp_path)
    assert loaded.table_only and loaded.sweep_id == "fake-12345678"  # the id of the figures.json beside it
    report = render_figures(tmp_path, formats=("png",))
    assert report.out_dir == tmp_path
    assert set(report.written) == {"fig1_ensemble_auc", "fig2_student_auc", "fig3_gap", "fig4_student_variance",
                                   "fig10_erank_ratio", "fig11_embedding_collapse", "fig13_collapse_map"}
    assert report.skipped["fig6_knowledge_abundance"].startswith("all zero: KA (σ > τ = 4) is 0 for every layer")
    assert report.skipped["fig5_sv_heatmaps"].startswith("all zero")  # known from results.csv alone
    assert report.skipped["fig7_field_ia"].startswith("needs the sweep's run directories")
    assert not (tmp_path / "fig6_knowledge_abundance.png").exists()
    assert not (tmp_path / "fig5_sv_heatmaps.png").exists()
    assert (tmp_path / "fig7_field_ia.png").exists()
    index = json.loads((tmp_path / "figures.json").read_text())
    stems = [f["stem"] for f in index["figures"]]
    assert "fig7_field_ia" in stems and "fig12_over_training" in stems and "fig6_knowledge_abundance" not in stems
    with pytest.raises(UserError, match="no such sweep directory or results.csv"):
        load_results(tmp_path / "missing")


def test_fig10_axis_spans_at_least_a_tenth_around_one(results):
    """Ratios within 0.002 of 1 (the ml100k weights) drew as large swings on an axis of ±0.003."""
    from collapse_lab.plotting import plot_erank_ratio_vs_n

    table = T.erank_ratio_table(results).assign(erank_ratio=lambda d: 1.0 + 0.001 * d["seed"])
    fig, axes = plot_erank_ratio_vs_n(table)
    low, high = axes[0].get_ylim()
    assert low <= 0.95 and high >= 1.05


def test_draw_figure_shows_the_image_or_the_reason(traced, tmp_path):
    import base64

    from collapse_lab.plotting import draw_figure

    collected = load_results(traced)
    shown = draw_figure(collected, "fig11")._repr_mimebundle_()
    assert set(shown) == {"image/png", "text/plain"}  # no Markdown beside the image for a front end to prefer
    assert base64.b64decode(shown["image/png"]).startswith(b"\x89PNG")
    write_results(traced, out_dir=tmp_path)
    table = draw_figure(load_results(tmp_path / "results.csv"), "fig7")
    assert table.figure is None and table.reason.startswith("needs the sweep's run directories")
    assert table._repr_mimebundle_() == {"text/markdown": f"*{table.reason}*", "text/plain": table.reason}
    kd_only = draw_figure(collected, "fig1", results=collected.results.query("variant == 'kd' or n == 1"))
    assert {line.get_label() for line in kd_only.figure.axes[0].get_lines()} >= {"kd"}
