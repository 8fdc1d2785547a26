"""Streaming statistics written once for both devices, in float64, in one pass:

* Welford updates and Chan's merge of (count, mean, M2) states, per column (batch_norm;
  PCA, gaussian_mle, r2 next) and per row (layer_norm): stable for data far from zero
  (e.g. 1e6 + N(0, 1) in float32);
* the online softmax statistics (max, Σ e^{x - max}, ...) and their merge, which moves
  two parts' sums to their common max (softmax rows split over a GPU block; attention's
  online softmax next).
"""

from __future__ import annotations

import math

from numba import float64
from numba.extending import register_jitable

from mlkernels._core.scalar import as_elem, maximum
from mlkernels._core.vmath import exp


@register_jitable
def welford_push(acc, ins, r, k, lo, hi, params):
    """Add row r of ``ins[0]`` (the k-th row of its chunk) to its columns' (mean, M2) in
    acc[0:2] (a ``ColOp.push``)."""
    inv = 1.0 / k
    xr, mean, m2 = ins[0][r], acc[0], acc[1]
    for j in range(lo, hi):
        v = float64(xr[j])
        d = v - mean[j]
        mean[j] += d * inv
        m2[j] += d * (v - mean[j])


@register_jitable
def welford_push_xy(acc, ins, r, k, lo, hi, params):
    """:func:`welford_push` of x = ``ins[0]``, and of dy = ``ins[1]`` its mean and the
    co-moment Σ (x - mean)(dy - mean of dy) in acc[2:4]."""
    inv = 1.0 / k
    xr, yr = ins[0][r], ins[1][r]
    mean, m2, mean_y, co = acc[0], acc[1], acc[2], acc[3]
    for j in range(lo, hi):
        v = float64(xr[j])
        d = v - mean[j]
        mean[j] += d * inv
        m2[j] += d * (v - mean[j])
        g = float64(yr[j])
        mean_y[j] += (g - mean_y[j]) * inv
        co[j] += d * (g - mean_y[j])


@register_jitable
def sum_merge(acc, m, acc_p, m_p, j):
    """Merge a chunk's plain sums into the total (a ``ColOp.merge``)."""
    for q in range(acc.shape[0]):
        acc[q, j] += acc_p[q, j]


@register_jitable
def chan_merge(acc, m, acc_p, m_p, j):
    """Merge a chunk's (mean, M2) of m_p rows into the total of m rows (Chan et al.)."""
    f = m_p / (m + m_p)
    d = acc_p[0, j] - acc[0, j]
    acc[0, j] += d * f
    acc[1, j] += acc_p[1, j] + d * d * m * f
    return d, f


@register_jitable
def chan_merge_xy(acc, m, acc_p, m_p, j):
    """:func:`chan_merge`, and the mean of dy and the co-moment of x and dy."""
    d, f = chan_merge(acc, m, acc_p, m_p, j)
    dg = acc_p[2, j] - acc[2, j]
    acc[2, j] += dg * f
    acc[3, j] += acc_p[3, j] + d * dg * m * f


CHUNK = 256  # elements of a row whose mean and deviations are taken while in cache


@register_jitable
def row_moments(x, y, w):
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
def moments_merge(a, b):
    """Chan's merge of two :func:`row_moments` states."""
    n = a[0] + b[0]
    if n == 0:
        return a
    f = b[0] / n
    d = b[1] - a[1]
    mean = a[1] + d * f
    s = a[4] + (a[1] - mean) * a[3] + b[4] + (b[1] - mean) * b[3]
    return n, mean, a[2] + b[2] + d * d * a[0] * f, a[3] + b[3], s


@register_jitable
def row_max(x):
    m = as_elem(x, -math.inf)
    for k in range(x.size):
        m = maximum(m, x[k])  # a NaN sticks: the whole row becomes NaN
    return m


@register_jitable
def exp_stats(x, y, out, keep):
    """(max, Σ e, Σ e dy, Σ dy) of a row or part of one, e = e^{x - max} (computed once:
    kept in ``out`` when ``keep``, for ``emit`` to rescale). A part that is all -inf (or
    empty) has Σ e = 0 (and e = 0): it adds nothing to the row."""
    m = row_max(x)
    s = 0.0
    t = 0.0
    d = 0.0
    if y is not None:
        for k in range(x.size):
            d += float64(y[k])
    if m != -math.inf and keep:
        for k in range(x.size):
            out[k] = exp(x[k] - m)
        # summed in a loop with no stores: in the loop above, LLVM's run-time choice of
        # its vectorised or scalar version (by where out lies) would change the last bit
        for k in range(x.size):
            s += float64(out[k])
            if y is not None:
                t += float64(out[k]) * float64(y[k])
    elif m != -math.inf:
        for k in range(x.size):
            e = exp(x[k] - m)
            s += float64(e)
            if y is not None:
                t += float64(e) * float64(y[k])
    elif keep:
        for k in range(x.size):
            out[k] = 0
    return float64(m), s, t, d


@register_jitable
def exp_merge(a, b):
    """Merge two parts' (max, Σ e, Σ e dy, Σ dy): the sums of e move to the common max."""
    m = a[0] if a[0] > b[0] else b[0]
    fa = 0.0 if a[1] == 0 else exp(a[0] - m)  # an empty part adds nothing
    fb = 0.0 if b[1] == 0 else exp(b[0] - m)
    return m, a[1] * fa + b[1] * fb, a[2] * fa + b[2] * fb, a[3] + b[3]


@register_jitable
def kept_scale(own, state):
    """The factor from a part's kept e^{x - own max} to softmax(x): e^{own max - max} / Σ."""
    return exp(own[0] - state[0]) / state[1]
