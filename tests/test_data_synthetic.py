"""The planted-model synthetic dataset: determinism, stored oracle metrics, planted structure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import log_loss, roc_auc_score

from collapse_lab.data.dataset import SPLITS, ProcessedDataset
from collapse_lab.data.synthetic import make_synthetic, planted_logits
from collapse_lab.errors import UserError

SMALL = dict(rows=3000, fields=4, vocab_size=30)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn") / "s", **SMALL)


def _arrays(path):
    ds = ProcessedDataset(path)
    return {s: (np.array(ds.split(s).ids), np.array(ds.split(s).labels), np.array(ds.split(s).probs)) for s in SPLITS}


def test_same_seed_same_bytes_other_seed_differs(small, tmp_path):
    again = make_synthetic(tmp_path / "again", **SMALL)
    other = make_synthetic(tmp_path / "other", seed=7, **SMALL)
    a, b, c = _arrays(small), _arrays(again), _arrays(other)
    for s in SPLITS:
        for x, y in zip(a[s], b[s], strict=True):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a["train"][0], c["train"][0])
    meta_a, meta_b = (json.loads((p / "meta.json").read_text()) for p in (small, again))
    assert meta_a["content_hash"] == meta_b["content_hash"]
    assert meta_a["oracle"] == meta_b["oracle"]


def test_oracle_metrics_reproduced_from_stored_probabilities(small):
    ds = ProcessedDataset(small)
    for s in SPLITS:
        y = np.asarray(ds.split(s).labels, dtype=np.float64)
        p = np.asarray(ds.split(s).probs, dtype=np.float64)
        assert ds.meta["oracle"][s]["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert ds.meta["oracle"][s]["logloss"] == pytest.approx(log_loss(y, p), abs=1e-12)
        assert ds.meta["positive_rate"][s] == pytest.approx(y.mean())
    assert 0.6 < ds.meta["oracle"]["test"]["auc"] < 0.95


def test_layout_ids_counts_and_split_sizes(small):
    ds = ProcessedDataset(small)
    assert [len(ds.split(s)) for s in SPLITS] == [2400, 300, 300]
    fm = ds.feature_map
    assert [f.name for f in fm.fields] == ["C1", "C2", "C3", "C4"]
    for f in fm.fields:
        assert (f.vocab_size, f.padding_idx, f.oov_idx) == (32, 0, 31)
        ids = np.asarray(ds.split("train").ids[:, f.column])
        assert ids.min() >= 1 and ids.max() <= 30  # padding and OOV never used
        np.testing.assert_array_equal(ds.counts(f.name), np.bincount(ids, minlength=32))


def test_planted_model_reproduces_the_stored_probabilities(small):
    ds = ProcessedDataset(small)
    planted = np.load(small / "planted.npz")
    names = [f.name for f in ds.feature_map.fields]
    weights = [planted[f"w.{n}"] for n in names]
    factors = [planted[f"factors.{n}"] for n in names]
    assert factors[0].shape == (32, 4)
    ids = np.asarray(ds.split("valid").ids)
    # brute-force pairwise sum, independent of the FM identity used by the generator
    z = float(planted["bias"]) + sum(w[ids[:, j]] for j, w in enumerate(weights))
    for f in range(4):
        for g in range(f + 1, 4):
            z = z + np.einsum("ij,ij->i", factors[f][ids[:, f]], factors[g][ids[:, g]])
    np.testing.assert_allclose(expit(z), ds.split("valid").probs, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(planted_logits(ids, weights, factors, float(planted["bias"])), z, atol=1e-12)
    # interaction matrices of a field pair have rank <= r = 4
    pair = factors[0][1:-1] @ factors[1][1:-1].T  # (30, 30)
    assert np.linalg.matrix_rank(pair) == 4


def test_base_rate_zipf_and_noise(tmp_path):
    out = make_synthetic(tmp_path / "z", rows=20000, fields=2, vocab_size=50, zipf=1.2, base_rate=0.3, noise=0.1)
    ds = ProcessedDataset(out)
    probs = np.concatenate([np.asarray(ds.split(s).probs, dtype=np.float64) for s in SPLITS])
    assert probs.mean() == pytest.approx(0.3, abs=1e-6)  # the bias is solved on all rows
    assert probs.min() >= 0.1 - 1e-6 and probs.max() <= 0.9 + 1e-6  # label-flip noise bounds p in [eps, 1-eps]
    ids = np.concatenate([np.asarray(ds.split(s).ids[:, 0]) for s in SPLITS])
    share = np.sort(np.bincount(ids, minlength=52))[::-1] / len(ids)
    expected = np.arange(1, 51) ** -1.2 / np.sum(np.arange(1, 51) ** -1.2)
    np.testing.assert_allclose(share[:3], expected[:3], atol=0.01)


def test_interactions_are_invisible_to_a_first_order_model(tmp_path):
    """With interactions, one-hot logistic regression falls well short of the oracle; without, it nearly
    reaches it: the planted pairwise structure is real and only a model with interactions can find it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    def gap(interaction, first_order):
        ds = ProcessedDataset(make_synthetic(tmp_path / f"g{interaction}", rows=30000, fields=4, vocab_size=20,
                                             zipf=0.5, interaction=interaction, first_order=first_order))
        tr, te = ds.split("train"), ds.split("test")
        enc = OneHotEncoder(handle_unknown="ignore").fit(tr.ids)
        lr = LogisticRegression(C=1.0, max_iter=500).fit(enc.transform(tr.ids), tr.labels)
        auc = roc_auc_score(te.labels, lr.predict_proba(enc.transform(te.ids))[:, 1])
        return ds.meta["oracle"]["test"]["auc"] - auc

    assert gap(0.0, 1.5) < 0.01
    assert gap(1.5, 0.3) > 0.05


def test_no_op_when_unchanged_and_rebuild_when_parameters_change(tmp_path):
    out = make_synthetic(tmp_path / "s", rows=500, fields=2, vocab_size=10)
    stamp = (out / "meta.json").stat().st_mtime_ns
    make_synthetic(tmp_path / "s", rows=500, fields=2, vocab_size=10)
    assert (out / "meta.json").stat().st_mtime_ns == stamp
    make_synthetic(tmp_path / "s", rows=600, fields=2, vocab_size=10)
    assert len(ProcessedDataset(out).split("train")) == 480
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("not a dataset")
    with pytest.raises(UserError, match="overwrite"):
        make_synthetic(tmp_path / "other", rows=500)
    assert (tmp_path / "other" / "keep.txt").exists()


@pytest.mark.parametrize("kwargs, message", [
    (dict(rows=5), "empty split"),
    (dict(fields=2, vocab_size=[3]), "2 fields"),
    (dict(noise=0.5), "noise"),
    (dict(base_rate=1.0), "base_rate"),
    (dict(split=(0.5, 0.5)), "three positive fractions"),
])
def test_bad_parameters(tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        make_synthetic(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()
