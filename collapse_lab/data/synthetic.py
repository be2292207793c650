"""A seeded synthetic CTR dataset with a planted model of known structure.

Each of ``F`` categorical fields draws its ids from a Zipf law over ``V_f`` tokens, P(rank k) ∝ k^(-s), with
a per-field random permutation from rank to id (so frequent ids are scattered over the table). The label of
a row x = (x_1, ..., x_F) comes from a factorization-machine-style planted model (Rendle, ICDM 2010):

.. math::

    z(x) = b_0 + \\sum_f w_f[x_f] + \\sum_{f<g} \\langle e_f[x_f], e_g[x_g] \\rangle, \\qquad
    p(x) = (1 - 2\\epsilon)\\,\\sigma(z(x)) + \\epsilon, \\qquad y \\sim \\mathrm{Bernoulli}(p(x)),

with first-order weights w_f[v] ~ N(0, first_order² / F) (so Σ_f w has standard deviation ``first_order``),
rank-r factor vectors e_f[v] ~ N(0, s²) with s⁴ = interaction² / (r · F(F-1)/2) (so the interaction sum has
standard deviation ``interaction``; each field pair's interaction matrix E_f E_gᵀ has rank ≤ r), and a
label-flip probability ε = ``noise``. The bias b_0 is solved (bisection) so that the mean of p over all
rows equals ``base_rate`` unless ``bias`` is given.

Ids follow the FuxiCTR convention (padding 0, unused; tokens 1..V; OOV V+1, unused; vocab_size V+2). The
processed dataset stores ``probs.npy`` (p, float32) per split, the planted parameters in ``planted.npz``
(``bias``, ``w.<field>`` (V+2,), ``factors.<field>`` (V+2, r), indexed by id) and, in ``meta.json``, the
oracle AUC and logloss of the stored probabilities per split (sklearn ``roc_auc_score`` / ``log_loss``):
the best any model can score. Everything is a deterministic function of the parameters and ``seed``.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from collapse_lab.data.dataset import ProcessedDataset
    >>> out = make_synthetic(pathlib.Path(tempfile.mkdtemp()) / "syn", rows=1000, fields=3, vocab_size=20)
    >>> ds = ProcessedDataset(out)
    >>> ds.split("train").ids.shape, ds.feature_map.fields[0].vocab_size
    ((800, 3), 22)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from collapse_lab.data.dataset import SPLITS, write_split
from collapse_lab.data.feature_map import FeatureMap, FieldInfo
from collapse_lab.data.meta import build_meta, content_hash, needs_build
from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_directory, atomic_write_json

__all__ = ["make_synthetic", "synthetic_params", "planted_logits", "build_synthetic"]

_CHUNK_ROWS = 1 << 20


def synthetic_params(*, rows: int = 20000, fields: int = 8, vocab_size: Union[int, Sequence[int]] = 100,
                     zipf: float = 1.05, rank: int = 4, first_order: float = 1.0, interaction: float = 1.0,
                     noise: float = 0.0, base_rate: float = 0.25, bias: float | None = None, seed: int = 2024,
                     split: Sequence[float] = (0.8, 0.1, 0.1), dataset_id: str = "synthetic") -> Dict[str, Any]:
    """Validate and normalise the generator parameters (see :func:`make_synthetic`)."""
    vocab = [int(vocab_size)] * int(fields) if np.isscalar(vocab_size) else [int(v) for v in vocab_size]
    if int(fields) < 1:
        raise UserError(f"synthetic: fields must be >= 1, got {fields}")
    if len(vocab) != int(fields):
        raise UserError(f"synthetic: vocab_size lists {len(vocab)} sizes for {fields} fields")
    if min(vocab) < 1:
        raise UserError(f"synthetic: every vocab_size must be >= 1, got {vocab}")
    if zipf < 0 or rank < 0 or first_order < 0 or interaction < 0:
        raise UserError("synthetic: zipf, rank, first_order and interaction must be >= 0")
    if not 0.0 <= noise < 0.5:
        raise UserError(f"synthetic: noise (label-flip probability) must be in [0, 0.5), got {noise}")
    if bias is None and not noise < base_rate < 1.0 - noise:
        raise UserError(f"synthetic: base_rate must lie in (noise, 1 - noise) = ({noise}, {1 - noise}), "
                        f"got {base_rate}")
    fractions = [float(x) for x in split]
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise UserError(f"synthetic: split must be three positive fractions summing to 1, got {list(split)}")
    sizes = _split_sizes(int(rows), fractions)
    if min(sizes) < 1:
        raise UserError(f"synthetic: rows={rows} leaves an empty split with fractions {fractions}")
    return {"rows": int(rows), "fields": int(fields), "vocab_size": vocab, "zipf": float(zipf), "rank": int(rank),
            "first_order": float(first_order), "interaction": float(interaction), "noise": float(noise),
            "base_rate": float(base_rate), "bias": None if bias is None else float(bias), "seed": int(seed),
            "split": fractions, "dataset_id": str(dataset_id)}


def _split_sizes(rows: int, fractions: Sequence[float]) -> Tuple[int, int, int]:
    n_train = int(round(rows * fractions[0]))
    n_valid = int(round(rows * fractions[1]))
    return n_train, n_valid, rows - n_train - n_valid


def _field_names(fields: int) -> List[str]:
    return [f"C{i + 1}" for i in range(fields)]


def _draw_planted(p: Dict[str, Any], rng: np.random.Generator) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Per-field first-order weights (V+2,) and factor matrices (V+2, r); rows 0 and V+1 are zero."""
    f, r = p["fields"], p["rank"]
    pairs = f * (f - 1) // 2
    w_std = p["first_order"] / math.sqrt(f)
    e_std = (p["interaction"] ** 2 / (r * pairs)) ** 0.25 if r > 0 and pairs > 0 else 0.0
    weights, factors = [], []
    for v in p["vocab_size"]:
        w = np.zeros(v + 2)
        w[1:v + 1] = rng.normal(0.0, w_std, size=v)
        e = np.zeros((v + 2, r))
        e[1:v + 1] = rng.normal(0.0, e_std, size=(v, r))
        weights.append(w)
        factors.append(e)
    return weights, factors


def _draw_ids(p: Dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Zipf-distributed ids in 1..V per field, rank -> id permuted per field.  # (rows, F)"""
    ids = np.empty((p["rows"], p["fields"]), dtype=np.int32)
    for j, v in enumerate(p["vocab_size"]):
        prob = np.arange(1, v + 1, dtype=np.float64) ** -p["zipf"]
        prob /= prob.sum()
        rank_to_id = rng.permutation(v).astype(np.int32) + 1
        ids[:, j] = rank_to_id[rng.choice(v, size=p["rows"], p=prob)]
    return ids


def planted_logits(ids: np.ndarray, weights: Sequence[np.ndarray], factors: Sequence[np.ndarray],
                   bias: float = 0.0) -> np.ndarray:
    """z = b0 + Σ_f w_f[x_f] + Σ_{f<g} <e_f[x_f], e_g[x_g]> for id rows ``ids`` (rows, F); float64 (rows,).

    The pairwise sum uses the identity Σ_{f<g} <a_f, a_g> = (‖Σ_f a_f‖² − Σ_f ‖a_f‖²) / 2.
    """
    z = np.full(ids.shape[0], float(bias))
    r = factors[0].shape[1] if factors else 0
    total = np.zeros((ids.shape[0], r))  # (rows, r)
    sq = np.zeros(ids.shape[0])
    for j, (w, e) in enumerate(zip(weights, factors, strict=True)):
        z += w[ids[:, j]]
        a = e[ids[:, j]]  # (rows, r)
        total += a
        sq += np.einsum("ij,ij->i", a, a)
    return z + 0.5 * (np.einsum("ij,ij->i", total, total) - sq)


def _flip(prob: np.ndarray, noise: float) -> np.ndarray:
    return (1.0 - 2.0 * noise) * prob + noise


def make_synthetic(out_dir: Union[str, Path], *, rows: int = 20000, fields: int = 8,
                   vocab_size: Union[int, Sequence[int]] = 100, zipf: float = 1.05, rank: int = 4,
                   first_order: float = 1.0, interaction: float = 1.0, noise: float = 0.0,
                   base_rate: float = 0.25, bias: float | None = None, seed: int = 2024,
                   split: Sequence[float] = (0.8, 0.1, 0.1), dataset_id: str = "synthetic",
                   overwrite: bool = False) -> Path:
    """Generate the planted-model dataset (module docstring) as a processed dataset in ``out_dir``.

    Args:
        out_dir: the processed-dataset directory to write (built atomically).
        rows: total rows; split by position into train/valid/test with fractions ``split``.
        fields: number of categorical fields ``C1..CF``.
        vocab_size: tokens per field (an int for all fields, or one int per field).
        zipf: Zipf exponent s of the id distribution (0 = uniform).
        rank: rank r of the factor vectors (0 = no interactions).
        first_order: standard deviation of Σ_f w_f[x_f] over random weights.
        interaction: standard deviation of the pairwise interaction sum over random factors.
        noise: label-flip probability ε in [0, 0.5).
        base_rate: target mean click probability (sets b_0) when ``bias`` is None.
        bias: fixed b_0 (overrides ``base_rate``).
        seed: seed of all randomness (planted parameters, ids, labels).
        split: train/valid/test fractions.
        dataset_id: id recorded in the feature map and metadata.
        overwrite: rebuild even if an identical dataset exists (a different one with the same id is always
            rebuilt; a directory holding anything else needs ``overwrite``).

    Returns:
        ``out_dir`` as a Path.
    """
    return build_synthetic(out_dir, rows=rows, fields=fields, vocab_size=vocab_size, zipf=zipf, rank=rank,
                           first_order=first_order, interaction=interaction, noise=noise, base_rate=base_rate,
                           bias=bias, seed=seed, split=split, dataset_id=dataset_id, overwrite=overwrite)[0]


def build_synthetic(out_dir: Union[str, Path], *, overwrite: bool = False, **params: Any) -> Tuple[Path, bool]:
    """:func:`make_synthetic` returning ``(out_dir, skipped)``; ``skipped`` when it was already up to date."""
    from sklearn.metrics import log_loss, roc_auc_score

    p = synthetic_params(**params)
    out_dir = Path(out_dir)
    digest = content_hash({"generator": "synthetic", **p})
    if not needs_build(out_dir, digest, p["dataset_id"], overwrite):
        return out_dir, True

    param_seq, id_seq, label_seq = np.random.SeedSequence(p["seed"]).spawn(3)
    weights, factors = _draw_planted(p, np.random.default_rng(param_seq))
    ids = _draw_ids(p, np.random.default_rng(id_seq))  # (rows, F)
    z = np.concatenate([planted_logits(ids[i:i + _CHUNK_ROWS], weights, factors)
                        for i in range(0, p["rows"], _CHUNK_ROWS)])  # (rows,) without the bias
    if p["bias"] is None:
        b0 = brentq(lambda b: float(np.mean(_flip(expit(z + b), p["noise"]))) - p["base_rate"], -60.0, 60.0,
                    xtol=1e-10)
    else:
        b0 = p["bias"]
    probs = _flip(expit(z + b0), p["noise"]).astype(np.float32)  # (rows,) what is stored
    labels = (np.random.default_rng(label_seq).random(p["rows"]) < probs).astype(np.float32)

    names = _field_names(p["fields"])
    fmap = FeatureMap(dataset_id=p["dataset_id"], label_col="label", fields=[
        FieldInfo(name=n, type="categorical", column=j, width=1, vocab_size=v + 2, padding_idx=0, oov_idx=v + 1,
                  extra={"source": "synthetic", "zipf": p["zipf"]})
        for j, (n, v) in enumerate(zip(names, p["vocab_size"], strict=True))])
    bounds = np.cumsum((0,) + _split_sizes(p["rows"], p["split"]))
    rows_per, rate, oracle = {}, {}, {}
    with atomic_directory(out_dir, overwrite=True) as tmp:
        for k, name in enumerate(SPLITS):
            sl = slice(int(bounds[k]), int(bounds[k + 1]))
            write_split(tmp, name, ids[sl], labels[sl], probs=probs[sl])
            y, q = labels[sl].astype(np.float64), probs[sl].astype(np.float64)
            rows_per[name] = int(y.shape[0])
            rate[name] = float(y.mean())
            auc = float(roc_auc_score(y, q)) if 0 < y.sum() < len(y) else None
            oracle[name] = {"auc": auc, "logloss": float(log_loss(y, q, labels=[0.0, 1.0]))}
        (tmp / "counts").mkdir()
        train_ids = ids[: int(bounds[1])]
        for j, (n, v) in enumerate(zip(names, p["vocab_size"], strict=True)):
            np.save(tmp / "counts" / f"{n}.npy", np.bincount(train_ids[:, j], minlength=v + 2).astype(np.int64))
        np.savez(tmp / "planted.npz", bias=np.float64(b0),
                 **{f"w.{n}": w for n, w in zip(names, weights, strict=True)},
                 **{f"factors.{n}": e for n, e in zip(names, factors, strict=True)})
        fmap.save(tmp / "feature_map.json")
        atomic_write_json(tmp / "meta.json", build_meta(
            p["dataset_id"], "synthetic", digest, rows_per, rate, generator=p, oracle=oracle,
            planted={"bias": float(b0), "file": "planted.npz"}))
    return out_dir, False
