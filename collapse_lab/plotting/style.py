"""One figure style for every plot: the packaged ``collapse.mplstyle``, Okabe–Ito colours, atomic PNG + PDF.

The style sheet ships inside the package (found with :mod:`importlib.resources`) and is only ever applied
through :func:`style_context` (``plt.style.context``), never globally, so importing or calling the plotting code
does not change a user's matplotlib settings. Colours follow Okabe & Ito (2008), *Color Universal Design*, a
palette distinguishable under the common colour-vision deficiencies; every recipe also gets its own marker so
figures read in greyscale. PDF/PS fonts are embedded as TrueType (``pdf.fonttype: 42``).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.resources
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "OKABE_ITO",
    "VARIANT_STYLES",
    "EXTRA_COLORS",
    "assign_variant_styles",
    "variant_styles",
    "variant_looks",
    "tint",
    "SINGLE_COLUMN",
    "DOUBLE_COLUMN",
    "style_file",
    "style_context",
    "variant_style",
    "new_axes",
    "place_legend",
    "has_data",
    "shared_colour_hatches",
    "figure_metadata",
    "save_figure",
]

#: Okabe–Ito palette (black first: the baseline recipe)
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7"}
#: fixed colour and marker per recipe, so a recipe looks the same in every figure
VARIANT_STYLES: Dict[str, Dict[str, str]] = {
    "vanilla-mean": {"color": OKABE_ITO["black"], "marker": "o"},
    "vanilla-sum": {"color": OKABE_ITO["orange"], "marker": "s"},
    "vanilla-concat": {"color": OKABE_ITO["sky_blue"], "marker": "^"},
    "kd": {"color": OKABE_ITO["blue"], "marker": "D"},
    "dml": {"color": OKABE_ITO["bluish_green"], "marker": "v"},
    "kdef": {"color": OKABE_ITO["vermillion"], "marker": "P"},
    # controls: KDEF's ablations keep KDEF's colour with their own marker; the capacity control its own colour
    "kdef-kd-only": {"color": OKABE_ITO["vermillion"], "marker": "<"},
    "kdef-dml-only": {"color": OKABE_ITO["vermillion"], "marker": ">"},
    "kdef-uniform": {"color": OKABE_ITO["vermillion"], "marker": "p"},
    "kdef-noem": {"color": OKABE_ITO["vermillion"], "marker": "h"},
    "vanilla-mean-capacity": {"color": OKABE_ITO["reddish_purple"], "marker": "d"},
    "single model": {"color": "#7F7F7F", "marker": "o"},
}
#: Paul Tol's "muted" qualitative palette (colour-blind safe, no colour shared with Okabe–Ito): the first colours
#: of recipes without a fixed style (student mixes such as ``kdef@pnn+final+ecn``, ``vanilla-mean@pnn``)
TOL_MUTED = ("#CC6677", "#332288", "#DDCC77", "#117733", "#88CCEE", "#882255", "#44AA99", "#999933", "#AA4499")
#: colours handed out, in this order, to recipes without a fixed style: Tol muted, then the Okabe–Ito colours
#: farthest from Tol's first (those a fixed recipe of the same figure already uses are skipped)
EXTRA_COLORS = TOL_MUTED + tuple(OKABE_ITO[k] for k in ("orange", "blue", "black", "vermillion", "bluish_green",
                                                        "yellow", "sky_blue", "reddish_purple"))
#: markers of recipes without a fixed style (a cycle of another length than the colours')
EXTRA_MARKERS = ("X", "*", "h", "s", "D", "^", "v", "P", "<", ">", "p", "d", "o")
#: the styles of the recipes of the figures being drawn (:func:`variant_styles`)
_ACTIVE: contextvars.ContextVar[Optional[Dict[str, Dict[str, str]]]] = contextvars.ContextVar("variant_styles",
                                                                                              default=None)
#: looks that one figure gives some recipes on top of their styles (:func:`variant_looks`)
_LOOKS: contextvars.ContextVar[Optional[Dict[str, Dict[str, Any]]]] = contextvars.ContextVar("variant_looks",
                                                                                             default=None)
#: figure sizes in inches (single and double journal column)
SINGLE_COLUMN = (3.5, 2.6)
DOUBLE_COLUMN = (7.2, 2.8)
STYLE_NAME = "collapse.mplstyle"


def style_file() -> importlib.resources.abc.Traversable:
    """The packaged style sheet (``collapse_lab/plotting/collapse.mplstyle``)."""
    return importlib.resources.files("collapse_lab.plotting") / STYLE_NAME


@contextlib.contextmanager
def style_context() -> Iterator[None]:
    """Apply the collapse-lab style inside a ``with`` block only (``plt.style.context``)."""
    import matplotlib.pyplot as plt

    with importlib.resources.as_file(style_file()) as path, plt.style.context(str(path)):
        yield


def _extra_color(k: int, taken: Sequence[str]) -> str:
    """The ``k``-th colour not in ``taken``: :data:`EXTRA_COLORS`, then evenly spaced hues (past 17 recipes)."""
    free = [c for c in EXTRA_COLORS if c not in set(taken)]
    if k < len(free):
        return free[k]
    import colorsys

    j = k - len(free)  # golden-ratio hue steps: each new colour far from the previous ones
    r, g, b = colorsys.hls_to_rgb((0.13 + 0.618034 * j) % 1.0, 0.45 if j % 2 else 0.6, 0.75)
    return f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"


def assign_variant_styles(variants: Sequence[str],
                          fixed: Optional[Mapping[str, Mapping[str, str]]] = None) -> Dict[str, Dict[str, str]]:
    """``{variant: {"color", "marker"}}``: the fixed style of a known recipe (:data:`VARIANT_STYLES`), else the
    style in ``fixed``, else the next free colour of :data:`EXTRA_COLORS` and the next marker, in the order given,
    so that distinct recipes get distinct colours (pairwise, not only within a cycle) and the same list gives
    the same styles in every figure.

    Example:
        >>> styles = assign_variant_styles(["kdef", "kdef@pnn+final+ecn", "vanilla-mean@pnn"])
        >>> [styles[v]["color"] for v in styles]
        ['#D55E00', '#CC6677', '#332288']
    """
    out: Dict[str, Dict[str, str]] = {}
    fixed = dict(fixed or {})
    new = []
    for variant in dict.fromkeys(variants):
        if variant in VARIANT_STYLES:
            out[variant] = dict(VARIANT_STYLES[variant])
        elif variant in fixed:
            out[variant] = dict(fixed[variant])
        else:
            new.append(variant)
    taken = [st["color"] for st in out.values()] + [st["color"] for st in fixed.values()]
    start = len([v for v in fixed if v not in VARIANT_STYLES])  # continue the marker cycle of ``fixed``
    for k, variant in enumerate(new):
        out[variant] = {"color": _extra_color(k, taken),
                        "marker": EXTRA_MARKERS[(start + k) % len(EXTRA_MARKERS)]}
    return out


@contextlib.contextmanager
def variant_styles(variants: Sequence[str]) -> Iterator[Dict[str, Dict[str, str]]]:
    """Inside the block, :func:`variant_style` gives each of ``variants`` the style of
    :func:`assign_variant_styles`; styles assigned by an enclosing block are kept (``collapse-lab figures``
    assigns them once per sweep, so a recipe has one colour in every figure and every panel)."""
    outer = _ACTIVE.get() or {}
    styles = {**outer, **assign_variant_styles([v for v in variants if v not in outer], fixed=outer)}
    token = _ACTIVE.set(styles)
    try:
        yield styles
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def variant_looks(looks: Mapping[str, Mapping[str, Any]]) -> Iterator[None]:
    """Inside the block, :func:`variant_style` gives each recipe of ``looks`` these keys over its style (e.g.
    ``color`` and ``linestyle``): one figure's way to tell apart recipes that share a colour everywhere else
    (figure 16: KDEF's ablations as tints of KDEF's vermillion, each with a line style of its own)."""
    token = _LOOKS.set({**(_LOOKS.get() or {}), **{v: dict(look) for v, look in looks.items()}})
    try:
        yield
    finally:
        _LOOKS.reset(token)


def tint(color: str, amount: float) -> str:
    """``color`` mixed with white (``amount`` > 0, lighter) or black (``amount`` < 0, darker), as ``#RRGGBB``.

    Example:
        >>> tint("#D55E00", 0.5), tint("#D55E00", -0.5)
        ('#EAAE80', '#6A2F00')
    """
    from matplotlib.colors import to_hex, to_rgb

    target = 1.0 if amount > 0 else 0.0
    return to_hex([c + abs(amount) * (target - c) for c in to_rgb(color)]).upper()


def variant_style(variant: str, index: int = 0) -> Dict[str, Any]:
    """``{"color", "marker"}`` of a recipe: its fixed style, else the one :func:`variant_styles` assigned it,
    else the ``index``-th entry of the extra palette (distinct for distinct ``index``); inside
    :func:`variant_looks`, with the figure's look of the recipe over it (it may add ``linestyle``).

    Example:
        >>> variant_style("kdef")
        {'color': '#D55E00', 'marker': 'P'}
    """
    active = _ACTIVE.get() or {}
    if variant in VARIANT_STYLES:
        style = dict(VARIANT_STYLES[variant])
    elif variant in active:
        style = dict(active[variant])
    else:
        style = {"color": _extra_color(index, ()), "marker": EXTRA_MARKERS[index % len(EXTRA_MARKERS)]}
    return {**style, **(_LOOKS.get() or {}).get(variant, {})}


def new_axes(ax: Any = None, ncols: int = 1, nrows: int = 1,
             figsize: Optional[Tuple[float, float]] = None, **kwargs: Any) -> Tuple[Any, Any]:
    """``(fig, ax)``: the given axes (and its figure) or a new figure (never pyplot's current figure).

    With ``ncols * nrows > 1`` a given ``ax`` must be a sequence of that many axes; the returned ``ax`` is then
    a flat numpy array of axes.
    """
    import numpy as np
    from matplotlib.figure import Figure

    count = ncols * nrows
    if ax is None:
        fig = Figure(figsize=figsize or (SINGLE_COLUMN if count == 1 else DOUBLE_COLUMN), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
        return fig, (axes[0, 0] if count == 1 else axes.ravel())
    if count == 1:
        return ax.figure, ax
    axes = np.asarray(ax, dtype=object).ravel()
    if axes.size != count:
        raise ValueError(f"expected {count} axes, got {axes.size}")
    return axes[0].figure, axes


#: a legend with more entries than this goes beside the axes instead of over the data
MAX_LEGEND_INSIDE = 4
#: inches added to the width of a figure this package created, per legend column placed beside the axes
LEGEND_COLUMN_WIDTH = 1.35


def place_legend(ax: Any, own_figure: bool, handles: Optional[Sequence[Any]] = None,
                 max_inside: int = MAX_LEGEND_INSIDE, **kwargs: Any) -> Any:
    """A legend that does not cover the data: inside ``ax`` (matplotlib's best spot) for up to ``max_inside``
    entries, otherwise beside the plot — in a figure this package created (``own_figure``) as a figure legend
    right of all panels with the figure widened by its width, on a caller's axes to the right of ``ax``.

    Args:
        ax: the axes whose handles (or ``handles``) are listed.
        own_figure: whether the figure was made by the plot function (``ax=None`` was passed to it).
        handles: artists to list (default: every labelled artist of ``ax``).
        max_inside: most entries kept inside the axes.
        **kwargs: passed to ``legend`` (e.g. ``ncols`` for a legend inside).
    """
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    else:
        labels = [h.get_label() for h in handles]
    if not labels:
        return None  # nothing to list: no empty legend box
    if len(labels) <= max_inside:
        return ax.legend(handles, labels, **kwargs)
    kwargs.pop("ncols", None)
    if own_figure:
        fig = ax.figure
        width, height = fig.get_size_inches()
        fig.set_size_inches(width + LEGEND_COLUMN_WIDTH, height)
        return fig.legend(handles, labels, loc="outside right upper", **kwargs)
    return ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def _finite_patch(patch: Any) -> bool:
    """Whether a patch is drawn at a finite place: a bar (``Rectangle``) with finite corner, width and height, any
    other patch (a box of a box plot) with every vertex finite."""
    import numpy as np
    from matplotlib.patches import Rectangle

    if isinstance(patch, Rectangle):
        return bool(np.isfinite([patch.get_x(), patch.get_y(), patch.get_width(), patch.get_height()]).all())
    vertices = patch.get_patch_transform().transform(patch.get_path().vertices)
    return bool(vertices.size) and bool(np.isfinite(vertices).all())


def _finite_collection(collection: Any) -> bool:
    """Whether a collection shows a finite value: a scatter (``PathCollection``) a point with finite offsets, a
    mesh a finite value, any other collection (a band of ``fill_between``, error bars) a finite vertex."""
    import numpy as np
    from matplotlib.collections import PathCollection, QuadMesh

    if isinstance(collection, PathCollection):
        offsets = np.asarray(collection.get_offsets(), dtype=float).reshape(-1, 2)
        return bool(np.isfinite(offsets).all(axis=1).any())
    if isinstance(collection, QuadMesh):
        return _finite_array(collection.get_array())
    return any(np.isfinite(np.asarray(path.vertices, dtype=float)).all(axis=-1).any()
               for path in collection.get_paths())


def _finite_array(values: Any) -> bool:
    """Whether an image's or mesh's values hold a finite, unmasked entry."""
    import numpy as np

    if values is None:
        return False
    filled = np.ma.asarray(values).astype(float).filled(np.nan)
    return bool(np.isfinite(filled).any())


def has_data(ax: Any) -> bool:
    """Whether ``ax`` shows any data: a finite value of an image, a bar or other patch at a finite place, a
    scatter point with finite coordinates, a band or bar collection with a finite vertex, or a line in data
    coordinates with a finite value — all-NaN artists (a figure whose values are all missing), reference lines
    (``axhline``/``axvline``), titles and grids do not count."""
    import numpy as np

    if any(_finite_array(image.get_array()) for image in ax.images):
        return True
    if any(_finite_patch(patch) for patch in ax.patches):
        return True
    if any(_finite_collection(collection) for collection in ax.collections):
        return True
    for line in ax.get_lines():
        transform = line.get_transform()
        if transform is not ax.transData and not transform.contains_branch(ax.transData):
            continue  # axhline, axvline: in axes coordinates on one axis (their blended transform == transData)
        xy = np.asarray(line.get_xydata(), dtype=float).reshape(-1, 2)  # unit-converted (categorical x too)
        if np.isfinite(xy).all(axis=1).any():
            return True
    return False


#: hatches of the boxes of recipes that share a colour with an earlier recipe (KDEF's controls share KDEF's)
HATCHES = ("////", "....", "xxxx", "\\\\\\\\", "++++", "oooo")


def shared_colour_hatches(colours: Mapping[str, str]) -> Dict[str, str]:
    """``{variant: hatch}`` for boxes and bars, which have no marker to tell apart recipes of one colour: the
    first recipe of a colour (in the order given) plain (``""``), the next ones of that colour the next of
    :data:`HATCHES`; so a figure of recipes with distinct colours has no hatch at all.

    Example:
        >>> shared_colour_hatches({"kd": "#0072B2", "kdef": "#D55E00", "kdef-kd-only": "#D55E00"})
        {'kd': '', 'kdef': '', 'kdef-kd-only': '////'}
    """
    seen: Dict[str, int] = {}
    out = {}
    for variant, colour in colours.items():
        k = seen.get(str(colour).lower(), 0)
        seen[str(colour).lower()] = k + 1
        out[variant] = "" if k == 0 else HATCHES[(k - 1) % len(HATCHES)]
    return out


def figure_metadata(sweep_id: str, description: str = "", extra: Optional[Mapping[str, Any]] = None,
                    git_commit: Optional[str] = None) -> Dict[str, str]:
    """Provenance stored in every figure file: sweep id, git commit of the plotting code, package version."""
    from collapse_lab.__about__ import __version__
    from collapse_lab.utils.provenance import git_info

    commit = git_commit if git_commit is not None else git_info().get("commit")
    meta = {"sweep_id": str(sweep_id), "git_commit": str(commit), "collapse_lab_version": __version__,
            "description": description}
    meta.update({str(k): str(v) for k, v in (extra or {}).items()})
    return meta


def _format_metadata(fmt: str, stem: str, meta: Mapping[str, str]) -> Dict[str, str]:
    from collapse_lab.__about__ import __version__

    if fmt == "pdf":  # the PDF info dictionary accepts only its standard keys
        keywords = "; ".join(f"{k}={v}" for k, v in meta.items() if k != "description")
        return {"Title": stem, "Subject": meta.get("description", ""), "Keywords": keywords,
                "Creator": f"collapse-lab {__version__}"}
    if fmt == "png":
        return {"Title": stem, "Software": f"collapse-lab {__version__}", **meta}
    return {}


def save_figure(fig: Any, stem: str, out_dir: Union[str, Path], metadata: Optional[Mapping[str, str]] = None,
                formats: Sequence[str] = ("png", "pdf"), dpi: int = 200) -> List[Path]:
    """Write ``<out_dir>/<stem>.<fmt>`` for every format, atomically, with ``metadata`` embedded.

    PNG files carry each metadata item as a text chunk (``PIL.Image.open(p).text``); PDF files carry them in
    the ``Keywords`` field of the info dictionary as ``key=value; ...`` and the description as ``Subject``.
    """
    from collapse_lab.io.atomic import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = dict(metadata or {})
    paths = []
    with style_context():
        for fmt in formats:
            path = out_dir / f"{stem}.{fmt}"
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight",
                            metadata=_format_metadata(fmt, stem, meta) or None)
            paths.append(path)
    return paths
