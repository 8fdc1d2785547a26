"""Probability and information theory: Gaussian densities, the Gaussian MLE, entropies,
perplexity and mutual information.

* ``gaussian_pdf``/``gaussian_logpdf`` map the data in its own precision (float32 stays
  float32, where the NumPy formula returns float64).
* ``mvn_pdf``/``mvn_logpdf`` take one point or a batch and never form the inverse or the
  determinant: a Cholesky factor, its diagonal's logs, a forward substitution per point
  (``Gaussian``).
* ``gaussian_mle`` keeps (count, mean, M2) in float64 in one pass (Welford/Chan).
* ``entropy``/``cross_entropy`` sum along the last axis: a scalar for a 1-D distribution
  (the formulas), one value per row of a batch; ``base=`` 2 gives bits.
* ``mutual_information`` of a joint table (probabilities or counts, normalised by their
  sum), ``mutual_information_labels`` of two label arrays (a contingency table counted
  in one pass, exact).
"""

from __future__ import annotations

import math
from typing import Any

from numba.extending import register_jitable

from mlkernels._bench import data
from mlkernels._core import vmath as vm
from mlkernels._core.scalar import clip
from mlkernels._core.spec import POSITIVE, REAL, Real, formula
from mlkernels._core.templates import Gaussian, Map, Metric, PairCounts, RowSums, Table
from mlkernels._core.vmath import like

__all__ = [
    "cross_entropy",
    "entropy",
    "gaussian_logpdf",
    "gaussian_mle",
    "gaussian_pdf",
    "mutual_information",
    "mutual_information_labels",
    "mvn_logpdf",
    "mvn_pdf",
    "perplexity",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------
# Gaussian densities
# --------------------------------------------------------------------------------------


@register_jitable
def _z2(x, params):
    z = (x - like(x, params[0])) * like(x, params[1])
    return like(x, -0.5) * (z * z)


@register_jitable
def _pdf(x, params):
    return (vm.exp(_z2(x, params)) * like(x, params[3]),)


@register_jitable
def _logpdf(x, params):
    return (_z2(x, params) + like(x, params[2]),)


def _normal(mu: float, sigma: float) -> tuple:
    """(mu, 1/sigma, log of the constant, the constant) of N(mu, sigma²)."""
    log_c = -math.log(sigma) - _LOG_SQRT_2PI
    return mu, 1.0 / sigma, log_c, math.exp(log_c)


_NORMAL = {
    "family": "probability",
    "data": data.normal,
    "hyper": {"mu": REAL, "sigma": POSITIVE},
    "params": _normal,
    "transcendental": True,
}


@formula(Map(_pdf, 0, results=1), **_NORMAL)
def gaussian_pdf(x, mu=0, sigma=1, *, out=None):
    """``exp(-(x - mu)² / (2 sigma²)) / (sigma sqrt(2π))``, in the data's dtype
    (float32 stays float32), ``sigma > 0``."""


@formula(Map(_logpdf, 0, results=1), **_NORMAL)
def gaussian_logpdf(x, mu=0, sigma=1, *, out=None):
    """``-(x - mu)² / (2 sigma²) - log sigma - log(2π)/2``: finite where the density
    underflows."""


_MVN = {
    "family": "probability",
    "data": data.gaussian_points,
    "layout": "rows",
    "transcendental": True,
}


@formula(Gaussian(density=True), **_MVN)
def mvn_pdf(x, mu, Sigma):  # noqa: N803 - the formula's name
    """The multivariate normal density of a point x (d,) (a scalar), or of each row of x
    (n, d), from the Cholesky factor of ``Sigma``: ``exp(mvn_logpdf)``. ``Sigma`` must be
    symmetric positive definite (``ValueError``)."""


@formula(Gaussian(density=False), **_MVN)
def mvn_logpdf(x, mu, Sigma):  # noqa: N803
    """``-d/2 log 2π - Σ log L_ii - ||L⁻¹(x - mu)||² / 2`` with ``Sigma = L Lᵀ``: a forward
    substitution per point (float64), finite where the density underflows (d = 100)."""


@register_jitable
def _moment_terms(x, params):
    return x, 0.0


@register_jitable
def _mle_final(t, n, params):
    return t[1], t[2] / t[0]


@formula(
    Metric(_moment_terms, _mle_final, inputs=1, moments=True, results=2),
    family="probability",
    data=data.normal,
)
def gaussian_mle(x):
    """``(mean, variance)`` (biased, as ``x.var()``) over every element in ONE pass:
    Welford within a block of the data, Chan's merge between blocks, float64."""


# --------------------------------------------------------------------------------------
# Information
# --------------------------------------------------------------------------------------


def _base(name: str, base: Any) -> float:
    """The validator of ``base=``: None (nats) or a base > 0 other than 1; gives the
    factor ``1 / ln(base)``."""
    if base is None:
        return 1.0
    b = Real(0, lo_open=True)(name, base)
    if b == 1.0:
        raise ValueError(f"{name} must not be 1 (log base 1 is undefined)")
    return 1.0 / math.log(b)


@register_jitable
def _plogp(p, p_again, params):
    return (-p * vm.log(p) * params[1] if p > 0 else 0.0 * p, 0.0)


@register_jitable
def _cross(p, q, params):
    return (-p * vm.log(clip(q, params[0], 1.0)) * params[1], 0.0)


_INFO = {"family": "probability", "layout": "rows"}


@formula(
    RowSums(_plogp, inputs=1),
    **_INFO,
    data=data.probability_rows,
    hyper={"base": _base},
    params=lambda base: (0.0, base),
)
def entropy(p, *, base=None):
    """``-Σ p log p`` over p > 0 (zeros ignored, as the formula): of a 1-D distribution a
    scalar, of a batch one value per row (along the last axis). ``base=2``: bits."""


@formula(
    RowSums(_cross),
    **_INFO,
    data=data.probability_pairs,
    hyper={"eps": Real(0, 1), "base": _base},
    params=lambda eps, base: (eps, base),
)
def cross_entropy(p, q, eps=1e-15, *, base=None):
    """``-Σ p log(clip(q, eps, 1))``: a scalar for 1-D, one value per row of a batch."""


@register_jitable
def _identity_term(x, params):
    return (x,)


@register_jitable
def _perplexity_final(t, n, params):
    return (math.exp(-t[0] / n),)


@formula(
    Metric(_identity_term, _perplexity_final, inputs=1),
    family="probability",
    data=data.log_probs,
    transcendental=True,
)
def perplexity(log_probs):
    """``exp(-mean(log_probs))``, the mean in float64."""


@register_jitable
def _information(table, rows, cols, params):
    """``Σ p_ij log(p_ij / (p_i p_j))`` over p_ij > 0 of a table normalised by its sum
    (rows, cols: its row and column sums, scratch: the column sums are replaced by their
    logs, so that a cell costs one vectorised log), times ``params[0]`` (1 / ln base); clipped at 0
    as scikit-learn's ``mutual_info_score``."""
    total = 0.0
    for i in range(rows.size):
        total += rows[i]
    log_n = math.log(total)
    for j in range(cols.size):
        cols[j] = math.log(cols[j]) if cols[j] > 0 else 0.0
    s = 0.0
    for i in range(rows.size):
        if rows[i] <= 0:
            continue
        shift = log_n - math.log(rows[i])
        for j in range(cols.size):  # branch-free, vm.log: the row's cells vectorise
            v = table[i, j] * 1.0
            s += v * (vm.log(v) - cols[j] + shift) if v > 0 else 0.0
    mi = s / total * params[0]
    return (mi if mi > 0 else 0.0,)


@formula(
    Table(_information),
    family="probability",
    layout="rows",
    data=data.joint_table,
    arrays={"joint": "data"},
    hyper={"base": _base},
    params=lambda base: (base,),
)
def mutual_information(joint, *, base=None):
    """``I(X; Y) = KL(P(X, Y) || P(X) P(Y))`` of a joint table (probabilities, or counts:
    normalised by the sum), nats unless ``base=``."""


@formula(
    PairCounts(_information),
    family="probability",
    data=data.class_labels,
    arrays={"x": "index", "y": "index"},
    hyper={"base": _base},
    params=lambda base: (base,),
)
def mutual_information_labels(x, y, *, base=None):
    """``I(X; Y)`` of two label arrays (non-negative integers): their contingency table
    counted in one exact pass, then :func:`mutual_information` of it (scikit-learn's
    ``mutual_info_score``)."""
