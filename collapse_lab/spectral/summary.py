"""A readable text summary of a tidy spectrum table (what ``collapse-lab spectrum`` prints).

Per student: knowledge abundance of each analysable matrix with its kind (linear, cross, attention, embedding) and
label (``mlp.0``, ``cross.1``, ``attention.0.query``), with IA and effective rank of the same weight; the
embedding tables (IA, its ratio to the same-shape Gaussian, effective rank); probe activations and the
embedding input (effective rank, its ratio to random, participation ratio); then notes (dropped NaN/Inf rows,
tensors that were not analysed).
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from collapse_lab.io.contract import parse_activation, parse_embedding_table, parse_hidden_weight

__all__ = ["summarize", "short_name"]

#: per target: (title, [(metric, column label, "value" | "ratio")])
_VIEWS: Dict[str, tuple] = {
    "weights": ("hidden-layer weights (uncentered): knowledge abundance KA = #{sv > tau}/#{sv > 0}",
                [("knowledge_abundance", "KA", "value"), ("knowledge_abundance", "KA/random", "ratio"),
                 ("information_abundance", "IA", "value"), ("effective_rank", "erank", "value"),
                 ("stable_rank", "srank", "value"), ("sv_max", "sv_max", "value")]),
    "embeddings": ("embedding tables (uncentered): information abundance IA = sum(sv)/sv_max",
                   [("information_abundance", "IA", "value"), ("information_abundance", "IA/random", "ratio"),
                    ("effective_rank", "erank", "value"), ("effective_rank", "erank/random", "ratio"),
                    ("numerical_rank", "rank", "value")]),
    "activations": ("probe activations",
                    [("effective_rank", "erank", "value"), ("effective_rank", "erank/random", "ratio"),
                     ("participation_ratio", "PR", "value"), ("stable_rank", "srank", "value"),
                     ("numerical_rank", "rank", "value")]),
    "input": ("concatenated embedding input (probe)",
              [("effective_rank", "erank", "value"), ("effective_rank", "erank/random", "ratio"),
               ("participation_ratio", "PR", "value"), ("information_abundance", "IA", "value"),
               ("numerical_rank", "rank", "value")]),
}


def short_name(name: str) -> str:
    """``students.0.layers.1.linear.weight`` → ``layer 1``; ``embedding.tables.user.weight`` → ``user``.

    Example:
        >>> short_name("embedding.tables.movie_id.weight")
        'movie_id'
    """
    layer = parse_hidden_weight(name) or parse_activation(name)
    if layer is not None:
        return f"layer {layer[1]}"
    return parse_embedding_table(name) or name


def _ka_view(threshold: str, tau: float) -> tuple:
    """The weights view with the knowledge abundance of the chosen threshold kind."""
    from collapse_lab.spectral.analysis import KA_METRICS
    from collapse_lab.spectral.functional import threshold_label

    title, columns = _VIEWS["weights"]
    metric = KA_METRICS[threshold]
    title = title.replace("#{sv > tau}", f"#{{{threshold_label(threshold, tau)}}}")
    return title, [(metric if m == "knowledge_abundance" else m, label, col) for m, label, col in columns]


def _section(df: Any, target: str, threshold: str = "abs") -> List[str]:
    import pandas as pd

    title, columns = _VIEWS[target]
    sub = df[df["target"] == target]
    if sub.empty:
        return []
    if target == "weights":
        from collapse_lab.spectral.analysis import KA_METRICS

        ka = sub[sub["metric"] == KA_METRICS[threshold]]["convention"]
        tau = float(ka.iloc[0].split("tau=")[1].split(";")[0]) if len(ka) else None
        title, columns = _ka_view(threshold, tau)
    conv = sub["convention"].iloc[0].split(";")
    details = ", ".join(c for c in conv if c.startswith(("center=", "rows=", "method=")))
    keys = list(dict.fromkeys(zip(sub["member"], sub["name"], strict=True)))
    table = []
    for member, name in keys:
        one = sub[(sub["member"] == member) & (sub["name"] == name)].set_index("metric")
        row = {"member": member, "matrix": short_name(name)}
        for column in ("kind", "label"):  # a student's matrix: linear | cross | attention | embedding, and its label
            value = one[column].iloc[0] if column in one.columns else None
            if target == "weights" and isinstance(value, str) and value:
                row[column] = value
        row["shape"] = f"{int(one['rows'].iloc[0])}x{int(one['cols'].iloc[0])}"
        for metric, label, col in columns:
            row[label] = one.at[metric, col] if metric in one.index else float("nan")
        if "nonfinite_rows" in one.index and one.at["nonfinite_rows", "value"]:
            row["NaN rows"] = int(one.at["nonfinite_rows", "value"])
        table.append(row)
    frame = pd.DataFrame(table)
    if frame["member"].eq("shared").all():
        frame = frame.drop(columns="member")
    text = frame.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")
    return [f"{title} [{details}]", *("  " + line for line in text.splitlines()), ""]


def summarize(df: Any, header: str = "", notes: Sequence[str] | None = None, threshold: str = "abs") -> str:
    """The readable summary of a tidy spectrum DataFrame (one block per target).

    Args:
        df: the frame returned by :func:`collapse_lab.spectral.analyze`.
        header: a first line (e.g. where the files were written).
        notes: extra notes; defaults to ``df.attrs["notes"]``.
        threshold: which knowledge abundance the weights block shows (``abs`` | ``mp`` | ``rel``); its τ is read
            from the rows' ``convention``.
    """
    lines = [header, ""] if header else []
    for target in _VIEWS:
        lines += _section(df, target, threshold)
    notes = list(df.attrs.get("notes", [])) if notes is None else list(notes)
    lines += [f"note: {n}" for n in notes]
    lines.append("ratios are value / mean over same-shape Gaussian matrices of equal energy")
    return "\n".join(lines).rstrip() + "\n"
