"""Each figure renders from a small fixture: labelled axes, the expected series, values; the figures command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from sweep_fixtures import make_fake_sweep

from collapse_lab.cli import cli, main
from collapse_lab.plotting import (
    plot_ensemble_auc,
    plot_exam_weights,
    plot_field_ia,
    plot_gap,
    plot_ka_vs_n,
    plot_normalized_spectra,
    plot_student_auc,
    plot_student_variance,
    plot_sv_heatmaps,
    render_figures,
)
from collapse_lab.plotting.figures import FIGURES
from collapse_lab.results import collect_results
from collapse_lab.results import tables as T

#: figures the fake MLP sweep cannot draw: no spectra_trace.csv, no Table V / VI recipe, no control of KDEF
NOT_DRAWN = ("fig12_over_training", "fig14_table5", "fig15_table6", "fig16_controls")
RECIPES = ["vanilla-mean", "kd", "dml", "kdef"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return make_fake_sweep(tmp_path_factory.mktemp("plots") / "sweep", seeds=(0, 1))


@pytest.fixture(scope="module")
def results(sweep):
    return collect_results(sweep).results


def _labels(ax):
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def _labelled(ax):
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_fig1_ensemble_auc_lines_are_seed_means(results):
    from matplotlib.collections import PathCollection

    df = T.run_table(results)
    fig, ax = plot_ensemble_auc(df)
    _labelled(ax)
    assert _labels(ax) == RECIPES
    kd = next(line for line in ax.get_lines() if line.get_label() == "kd")
    runs = results[results["member"] == "ensemble"]
    single = runs[(runs["variant"] == "vanilla-mean") & (runs["n"] == 1)]["ensemble_auc"].mean()
    expected = [single] + [runs[(runs["variant"] == "kd") & (runs["n"] == n)]["ensemble_auc"].mean() for n in (2, 4)]
    assert kd.get_xdata().tolist() == [1, 2, 4]  # N = 1 is the shared single model
    assert kd.get_ydata() == pytest.approx(np.array(expected) * 100)
    assert kd.get_markevery() == [1, 2]  # the line starts at the single model without a kd marker there
    assert [t.get_text() for t in fig.legends[0].get_texts()] == RECIPES + ["single model"]
    # the single model is drawn once: one grey marker at N = 1 with its seed interval, its runs scattered once
    single_bar = [c for c in ax.containers if c.get_label() == "single model"]
    assert len(single_bar) == 1 and single_bar[0].lines[0].get_xdata().tolist() == [1.0]
    assert single_bar[0].lines[0].get_ydata()[0] == pytest.approx(single * 100)
    at_one = sum(int((c.get_offsets()[:, 0] == 1).sum()) for c in ax.collections if isinstance(c, PathCollection))
    assert at_one == 2  # two seeds of the single model, not two per recipe


def test_fig2_student_auc_best_and_worst(results):
    df = T.student_table(results)
    fig, ax = plot_student_auc(df)
    _labelled(ax)
    assert _labels(ax) == [f"{v} {w}" for v in RECIPES for w in ("best", "worst")]
    best = next(line for line in ax.get_lines() if line.get_label() == "vanilla-mean best")
    students = results[(results["member"] != "ensemble") & (results["variant"] == "vanilla-mean")]
    per_run = students[students["n"] == 4].groupby("run")["test_auc"].max().mean()
    assert best.get_ydata()[-1] == pytest.approx(per_run * 100)
    from matplotlib.collections import PathCollection

    points = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    assert points == len(df[~df["single_model"]])  # every student of every run is drawn, the single model once


def test_fig3_gap(results):
    fig, ax = plot_gap(T.gap_table(results))
    _labelled(ax)
    assert _labels(ax) == RECIPES


def test_gap_and_student_tables_leave_concat_out(results):
    concat = results[results["variant"] == "vanilla-mean"].copy()
    concat["variant"], concat["fusion"] = "vanilla-concat", "concat"
    both = pd.concat([results, concat], ignore_index=True)
    assert "vanilla-concat" in set(T.run_table(both)["variant"])  # figure 1 keeps every recipe
    for table in (T.gap_table(both), T.student_table(both)):
        assert "vanilla-concat" not in set(table["variant"])
    assert len(T.gap_table(both)) == len(T.run_table(results))


def test_fig4_student_variance(results):
    from matplotlib.collections import PathCollection

    df = T.student_table(results)
    fig, ax = plot_student_variance(df)
    _labelled(ax)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == RECIPES + ["single model"]
    # N = 1 (x position 0) holds the single model's students once (2 seeds x 1 student), not once per recipe
    near_one = sum(int((np.abs(c.get_offsets()[:, 0]) < 0.5).sum()) for c in ax.collections
                   if isinstance(c, PathCollection))
    assert near_one == 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4"]


def test_fig4_tells_apart_the_boxes_of_kdef_and_its_controls(results):
    from matplotlib.colors import to_hex

    df = T.student_table(results)
    plain = plot_student_variance(df)[1]
    assert not any(p.get_hatch() for p in plain.patches)  # the standard recipes keep their look: no hatch
    controls = df[(df["variant"] == "kdef") & ~df["single_model"]]
    both = pd.concat([df, controls.assign(variant="kdef-kd-only"), controls.assign(variant="kdef-uniform")])
    fig, ax = plot_student_variance(both)
    keys = {t.get_text(): (to_hex(h.get_facecolor()), h.get_hatch() or "")
            for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles, strict=True)}
    family = [keys[v] for v in ("kdef", "kdef-kd-only", "kdef-uniform")]
    assert len({colour for colour, _ in family}) == 1 and len(set(family)) == 3  # one colour, three keys
    assert keys["kdef"][1] == "" and keys["kd"][1] == ""
    ns_above_one = controls["n"].nunique()
    hatched = [p.get_hatch() for p in ax.patches if p.get_hatch()]
    assert sorted(hatched) == sorted([keys["kdef-kd-only"][1], keys["kdef-uniform"][1]] * ns_above_one)


def test_fig5_heatmaps_clip_and_mark_tau(results):
    df = T.heatmap_table(results)
    assert list(dict.fromkeys(df["panel"])) == ["single model (N=1)", "vanilla-mean N=4, best student",
                                                "KDEF N=4, best student"]
    fig, axes = plot_sv_heatmaps(df, tau=4.0)
    assert len(axes) == 3
    for axis, panel in zip(axes, dict.fromkeys(df["panel"]), strict=True):
        assert axis.get_title() == panel and axis.get_xlabel()
        image = axis.get_images()[0]
        data = image.get_array()
        assert data.shape == (3, 12) and np.nanmax(data) <= 4.0 and image.get_clim() == (0.0, 4.0)
        sub = df[df["panel"] == panel]
        texts = [t.get_text() for t in axis.texts]
        assert texts == [f"KA {100 * sub[sub['layer'] == j]['ka'].iloc[0]:.1f}%" for j in (1, 2, 3)]
        # one tau line per layer that has sigma > tau, right after the last such sigma
        counts = [int((sub[sub["layer"] == j]["sigma"] > 4.0).sum()) for j in (1, 2, 3)]
        lines = [line.get_xdata()[0] for line in axis.get_lines()]
        assert lines == [c - 0.5 for c in counts if c]


def test_heatmap_ka_matches_spectrum_csv_and_other_tau(results):
    df = T.heatmap_table(results, tau=4.0)
    single = results[(results["variant"] == "vanilla-mean") & (results["n"] == 1) & (results["seed"] == 0)]
    row = single[single["member"] == "ensemble"].iloc[0]
    first = df[df["panel"] == "single model (N=1)"]
    for j in (1, 2, 3):
        assert first[first["layer"] == j]["ka"].iloc[0] == pytest.approx(row[f"best_ka_layer{j}"])
    at2 = T.heatmap_table(results, tau=2.0)
    sigma = at2[(at2["panel"] == "single model (N=1)") & (at2["layer"] == 1)]["sigma"].to_numpy()
    assert at2[(at2["panel"] == "single model (N=1)") & (at2["layer"] == 1)]["ka"].iloc[0] == \
        pytest.approx(np.mean(sigma > 2.0))
    ka2 = T.ka_table(results, tau=2.0)
    assert ka2[(ka2["run"] == row["run"]) & (ka2["layer"] == 1)]["ka"].iloc[0] == pytest.approx(np.mean(sigma > 2.0))
    assert len(ka2) == len(T.ka_table(results))


def test_fig6_ka_vs_n(results):
    df = T.ka_table(results)
    fig, axes = plot_ka_vs_n(df)
    assert [a.get_title() for a in axes] == ["layer 1", "layer 2", "layer 3"]
    assert axes[0].get_ylabel() and all(a.get_xlabel() for a in axes)
    assert _labels(axes[0]) == RECIPES


def test_fig10_erank_ratio_is_the_seed_mean_with_a_gaussian_reference(results):
    from collapse_lab.plotting import plot_erank_ratio_vs_n

    df = T.erank_ratio_table(results)
    assert set(df["layer"]) == {1, 2, 3} and df["erank_ratio"].notna().all()
    fig, axes = plot_erank_ratio_vs_n(df)
    assert [a.get_title() for a in axes] == ["layer 1", "layer 2", "layer 3"]
    assert _labels(axes[1]) == RECIPES
    kdef = next(line for line in axes[1].get_lines() if line.get_label() == "kdef")
    runs = results[(results["member"] == "ensemble") & (results["variant"] == "kdef") & (results["n"] == 4)]
    assert kdef.get_ydata()[-1] == pytest.approx(runs["best_erank_ratio_layer2"].mean())
    assert any(line.get_ydata()[0] == 1.0 and line.get_linestyle() == ":" for line in axes[1].get_lines())


def test_fig7_field_ia_sorted_by_cardinality(results):
    df = T.field_ia_table(results)
    fig, ax = plot_field_ia(df)
    _labelled(ax)
    assert [t.get_text().split(" ")[0] for t in ax.get_yticklabels()] == ["genre", "item", "user"]
    # each recipe's marker is its mean over seeds with a t interval (fig 7 had neither)
    kdef = next(c for c in ax.containers if c.get_label() == "kdef")
    values = df[df["variant"] == "kdef"].groupby("field")["value"]
    assert kdef.lines[0].get_xdata() == pytest.approx(values.mean().reindex(["genre", "item", "user"]).to_numpy())
    width, height = fig.get_size_inches()
    assert width / height < 3  # fig 7 was 18 x 2.6 inches
    (legend,) = fig.legends  # six entries: beside the bars, not over them
    assert [t.get_text() for t in legend.get_texts()] == [*RECIPES, "single model", "random baseline"]
    assert len([c for c in ax.containers if len(c.lines[0].get_xdata()) == 3]) == 5  # 3 fields x 5 series


def test_fig8_normalized_spectra(results):
    df = T.spectra_table(results)
    fig, axes = plot_normalized_spectra(df)
    assert [a.get_title() for a in axes] == ["embeddings", "activations (last hidden layer)"]
    assert axes[0].get_yscale() == "log" and len(_labels(axes[0])) == 5
    for line in axes[1].get_lines():
        assert line.get_ydata()[0] == pytest.approx(1.0)  # sigma_1 / sigma_1
    assert df["resolved"].dtype == bool


def test_fig8_leaves_out_singular_values_at_the_numerical_floor():
    rows = []
    for run, tail in (("a", 1e-17), ("b", 2e-17)):  # two runs of one recipe, both rank 3 of 5
        sigma = np.array([2.0, 1.0, 0.5, tail, tail / 2])
        rows.append(pd.DataFrame({"variant": "kdef", "kind": "embeddings", "run": run, "index": np.arange(5),
                                  "sigma_norm": sigma / 2.0, "resolved": sigma > 1e-9}))
    fig, axes = plot_normalized_spectra(pd.concat(rows, ignore_index=True))
    (line,) = axes[0].get_lines()
    assert line.get_xdata().tolist() == [1, 2, 3] and line.get_ydata().tolist() == [1.0, 0.5, 0.25]
    assert [t.get_text() for t in axes[0].texts] == ["2 σ at the numerical floor not drawn"]


def test_spectra_table_marks_sigma_below_the_reported_floors(tmp_path):
    """σ at or below max(resolution floor, storage floor) of spectrum.csv are flagged unresolved."""
    sweep = make_fake_sweep(tmp_path / "sweep", seeds=(0,))
    results = collect_results(sweep).results
    single = results[(results["variant"] == "vanilla-mean") & (results["n"] == 1)].iloc[0]
    where = T.find_spectrum(Path(single["run_dir"]))
    sigma = T.read_singular_values(Path(single["run_dir"]))["input:input"]
    floor = float(np.median(sigma))
    spec = pd.read_csv(where / "spectrum.csv", dtype={"member": str})
    extra = spec[(spec["target"] == "input") & (spec["name"] == "input")].iloc[[0, 0]].copy()
    extra["metric"], extra["value"] = ["resolution_floor", "storage_floor"], [floor / 10, floor]
    pd.concat([spec, extra]).to_csv(where / "spectrum.csv", index=False)
    df = T.spectra_table(results)
    mine = df[(df["run"] == single["run"]) & (df["kind"] == "embeddings")]
    assert mine["resolved"].tolist() == (sigma > floor).tolist() and not mine["resolved"].all()
    other = df[(df["run"] != single["run"]) & (df["kind"] == "embeddings")]
    assert other["resolved"].all()  # no floors reported: every positive σ is drawn


def test_fig9_exam_weights(results):
    df = T.exam_table(results)
    assert set(df["n"]) == {2, 4}
    fig, axes = plot_exam_weights(df)
    left, right = axes
    assert left.get_title() == r"KD weights $\lambda_k$, N = 4" and len(_labels(left)) == 4
    # students and N values have palettes of their own, none of them a recipe colour
    from matplotlib.colors import to_hex

    from collapse_lab.plotting.style import VARIANT_STYLES

    recipe_colors = {s["color"].lower() for s in VARIANT_STYLES.values()}
    drawn = {to_hex(line.get_color()) for axis in axes for line in axis.get_lines()
             if not line.get_label().startswith("_")}
    assert drawn and not drawn & recipe_colors
    assert _labels(right) == ["λ, N = 2", "μ, N = 2", "λ, N = 4", "μ, N = 4"]
    assert all(a.get_xlabel() and a.get_ylabel() for a in axes)
    # N * lambda_k averages to 1 per epoch (the lambdas of a run sum to 1)
    ys = np.array([line.get_ydata() for line in left.get_lines() if not line.get_label().startswith("_")])
    assert ys.mean(axis=0) == pytest.approx(np.ones(ys.shape[1]))


def test_plot_functions_draw_on_given_axes(results):
    from collapse_lab.plotting.style import new_axes

    fig, ax = new_axes()
    out_fig, out_ax = plot_gap(T.run_table(results), ax=ax)
    assert out_fig is fig and out_ax is ax


def test_render_figures_writes_all_with_provenance(sweep, tmp_path):
    report = render_figures(sweep, out_dir=tmp_path / "figs")
    # the fake runs have no spectra_trace.csv: every figure but the one over training, the paper's Tables V/VI
    # (MLP recipes only) and KDEF against its controls (none in the sweep)
    assert report.skipped == {"fig12_over_training": "needs spectra_trace.csv (train with spectra_every >= 1)",
                              **{stem: f"needs {spec.needs}" for spec in FIGURES for stem in [spec.stem]
                                 if stem in NOT_DRAWN[1:]}}
    drawn = [f.stem for f in FIGURES if f.stem not in NOT_DRAWN]
    assert list(report.written) == drawn
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == sorted([f"{stem}.{ext}" for stem in drawn for ext in ("png", "pdf")] + ["figures.json"])
    text = Image.open(tmp_path / "figs" / "fig1_ensemble_auc.png").text
    assert text["sweep_id"] == "fake-12345678" and text["runs"] == "18"
    assert text["run_git_commits"] == "0123456789abcdef0123456789abcdef01234567"
    assert text["caption"] == "synthetic; seeds 0, 1 (2); N ∈ {1, 2, 4}; 18 runs"
    index = json.loads((tmp_path / "figs" / "figures.json").read_text())
    assert [f["stem"] for f in index["figures"]] == drawn and list(index["skipped"]) == list(NOT_DRAWN)
    assert {f["caption"] for f in index["figures"]} == {text["caption"]}


def test_redrawing_some_figures_keeps_the_others_in_figures_json(sweep, tmp_path):
    render_figures(sweep, out_dir=tmp_path, formats=("png",))
    first = json.loads((tmp_path / "figures.json").read_text())
    render_figures(sweep, out_dir=tmp_path, only=["fig3"], formats=("png",))
    index = json.loads((tmp_path / "figures.json").read_text())
    drawn = [f.stem for f in FIGURES if f.stem not in NOT_DRAWN]
    assert [f["stem"] for f in index["figures"]] == drawn  # same entries, same order
    assert index["figures"][0] == first["figures"][0] and index["created"] >= first["created"]
    (tmp_path / "figures.json").write_text(json.dumps({**first, "sweep_id": "another-sweep"}))
    render_figures(sweep, out_dir=tmp_path, only=["fig3"], formats=("png",))
    assert [f["stem"] for f in json.loads((tmp_path / "figures.json").read_text())["figures"]] == ["fig3_gap"]


def test_figures_without_spectra_are_skipped_with_a_reason(tmp_path):
    from sweep_fixtures import fake_config, write_fake_run

    write_fake_run(tmp_path / "runs" / "a", fake_config("vanilla", "mean", 2), spectra=False)
    report = render_figures(tmp_path, only=["fig1", "fig5_sv_heatmaps", "fig9"])
    assert list(report.written) == ["fig1_ensemble_auc"]
    assert report.skipped == {"fig5_sv_heatmaps": "needs singular_values.npz (collapse-lab spectrum)",
                              "fig9_exam_weights": "needs KDEF runs with N > 1 and lambda/mu in metrics.csv"}


def test_cli_figures(sweep, tmp_path):
    result = CliRunner().invoke(cli, ["figures", str(sweep), "--out", str(tmp_path), "--only", "fig1,fig3",
                                      "--format", "png"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["fig1_ensemble_auc.png", "fig3_gap.png"]
    assert "fake-12345678: 2 figures" in result.output


@pytest.mark.parametrize("argv, message", [
    (["--only", "fig99"], "error: unknown figure 'fig99'; valid: fig1_ensemble_auc"),
    (["--format", "bmp"], "error: unknown figure format 'bmp'; valid: eps, jpg, pdf, png, svg"),
])
def test_cli_figures_bad_input(sweep, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["figures", str(sweep), "--out", str(tmp_path / "x"), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_cli_figures_no_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["figures", str(tmp_path)])
    assert exc.value.code == 2 and "no finished runs" in capsys.readouterr().err


def test_every_figure_draws_its_text_inside_the_house_style(results):
    """Titles and labels get the style's sizes (a title set after leaving the style context came out at 12 pt)."""
    import matplotlib.pyplot as plt

    from collapse_lab.plotting.figures import DEFAULT_TAU
    from collapse_lab.plotting.style import style_context

    with style_context():
        title_size = plt.rcParams["axes.titlesize"]
        label_size = plt.rcParams["axes.labelsize"]
    for spec in FIGURES:
        table = spec.table(results, tau=DEFAULT_TAU) if spec.table is T.heatmap_table else spec.table(results)
        if table.empty:  # NOT_DRAWN (fig 12: tests/test_plotting_collapse.py; figs 14-15: test_plotting_paper_tables)
            continue
        kwargs = {"tau": DEFAULT_TAU} if spec.plot in (plot_sv_heatmaps, plot_ka_vs_n) else {}
        fig, _ = spec.plot(table, **kwargs)
        for ax in fig.axes:
            if ax.get_title():
                assert ax.title.get_fontsize() == pytest.approx(title_size), (spec.stem, ax.get_title())
            if ax.get_xlabel():
                assert ax.xaxis.label.get_fontsize() == pytest.approx(label_size), (spec.stem, ax.get_xlabel())
        plt.close(fig)
