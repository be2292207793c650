"""Figures 5 and 6 at the scale-aware KA thresholds (`figures --threshold mp|rel --tau`): values and labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sweep_fixtures import make_fake_sweep

from collapse_lab.cli import cli, main
from collapse_lab.plotting import plot_ka_vs_n, plot_sv_heatmaps
from collapse_lab.results import collect_results
from collapse_lab.results import tables as T
from collapse_lab.spectral import functional as F


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return make_fake_sweep(tmp_path_factory.mktemp("thresholds") / "sweep", seeds=(0,))


@pytest.fixture(scope="module")
def results(sweep):
    return collect_results(sweep).results


def _layer(df, panel, layer):
    return df[(df["panel"] == panel) & (df["layer"] == layer)]


def test_heatmap_table_mp_and_rel_by_hand(results):
    mp = T.heatmap_table(results, threshold="mp")
    panel = "single model (N=1)"
    single = results[(results["variant"] == "vanilla-mean") & (results["n"] == 1)].iloc[0]
    model = json.loads((Path(single["run_dir"]) / "manifest.json").read_text())["model"]
    shapes = {h["weight"]: h["shape"] for h in model["hidden_layers"]}
    for layer in (1, 2, 3):
        rows = _layer(mp, panel, layer)
        sigma = rows["sigma"].to_numpy()
        m, n = shapes[f"students.{int(single['best_student'])}.layers.{layer - 1}.linear.weight"]
        edge = np.sqrt(np.sum(sigma**2) / (m * n)) * (np.sqrt(m) + np.sqrt(n))
        assert rows["threshold"].iloc[0] == pytest.approx(edge)
        assert rows["ka"].iloc[0] == pytest.approx(np.sum(sigma > edge) / np.sum(sigma > 0))
    rel = T.heatmap_table(results, tau=0.5, threshold="rel")
    rows = _layer(rel, panel, 2)
    sigma = rows["sigma"].to_numpy()
    assert rows["threshold"].iloc[0] == pytest.approx(0.5 * sigma.max())
    assert rows["ka"].iloc[0] == pytest.approx(np.mean(sigma > 0.5 * sigma.max()))
    ka = T.ka_table(results, tau=0.5, threshold="rel")
    run = results[(results["variant"] == "vanilla-mean") & (results["n"] == 1)]["run"].iloc[0]
    assert ka[(ka["run"] == run) & (ka["layer"] == 2)]["ka"].iloc[0] == pytest.approx(rows["ka"].iloc[0])


def test_figures_name_their_threshold(results):
    df = T.heatmap_table(results, threshold="mp")
    fig, axes = plot_sv_heatmaps(df, threshold="mp")
    assert fig._suptitle.get_text() == "KA = #{σ > MP bulk edge} / #{σ > 0}"
    image = axes[0].get_images()[0]
    assert image.get_clim() == (0.0, 1.0)
    assert fig.axes[-1].get_ylabel() == "σ / (MP bulk edge), clipped to [0, 1]"
    first = df[df["panel"] == df["panel"].iloc[0]]
    counts = [int((_layer(first, first["panel"].iloc[0], j)["sigma"]
                   > _layer(first, first["panel"].iloc[0], j)["threshold"]).sum()) for j in (1, 2, 3)]
    assert [line.get_xdata()[0] for line in axes[0].get_lines()] == [c - 0.5 for c in counts if c]
    fig, axes = plot_sv_heatmaps(T.heatmap_table(results))
    assert fig._suptitle.get_text() == "KA = #{σ > τ = 4} / #{σ > 0}"
    fig, axes = plot_ka_vs_n(T.ka_table(results, tau=0.2, threshold="rel"), tau=0.2, threshold="rel")
    assert axes[0].get_ylabel() == "KA (σ > 0.2·σ_max) of best student (%)"
    _, axes = plot_ka_vs_n(T.ka_table(results, tau=2, threshold="mp"), tau=2, threshold="mp")
    assert axes[0].get_ylabel() == f"KA ({F.threshold_label('mp', 2)}) of best student (%)"


def test_cli_figures_threshold_is_recorded(sweep, tmp_path, capsys):
    result = CliRunner().invoke(cli, ["figures", str(sweep), "--out", str(tmp_path), "--only", "fig5,fig6",
                                      "--format", "png", "--threshold", "mp"])
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "figures.json").read_text())
    assert [f["description"].endswith("; KA threshold σ > MP bulk edge") for f in index["figures"]] == [True, True]
    with pytest.raises(SystemExit) as exc:
        main(["figures", str(sweep), "--out", str(tmp_path / "x"), "--threshold", "rel", "--tau", "-1"])
    assert exc.value.code == 2 and capsys.readouterr().err == "error: tau must be >= 0, got -1.0\n"
    assert not (tmp_path / "x").exists()
