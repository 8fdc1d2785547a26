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
  reduction. Partials of chunks combine by addition; ``finish`` finalises them.

The same three templates, with the same signature, exist for the GPU in ``_gpu.py``.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import float64, prange

from mlkernels._jit import cpu_jit


@functools.cache
def elementwise(fg):
    """Terms ``fg(a[i], b[i])`` over two flat arrays of the same size."""

    def kernel(a, b, params, mult, out, gout, total):
        acc = 0.0
        for i in prange(a.size):
            v, g = fg(float64(a[i]), float64(b[i]), params)
            if out is not None:
                out[i] = v
            if gout is not None:
                gout[i] = g * mult
            if total is not None:
                acc += v
        if total is not None:
            total[0] = acc

    return cpu_jit(kernel)


@functools.cache
def rows_dense(fg):
    """Row terms ``sum_k fg(y[i, k, r], x[i, k, r])`` of (n, C, R) arrays; one per (i, r)."""

    def kernel(y, x, params, mult, out, gout, total):
        n, c, r = x.shape
        acc = 0.0
        for j in prange(n * r):
            i = j // r
            q = j - i * r
            s = 0.0
            for k in range(c):
                v, g = fg(float64(y[i, k, q]), float64(x[i, k, q]), params)
                s += v
                if gout is not None:
                    gout[i, k, q] = g * mult
            if out is not None:
                out[i, q] = s
            if total is not None:
                acc += s
        if total is not None:
            total[0] = acc

    return cpu_jit(kernel)


@functools.cache
def rows_index(fg):
    """Row terms of a one-hot label given by its index: ``fg(1, x[i, t[i, r], r])``.

    Only the target entry of each row is read for the value; the gradient row is zero
    except at the target. A target outside ``[-C, C)`` (checked before the launch on the
    CPU) gives NaN rather than an out-of-bounds read.
    """

    def kernel(t, x, params, mult, out, gout, total):
        n, c, r = x.shape
        acc = 0.0
        for j in prange(n * r):
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
            if total is not None:
                acc += v
        if total is not None:
            total[0] = acc

    return cpu_jit(kernel)


TEMPLATES = {"elementwise": elementwise, "rows_dense": rows_dense, "rows_index": rows_index}


def empty(shape, dtype):
    return np.empty(shape, dtype)


def launch(pattern, fg, a, b, params, mult, out, gout, want_total):
    """Run ``pattern``'s kernel for ``fg``; return the partial sum (or None)."""
    total = np.zeros(1) if want_total else None
    TEMPLATES[pattern](fg)(a, b, params, mult, out, gout, total)
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
