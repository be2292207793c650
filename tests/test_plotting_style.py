"""The packaged style, colours and save_figure (PNG + PDF, atomic, provenance metadata)."""

from __future__ import annotations

import importlib.resources

import matplotlib
import pytest
from PIL import Image

from collapse_lab.plotting.style import (
    OKABE_ITO,
    SINGLE_COLUMN,
    VARIANT_STYLES,
    figure_metadata,
    new_axes,
    save_figure,
    style_context,
    style_file,
    variant_style,
)


def test_style_sheet_is_package_data():
    sheet = style_file()
    assert sheet.is_file() and sheet.name == "collapse.mplstyle"
    assert importlib.resources.files("collapse_lab.plotting").joinpath("collapse.mplstyle").read_text() \
        == sheet.read_text()
    text = sheet.read_text()
    assert "pdf.fonttype: 42" in text and "ps.fonttype: 42" in text


def test_style_applies_only_inside_the_context():
    before = dict(matplotlib.rcParams)
    with style_context():
        assert matplotlib.rcParams["pdf.fonttype"] == 42
        assert matplotlib.rcParams["axes.spines.top"] is False
        colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        assert [c.upper().lstrip("#") for c in colors[:3]] == ["000000", "E69F00", "56B4E9"]
    assert matplotlib.rcParams["pdf.fonttype"] == before["pdf.fonttype"]
    assert matplotlib.rcParams["axes.prop_cycle"] == before["axes.prop_cycle"]


def test_palette_is_okabe_ito_and_recipes_are_fixed():
    assert set(OKABE_ITO.values()) == {"#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2",
                                       "#D55E00", "#CC79A7"}
    recipes = ("vanilla-mean", "vanilla-sum", "vanilla-concat", "kd", "dml", "kdef")
    assert len({VARIANT_STYLES[v]["color"] for v in recipes}) == 6
    assert len({VARIANT_STYLES[v]["marker"] for v in recipes}) == 6
    assert variant_style("other", 0) != variant_style("other", 1)


def test_new_axes_never_uses_pyplot_state():
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    fig, ax = new_axes()
    assert ax.figure is fig and plt.get_fignums() == open_before
    fig2, axes = new_axes(ncols=3)
    assert len(axes) == 3
    assert new_axes(ax)[1] is ax
    with pytest.raises(ValueError, match="expected 3 axes, got 1"):
        new_axes([ax], ncols=3)


def test_save_figure_writes_png_and_pdf_with_metadata(tmp_path):
    fig, ax = new_axes()
    ax.plot([1, 2], [3, 4])
    meta = figure_metadata("quick-abc12345", "a test figure", extra={"runs": 3}, git_commit="deadbeef" * 5)
    paths = save_figure(fig, "fig0_test", tmp_path / "out", meta)
    assert [p.name for p in paths] == ["fig0_test.png", "fig0_test.pdf"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fig0_test.pdf", "fig0_test.png"]  # no temps
    text = Image.open(paths[0]).text
    assert text["sweep_id"] == "quick-abc12345" and text["git_commit"] == "deadbeef" * 5
    assert text["runs"] == "3" and text["Title"] == "fig0_test"
    pdf = paths[1].read_bytes()
    assert pdf.startswith(b"%PDF") and b"sweep_id=quick-abc12345" in pdf and b"git_commit=" + b"deadbeef" * 5 in pdf
    assert b"/FontType 42" not in pdf and b"/Subtype /Type3" not in pdf  # TrueType, not Type 3 fonts


def test_metadata_defaults_to_the_repository_commit():
    from collapse_lab.utils.provenance import git_info

    assert figure_metadata("s")["git_commit"] == str(git_info()["commit"])


def test_long_legends_go_beside_the_data():
    from collapse_lab.plotting.style import LEGEND_COLUMN_WIDTH, MAX_LEGEND_INSIDE, place_legend

    fig, ax = new_axes()
    for k in range(MAX_LEGEND_INSIDE):
        ax.plot([0, 1], [k, k], label=f"line {k}")
    legend = place_legend(ax, own_figure=True)
    assert legend is ax.get_legend() and not fig.legends  # short: inside the axes, figure size kept
    assert tuple(fig.get_size_inches()) == pytest.approx(SINGLE_COLUMN)

    ax.plot([0, 1], [9, 9], label="one more")
    legend = place_legend(ax, own_figure=True)
    assert fig.legends == [legend] and len(legend.get_texts()) == MAX_LEGEND_INSIDE + 1
    assert fig.get_size_inches()[0] == pytest.approx(SINGLE_COLUMN[0] + LEGEND_COLUMN_WIDTH)

    theirs, their_ax = new_axes()  # a caller's axes: the legend is anchored right of them, the figure untouched
    for k in range(6):
        their_ax.plot([0, 1], [k, k], label=f"line {k}")
    legend = place_legend(their_ax, own_figure=False)
    assert legend is their_ax.get_legend() and tuple(theirs.get_size_inches()) == pytest.approx(SINGLE_COLUMN)
    assert legend.get_bbox_to_anchor().x0 > their_ax.get_window_extent().x1


def test_no_labels_no_legend_box():
    from collapse_lab.plotting.style import place_legend

    fig, ax = new_axes()
    ax.plot([0, 1], [0, 1])  # unlabelled
    assert place_legend(ax, own_figure=True) is None and ax.get_legend() is None and not fig.legends


NAN3 = [float("nan")] * 3

#: artists whose values are all missing: not data (a figure of them alone is skipped, not drawn blank)
ALL_NAN = {
    "line": lambda ax: ax.plot([1, 2, 3], NAN3),
    "scatter": lambda ax: ax.scatter([1, 2, 3], NAN3),
    "image": lambda ax: ax.imshow([[float("nan"), float("nan")], [float("nan"), float("nan")]]),
    "mesh": lambda ax: ax.pcolormesh([[float("nan"), float("nan")]]),
    "bars": lambda ax: ax.bar([1, 2, 3], NAN3),
    "errorbar": lambda ax: ax.errorbar([1, 2, 3], NAN3, yerr=NAN3),
    "band": lambda ax: ax.fill_between([1, 2, 3], NAN3, NAN3),
    "reference": lambda ax: (ax.axhline(1.0), ax.axvline(2.0)),
}
#: the same artists with one finite value: data
ONE_FINITE = {
    "line": lambda ax: ax.plot([1, 2, 3], [float("nan"), 0.5, float("nan")]),
    "scatter": lambda ax: ax.scatter([1, 2, 3], [float("nan"), float("nan"), 0.5]),
    "image": lambda ax: ax.imshow([[float("nan"), 1.0], [float("nan"), float("nan")]]),
    "mesh": lambda ax: ax.pcolormesh([[float("nan"), 1.0]]),
    "bars": lambda ax: ax.bar([1, 2, 3], [float("nan"), 2.0, float("nan")]),
    "boxplot": lambda ax: ax.boxplot([[0.7, 0.8, 0.9]], patch_artist=True),
    "band": lambda ax: ax.fill_between([1, 2, 3], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
}


@pytest.mark.parametrize("kind", sorted(ALL_NAN))
def test_all_missing_values_are_not_data(kind):
    from collapse_lab.plotting.style import has_data

    _, ax = new_axes()
    ALL_NAN[kind](ax)
    ax.set_title("a title is not data")
    assert not has_data(ax)


@pytest.mark.parametrize("kind", sorted(ONE_FINITE))
def test_one_finite_value_is_data(kind):
    from collapse_lab.plotting.style import has_data

    _, ax = new_axes()
    ONE_FINITE[kind](ax)
    assert has_data(ax)


def test_only_recipes_sharing_a_colour_get_hatches():
    from collapse_lab.plotting.style import shared_colour_hatches

    standard = ["vanilla-mean", "vanilla-sum", "kd", "dml", "kdef"]
    assert set(shared_colour_hatches({v: VARIANT_STYLES[v]["color"] for v in standard}).values()) == {""}
    family = ["kdef", "kdef-kd-only", "kdef-dml-only", "kdef-uniform"]
    hatches = shared_colour_hatches({v: VARIANT_STYLES[v]["color"] for v in ["kd"] + family})
    assert hatches["kd"] == hatches["kdef"] == "" and len({hatches[v] for v in family}) == 4
