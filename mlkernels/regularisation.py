"""Regularisation and normalisation: weight penalties, max-norm, dropout, batch and layer
normalisation, with the backward passes of the two normalisations.

* Penalties are reductions of a scalar term, through the losses' ``elementwise`` template
  (float64 accumulation, one pass; the gradient is the term's derivative).
* ``dropout`` is the ``unary`` template with a counter-based generator: element ``i`` is
  kept when a hash of ``(seed, i)`` says so, so the mask depends on the seed and the
  position only, the same on every run and on both devices; no mask is ever stored.
* ``layer_norm`` is a row operation along the last axis, ``batch_norm``, ``max_norm`` and
  the gamma/beta gradients of ``layer_norm`` column operations along axis 0 (see
  :class:`mlkernels._dispatch.RowOp` and :class:`~mlkernels._dispatch.ColOp`).
* Mean and variance come from ONE pass over the data, stable for data far from zero
  (e.g. 1e6 + N(0, 1) in float32): layer_norm splits a row into chunks of 256, takes each
  chunk's mean and squared deviations while it is in cache, and merges the chunks with
  Chan's formula; batch_norm updates per-column Welford states row by row (the inner loop
  runs along contiguous columns and vectorises) and merges row chunks with Chan's formula.
  All statistics are float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import float64
from numba.extending import register_jitable

from mlkernels import _cpu, _dispatch
from mlkernels._dispatch import ColOp, RowOp
from mlkernels._math import identity, sign
from mlkernels._vmath import like

__all__ = [
    "batch_norm",
    "batch_norm_grad",
    "dropout",
    "elastic_net",
    "elastic_net_grad",
    "l1_grad",
    "l1_loss",
    "l2_grad",
    "l2_loss",
    "layer_norm",
    "layer_norm_grad",
    "max_norm",
]


# --------------------------------------------------------------------------------------
# Weight penalties: one term per weight (a, the unused first array of the elementwise
# template, is the weights too). Separate terms, so that an unused 0 * w² cannot turn an
# infinite or huge weight into NaN.
# --------------------------------------------------------------------------------------


@register_jitable
def _l1(a, w, params):
    lam = params[0]
    return lam * abs(w), lam * sign(w)


@register_jitable
def _l2(a, w, params):
    lam = params[0]
    return lam * (w * w), 2.0 * lam * w


@register_jitable
def _elastic(a, w, params):
    v1, g1 = _l1(a, w, params[:1])
    v2, g2 = _l2(a, w, params[1:])
    return v1 + v2, g1 + g2


def _penalty_run(term, want: str, weights: Any, params: tuple, out: Any = None) -> Any:
    """The sum of ``term`` over the weights (``want="value"``), or its derivative
    (``"grad"``), through the losses' elementwise template."""
    w = _dispatch.host_float(weights) if out is None else None
    if w is not None and w.size:  # the fast path: the same kernels, fewer checks to do
        flat = w.reshape(-1)
        one = w.dtype.type(1)
        if want == "grad":
            g = np.empty(w.shape, w.dtype)
            _cpu.launch("elementwise", term, flat, flat, params, one, None, g.reshape(-1), False)
            return g
        total = _cpu.launch("elementwise", term, flat, flat, params, one, None, None, True)
        return w.dtype.type(total[0])
    backend, arrs = _dispatch.place({"weights": weights})
    w = arrs["weights"]
    dtype = _dispatch.real_dtype(arrs)
    shape = tuple(w.shape)
    if want == "value" and w.size == 0:  # an empty sum is 0, as numpy.sum
        if backend.is_host:
            return dtype.type(0)
        return _dispatch.wrap(backend.zeros((), dtype), weights)
    gbuf = None if out is None else _dispatch.check_out(backend, out, shape, dtype)
    flat = backend.flat(w, dtype)
    # the gradient is per element: reduction "none" (no sum, no empty-input error)
    reduction = "sum" if want == "value" else "none"
    result = _dispatch.run_terms(
        backend, "elementwise", term, identity, flat, flat, params, reduction, want, dtype,
        shape, shape, None, gbuf,
    )  # fmt: skip
    return _dispatch.give(backend, result, out, weights)


def _lams(**named: Any) -> tuple[float, ...]:
    return _dispatch.nonnegative(named)


def l2_loss(weights, lam=1e-4):
    """L2 penalty, ``λ Σ w²`` (float64 accumulation); ``lam >= 0``."""
    return _penalty_run(_l2, "value", weights, _lams(lam=lam))


def l2_grad(weights, lam=1e-4, *, out=None):
    """Gradient of :func:`l2_loss`, ``2 λ w``."""
    return _penalty_run(_l2, "grad", weights, _lams(lam=lam), out)


def l1_loss(weights, lam=1e-4):
    """L1 penalty, ``λ Σ |w|`` (float64 accumulation); ``lam >= 0``."""
    return _penalty_run(_l1, "value", weights, _lams(lam=lam))


def l1_grad(weights, lam=1e-4, *, out=None):
    """Gradient of :func:`l1_loss`, ``λ sign(w)`` (0 at 0)."""
    return _penalty_run(_l1, "grad", weights, _lams(lam=lam), out)


def elastic_net(weights, lam1=1e-4, lam2=1e-4):
    """Elastic net penalty, ``λ1 Σ |w| + λ2 Σ w²``, in one pass."""
    return _penalty_run(_elastic, "value", weights, _lams(lam1=lam1, lam2=lam2))


def elastic_net_grad(weights, lam1=1e-4, lam2=1e-4, *, out=None):
    """Gradient of :func:`elastic_net`, ``λ1 sign(w) + 2 λ2 w``."""
    return _penalty_run(_elastic, "grad", weights, _lams(lam1=lam1, lam2=lam2), out)


# --------------------------------------------------------------------------------------
# Dropout: a counter-based generator (no state, no stored mask).
# --------------------------------------------------------------------------------------

_MASK32 = 0xFFFFFFFF


@register_jitable
def _mix32(h):
    """A 32-bit integer finaliser (xorshift-multiply, the "lowbias32" shape with 31-bit
    multipliers so that every product fits in an int64 on both devices)."""
    h ^= h >> 16
    h = (h * 0x7FEB352D) & _MASK32
    h ^= h >> 15
    h = (h * 0x4B2D63C5) & _MASK32
    h ^= h >> 16
    return h


@register_jitable
def uniform(i, key0, key1):
    """A uniform number in [0, 1) (32 bits) from the counter ``i`` and a 64-bit key."""
    h = _mix32((i & _MASK32) ^ key0)
    h = _mix32(h ^ (i >> 32) ^ key1)
    h = _mix32(h ^ key0)
    return h * 2.3283064365386963e-10  # 2**-32


@register_jitable
def _dropout(x, i, params):
    p, scale, key0, key1 = params
    keep = uniform(i, int(key0), int(key1)) >= p
    m = like(x, scale if keep else 0.0)
    return x * m, m


def _seed(seed: Any) -> int:
    if seed is None:
        # the global generator, as the formula's np.random.rand: np.random.seed applies
        return int(np.random.randint(0, 2**63 - 1, dtype=np.int64))  # noqa: NPY002
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int >= 0, a numpy Generator or None, not {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed) & (2**64 - 1)


def dropout(x, p=0.5, training=True, *, seed=None, out=None):
    """Inverted dropout: ``x * (u >= p) / (1 - p)``, ``u`` uniform in [0, 1) (kept with
    probability ``1 - p``, as the formula's ``rand > p``; ``p = 0`` keeps everything).

    ``training=False`` returns ``x`` itself. ``u`` for element ``i`` (C order) is a hash of
    ``(seed, i)`` (32 bits): the same ``seed`` gives the same mask on every run, on the CPU
    and on the GPU. ``seed`` is an int, a ``numpy.random.Generator`` (one draw), or None:
    a draw from NumPy's global generator, so ``np.random.seed`` makes it reproducible, as
    the formula's ``np.random.rand``. ``0 <= p <= 1``; ``p = 1`` gives zeros.
    """
    if not training:
        return x
    (p,) = _dispatch.real_numbers({"p": p}).values()
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    key = _seed(seed)
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    params = (p, scale, float(key & _MASK32), float(key >> 32))
    return _dispatch.map_unary(_dropout, "value", x, params, out)


# --------------------------------------------------------------------------------------
# max_norm: per-column norms (axis 0), then a rescale.
# --------------------------------------------------------------------------------------


@register_jitable
def _sq_push(acc, x, y, aux, params, r, k, lo, hi):
    xr, ss = x[r], acc[0]
    for j in range(lo, hi):
        v = float64(xr[j])
        ss[j] += v * v


@register_jitable
def _sum_merge(acc, m, acc_p, m_p, j):
    for q in range(acc.shape[0]):
        acc[q, j] += acc_p[q, j]


@register_jitable
def _max_norm_final(acc, n, params, j):
    f = params[0] / (math.sqrt(acc[0, j]) + 1e-8)
    acc[0, j] = 1.0 if f >= 1.0 else f  # min(1, f), NaN stays NaN


@register_jitable
def _scale_emit(x, y, w, b, acc, params, r, j):
    v = float64(x[r, j]) * acc[0, j]
    return v, v


MAX_NORM = ColOp(1, _sq_push, _sum_merge, _max_norm_final, _scale_emit)


def max_norm(W, c=3.0, *, out=None):
    """Max-norm constraint: ``W * min(1, c / (‖W[:, j]‖₂ + 1e-8))``, norms along axis 0
    (``np.linalg.norm(W, axis=0)``), accumulated in float64; ``c >= 0``."""
    (c,) = _dispatch.nonnegative({"c": c})
    return _dispatch.map_cols(MAX_NORM, ("W", W), params=(c,), out=out)[0]


# --------------------------------------------------------------------------------------
# batch_norm: per-column Welford states over axis 0, merged with Chan's formula.
# --------------------------------------------------------------------------------------


@register_jitable
def _welford_push(acc, x, y, aux, params, r, k, lo, hi):
    """Add row r to its columns' (mean, M2) and, when there is a dy, (mean of dy,
    co-moment Σ (x - mean)(dy - mean of dy)) in acc[2:4]."""
    inv = 1.0 / k
    xr, mean, m2 = x[r], acc[0], acc[1]
    if y is None:
        for j in range(lo, hi):
            v = float64(xr[j])
            d = v - mean[j]
            mean[j] += d * inv
            m2[j] += d * (v - mean[j])
    else:
        yr, mean_y, co = y[r], acc[2], acc[3]
        for j in range(lo, hi):
            v = float64(xr[j])
            d = v - mean[j]
            mean[j] += d * inv
            m2[j] += d * (v - mean[j])
            g = float64(yr[j])
            mean_y[j] += (g - mean_y[j]) * inv
            co[j] += d * (g - mean_y[j])


@register_jitable
def _chan_merge(acc, m, acc_p, m_p, j):
    """Merge a chunk's (mean, M2) of m_p rows into the total of m rows (Chan et al.)."""
    f = m_p / (m + m_p)
    d = acc_p[0, j] - acc[0, j]
    acc[0, j] += d * f
    acc[1, j] += acc_p[1, j] + d * d * m * f
    return d, f


@register_jitable
def _chan_merge_xy(acc, m, acc_p, m_p, j):
    """:func:`_chan_merge`, and the mean of dy and the co-moment of x and dy."""
    d, f = _chan_merge(acc, m, acc_p, m_p, j)
    dg = acc_p[2, j] - acc[2, j]
    acc[2, j] += dg * f
    acc[3, j] += acc_p[3, j] + d * dg * m * f


@register_jitable
def _bn_final(acc, n, params, j):
    """(mean, M2) -> (mean, var, 1/sqrt(var + eps))."""
    var = acc[1, j] / n
    acc[1, j] = var
    acc[2, j] = 1.0 / math.sqrt(var + params[0])


@register_jitable
def _bn_emit(x, y, w, b, acc, params, r, j):
    xh = (float64(x[r, j]) - acc[0, j]) * acc[2, j]
    return float64(w[j]) * xh + float64(b[j]), xh


@register_jitable
def _bn_grad_final(acc, n, params, j):
    """(mean, M2, mean dy, co-moment) -> (mean, rstd, mean dy, Σ dy x̂ = dgamma,
    Σ dy = dbeta)."""
    rstd = 1.0 / math.sqrt(acc[1, j] / n + params[0])
    acc[1, j] = rstd
    acc[3, j] *= rstd
    acc[4, j] = acc[2, j] * n


@register_jitable
def _bn_grad_emit(x, y, w, b, acc, params, r, j):
    """dx = γ rstd (dy - mean(dy) - x̂ mean(dy x̂))."""
    rstd = acc[1, j]
    xh = (float64(x[r, j]) - acc[0, j]) * rstd
    dx = float64(w[j]) * rstd * (float64(y[r, j]) - acc[2, j] - xh * acc[3, j] / x.shape[0])
    return dx, dx


BATCH_NORM = ColOp(3, _welford_push, _chan_merge, _bn_final, _bn_emit)
BATCH_NORM_GRAD = ColOp(5, _welford_push, _chan_merge_xy, _bn_grad_final, _bn_grad_emit)


def _eps(eps: Any) -> tuple[float, ...]:
    return _dispatch.nonnegative({"eps": eps})


def _stat(backend, acc, q, shape, dtype, like_):
    """Row ``q`` of the column statistics as an array of ``shape`` in ``dtype``."""
    stat = backend.flat(acc[q], dtype).reshape(shape)
    return stat if backend.is_host else _dispatch.wrap(stat, like_)


def _batch(x) -> None:
    if tuple(getattr(x, "shape", np.shape(x)))[:1] == (0,):
        raise ValueError("x has no rows: the batch statistics of an empty batch are undefined")


def batch_norm(x, gamma, beta, eps=1e-5):
    """Batch normalisation over axis 0: ``x̂ = (x - μ) / √(σ² + ε)``, ``y = γ x̂ + β``.

    Returns ``(y, mu, var, x_hat)`` as the formula; ``gamma`` and ``beta`` have the shape
    ``x.shape[1:]``. Mean and (biased) variance from one pass, in float64 (Welford per
    column, Chan across row chunks).
    """
    params = _eps(eps)
    _batch(x)
    y, x_hat, acc, backend, dtype = _dispatch.map_cols(
        BATCH_NORM, ("x", x), None, ("gamma", gamma), ("beta", beta), params, outputs=2
    )
    feats = tuple(y.shape[1:])
    mu = _stat(backend, acc, 0, feats, dtype, x)
    var = _stat(backend, acc, 1, feats, dtype, x)
    return y, mu, var, x_hat


def batch_norm_grad(x, gamma, dy, eps=1e-5):
    """Backward pass of :func:`batch_norm` (batch statistics, as in training).

    Returns ``(dx, dgamma, dbeta)``: ``dx = γ rstd (dy - mean(dy) - x̂ mean(dy x̂))``,
    ``dgamma = Σ dy x̂``, ``dbeta = Σ dy`` (sums over axis 0). The statistics of ``x`` and
    ``dy`` come from ONE pass (Welford means and the co-moment of ``x`` and ``dy``), the
    gradient from a second.
    """
    params = _eps(eps)
    _batch(x)
    dx, _, acc, backend, dtype = _dispatch.map_cols(
        BATCH_NORM_GRAD, ("x", x), ("dy", dy), ("gamma", gamma), None, params, outputs=1
    )
    feats = tuple(dx.shape[1:])
    return dx, _stat(backend, acc, 3, feats, dtype, x), _stat(backend, acc, 4, feats, dtype, x)


# --------------------------------------------------------------------------------------
# layer_norm: a row operation along the last axis (chunked one-pass moments).
# --------------------------------------------------------------------------------------

CHUNK = 256  # elements of a row whose mean and deviations are taken while in cache


@register_jitable
def _row_moments(x, y, w, params, out):
    """(count, mean, M2, Σ γ dy, Σ γ dy (x - mean)) of (part of) a row in one pass: per
    chunk, the mean, then the squared deviations (and the dy sums), merged across chunks
    with Chan's formula. Without dy the last two are 0."""
    c = x.size
    n = 0.0
    mean = 0.0
    m2 = 0.0
    g_sum = 0.0
    s_sum = 0.0
    for k0 in range(0, c, CHUNK):
        cnt = min(CHUNK, c - k0)
        xc = x[k0 : k0 + cnt]  # slices of the row: LLVM vectorises their loops
        yc = y[k0 : k0 + cnt] if y is not None else None
        wc = w[k0 : k0 + cnt] if y is not None else None
        t = 0.0
        for k in range(cnt):
            t += float64(xc[k])
        mc = t / cnt
        q = 0.0
        g_c = 0.0
        s_c = 0.0
        for k in range(cnt):
            d = float64(xc[k]) - mc
            q += d * d
            if y is not None:
                gd = float64(wc[k]) * float64(yc[k])
                g_c += gd
                s_c += gd * d
        tot = n + cnt
        old = mean
        mean += (mc - old) * (cnt / tot)
        m2 += q + (mc - old) * (mc - old) * n * (cnt / tot)
        # Σ γ dy (x - mean) of both parts, each moved to the merged mean
        s_sum += (old - mean) * g_sum + s_c + (mc - mean) * g_c
        g_sum += g_c
        n = tot
    return n, mean, m2, g_sum, s_sum


@register_jitable
def _moments_merge(a, b):
    """Chan's merge of two :func:`_row_moments` states."""
    n = a[0] + b[0]
    if n == 0:
        return a
    f = b[0] / n
    d = b[1] - a[1]
    mean = a[1] + d * f
    s = a[4] + (a[1] - mean) * a[3] + b[4] + (b[1] - mean) * b[3]
    return n, mean, a[2] + b[2] + d * d * a[0] * f, a[3] + b[3], s


@register_jitable
def _ln_emit(x, y, w, b, params, own, state, out):
    n, mean, m2, _, _ = state
    rstd = 1.0 / math.sqrt(m2 / n + params[0])
    for k in range(x.size):
        out[k] = (float64(x[k]) - mean) * rstd * float64(w[k]) + float64(b[k])
    return mean, rstd


@register_jitable
def _ln_grad_emit(x, y, w, b, params, own, state, out):
    """dx = rstd (γ dy - mean(γ dy) - x̂ mean(γ dy x̂)); keeps (mean, rstd) for dγ, dβ."""
    n, mean, m2, g_sum, s_sum = state
    rstd = 1.0 / math.sqrt(m2 / n + params[0])
    a = g_sum / n
    bh = s_sum * rstd / n
    for k in range(x.size):
        xh = (float64(x[k]) - mean) * rstd
        out[k] = rstd * (float64(w[k]) * float64(y[k]) - a - xh * bh)
    return mean, rstd


@register_jitable
def _ln_param_push(acc, x, y, aux, params, r, k, lo, hi):
    """dγ += dy x̂ and dβ += dy, with x̂ from the row's (mean, rstd) in aux."""
    xr, yr, dgamma, dbeta = x[r], y[r], acc[0], acc[1]
    mean, rstd = aux[r, 0], aux[r, 1]
    for j in range(lo, hi):
        g = float64(yr[j])
        dgamma[j] += g * (float64(xr[j]) - mean) * rstd
        dbeta[j] += g


@register_jitable
def _no_final(acc, n, params, j):
    pass


LAYER_NORM = RowOp(_row_moments, _moments_merge, _ln_emit)
LAYER_NORM_GRAD = RowOp(_row_moments, _moments_merge, _ln_grad_emit)
LAYER_NORM_PARAMS = ColOp(2, _ln_param_push, _sum_merge, _no_final, _scale_emit)


def layer_norm(x, gamma, beta, eps=1e-5, *, out=None):
    """Layer normalisation over the last axis: ``γ (x - μ) / √(σ² + ε) + β``.

    ``gamma`` and ``beta`` have the shape ``x.shape[-1:]``. Mean and variance from one
    pass over each row (chunked, merged with Chan's formula), in float64.
    """
    params = _eps(eps)
    return _dispatch.map_rows(
        LAYER_NORM, ("x", x), None, ("gamma", gamma), ("beta", beta), params, out
    )


def layer_norm_grad(x, gamma, dy, eps=1e-5):
    """Backward pass of :func:`layer_norm`: ``(dx, dgamma, dbeta)``.

    ``dx = rstd (γ dy - mean(γ dy) - x̂ mean(γ dy x̂))`` per row, from one pass for the
    row's statistics and one to write; ``dgamma = Σ dy x̂`` and ``dbeta = Σ dy`` over all
    rows, by a column reduction that reuses the rows' (mean, rstd).
    """
    params = _eps(eps)
    dx, stats, x2, dy2 = _dispatch.map_rows(
        LAYER_NORM_GRAD, ("x", x), ("dy", dy), ("gamma", gamma), None, params, stats=True
    )
    _, _, acc, backend, dtype = _dispatch.map_cols(
        LAYER_NORM_PARAMS, ("x", x2), ("dy", dy2), outputs=0, aux=stats
    )
    c = x2.shape[1]
    return dx, _stat(backend, acc, 0, (c,), dtype, x), _stat(backend, acc, 1, (c,), dtype, x)
