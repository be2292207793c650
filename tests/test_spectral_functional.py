"""Metric presets against the hand-computable vectors of docs/metrics.md §2/§5, third-party targets, invariances and
the Hill-family inequalities (property test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collapse_lab.errors import UserError
from collapse_lab.spectral import functional as F
from collapse_lab.spectral.streaming import matrix_spectrum

# docs/metrics.md §5: σ, IA, erank, erank_e, RankMe 1e-7, RankMe 1e-5, srank, PR, nuc, rank
VECTORS = [
    ((1, 1, 1, 1), 4, 4, 4, 4.00000062, 4.00006180, 4, 4, 4, 4),
    ((4, 0, 0, 0), 1, 1, 1, 1.00000474, 1.00033544, 1, 1, 1, 1),
    ((1, 1, 0, 0), 2, 2, 2, 2.00000632, 2.00044829, 2, 2, 2, 2),
    ((2, 1, 1, 0), 2, 2**1.5, 13.5 ** (1 / 3), 2.82843182, 2.82876595, 1.5, 2, 8 / 3, 3),
    ((3, 2, 1, 0), 2, 2.749459, 2.294401, 2.74946387, 2.74979188, 14 / 9, 2, 36 / 14, 3),
    ((0, 0, 0, 0), 0, 0, 0, 0, 0, 0, 0, 0, 0),
]
MATRICES = {(1, 1, 1, 1): np.eye(4), (4, 0, 0, 0): np.ones((4, 4)), (1, 1, 0, 0): np.diag([1.0, 1, 0, 0]),
            (2, 1, 1, 0): np.diag([2.0, 1, 1, 0]), (3, 2, 1, 0): np.diag([3.0, 2, 1, 0]),
            (0, 0, 0, 0): np.zeros((4, 4))}


@pytest.mark.parametrize("row", VECTORS, ids=lambda r: str(r[0]))
def test_test_vectors_every_preset(row):
    sigma, ia, er, ere, rm7, rm5, sr, pr, nuc, rank = row
    assert F.information_abundance(sigma) == pytest.approx(ia, abs=1e-6)
    assert F.effective_rank(sigma) == pytest.approx(er, abs=1e-6)
    assert F.covariance_effective_rank(sigma) == pytest.approx(ere, abs=1e-6)
    assert F.rankme(sigma) == pytest.approx(rm7, abs=1e-8)
    assert F.rankme(sigma, eps=1e-5) == pytest.approx(rm5, abs=1e-8)
    assert F.stable_rank(sigma) == pytest.approx(sr, abs=1e-9)
    assert F.participation_ratio(sigma) == pytest.approx(pr, abs=1e-9)
    assert F.nuclear_ratio(sigma) == pytest.approx(nuc, abs=1e-9)
    assert F.numerical_rank(sigma, shape=(4, 4)) == rank
    assert F.hill(sigma, 0) == rank


@pytest.mark.parametrize("sigma", list(MATRICES))
def test_test_vectors_from_the_matrices(sigma):
    """The §5 matrices themselves, through the streaming backend, give the tabulated σ."""
    spec = matrix_spectrum(MATRICES[sigma], chunk_rows=3)
    np.testing.assert_allclose(spec.sigma, sigma, atol=1e-7)


def test_knowledge_abundance_vectors():
    assert F.knowledge_abundance([1, 1, 1, 1]) == 0.0
    assert F.knowledge_abundance([10, 10, 10, 10]) == 1.0
    assert F.knowledge_abundance([8, 5, 4, 2]) == 0.5  # σ = τ not counted
    assert F.knowledge_abundance([8, 5, 4, 2, 0]) == 0.5  # zeros leave the denominator
    assert F.knowledge_abundance([5, 4.5, 3, 0]) == pytest.approx(2 / 3)
    assert F.knowledge_abundance([0, 0]) == 0.0
    assert F.knowledge_abundance([8, 5, 4, 2, 1e-9], zero_tol=1e-6) == 0.5
    assert F.knowledge_abundance([8, 5, 4, 2], tau=1.0) == 1.0


@pytest.mark.parametrize("sigma", [(9.0, 7.0, 4.5, 3.0, 1.0), (20.0, 4.3, 3.9, 0.1)])
def test_knowledge_abundance_on_matrices_with_known_singular_values(sigma):
    rng = np.random.default_rng(1)
    u, _ = np.linalg.qr(rng.standard_normal((30, len(sigma))))
    v, _ = np.linalg.qr(rng.standard_normal((12, len(sigma))))
    w = (u * np.asarray(sigma)) @ v.T  # (30, 12) with exactly these σ (plus zeros)
    spec = matrix_spectrum(w)
    expected = sum(s > 4 for s in sigma) / len(sigma)
    assert F.knowledge_abundance(spec.sigma, tau=4, zero_tol=spec.resolution_floor) == pytest.approx(expected)


def test_zero_matrix_and_single_row_conventions():
    z = matrix_spectrum(np.zeros((5, 3)))
    for fn in (F.information_abundance, F.effective_rank, F.covariance_effective_rank, F.rankme, F.stable_rank,
               F.participation_ratio, F.nuclear_ratio):
        assert fn(z.sigma) == 0.0
    assert F.numerical_rank(z.sigma) == 0
    assert math.isnan(F.alpha_req(z.sigma))
    one = np.array([[1.0, -2.0, 3.0]])
    assert F.effective_rank(matrix_spectrum(one).sigma) == 1.0  # uncentered single row: rank 1
    centered = matrix_spectrum(one, center=True)
    assert centered.sigma.size == 0 and F.effective_rank(centered.sigma) == 0.0  # centered: the zero matrix


def test_centering_flips_the_verdict():
    a = np.array([[1.0, 1], [1, -1], [1, 1], [1, -1]])
    b = np.array([[3.0, 1], [3, -1], [3, 1], [3, -1]])
    sa = matrix_spectrum(a).sigma
    np.testing.assert_allclose(sa, [2, 2])
    assert F.information_abundance(sa) == pytest.approx(2) and F.effective_rank(sa) == pytest.approx(2)
    sb = matrix_spectrum(b).sigma
    np.testing.assert_allclose(sb, [6, 2])
    assert F.information_abundance(sb) == pytest.approx(4 / 3)
    assert F.effective_rank(sb) == pytest.approx(1.754765, abs=1e-6)
    assert F.covariance_effective_rank(sb) == pytest.approx(1.384145, abs=1e-6)
    assert F.stable_rank(sb) == pytest.approx(10 / 9)
    assert F.participation_ratio(sb) == pytest.approx(1.219512, abs=1e-6)
    assert F.nuclear_ratio(sb) == pytest.approx(1.6)
    for m in (a, b):
        sc = matrix_spectrum(m, center=True)
        np.testing.assert_allclose(sc.sigma[0], 2.0)
        floor = max(sc.resolution_floor, 1e-12)
        clipped = np.where(sc.sigma > floor, sc.sigma, 0.0)
        for fn in (F.information_abundance, F.effective_rank, F.stable_rank, F.participation_ratio):
            assert fn(clipped) == pytest.approx(1.0)


def test_rank_one_with_round_off():
    u, v = np.array([1.0, 2, 3, 4]), np.array([1.0, -1, 2, 0.5])
    s = np.linalg.svd(np.outer(u, v), compute_uv=False)
    assert s[0] == pytest.approx(13.693, abs=1e-3)
    assert F.effective_rank(s) == pytest.approx(1.0, abs=1e-12)
    assert F.rankme(s) == pytest.approx(1.0000047, abs=1e-7)
    assert F.numerical_rank(s, shape=(4, 4)) == 1


def test_rankme_epsilon_bias():
    for d, r, e7, e5 in ((128, 1, 1.000205, 1.014719), (2048, 1, 1.003305, 1.265743), (128, 64, 64.0079, 64.6038),
                         (2048, 1024, 1026.31, 1224.21)):
        s = np.r_[np.ones(r), np.zeros(d - r)]
        assert F.rankme(s) == pytest.approx(e7, rel=1e-5)
        assert F.rankme(s, eps=1e-5) == pytest.approx(e5, rel=1e-5)
        assert F.effective_rank(s) == pytest.approx(r)  # no ε: exact


def test_third_party_rankme_and_alpha():
    """reptrix (centered σ², its test: 613.4726; α = 0.148936) and Garrido (≈ 814) on torch randn(1000, 1024)."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(1000, 1024).numpy().astype(np.float64)
    centered = np.linalg.svd(x - x.mean(0), compute_uv=False)  # all 1000 values, like sklearn's PCA
    assert F.rankme(centered, power=2) == pytest.approx(613.4726, abs=1e-3)
    assert F.alpha_req(centered) == pytest.approx(0.148936, abs=1e-6)
    assert F.rankme(np.linalg.svd(x, compute_uv=False)) == pytest.approx(814, abs=1.5)
    assert F.alpha_req(centered, weighted=False) == pytest.approx(0.165, abs=0.01)


def test_alpha_req_power_laws():
    i = np.arange(1, 201, dtype=float)
    assert F.alpha_req(1 / i, power=1) == pytest.approx(1.0, abs=1e-9)
    assert F.alpha_req(i**-2.0, power=1, weighted=False) == pytest.approx(2.0, abs=1e-9)
    assert F.alpha_req(i**-0.5) == pytest.approx(1.0, abs=1e-9)  # σ = i^-1/2 → λ = 1/i
    assert math.isnan(F.alpha_req(np.ones(11)))  # fewer than 3 ranks in 11..100


def test_per_field_slicing_example():
    table = np.array([[1.0, 0], [0, 1], [1, 1], [2, 2], [1, 1]])  # field_dims = [3, 2]
    ia = [F.information_abundance(matrix_spectrum(t).sigma) for t in (table[:3], table[3:], table)]
    assert ia == pytest.approx([1.577350, 1.0, 1.277350], abs=1e-6)


def test_tiny_and_huge_values_do_not_under_or_overflow():
    s = np.array([3.0, 2.0, 1.0, 0.0])
    for c in (1e-200, 1e-160, 1e150, 1e200):
        for fn in (F.information_abundance, F.effective_rank, F.participation_ratio, F.stable_rank, F.rankme):
            assert fn(s * c) == pytest.approx(fn(s), rel=1e-12)


def test_invalid_spectra_are_user_errors():
    with pytest.raises(UserError, match="finite"):
        F.effective_rank([1.0, float("nan")])
    with pytest.raises(UserError, match=">= 0"):
        F.information_abundance([1.0, -1.0])
    with pytest.raises(UserError, match="1-D"):
        F.stable_rank(np.ones((2, 2)))
    with pytest.raises(UserError, match="power"):
        F.hill([1.0], 1, power=3)


def _ortho(n, rng):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q


def test_invariances_and_column_rescaling():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((40, 6)) @ np.diag([5.0, 4, 3, 2, 1, 0.5])
    q, r = _ortho(40, rng), _ortho(6, rng)
    named = [F.information_abundance, F.effective_rank, F.covariance_effective_rank, F.rankme, F.stable_rank,
             F.participation_ratio, F.nuclear_ratio]
    base = matrix_spectrum(a).sigma
    for variant, scale_free_only in ((3.7 * a, True), (q @ a, False), (a @ r, False), (a[rng.permutation(40)], False)):
        s = matrix_spectrum(variant).sigma
        for fn in named:
            assert fn(s) == pytest.approx(fn(base), rel=1e-9)
        if not scale_free_only:  # KA is not scale-invariant, but invariant to rotations/permutations
            assert F.knowledge_abundance(s, tau=4) == F.knowledge_abundance(base, tau=4)
    assert F.knowledge_abundance(matrix_spectrum(3.7 * a).sigma) != F.knowledge_abundance(base)
    rescaled = matrix_spectrum(a @ np.diag([1.0, 1, 1, 1, 1, 30])).sigma  # per-column rescaling changes them
    for fn in named:
        assert abs(fn(rescaled) - fn(base)) > 1e-3
    # centered metrics: invariant to row permutation and rotation of the embedding space
    c0 = matrix_spectrum(a + 10, center=True).sigma
    c1 = matrix_spectrum((a[rng.permutation(40)] + 10) @ r, center=True).sigma
    for fn in named:
        assert fn(c1) == pytest.approx(fn(c0), rel=1e-9)


spectra = st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False), min_size=1,
                   max_size=40).filter(lambda s: max(s) > 1e-6)


@settings(max_examples=300, deadline=None)
@given(spectra)
def test_hill_inequality_chain(sigma):
    """docs/metrics.md §3.2: rank ≥ erank ≥ nuc ≥ IA ≥ 1, rank ≥ erank_e ≥ PR ≥ srank ≥ 1, q majorises p, C–S."""
    tol = 1e-9
    r = F.hill(sigma, 0)
    er, nuc, ia = F.effective_rank(sigma), F.nuclear_ratio(sigma), F.information_abundance(sigma)
    ere, pr, sr = F.covariance_effective_rank(sigma), F.participation_ratio(sigma), F.stable_rank(sigma)
    assert r * (1 + tol) >= er and er * (1 + tol) >= nuc and nuc * (1 + tol) >= ia and ia >= 1 - tol
    assert r * (1 + tol) >= ere and ere * (1 + tol) >= pr and pr * (1 + tol) >= sr and sr >= 1 - tol
    assert ere <= er * (1 + tol) and pr <= nuc * (1 + tol) and sr <= ia * (1 + tol)
    assert ia <= math.sqrt(r * sr) * (1 + tol)
    for q in (0.5, 1.5, 3.0):  # Hill numbers do not increase with the order
        assert F.hill(sigma, q) <= F.hill(sigma, q - 0.5) * (1 + tol) + tol


def test_knowledge_abundance_never_exceeds_one_and_rejects_negative_tau():
    from collapse_lab.spectral import knowledge_abundance

    assert knowledge_abundance([3.0, 2.0, 1e-20], tau=0.0, zero_tol=1e-10) == 1.0  # was 1.5
    from collapse_lab.errors import UserError

    for bad in (-1.0, float("nan"), float("inf")):  # NaN and inf used to count nothing silently
        with pytest.raises(UserError, match="tau must be"):
            knowledge_abundance([1.0, 0.0], tau=bad)
