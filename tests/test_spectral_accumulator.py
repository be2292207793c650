"""Streaming spectra: float64 Gram vs TSQR, resolution, chunking invariance, Chan merging, NaN rows, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collapse_lab.errors import UserError
from collapse_lab.spectral import functional as F
from collapse_lab.spectral.accumulator import GramAccumulator, TSQRAccumulator
from collapse_lab.spectral.streaming import matrix_spectrum

METRICS = (F.information_abundance, F.effective_rank, F.covariance_effective_rank, F.stable_rank,
           F.participation_ratio, F.nuclear_ratio)


def _with_sigma(n, sigma, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, len(sigma))))
    v, _ = np.linalg.qr(rng.standard_normal((len(sigma), len(sigma))))
    return ((u * np.asarray(sigma)) @ v.T).astype(dtype)


def test_rank_one_float32_table_default_mode():
    """docs/metrics.md §11: a rank-1 100k×64 float32 table gives erank < 1.0001 (an f32 Gram gives 1.031)."""
    rng = np.random.default_rng(0)
    table = np.outer(rng.standard_normal(100_000), rng.standard_normal(64)).astype(np.float32)
    gram = matrix_spectrum(table, auto_exact=False)  # the float64 Gram alone
    assert gram.method == "gram64"
    assert F.effective_rank(gram.sigma) < 1.0001
    assert F.information_abundance(gram.sigma) < 1.00001
    default = matrix_spectrum(table)  # default: σ_min/σ_1 < 1e-6 escalates to TSQR
    assert default.method == "tsqr" and F.effective_rank(default.sigma) < 1.00001
    assert gram.resolution_floor == pytest.approx(np.sqrt(64 * 2.0**-53) * gram.sigma[0])


def test_gram_is_float64_for_float32_input():
    acc = GramAccumulator(3).update(np.ones((4, 3), dtype=np.float32))
    assert acc.gram.dtype == np.float64
    acc = GramAccumulator(3).update(torch.ones(4, 3, dtype=torch.bfloat16))
    assert acc.gram.dtype == np.float64 and acc.gram[0, 0] == 4.0


@pytest.mark.parametrize("cond", [1e2, 1e4, 1e6])
def test_gram64_and_exact_agree(cond):
    sigma = np.logspace(0, -np.log10(cond), 16)
    a = _with_sigma(20_000, sigma, seed=1).astype(np.float32)
    ref = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    g = matrix_spectrum(a, auto_exact=False, chunk_rows=3000)
    t = matrix_spectrum(a, exact=True, chunk_rows=9000)  # 2 batched 4096-row leaves + a remainder per chunk
    np.testing.assert_allclose(t.sigma, ref, rtol=1e-10)
    for fn in METRICS:
        assert fn(g.sigma) == pytest.approx(fn(t.sigma), abs=1e-8, rel=1e-8)
    assert t.method == "tsqr" and t.resolution_floor < g.resolution_floor


@pytest.mark.parametrize("cls", [GramAccumulator, TSQRAccumulator])
@pytest.mark.parametrize("center", [False, True])
def test_chunk_size_and_order_do_not_change_results(cls, center):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3001, 12)) @ rng.standard_normal((12, 12)) + 7.0
    ref = cls(12, center).update(a).spectrum().sigma
    for chunk in (1, 7, 500, 5000):
        pieces = [a[i:i + chunk] for i in range(0, len(a), chunk)]
        for order in (pieces, pieces[::-1], [pieces[i] for i in rng.permutation(len(pieces))]):
            acc = cls(12, center)
            for p in order:
                acc.update(p)
            np.testing.assert_allclose(acc.spectrum().sigma, ref, rtol=1e-9)
    # merging partial accumulators (a tree) equals one pass
    left, right = cls(12, center).update(a[:1000]), cls(12, center).update(a[1000:])
    np.testing.assert_allclose(left.merge(right).spectrum().sigma, ref, rtol=1e-9)


def test_chan_merged_covariance_equals_full():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5000, 8)) * np.arange(1, 9) + 300.0  # large mean: the naive G − nμμᵀ fails in f32
    acc = GramAccumulator(8, center=True)
    for i in range(0, 5000, 713):
        acc.update(a[i:i + 713].astype(np.float32))
    full = np.cov(a.astype(np.float32).astype(np.float64), rowvar=False)
    np.testing.assert_allclose(acc.covariance(), full, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(acc.mean, a.astype(np.float32).astype(np.float64).mean(0), rtol=1e-12)
    t = TSQRAccumulator(8, center=True)
    for i in range(0, 5000, 999):
        t.update(a[i:i + 999])
    np.testing.assert_allclose(t.gram / 4999, np.cov(a, rowvar=False), rtol=1e-9)


def test_centering_with_a_dominant_mean():
    """docs/metrics.md §8.4: mean 300× the spread; uncentered erank ≈ 1, centered close to the spread's."""
    rng = np.random.default_rng(4)
    spread = rng.standard_normal((50_000, 16)) * np.linspace(1, 0.1, 16)
    a = (spread + 300.0).astype(np.float32)
    ref = np.linalg.svd(a.astype(np.float64) - a.astype(np.float64).mean(0), compute_uv=False)
    c = matrix_spectrum(a, center=True, chunk_rows=4096)
    np.testing.assert_allclose(c.sigma, ref[:c.sigma.size], rtol=1e-9)
    assert F.effective_rank(c.sigma) == pytest.approx(F.effective_rank(ref), abs=1e-10)
    assert F.effective_rank(matrix_spectrum(a).sigma) < 1.1


def test_nonfinite_rows_are_dropped_and_counted():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((1000, 5))
    bad = a.copy()
    bad[[3, 500, 999]] = [np.nan, 0, 0, 0, 0]
    bad[10, 2] = np.inf
    for exact in (False, True):
        for center in (False, True):
            s = matrix_spectrum(bad, exact=exact, center=center, chunk_rows=64)
            keep = np.delete(a, [3, 10, 500, 999], axis=0)
            ref = np.linalg.svd(keep - keep.mean(0) if center else keep, compute_uv=False)
            assert s.nonfinite_rows == 4 and s.rows == 996
            np.testing.assert_allclose(s.sigma, ref, rtol=1e-9)


def test_all_rows_nonfinite_gives_the_empty_spectrum():
    s = matrix_spectrum(np.full((10, 3), np.nan))
    assert s.rows == 0 and s.nonfinite_rows == 10 and s.sigma.size == 0
    assert F.effective_rank(s.sigma) == 0.0


def test_row_weights_scale_and_exclude():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((200, 4))
    counts = rng.integers(0, 5, size=200).astype(float)
    s = matrix_spectrum(a, weights=np.sqrt(counts), chunk_rows=33)
    ref = np.linalg.svd(np.sqrt(counts)[:, None] * a, compute_uv=False)
    np.testing.assert_allclose(s.sigma, ref, rtol=1e-10)
    assert s.excluded_rows == int((counts == 0).sum()) and s.rows == int((counts > 0).sum())
    with pytest.raises(UserError, match="weights"):
        matrix_spectrum(a, weights=np.ones(3))


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("exact", [False, True])
def test_wide_matrices_use_the_small_gram(center, exact):
    rng = np.random.default_rng(7)
    w = rng.standard_normal((30, 70))
    s = matrix_spectrum(w, center=center, exact=exact)
    ref = np.linalg.svd(w - w.mean(0) if center else w, compute_uv=False)
    assert s.sigma.size == (29 if center else 30) == s.attainable_rank
    np.testing.assert_allclose(s.sigma, ref[:s.sigma.size], rtol=1e-9)


def test_torch_and_bfloat16_inputs_report_the_storage_floor():
    rng = np.random.default_rng(8)
    a = torch.tensor(rng.standard_normal((500, 8)), dtype=torch.bfloat16)
    s = matrix_spectrum(a)
    ref = np.linalg.svd(a.double().numpy(), compute_uv=False)
    np.testing.assert_allclose(s.sigma, ref, rtol=1e-10)
    energy = np.sqrt(np.sum(ref**2))
    assert s.storage_floor == pytest.approx(2.0**-8 * energy / np.sqrt(8))
    s32 = matrix_spectrum(a.float().numpy())
    assert s32.storage_floor == pytest.approx(2.0**-24 * energy / np.sqrt(8))


def test_bad_shapes_are_user_errors():
    with pytest.raises(UserError, match="2-D"):
        matrix_spectrum(np.ones(5))
    with pytest.raises(UserError, match="shape"):
        GramAccumulator(3).update(np.ones((2, 4)))
    with pytest.raises(UserError, match="same kind"):
        GramAccumulator(3).merge(TSQRAccumulator(3))


@pytest.mark.parametrize("rows", [5000, 8])  # tall (streamed Gram) and wide (n < d) paths
def test_storage_floor_of_centered_spectra_uses_the_raw_values(rows):
    """Storage round-off is relative to the stored values: a mean of 300 sets the floor, not the centred spread."""
    from collapse_lab.spectral import matrix_spectrum

    rng = np.random.default_rng(0)
    a = (300.0 + rng.standard_normal((rows, 16))).astype(np.float32)
    spec = matrix_spectrum(a, center=True, chunk_rows=1000)
    m = min(rows - 1, 16)
    expected = 2.0**-24 * np.linalg.norm(a.astype(np.float64)) / np.sqrt(m)
    assert spec.storage_floor == pytest.approx(expected, rel=1e-9)
    raw = matrix_spectrum(a, center=False, chunk_rows=1000)
    assert raw.storage_floor == pytest.approx(2.0**-24 * np.linalg.norm(a.astype(np.float64)) / np.sqrt(min(rows, 16)),
                                              rel=1e-9)
