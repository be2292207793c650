"""The paper's heterogeneous-student tables from a sweep: Table V (KDEF_Latest ablation) and Table VI (compatibility).

Each row of the paper is one recipe of a sweep (``variant`` from :func:`collapse_lab.recipes.variant_of`) and one
member: the ensemble, or student k of a mixed ensemble (``KDEF_PNN`` is student 0 of KDEF_Latest,
docs/method.md §11 "Table V"). Per row and seed the test AUC and log loss are read from ``results.csv``; the table
gives their mean with a 95% Student-t interval over seeds (:func:`collapse_lab.results.stats.mean_ci`), beside the
paper's number on the dataset named (docs/method.md §11: ML-1M is the closest to MovieLens-100K). Where the paper
pairs two rows (``X`` → ``KDEF_X``; ``w/o all`` → KDEF_Latest) the paired difference over common seeds is given with
its interval, the comparison this toolkit can make honestly at a few seeds.

Example:
    >>> import pandas as pd
    >>> rows = [dict(variant="vanilla-mean@pnn", n=1, seed=s, member="ensemble", test_auc=a, test_logloss=0.3)
    ...         for s, a in [(1, 0.90), (2, 0.92)]]
    >>> t = paper_table(pd.DataFrame(rows), TABLE5[:1])
    >>> t.loc[0, "row"], int(t.loc[0, "seeds"]), round(float(t.loc[0, "auc_mean"]), 6)
    ('PNN', 2, 0.91)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from collapse_lab.results.stats import mean_ci

__all__ = ["PAPER_TABLES", "PaperRow", "TABLE5", "TABLE6_STUDENTS", "paper_column", "paper_table",
           "paper_table_markdown", "paper_tables_for", "table5_frame", "table6_frame", "table6_rows"]

LATEST = "pnn+final+ecn"  # KDEF_Latest's students in the authors' order (docs/method.md §2.2)


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table: which runs it reads and the paper's (log loss, AUC %) per dataset."""

    label: str
    variant: str
    member: str  # "ensemble" or a student index ("0", "1", ...)
    paper: Dict[str, Tuple[float, float]]
    paired_with: Optional[str] = None  # label of the row this one is compared with (difference = this - that)


def _p(ll: float, auc: float) -> Tuple[float, float]:
    return (ll, auc)


#: Table V (docs/method.md §11): Criteo / ML-1M / KKBox / iPinYou, log loss and AUC %
TABLE5: List[PaperRow] = [
    PaperRow("PNN", "vanilla-mean@pnn", "ensemble",
             {"Criteo": _p(0.4378, 81.42), "ML-1M": _p(0.3070, 90.42), "KKBox": _p(0.4793, 85.15),
              "iPinYou": _p(0.005544, 78.13)}),
    PaperRow("KDEF_PNN", f"kdef@{LATEST}", "0",
             {"Criteo": _p(0.4365, 81.54), "ML-1M": _p(0.3039, 90.67), "KKBox": _p(0.4769, 85.54),
              "iPinYou": _p(0.005549, 78.19)}, paired_with="PNN"),
    PaperRow("FINAL(1B)", "vanilla-mean@final", "ensemble",
             {"Criteo": _p(0.4377, 81.44), "ML-1M": _p(0.3053, 90.41), "KKBox": _p(0.4830, 85.13),
              "iPinYou": _p(0.005541, 78.10)}),
    PaperRow("KDEF_FINAL(1B)", f"kdef@{LATEST}", "1",
             {"Criteo": _p(0.4364, 81.55), "ML-1M": _p(0.3041, 90.64), "KKBox": _p(0.4776, 85.55),
              "iPinYou": _p(0.005542, 78.38)}, paired_with="FINAL(1B)"),
    PaperRow("ECN", "vanilla-mean@ecn", "ensemble",
             {"Criteo": _p(0.4364, 81.55), "ML-1M": _p(0.3013, 90.59), "KKBox": _p(0.4778, 85.40),
              "iPinYou": _p(0.005534, 78.43)}),
    PaperRow("KDEF_ECN", f"kdef@{LATEST}", "2",
             {"Criteo": _p(0.4362, 81.58), "ML-1M": _p(0.2989, 90.65), "KKBox": _p(0.4757, 85.51),
              "iPinYou": _p(0.005541, 78.36)}, paired_with="ECN"),
    PaperRow("only KD", f"kdef-kd-only@{LATEST}", "ensemble",
             {"Criteo": _p(0.4369, 81.53), "ML-1M": _p(0.3055, 90.61), "KKBox": _p(0.4822, 85.58),
              "iPinYou": _p(0.005538, 78.28)}, paired_with="KDEF_Latest"),
    PaperRow("only DML", f"kdef-dml-only@{LATEST}", "ensemble",
             {"Criteo": _p(0.4369, 81.51), "ML-1M": _p(0.3059, 90.50), "KKBox": _p(0.4968, 85.02),
              "iPinYou": _p(0.005544, 78.22)}, paired_with="KDEF_Latest"),
    PaperRow("w/o EM", f"kdef-noem@{LATEST}", "ensemble",
             {"Criteo": _p(0.4360, 81.60), "ML-1M": _p(0.3012, 90.65), "KKBox": _p(0.4763, 85.48),
              "iPinYou": _p(0.005537, 78.32)}, paired_with="KDEF_Latest"),
    PaperRow("w/o all (mean fusion)", f"vanilla-mean@{LATEST}", "ensemble",
             {"Criteo": _p(0.4383, 81.38), "ML-1M": _p(0.3075, 90.51), "KKBox": _p(0.4842, 85.33),
              "iPinYou": _p(0.005534, 78.20)}, paired_with="KDEF_Latest"),
    PaperRow("KDEF_Latest", f"kdef@{LATEST}", "ensemble",
             {"Criteo": _p(0.4356, 81.63), "ML-1M": _p(0.3001, 90.75), "KKBox": _p(0.4742, 85.67),
              "iPinYou": _p(0.005530, 78.48)}),
]

#: Table VI (docs/method.md §11): X -> KDEF_X inside FINAL + ECN + X; (X alone, KDEF_X) per dataset
TABLE6_STUDENTS: Dict[str, Tuple[str, Dict[str, Tuple[Tuple[float, float], Tuple[float, float]]]]] = {
    "crossnet": ("CrossNetv2", {"Criteo": ((0.4392, 81.27), (0.4365, 81.57)),
                                "ML-1M": ((0.3420, 87.40), (0.3021, 90.45)),
                                "KKBox": ((0.4912, 84.42), (0.4865, 84.69))}),
    "dcnv2": ("DCNv2", {"Criteo": ((0.4376, 81.45), (0.4366, 81.56)), "ML-1M": ((0.3098, 90.56), (0.3031, 90.62)),
                        "KKBox": ((0.4787, 85.31), (0.4780, 85.56))}),
    "cin": ("CIN", {"Criteo": ((0.4393, 81.27), (0.4385, 81.36)), "ML-1M": ((0.3432, 87.32), (0.3013, 90.59)),
                    "KKBox": ((0.4907, 84.27), (0.4897, 84.58))}),
    "xdeepfm": ("xDeepFM", {"Criteo": ((0.4376, 81.43), (0.4369, 81.51)), "ML-1M": ((0.3054, 90.47), (0.3032, 90.60)),
                            "KKBox": ((0.4772, 85.35), (0.4778, 85.57))}),
    "wide_deep": ("Wide & Deep", {"Criteo": ((0.4376, 81.42), (0.4368, 81.52)),
                                  "ML-1M": ((0.3056, 90.45), (0.3036, 90.58)),
                                  "KKBox": ((0.4852, 85.04), (0.4790, 85.41))}),
    "afn": ("AFN*", {"Criteo": ((0.4384, 81.38), (0.4372, 81.49)), "ML-1M": ((0.3048, 90.53), (0.3031, 90.58)),
                     "KKBox": ((0.4842, 84.89), (0.4788, 85.49))}),
    "autoint": ("AutoInt*", {"Criteo": ((0.4390, 81.32), (0.4368, 81.52)), "ML-1M": ((0.3112, 90.45), (0.3035, 90.56)),
                             "KKBox": ((0.4773, 85.34), (0.4776, 85.46))}),
}


def table6_rows(students: Sequence[str] = tuple(TABLE6_STUDENTS)) -> List[PaperRow]:
    """Table VI as rows: ``X`` (one X student, vanilla) and ``KDEF_X`` (member 2 of KDEF on FINAL + ECN + X)."""
    rows: List[PaperRow] = []
    for x in students:
        label, paper = TABLE6_STUDENTS[x]
        rows.append(PaperRow(label, f"vanilla-mean@{x}", "ensemble", {d: v[0] for d, v in paper.items()}))
        rows.append(PaperRow(f"KDEF_{label}", f"kdef@final+ecn+{x}", "2", {d: v[1] for d, v in paper.items()},
                             paired_with=label))
    return rows


def _values(df: pd.DataFrame, row: PaperRow) -> pd.DataFrame:
    """Per-seed test AUC and log loss of one row (the first N present for the variant and member)."""
    sel = df[(df["variant"] == row.variant) & (df["member"].astype(str) == row.member)]
    if sel.empty:
        return pd.DataFrame(columns=["seed", "auc", "logloss"])
    sel = sel[sel["n"] == sel["n"].min()]
    out = sel[["seed", "test_auc", "test_logloss"]].rename(columns={"test_auc": "auc", "test_logloss": "logloss"})
    return out.drop_duplicates("seed").set_index("seed").sort_index().reset_index()


def paper_table(results: pd.DataFrame, rows: Sequence[PaperRow], dataset: str = "ML-1M",
                confidence: float = 0.95) -> pd.DataFrame:
    """One line per paper row: seeds, AUC and log loss (mean, CI), the paper's values on ``dataset`` and the paired
    AUC difference to ``paired_with`` (mean, CI, seeds). AUC in [0, 1] here (the paper prints %)."""
    per_row = {r.label: _values(results, r) for r in rows}
    lines = []
    for r in rows:
        v = per_row[r.label]
        auc = mean_ci(v["auc"].to_numpy(float)) if len(v) else (np.nan,) * 4
        ll = mean_ci(v["logloss"].to_numpy(float)) if len(v) else (np.nan,) * 4
        paper_ll, paper_auc = r.paper.get(dataset, (np.nan, np.nan))
        line = {"row": r.label, "variant": r.variant, "member": r.member, "seeds": int(len(v)),
                "auc_mean": auc[0], "auc_lo": auc[2], "auc_hi": auc[3],
                "logloss_mean": ll[0], "logloss_lo": ll[2], "logloss_hi": ll[3],
                "paper_auc": paper_auc / 100.0, "paper_logloss": paper_ll, "paired_with": r.paired_with or "",
                "diff_auc_mean": np.nan, "diff_auc_lo": np.nan, "diff_auc_hi": np.nan, "diff_seeds": 0}
        if r.paired_with and r.paired_with in per_row and len(v):
            other = per_row[r.paired_with]
            both = v.merge(other, on="seed", suffixes=("", "_ref"))
            if len(both):
                d = mean_ci((both["auc"] - both["auc_ref"]).to_numpy(float), confidence)
                line.update(diff_auc_mean=d[0], diff_auc_lo=d[2], diff_auc_hi=d[3], diff_seeds=int(len(both)))
        lines.append(line)
    return pd.DataFrame(lines)


def _ci(mean: float, lo: float, hi: float, scale: float = 100.0, digits: int = 2) -> str:
    if not np.isfinite(mean):
        return "–"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"


def paper_table_markdown(table: pd.DataFrame, dataset: str = "ML-1M") -> str:
    """The table as markdown: AUC % and log loss with 95% intervals, the paper's numbers, paired differences (pp)."""
    head = (f"| row | seeds | test AUC % [95% CI] | test log loss [95% CI] | paper AUC % ({dataset}) | "
            f"paper log loss ({dataset}) | Δ AUC pp vs | Δ AUC pp [95% CI] |")
    lines = [head, "|" + "---|" * 8]
    for t in table.itertuples():
        paper_auc = f"{t.paper_auc * 100:.2f}" if np.isfinite(t.paper_auc) else "–"
        paper_ll = f"{t.paper_logloss:.4f}" if np.isfinite(t.paper_logloss) else "–"
        diff = _ci(t.diff_auc_mean, t.diff_auc_lo, t.diff_auc_hi) if t.diff_seeds else "–"
        lines.append(f"| {t.row} | {t.seeds} | {_ci(t.auc_mean, t.auc_lo, t.auc_hi)} | "
                     f"{_ci(t.logloss_mean, t.logloss_lo, t.logloss_hi, scale=1.0, digits=4)} | {paper_auc} | "
                     f"{paper_ll} | {t.paired_with or '–'} | {diff} |")
    return "\n".join(lines) + "\n"


#: the paper tables a sweep can fill: file stem -> (title, rows)
PAPER_TABLES: Dict[str, Tuple[str, List[PaperRow]]] = {
    "table5": ("Table V: ablation on KDEF_Latest (PNN + FINAL(1B) + ECN)", TABLE5),
    "table6": ("Table VI: compatibility, X alone -> KDEF_X inside FINAL(1B) + ECN + X", table6_rows()),
}

#: processed-dataset name (lower case, without separators) -> the paper's column
_PAPER_COLUMNS = {"criteo": "Criteo", "ml1m": "ML-1M", "movielens1m": "ML-1M", "kkbox": "KKBox",
                  "ipinyou": "iPinYou"}


def paper_column(dataset: str) -> str:
    """The paper's column to print beside a dataset's numbers: the dataset itself where the paper has it, ML-1M
    (the closest of the paper's datasets, docs/method.md §8.2) for MovieLens-100K and any other dataset.

    Example:
        >>> paper_column("Criteo_x4"), paper_column("ML_1M_7_x1"), paper_column("movielens-100k")
        ('Criteo', 'ML-1M', 'ML-1M')
    """
    key = "".join(c for c in dataset.lower() if c.isalnum())
    for prefix, column in _PAPER_COLUMNS.items():
        if key.startswith(prefix):
            return column
    return "ML-1M"


def paper_tables_for(results: pd.DataFrame, confidence: float = 0.95) -> Dict[str, Tuple[str, pd.DataFrame]]:
    """The paper tables that ``results`` (``results.csv`` rows) holds at least one row of, per table stem and
    dataset: ``{"table5": (markdown, table), ...}``; with several datasets the stem gets ``-<dataset>``."""
    out: Dict[str, Tuple[str, pd.DataFrame]] = {}
    datasets = list(dict.fromkeys(results["dataset"])) if "dataset" in results else [""]
    for stem, (title, rows) in PAPER_TABLES.items():
        for dataset in datasets:
            df = results[results["dataset"] == dataset] if dataset else results
            if not set(df["variant"]) & {r.variant for r in rows}:
                continue
            column = paper_column(dataset)
            table = paper_table(df, rows, dataset=column, confidence=confidence)
            name = stem if len(datasets) == 1 else f"{stem}-{dataset}"
            text = (f"# {title}\n\nDataset `{dataset}`; the paper's numbers are its {column} column "
                    f"(docs/method.md §11). Test AUC % and log loss: mean over seeds with a "
                    f"{confidence:.0%} Student-t interval; Δ = paired difference over common seeds.\n\n"
                    + paper_table_markdown(table, dataset=column))
            out[name] = (text, table)
    return out


def _frame(results: pd.DataFrame, rows: Sequence[PaperRow]) -> pd.DataFrame:
    """:func:`paper_table` of one dataset's results (the paper column chosen by :func:`paper_column`), or an empty
    frame when the results hold no row of the table."""
    if results.empty or not set(results["variant"]) & {r.variant for r in rows}:
        return pd.DataFrame()
    dataset = str(results["dataset"].iloc[0]) if "dataset" in results else ""
    return paper_table(results, rows, dataset=paper_column(dataset)).assign(paper_dataset=paper_column(dataset))


def table5_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Table V of one dataset's ``results.csv`` rows (empty without a Table V recipe), for the figures."""
    return _frame(results, TABLE5)


def table6_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Table VI of one dataset's ``results.csv`` rows (empty without a Table VI recipe), for the figures."""
    return _frame(results, table6_rows())
