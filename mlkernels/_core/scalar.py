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
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload, register_jitable


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
def as_is(x):
    """x itself: the element handed over in its own type (where ``float64`` would widen it)."""
    return x


@register_jitable
def identity(t):
    """Finaliser of a plain sum or mean: value t, derivative 1."""
    return t, 1.0


@register_jitable
def sqrt_final(t):
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


def maximum(a, b):
    """max(a, b) with NaN propagating (as ``numpy.maximum``), for two floats of one type.

    On the CPU it is LLVM's ``llvm.maximum``, which the loop vectoriser turns into SIMD
    max reductions (a compare-and-select cannot be vectorised without ``nnan``: a row max
    written that way ran 10x slower); elsewhere a select.
    """
    return a if (a > b or a != a) else b


@intrinsic
def _llvm_maximum(typingctx, a, b):
    def codegen(context, builder, sig, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.maximum", [ty], ir.FunctionType(ty, [ty, ty]))
        return builder.call(fn, args)

    return a(a, b), codegen


@overload(maximum, target="cpu")
def _maximum_cpu(a, b):
    return lambda a, b: _llvm_maximum(a, b)


@overload(maximum, target="cuda")
def _maximum_cuda(a, b):
    return lambda a, b: a if (a > b or a != a) else b


def cospi(x):
    """cos(π x). On the GPU it is libdevice's ``cospi``, whose argument reduction is exact
    and needs no local memory (``cos`` of a float64 keeps a Payne-Hanek reduction for large
    arguments on the stack); on the CPU ``cos(π x)``."""
    return math.cos(math.pi * x)


@overload(cospi, target="cpu")
def _cospi_cpu(x):
    return lambda x: math.cos(math.pi * x)


@overload(cospi, target="cuda")
def _cospi_cuda(x):
    from numba.cuda import libdevice

    if x == types.float32:
        return lambda x: libdevice.cospif(x)
    return lambda x: libdevice.cospi(x)
