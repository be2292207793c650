"""Figures: one consistent style, ``plot_*(df, ax=None, **style) -> (fig, ax)`` functions on tidy DataFrames.

Importing this package does not import matplotlib; each plotting module does, when it is imported.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "plot_ensemble_auc",
    "plot_student_auc",
    "plot_gap",
    "plot_student_variance",
    "plot_metric_vs_n",
    "plot_sv_heatmaps",
    "plot_ka_vs_n",
    "plot_erank_ratio_vs_n",
    "plot_layer_measure_vs_n",
    "plot_field_ia",
    "plot_normalized_spectra",
    "plot_exam_weights",
    "plot_embedding_collapse",
    "plot_metric_over_training",
    "plot_collapse_map",
    "plot_controls",
    "render_figures",
    "draw_figure",
    "save_figure",
    "style_context",
]

_WHERE = {
    "plot_ensemble_auc": "degradation", "plot_student_auc": "degradation", "plot_gap": "degradation",
    "plot_student_variance": "degradation", "plot_metric_vs_n": "degradation", "plot_sv_heatmaps": "spectra",
    "plot_ka_vs_n": "spectra", "plot_erank_ratio_vs_n": "spectra", "plot_layer_measure_vs_n": "spectra",
    "plot_normalized_spectra": "spectra", "plot_field_ia": "fields",
    "plot_exam_weights": "exam", "plot_embedding_collapse": "embedding", "plot_metric_over_training": "training",
    "plot_collapse_map": "training", "plot_controls": "controls", "render_figures": "figures",
    "draw_figure": "figures", "save_figure": "style", "style_context": "style",
}


def __getattr__(name: str) -> Any:
    """Import the plotting module holding ``name`` on first use (keeps ``import collapse_lab.plotting`` light)."""
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"collapse_lab.plotting.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'collapse_lab.plotting' has no attribute {name!r}")
