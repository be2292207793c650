"""Spread of N i.i.d. students: the expected range d_N and the bias factor c4(N) of the sample SD.

For N i.i.d. normal draws with standard deviation σ (Tippett 1925, Biometrika 17:364; the d_2 constant of
control charts, e.g. Montgomery, *Introduction to Statistical Quality Control*, App. VI):

.. math::

    \\mathbb E[\\max - \\min] = d_N\\,\\sigma, \\qquad
    d_N = \\int_{-\\infty}^{\\infty} \\big(1 - \\Phi(x)^N - (1 - \\Phi(x))^N\\big)\\,dx

(d_2 = 2/√π = 1.128, d_10 = 3.078): the best − worst student AUC grows with N even when nothing changes but
the number of draws. The sample standard deviation s (ddof = 1) is biased too, less so:

.. math::

    \\mathbb E[s] = c_4(N)\\,\\sigma, \\qquad c_4(N) = \\sqrt{\\tfrac{2}{N-1}}\\,
    \\frac{\\Gamma(N/2)}{\\Gamma((N-1)/2)}

(c4(2) = 0.798, c4(10) = 0.973), so s / c4(N) estimates σ without bias at every N (the level of the SD that
C5/C6 read). A trend of the SD over N (C2) is read on the log variance, whose bias and variance are exact for
normal draws — (N − 1) s²/σ² ~ χ²_{N−1}, so with h = (N − 1)/2 (ψ the digamma function, ψ' the trigamma):

.. math::

    \\mathbb E[\\ln s^2] = \\ln \\sigma^2 + \\psi(h) - \\ln h, \\qquad \\operatorname{Var}(\\ln s^2) = \\psi'(h)

(Bartlett & Kendall 1946, JRSS Suppl. 8:128): ln s² − (ψ(h) − ln h) estimates ln σ² without bias, and
1/ψ'(h) weights it (ψ'(1/2) = π²/2 at N = 2 against 0.25 at N = 10).
"""

from __future__ import annotations

import math
from functools import cache

__all__ = ["expected_range", "c4", "log_variance_bias", "log_variance_variance"]


@cache
def expected_range(n: int) -> float:
    """d_N: the expected range of ``n`` i.i.d. standard normal draws (numerical integration, scipy.integrate.quad).

    Example:
        >>> round(expected_range(2), 4), round(expected_range(10), 4), expected_range(1)
        (1.1284, 3.0775, 0.0)
    """
    from scipy import integrate, special

    n = int(n)
    if n < 1:
        raise ValueError(f"expected_range needs n >= 1, got {n}")
    if n == 1:
        return 0.0

    def integrand(x: float) -> float:
        return 1.0 - special.ndtr(x) ** n - special.ndtr(-x) ** n

    value, _ = integrate.quad(integrand, -math.inf, math.inf, epsabs=1e-12, epsrel=1e-12)
    return float(value)


def c4(n: int) -> float:
    """c4(N) = E[s] / σ for N i.i.d. normal draws (s with ddof = 1); NaN for N < 2.

    Example:
        >>> round(c4(2), 4), round(c4(10), 4)
        (0.7979, 0.9727)
    """
    from scipy import special

    n = int(n)
    if n < 2:
        return math.nan
    return math.sqrt(2.0 / (n - 1)) * math.exp(special.gammaln(n / 2) - special.gammaln((n - 1) / 2))


def log_variance_bias(n: int) -> float:
    """E[ln s²] − ln σ² = ψ((N−1)/2) − ln((N−1)/2) for N normal draws (s with ddof = 1); NaN for N < 2.

    Example:
        >>> round(log_variance_bias(2), 4)  # ψ(1/2) + ln 2 = −γ − ln 2
        -1.2704
    """
    from scipy import special

    n = int(n)
    if n < 2:
        return math.nan
    h = (n - 1) / 2
    return float(special.digamma(h) - math.log(h))


def log_variance_variance(n: int) -> float:
    """Var(ln s²) = ψ'((N−1)/2) for N normal draws; NaN for N < 2.

    Example:
        >>> round(log_variance_variance(2), 4)  # π²/2
        4.9348
    """
    from scipy import special

    n = int(n)
    if n < 2:
        return math.nan
    return float(special.polygamma(1, (n - 1) / 2))
