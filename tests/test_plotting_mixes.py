"""Figures of sweeps of student mixes (Table V / VI: ``vanilla-mean@pnn``, ``kdef@final+ecn+X``): every recipe a
distinct, stable colour; no blank panel; a backbone run at N = 1 only drawn as a level, not a lone point."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from collapse_lab.plotting import plot_ensemble_auc, plot_erank_ratio_vs_n, plot_gap, plot_student_auc
from collapse_lab.plotting.figures import FIGURES, NEEDS_RUNS, NO_DATA, draw_figure
from collapse_lab.plotting.style import (
    VARIANT_STYLES,
    assign_variant_styles,
    has_data,
    new_axes,
    variant_style,
    variant_styles,
)
from collapse_lab.results import load_results, tables

ROOT = Path(__file__).resolve().parents[1]
BACKBONES = ["afn", "autoint", "cin", "crossnet", "dcnv2", "wide_deep", "xdeepfm"]
#: Table VI's recipes: each backbone alone and KDEF over FINAL + ECN + it
TABLE6 = [f"vanilla-mean@{b}" for b in BACKBONES] + [f"kdef@final+ecn+{b}" for b in BACKBONES]
#: Table V's recipes
TABLE5 = ["vanilla-mean@pnn", "vanilla-mean@final", "vanilla-mean@ecn", "vanilla-mean@pnn+final+ecn",
          "kdef@pnn+final+ecn", "kdef-kd-only@pnn+final+ecn", "kdef-dml-only@pnn+final+ecn", "kdef-noem@pnn+final+ecn"]


def _runs(variants=TABLE5, seeds=(0, 1, 2)) -> pd.DataFrame:
    """One row per run: the ``@X`` backbones alone at N = 1, the mixes at N = 3 (as in Table V / VI)."""
    rng = np.random.default_rng(0)
    rows = []
    for variant, seed in itertools.product(variants, seeds):
        n = 3 if "+" in variant else 1
        auc = 0.78 + 0.01 * rng.random()
        rows.append({"variant": variant, "n": n, "seed": seed, "run": f"{variant}-s{seed}", "ensemble_auc": auc,
                     "gap": 0.0 if n == 1 else 0.004, "best_student_auc": auc - 0.004})
    return pd.DataFrame(rows)


def _students(runs: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame([{"run": r.run, "variant": r.variant, "n": r.n, "seed": r.seed, "member": k,
                          "test_auc": r.ensemble_auc - 0.002 * (k + 1)}
                         for r in runs.itertuples() for k in range(r.n)])


def _colors(ax) -> dict:
    return {line.get_label(): to_hex(line.get_color()) for line in ax.get_lines()
            if not line.get_label().startswith("_")}


@pytest.mark.parametrize("variants", [TABLE5, TABLE6, [f"mix{k}@a+b" for k in range(20)]])
def test_distinct_mixed_variants_get_pairwise_distinct_colours(variants):
    styles = assign_variant_styles(variants)
    colours = [styles[v]["color"].lower() for v in variants]
    assert len(set(colours)) == len(variants)  # the old spare palette repeated after 3
    assert "#7f7f7f" not in colours  # the single model's grey stays its own


def test_known_recipes_keep_their_fixed_styles_beside_mixes():
    styles = assign_variant_styles(["kdef", "vanilla-mean", "kdef@pnn+final+ecn", "vanilla-mean@pnn"])
    assert styles["kdef"] == VARIANT_STYLES["kdef"] and styles["vanilla-mean"] == VARIANT_STYLES["vanilla-mean"]
    fixed = {st["color"] for st in VARIANT_STYLES.values()}
    assert styles["kdef@pnn+final+ecn"]["color"] not in fixed and styles["vanilla-mean@pnn"]["color"] not in fixed
    assert variant_style("kdef", 7) == VARIANT_STYLES["kdef"]  # the index never moves a fixed recipe


def test_a_recipe_keeps_its_style_in_a_figure_of_fewer_recipes():
    with variant_styles(TABLE6):
        whole = {v: variant_style(v, i) for i, v in enumerate(TABLE6)}
        some = {v: variant_style(v, i) for i, v in enumerate(TABLE6[5:9])}
    assert all(some[v] == whole[v] for v in some)


def test_ensemble_figure_of_mixes_has_no_blank_panel_and_distinct_colours():
    fig, axes = plot_ensemble_auc(_runs(), differences=True)
    # no vanilla-mean, no single model: no difference can be paired, so only the absolute panel is drawn
    assert len(axes) == 1 and all(has_data(ax) for ax in fig.axes if ax.get_visible())
    colours = _colors(axes[0])
    assert set(colours) == set(TABLE5) and len(set(colours.values())) == len(TABLE5)
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == len(TABLE5)


@pytest.mark.parametrize("plot", [plot_gap, plot_student_auc])
def test_gap_and_student_figures_of_mixes_have_no_blank_panel(plot):
    runs = _runs(TABLE6, seeds=(0,))
    fig, axes = plot(_students(runs) if plot is plot_student_auc else runs, differences=True)
    assert all(has_data(ax) for ax in np.atleast_1d(axes)) and len(np.atleast_1d(axes)) == 1


def test_a_backbone_alone_is_a_level_across_the_n_axis():
    fig, ax = new_axes()
    plot_ensemble_auc(_runs(), ax=ax)
    mean = _runs().query("variant == 'vanilla-mean@pnn'")["ensemble_auc"].mean() * 100
    colour = _colors(ax)["vanilla-mean@pnn"]
    levels = [line for line in ax.get_lines() if line.get_transform() is not ax.transData
              and to_hex(line.get_color()) == colour]
    assert levels and levels[0].get_ydata()[0] == pytest.approx(mean)


def test_student_legend_lists_each_recipe_once():
    runs = _runs()
    fig, ax = plot_student_auc(_students(runs))
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[:len(TABLE5)] == sorted(TABLE5) or set(TABLE5) <= set(texts)
    assert len(texts) == len(TABLE5) + 2  # + the two line-style keys, not a best and a worst entry per recipe


def test_layer_panels_without_data_are_not_drawn_and_many_layers_wrap():
    rows = [{"variant": v, "n": 1, "seed": 0, "run": v, "layer": layer,
             "erank_ratio": np.nan if layer > 2 and v.endswith("a") else 0.99}
            for v in ("x@a", "x@b") for layer in range(1, 8)] + \
           [{"variant": "x@a", "n": 1, "seed": 0, "run": "x@a", "layer": 9, "erank_ratio": np.nan}]
    fig, axes = plot_erank_ratio_vs_n(pd.DataFrame(rows))
    assert [ax.get_title() for ax in axes] == [f"layer {k}" for k in range(1, 8)]  # no layer 9 panel
    assert all(has_data(ax) for ax in axes)
    assert max(ax.get_subplotspec().colspan.stop for ax in axes) <= 4  # rows of panels, not one strip of 7


@pytest.mark.parametrize("table", ["table5", "table6"])
def test_committed_table_figures_have_no_empty_axes(table):
    collected = load_results(ROOT / "figures" / table / "results.csv")
    for spec in FIGURES:
        drawing = draw_figure(collected, spec.stem)
        if drawing.figure is None:
            assert drawing.reason.startswith(NEEDS_RUNS) or "preset's recipes" in drawing.reason, spec.stem
            continue
        empty = [ax.get_title() for ax in drawing.figure.axes
                 if ax.get_visible() and ax.get_label() != "<colorbar>" and not has_data(ax)]
        assert not empty, (spec.stem, empty)


@pytest.mark.parametrize("name, column, table", [("fig1", "ensemble_auc", "run_table"), ("fig3", "gap", "gap_table"),
                                                   ("fig2", "test_auc", "student_table"),
                                                   ("fig4", "test_auc", "student_table")])
def test_a_figure_with_only_missing_values_is_skipped(name, column, table):
    collected = load_results(ROOT / "figures" / "table5" / "results.csv")
    frame = collected.results.assign(**{column: np.nan})
    assert len(getattr(tables, table)(frame))  # rows to draw, every drawn value NaN: the NO_DATA path
    drawing = draw_figure(collected, name, results=frame)
    assert drawing.figure is None and drawing.reason.startswith(NO_DATA), drawing.reason
