"""Vectorisable transcendental functions for the CPU kernels (STUB: to be replaced).

Each function ``f`` below is, at once:
* plain Python (NumPy, errors ignored): what runs in the CUDA simulator and on the host;
* on the CPU target (``@njit``): a branch-free implementation (range reduction +
  polynomial), in the argument's own precision, that LLVM vectorises;
* on the CUDA target: CUDA's own ``math`` function.

``like(x, v)`` is the constant ``v`` in ``x``'s float type, so that scalar code written
once computes float32 data in float32 and float64 data in float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

__all__ = ["erf", "exp", "expm1", "like", "log", "log1p", "tanh"]


def like(x, v):
    """``v`` as a float of ``x``'s type (float32 for float32 ``x``, else float64)."""
    return x.dtype.type(v) if isinstance(x, np.floating) else float(v)


@overload(like)
def _like(x, v):
    if x == types.float32:
        return lambda x, v: np.float32(v)
    return lambda x, v: np.float64(v)


def _numpy(ufunc):
    def f(x):
        with np.errstate(all="ignore"):
            return ufunc(x)

    return f


exp = _numpy(np.exp)
expm1 = _numpy(np.expm1)
log = _numpy(np.log)
log1p = _numpy(np.log1p)
tanh = _numpy(np.tanh)


def erf(x):
    return math.erf(x)


def _register(f, libm):
    @overload(f, target="cpu")
    def _cpu(x):
        return lambda x: libm(x)

    @overload(f, target="cuda")
    def _cuda(x):
        return lambda x: libm(x)


for _f, _libm in [
    (exp, math.exp),
    (expm1, math.expm1),
    (log, math.log),
    (log1p, math.log1p),
    (tanh, math.tanh),
    (erf, math.erf),
]:
    _register(_f, _libm)
