"""CPU kernel templates: one per pattern, each turned into a kernel by a scalar function.

A scalar function ``fg(a, b, params) -> (value, grad)`` (a ``register_jitable`` plain
function, see ``losses.py``) gives one term of a formula and its derivative with respect to
the prediction; the templates pass it float64 elements, whatever the arrays' dtype.

A template loops over the data with ``prange`` and, in ONE pass, writes whatever the
caller asked for; an output passed as ``None`` is pruned at compile time
(numba specialises on ``NoneType`` and removes the dead branch), so the value-only kernel
contains no gradient code and the gradient-only kernel no value code:

* ``out``   the per-term values (``reduction="none"``),
* ``gout``  the gradient, ``grad * mult`` (``mult`` = 1/n for a mean),
* ``total`` a 1-element float64 array receiving the sum of the values: the *partial* of a
  reduction. Partials of chunks combine by addition; ``finish`` finalises them. The sum
  is taken over chunks that depend on the size alone (``sum_chunks``): the same result
  whatever the number of threads.

Three more templates serve the families that map arrays to arrays (activations,
normalisation); they compute in the data's own dtype:

* ``unary``        ``out[i], gout[i] = f(x[i], i, params)``: activations, their
  derivatives and dropout (``i`` is dropout's counter);
* ``rows``         a reduction along the last axis, then an elementwise pass over the same
  row: softmax, log_softmax, layer_norm and their backward passes;
* ``cols_reduce`` / ``cols_emit``  a reduction along axis 0 into per-column statistics,
  then an elementwise pass: batch_norm, its backward pass, max_norm.

Every template has the same signature on the GPU, in ``_gpu.py``. Each is compiled twice
(``_jit.cpu_kernel``): with its ``prange`` loops on every thread, and as plain loops on
the calling thread for calls on fewer than ``PARALLEL_MIN`` elements (see ``_threads``);
the first argument of a call is its element count.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import float64, prange
from numba.extending import register_jitable

from mlkernels._jit import cpu_kernel


@register_jitable
def sum_chunks(n):
    """The chunks a reduction over ``n`` terms is cut into: each chunk's terms are summed
    in order, then the chunks' sums in order. A function of ``n`` alone, so a sum is the
    same whatever the number of threads and however the threading layer schedules them
    (a ``prange`` reduction's split follows the threads, and TBB's work stealing)."""
    return max(1, min(256, n // 4096))


@register_jitable
def _part(x, lo, hi):
    """``x[lo:hi]``, or None for an output not asked for. Loops over such 0-based views
    vectorise; over ``range(lo, hi)`` numba keeps a negative-index check in every access."""
    if x is None:
        return None
    return x[lo:hi]


#: Values summed per block of a chunk, after the block's loop wrote its outputs.
SUM_BLOCK = 512


@functools.cache
def elementwise(fg):
    """Terms ``fg(a[i], b[i])`` over two flat arrays of the same size.

    A sum is taken apart from the loop that writes ``out`` / ``gout``: that loop keeps
    the values of a block in ``vals``, and a loop with no stores adds them. LLVM gives a
    loop with stores a vectorised and a scalar version, picked at run time by where the
    arrays lie in memory; summed in that loop, the same data could give another last bit
    for another ``out=`` buffer.
    """

    def terms(a, b, params, mult, out, gout, vals):
        for i in range(a.size):
            v, g = fg(float64(a[i]), float64(b[i]), params)
            if out is not None:
                out[i] = v
            if gout is not None:
                gout[i] = g * mult
            if vals is not None:
                vals[i] = v
        acc = 0.0
        if vals is not None:
            for i in range(a.size):
                acc += vals[i]
        return acc

    terms = register_jitable(terms)

    def kernel(a, b, params, mult, out, gout, total):
        n = a.size
        chunks = sum_chunks(n)
        size = (n + chunks - 1) // chunks
        parts = np.zeros(chunks)
        for p in prange(chunks):
            lo, hi = p * size, min(n, (p + 1) * size)
            if total is None:
                terms(
                    a[lo:hi], b[lo:hi], params, mult, _part(out, lo, hi), _part(gout, lo, hi), None
                )
            else:
                vals = np.empty(SUM_BLOCK)
                acc = 0.0
                for s in range(lo, hi, SUM_BLOCK):
                    e = min(hi, s + SUM_BLOCK)
                    acc += terms(
                        a[s:e], b[s:e], params, mult, _part(out, s, e), _part(gout, s, e), vals
                    )
                parts[p] = acc
        if total is not None:
            total[0] = _in_order(parts)

    return cpu_kernel(kernel)


@functools.cache
def rows_dense(fg):
    """Row terms ``sum_k fg(y[i, k, r], x[i, k, r])`` of (n, C, R) arrays; one per (i, r).
    Each row's terms are kept in ``vals`` and added by a loop with no stores (see
    :func:`elementwise`)."""

    def kernel(y, x, params, mult, out, gout, total):
        n, c, r = x.shape
        m = n * r
        chunks = sum_chunks(m)
        size = (m + chunks - 1) // chunks
        parts = np.empty(chunks)
        for p in prange(chunks):
            vals = np.empty(c)
            acc = 0.0
            for j in range(p * size, min(m, (p + 1) * size)):
                i = j // r
                q = j - i * r
                for k in range(c):
                    v, g = fg(float64(y[i, k, q]), float64(x[i, k, q]), params)
                    vals[k] = v
                    if gout is not None:
                        gout[i, k, q] = g * mult
                s = 0.0
                for k in range(c):
                    s += vals[k]
                if out is not None:
                    out[i, q] = s
                acc += s
            parts[p] = acc
        if total is not None:
            total[0] = _in_order(parts)

    return cpu_kernel(kernel)


@functools.cache
def rows_index(fg):
    """Row terms of a one-hot label given by its index: ``fg(1, x[i, t[i, r], r])``.

    Only the target entry of each row is read for the value; the gradient row is zero
    except at the target. A target outside ``[-C, C)`` (checked before the launch on the
    CPU) gives NaN rather than an out-of-bounds read.
    """

    def kernel(t, x, params, mult, out, gout, total):
        n, c, r = x.shape
        m = n * r
        chunks = sum_chunks(m)
        size = (m + chunks - 1) // chunks
        parts = np.empty(chunks)
        for p in prange(chunks):
            acc = 0.0
            for j in range(p * size, min(m, (p + 1) * size)):
                i = j // r
                q = j - i * r
                k = t[i, q]
                if k < 0:
                    k += c
                inside = k >= 0 and k < c
                if inside:
                    v, g = fg(1.0, float64(x[i, k, q]), params)
                else:
                    v, g = np.nan, np.nan
                if gout is not None:
                    for kk in range(c):
                        gout[i, kk, q] = 0.0
                    if inside:
                        gout[i, k, q] = g * mult
                if out is not None:
                    out[i, q] = v
                acc += v
            parts[p] = acc
        if total is not None:
            total[0] = _in_order(parts)

    return cpu_kernel(kernel)


@register_jitable
def _in_order(parts):
    s = 0.0
    for p in range(parts.size):
        s += parts[p]
    return s


TEMPLATES = {"elementwise": elementwise, "rows_dense": rows_dense, "rows_index": rows_index}


@functools.cache
def unary(f):
    """``out[i], gout[i] = f(x[i], i, params)`` over a flat array (``None`` outputs pruned)."""

    def kernel(x, params, out, gout):
        for i in prange(x.size):
            v, g = f(x[i], i, params)
            if out is not None:
                out[i] = v
            if gout is not None:
                gout[i] = g

    return cpu_kernel(kernel)


@functools.cache
def rows(op):
    """A row-wise operation ``op`` over (n, c) arrays: a row per thread at a time.

    ``op.part(x, y, w, params, out)`` reduces a row ``x`` (and the row ``y`` and the
    per-column ``w`` when the operation has them; 1-D views) to a state of 5 float64, in
    one pass, and may leave intermediate values in the row ``out``;
    ``op.emit(x, y, w, b, params, own, state, out)`` writes the row ``out`` from the row's
    ``state`` (and ``own``, the state of the part this thread reduced: here the same) and
    returns two per-row statistics, stored in ``stats[i]`` when asked. (The GPU splits
    each row over a block and merges the threads' states with ``op.merge``.)
    """
    part, emit = op.part, op.emit

    def kernel(x, y, w, b, params, out, stats):
        for i in prange(x.shape[0]):
            yi = y[i] if y is not None else None
            state = part(x[i], yi, w, params, out[i])
            s0, s1 = emit(x[i], yi, w, b, params, state, state, out[i])
            if stats is not None:
                stats[i, 0] = s0
                stats[i, 1] = s1

    return cpu_kernel(kernel)


@functools.cache
def cols_reduce(op):
    """Per-column statistics of (n, c) arrays over axis 0, into ``acc`` (K, c) float64.

    The rows are cut into chunks, one per thread; ``op.push(acc_p, x, y, aux, params, r,
    k, lo, hi)`` adds row ``r`` (the ``k``-th of its chunk, from 1) to the columns
    ``lo:hi`` of the chunk's state ``acc_p`` (K, c) (all columns here; one per thread on
    the GPU); ``op.merge(acc, m, acc_p, m_p, j)`` merges a chunk's
    state of ``m_p`` rows into the total of ``m`` rows, in chunk order (deterministic);
    ``op.final(acc, n, params, j)`` turns the sums into the statistics. ``push`` loops along
    the columns of a row through 1-D views (contiguous in memory): it vectorises.
    """
    push, merge, final = op.push, op.merge, op.final

    def kernel(x, y, aux, params, parts, acc):
        n, c = x.shape
        chunks = parts.shape[0]
        size = (n + chunks - 1) // chunks
        for p in prange(chunks):
            acc_p = parts[p]
            acc_p[:] = 0.0
            k = 0
            for r in range(p * size, min(n, (p + 1) * size)):
                k += 1
                push(acc_p, x, y, aux, params, r, k, 0, c)
        acc[:] = 0.0
        m = 0
        for p in range(chunks):
            m_p = max(0, min(n, (p + 1) * size) - p * size)
            if m_p > 0:
                for j in range(c):
                    merge(acc, m, parts[p], m_p, j)
                m += m_p
        for j in range(c):
            final(acc, n, params, j)

    return cpu_kernel(kernel)


@functools.cache
def cols_emit(op):
    """``out[r, j], out2[r, j] = op.emit(x, y, w, b, acc, params, r, j)`` from column statistics."""
    emit = op.emit

    def kernel(x, y, w, b, acc, params, out, out2):
        n, c = x.shape
        for r in prange(n):
            for j in range(c):
                v, v2 = emit(x, y, w, b, acc, params, r, j)
                if out is not None:
                    out[r, j] = v
                if out2 is not None:
                    out2[r, j] = v2

    return cpu_kernel(kernel)


def col_chunks(n: int, c: int, k: int) -> int:
    """Row chunks of a column reduction: up to 32 (one per thread and more, for balance),
    fewer when the partial states (chunks x k x c float64) would pass 64 MB. A function of
    the shape only, so results do not depend on the number of threads."""
    return max(1, min(n, 32, (8 << 20) // max(1, k * c)))


def run_unary(f, x, params, out, gout):
    unary(f)(x.size, x, params, out, gout)


def run_rows(op, x, y, w, b, params, out, stats):
    if x.size:
        rows(op)(x.size, x, y, w, b, params, out, stats)


def run_cols(op, x, y, aux, w, b, params, out, out2):
    """Column statistics (op.size, c) of (n, c) data, then the elementwise pass (if any
    output is asked); returns the statistics."""
    n, c = x.shape
    chunks = col_chunks(n, c, op.size)
    parts = np.empty((chunks, op.size, c))
    acc = np.empty((op.size, c))
    cols_reduce(op)(x.size, x, y, aux, params, parts, acc)
    if out is not None or out2 is not None:
        cols_emit(op)(x.size, x, y, w, b, acc, params, out, out2)
    return acc


def empty(shape, dtype):
    return np.empty(shape, dtype)


def zeros(shape, dtype):
    return np.zeros(shape, dtype)


def launch(pattern, fg, a, b, params, mult, out, gout, want_total):
    """Run ``pattern``'s kernel for ``fg``; return the partial sum (or None)."""
    total = np.zeros(1) if want_total else None
    TEMPLATES[pattern](fg)(b.size, a, b, params, mult, out, gout, total)
    return total


def finish(total, scale, fin, dtype):
    """Finalise a partial: ``fin(total * scale) -> (value, d value / d(total * scale))``."""
    value, d = fin(total[0] * scale)
    return dtype.type(value), d


def rescale(gout, d):
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as autograd gives
        gout *= d


is_host = True


def as_device_array(x):
    return x


def flat(x, dtype):
    """A C-contiguous 1-D view of ``x`` in ``dtype`` (a copy only when needed)."""
    return np.ascontiguousarray(x, dtype=dtype).reshape(-1)


def is_c_contiguous(x):
    return x.flags.c_contiguous
