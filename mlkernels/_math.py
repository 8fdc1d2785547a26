"""Scalar helpers shared by every family, written once for both devices.

Plain functions marked ``register_jitable``: numba inlines them into ``@njit`` kernels and
``@cuda.jit`` kernels alike, and they run as plain Python in the CUDA simulator and on the
host. (``inline="always"`` would break typing inside ``@cuda.jit``; LLVM inlines small
helpers anyway.)

NaN must propagate: ``max(0, x)`` written as ``x if x > 0 else 0`` returns 0 for NaN, so
every comparison below is arranged so that NaN falls through to the branch that keeps it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload, register_jitable


@register_jitable
def pos(x):
    """max(0, x), NaN-preserving (as ``numpy.maximum``)."""
    return 0.0 if x <= 0 else x


@register_jitable
def clip(x, lo, hi):
    """min(max(x, lo), hi), NaN-preserving (as ``numpy.clip``)."""
    return lo if x < lo else (hi if x > hi else x)


@register_jitable
def inside(x, lo, hi):
    """1 where lo <= x <= hi, else 0: the derivative of ``clip`` (as ``torch.clamp``)."""
    return 1.0 if (x >= lo and x <= hi) else 0.0


@register_jitable
def sign(x):
    """-1, 0 or 1; NaN for NaN."""
    return 1.0 if x > 0 else (-1.0 if x < 0 else x * 0.0)


@register_jitable
def identity(t):
    """Finaliser of a plain sum or mean: value t, derivative 1."""
    return t, 1.0


@register_jitable
def sqrt_fin(t):
    """Finaliser of a root mean: value sqrt(t), derivative 1/(2 sqrt(t)) (0 at t = 0, NaN
    for NaN)."""
    r = math.sqrt(t)
    return r, (0.0 if r == 0 else 0.5 / r)


def as_elem(a, v):
    """``v`` in the dtype of the array ``a`` (float32 or float64)."""
    return a.dtype.type(v)


@overload(as_elem)
def _as_elem(a, v):
    if a.dtype == types.float32:
        return lambda a, v: np.float32(v)
    return lambda a, v: np.float64(v)
