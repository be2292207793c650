"""Same-shape Gaussian baselines: Monte-Carlo values against docs/metrics.md §1.5/§7.5, caching, iid ratio ≈ 1."""

from __future__ import annotations

import numpy as np
import pytest

from collapse_lab.spectral import functional as F
from collapse_lab.spectral.baselines import gaussian_baseline, gaussian_spectra
from collapse_lab.spectral.streaming import matrix_spectrum


@pytest.mark.parametrize("k,d,expected", [(10, 100, 7.86), (16, 1000, 14.30), (64, 100, 33.56), (64, 1000, 51.05),
                                          (64, 100_000, 62.46), (16, 10, 5.59)])
def test_mean_information_abundance_of_iid_gaussians(k, d, expected):
    """docs/metrics.md §1.5 table (20 draws there); D < K rows use the wide (n < d) route."""
    b = gaussian_baseline({"ia": F.information_abundance}, d, k, draws=20)
    assert b["ia"] == pytest.approx(expected, rel=0.03)


def test_isotropic_sample_size_bias():
    """docs/metrics.md §7.5 (one draw there; the draw-to-draw sd is 0.004·d for IA, 0.0065·d for srank): d = 128,
    N = 1024: erank/d ≈ 0.984, IA/d ≈ 0.725, PR/d ≈ 0.890, srank/d ≈ 0.543."""
    fns = {"er": F.effective_rank, "ia": F.information_abundance, "pr": F.participation_ratio, "sr": F.stable_rank}
    b = gaussian_baseline(fns, 1024, 128, draws=4)
    assert b["er"] / 128 == pytest.approx(0.984, abs=0.005)
    assert b["ia"] / 128 == pytest.approx(0.725, abs=0.013)
    assert b["pr"] / 128 == pytest.approx(1 / (1 + 128 / 1024), abs=0.01)  # 0.889, the MP asymptote
    assert b["sr"] / 128 == pytest.approx(0.543, abs=0.02)


def test_iid_tables_have_ratio_one():
    rng = np.random.default_rng(11)
    ratios = []
    for _ in range(5):
        s = matrix_spectrum(rng.standard_normal((300, 16))).sigma
        ratios.append(F.information_abundance(s) / gaussian_baseline({"ia": F.information_abundance}, 300, 16)["ia"])
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.02)


def test_draws_are_seeded_and_cached():
    a = gaussian_spectra(500, 8, False, 5, 0)
    assert gaussian_spectra(500, 8, False, 5, 0) is a  # lru cache
    b = gaussian_spectra.__wrapped__(500, 8, False, 5, 0)  # recomputed: same seed, same values
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], gaussian_spectra(500, 8, False, 5, 1)[0])


def test_centered_and_energy_matched_baselines():
    s = gaussian_spectra(5, 12, True, 3, 0)
    assert all(x.size == 4 for x in s)  # min(n − 1, d)
    rng = np.random.default_rng(0)
    direct = np.mean([F.effective_rank(np.linalg.svd((lambda m: m - m.mean(0))(rng.standard_normal((5, 12))),
                                                     compute_uv=False)[:4]) for _ in range(200)])
    assert gaussian_baseline({"er": F.effective_rank}, 5, 12, True, draws=100)["er"] == pytest.approx(direct, rel=0.02)
    # KA depends on scale: the baseline Gaussian carries the analysed matrix's energy (entry variance ‖A‖²/(n·d))
    lo = gaussian_baseline({"ka": F.knowledge_abundance}, 400, 400, energy=400 * 400 * 0.01)["ka"]
    hi = gaussian_baseline({"ka": F.knowledge_abundance}, 400, 400, energy=400 * 400 * 1.0)["ka"]
    assert lo < 0.01  # σ ≤ 2·√400·0.1 = 4: nothing above τ
    assert hi == pytest.approx(1 - 0.4 / np.pi, abs=0.01)  # quarter-circle law: P(σ/√n > 0.2) ≈ 1 − 0.2·2/π
    assert np.isnan(gaussian_baseline({"x": F.effective_rank}, 0, 4)["x"])  # no rows: no baseline
