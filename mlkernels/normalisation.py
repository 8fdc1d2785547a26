"""Normalisation: batch and layer normalisation, with their backward passes.

* ``batch_norm`` is a column operation along axis 0 (``Cols``): per-column Welford states
  updated row by row (the inner loop runs along contiguous columns and vectorises),
  merged across row chunks with Chan's formula (:mod:`mlkernels._core.stats`).
* ``layer_norm`` is a row operation along the last axis (``Rows``): a row is split into
  chunks of 256 whose mean and squared deviations are taken while in cache, merged with
  Chan's formula; its backward pass adds a column sum for dgamma and dbeta.
* Mean and variance come from ONE pass over the data, stable for data far from zero
  (e.g. 1e6 + N(0, 1) in float32). All statistics are float64.
"""

from __future__ import annotations

import math

from numba import float64
from numba.extending import register_jitable

from mlkernels._bench import data
from mlkernels._core.spec import NONNEGATIVE, formula
from mlkernels._core.stats import (
    chan_merge,
    chan_merge_xy,
    moments_merge,
    row_moments,
    sum_merge,
    welford_push,
    welford_push_xy,
)
from mlkernels._core.templates import ColOp, Cols, RowOp, Rows, RowsThenCols

__all__ = ["batch_norm", "batch_norm_grad", "layer_norm", "layer_norm_grad"]

_NORM = {"family": "normalisation", "layout": "rows", "hyper": {"eps": NONNEGATIVE}}
_XGB = {"x": "data", "gamma": "feature", "beta": "feature"}
_XGD = {"x": "data", "gamma": "feature", "dy": "data"}


# --------------------------------------------------------------------------------------
# batch_norm: per-column Welford states over axis 0, merged with Chan's formula.
# --------------------------------------------------------------------------------------


@register_jitable
def _bn_final(acc, n, params, j):
    """(mean, M2) -> (mean, var, 1/sqrt(var + eps))."""
    var = acc[1, j] / n
    acc[1, j] = var
    acc[2, j] = 1.0 / math.sqrt(var + params[0])


@register_jitable
def _bn_emit(acc, ins, feats, params, i, j):
    """(y, x̂) = (γ x̂ + β, (x - mean) rstd)."""
    gamma, beta = feats
    xh = (float64(ins[0][i, j]) - acc[0, j]) * acc[2, j]
    return float64(gamma[j]) * xh + float64(beta[j]), xh


@register_jitable
def _bn_grad_final(acc, n, params, j):
    """(mean, M2, mean dy, co-moment) -> (mean, rstd, mean dy, Σ dy x̂ = dgamma,
    Σ dy = dbeta)."""
    rstd = 1.0 / math.sqrt(acc[1, j] / n + params[0])
    acc[1, j] = rstd
    acc[3, j] *= rstd
    acc[4, j] = acc[2, j] * n


@register_jitable
def _bn_grad_emit(acc, ins, feats, params, i, j):
    """dx = γ rstd (dy - mean(dy) - x̂ mean(dy x̂))."""
    x, dy = ins
    rstd = acc[1, j]
    xh = (float64(x[i, j]) - acc[0, j]) * rstd
    g = float64(feats[0][j])
    return (g * rstd * (float64(dy[i, j]) - acc[2, j] - xh * acc[3, j] / x.shape[0]),)


BATCH_NORM = ColOp(3, welford_push, chan_merge, _bn_final, _bn_emit, outputs=2)
BATCH_NORM_GRAD = ColOp(5, welford_push_xy, chan_merge_xy, _bn_grad_final, _bn_grad_emit)


@formula(
    Cols(BATCH_NORM, (("out", 0), ("stat", 0), ("stat", 1), ("out", 1)), batch=True),
    arrays=_XGB,
    data=data.affine,
    derivative="batch_norm_grad",
    **_NORM,
)
def batch_norm(x, gamma, beta, eps=1e-5):
    """Batch normalisation over axis 0: ``x̂ = (x - μ) / √(σ² + ε)``, ``y = γ x̂ + β``.

    Returns ``(y, mu, var, x_hat)`` as the formula; ``gamma`` and ``beta`` have the shape
    ``x.shape[1:]``. Mean and (biased) variance from one pass, in float64 (Welford per
    column, Chan across row chunks).
    """


@formula(
    Cols(BATCH_NORM_GRAD, (("out", 0), ("stat", 3), ("stat", 4)), inputs=2, batch=True),
    arrays=_XGD,
    data=data.affine_upstream,
    **_NORM,
)
def batch_norm_grad(x, gamma, dy, eps=1e-5):
    """Backward pass of :func:`batch_norm` (batch statistics, as in training).

    Returns ``(dx, dgamma, dbeta)``: ``dx = γ rstd (dy - mean(dy) - x̂ mean(dy x̂))``,
    ``dgamma = Σ dy x̂``, ``dbeta = Σ dy`` (sums over axis 0). The statistics of ``x`` and
    ``dy`` come from ONE pass (Welford means and the co-moment of ``x`` and ``dy``), the
    gradient from a second.
    """


# --------------------------------------------------------------------------------------
# layer_norm: a row operation along the last axis (chunked one-pass moments).
# --------------------------------------------------------------------------------------


@register_jitable
def _ln_part(row, feats, params, out):
    return row_moments(row[0], None, None)


@register_jitable
def _ln_grad_part(row, feats, params, out):
    return row_moments(row[0], row[1], feats[0])


@register_jitable
def _ln_emit(row, feats, params, own, state, out):
    x = row[0]
    w, b = feats
    n, mean, m2, _, _ = state
    rstd = 1.0 / math.sqrt(m2 / n + params[0])
    for k in range(x.size):
        out[k] = (float64(x[k]) - mean) * rstd * float64(w[k]) + float64(b[k])
    return ()


@register_jitable
def _ln_grad_emit(row, feats, params, own, state, out):
    """dx = rstd (γ dy - mean(γ dy) - x̂ mean(γ dy x̂)); keeps (mean, rstd) for dγ, dβ."""
    x, y = row
    w = feats[0]
    n, mean, m2, g_sum, s_sum = state
    rstd = 1.0 / math.sqrt(m2 / n + params[0])
    a = g_sum / n
    bh = s_sum * rstd / n
    for k in range(x.size):
        xh = (float64(x[k]) - mean) * rstd
        out[k] = rstd * (float64(w[k]) * float64(y[k]) - a - xh * bh)
    return mean, rstd


@register_jitable
def _ln_param_push(acc, ins, r, k, lo, hi, params):
    """dγ += dy x̂ and dβ += dy, with x̂ from the row's (mean, rstd) in ``ins[2]``."""
    x, y, stats = ins
    xr, yr, dgamma, dbeta = x[r], y[r], acc[0], acc[1]
    mean, rstd = stats[r, 0], stats[r, 1]
    for j in range(lo, hi):
        g = float64(yr[j])
        dgamma[j] += g * (float64(xr[j]) - mean) * rstd
        dbeta[j] += g


@register_jitable
def _no_final(acc, n, params, j):
    pass


@register_jitable
def _no_emit(acc, ins, feats, params, i, j):
    return (0.0,)


LAYER_NORM = RowOp(5, _ln_part, moments_merge, _ln_emit)
LAYER_NORM_GRAD = RowOp(5, _ln_grad_part, moments_merge, _ln_grad_emit, stats=2)
LAYER_NORM_PARAMS = ColOp(2, _ln_param_push, sum_merge, _no_final, _no_emit)


@formula(Rows(LAYER_NORM), arrays=_XGB, data=data.affine, derivative="layer_norm_grad", **_NORM)
def layer_norm(x, gamma, beta, eps=1e-5, *, out=None):
    """Layer normalisation over the last axis: ``γ (x - μ) / √(σ² + ε) + β``.

    ``gamma`` and ``beta`` have the shape ``x.shape[-1:]``. Mean and variance from one
    pass over each row (chunked, merged with Chan's formula), in float64.
    """


@formula(
    RowsThenCols(LAYER_NORM_GRAD, LAYER_NORM_PARAMS, inputs=2),
    arrays=_XGD,
    data=data.affine_upstream,
    **_NORM,
)
def layer_norm_grad(x, gamma, dy, eps=1e-5):
    """Backward pass of :func:`layer_norm`: ``(dx, dgamma, dbeta)``.

    ``dx = rstd (γ dy - mean(γ dy) - x̂ mean(γ dy x̂))`` per row, from one pass for the
    row's statistics and one to write; ``dgamma = Σ dy x̂`` and ``dbeta = Σ dy`` over all
    rows, by a column reduction that reuses the rows' (mean, rstd).
    """
