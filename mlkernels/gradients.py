"""Gradient tools: clipping, per-layer norms and statistics, numerical gradients.

* ``clip_by_value`` maps ``clip`` (NaN stays NaN, as ``numpy.clip``).
* ``clip_by_global_norm``, ``layer_grad_norms`` and ``gradient_stats`` run over a LIST (or
  dict) of arrays in ONE launch of the ``Foreach`` template: per-array sums (and maxima)
  in float64, each array's chunks added in order (deterministic whatever the number of
  threads); the clip's factor is computed on the device and scales every array in one
  more launch, with no host round-trip on the GPU.
* ``numerical_gradient`` evaluates the formula's central differences; a Numba-compiled
  ``f`` has its 2n evaluations spread over the CPU threads, each thread with its own copy
  of ``x``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import float64, prange
from numba.extending import register_jitable

from mlkernels._bench import data
from mlkernels._core import pipeline
from mlkernels._core.scalar import clip
from mlkernels._core.spec import NONNEGATIVE, REAL, formula
from mlkernels._core.templates import Foreach, Map
from mlkernels._core.vmath import like

__all__ = [
    "clip_by_global_norm",
    "clip_by_value",
    "grad_check",
    "gradient_stats",
    "layer_grad_norms",
    "numerical_gradient",
]


# --------------------------------------------------------------------------------------
# The scalar functions
# --------------------------------------------------------------------------------------


@register_jitable
def _clip_value(g, params):
    return (clip(g, like(g, params[0]), like(g, params[1])),)


@register_jitable
def _square(g, s, params):
    x = float64(g)
    return (x * x,)


@register_jitable
def _moments(g, s, params):
    x = float64(g)
    return x, x * x, abs(x)


@register_jitable
def _scale(g, s, params):
    return (g * like(g, s),)


#: Σ g² per array (the global norm; the optimisers' ``max_grad_norm``).
SQUARES = Foreach(_square, ("grads",), kinds=("sum",))
#: Σ g, Σ g², max |g| per array (gradient_stats).
MOMENTS = Foreach(_moments, ("grads",), kinds=("sum", "sum", "max"))
#: g * s into new arrays, or in place.
SCALED = Foreach(_scale, ("grads",), ("out",))
SCALED_IN_PLACE = Foreach(_scale, ("grads",), ("grads",))


# --------------------------------------------------------------------------------------
# clip_by_value
# --------------------------------------------------------------------------------------


def _bounds(min_val: float, max_val: float) -> tuple[float, float]:
    if min_val > max_val:
        raise ValueError(f"min_val must be <= max_val, got {min_val} > {max_val}")
    return (min_val, max_val)


@formula(
    Map(_clip_value, 0, results=1),
    family="gradients",
    data=data.normal,
    hyper={"min_val": REAL, "max_val": REAL},
    params=_bounds,
)
def clip_by_value(grad, min_val=-1.0, max_val=1.0, *, out=None):
    """Clip every element into ``[min_val, max_val]`` (``numpy.clip``; NaN stays NaN).
    ``out=`` may be ``grad`` itself (clip in place)."""


# --------------------------------------------------------------------------------------
# Over a list (or dict) of arrays: one launch
# --------------------------------------------------------------------------------------


def _arrays(grads: Any, what: str) -> list:
    if isinstance(grads, np.ndarray) or pipeline.on_gpu(grads):
        raise TypeError(f"{what} takes a list of arrays (one array: [g])")
    return list(grads)


def _placed(gs: list, inplace: bool = False) -> tuple[Any, list, np.dtype]:
    """The arrays on their device as the backend's, C-contiguous (copied where they were
    not; ``inplace``: a ``ValueError`` instead; flat views on the GPU), of one float dtype
    (else ``TypeError``)."""
    backend, placed = pipeline.place({f"grads[{i}]": g for i, g in enumerate(gs)})
    dtype = np.dtype(placed["grads[0]"].dtype)
    for (key, a), given in zip(placed.items(), gs, strict=True):
        if np.dtype(a.dtype) not in (np.float32, np.float64) or a.dtype != dtype:
            raise TypeError(
                f"{key} has dtype {a.dtype}: the arrays must all be float32 or all float64"
            )
        if inplace:
            writeable = not backend.is_host or a.flags.writeable
            if not backend.is_c_contiguous(a) or not writeable:
                raise ValueError(
                    f"{key} must be a writeable C-contiguous array to be clipped in place"
                )
            if backend.is_host and not isinstance(given, np.ndarray):
                if not np.shares_memory(a, given):
                    raise TypeError(f"{key} must be an array to be clipped in place")
    if backend.is_host:  # (no reshaped views: the kernels need the size and the layout)
        arrays = [a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in placed.values()]
        return backend, arrays, dtype
    return backend, [backend.flat(a, dtype) for a in placed.values()], dtype


def clip_by_global_norm(grads, max_norm=1.0, *, inplace=False):
    """Rescale a list of gradients so that their global norm is at most ``max_norm``:
    ``g * min(1, max_norm / (‖g‖ + 1e-6))``, ``‖g‖ = sqrt(Σ over every array of Σ g²)``.

    Returns ``(clipped, norm)`` as the formula: a list of new arrays (on the CPU views of
    one block, which is faster to allocate and fill; the arrays themselves, scaled in
    place, with ``inplace=True``) and the norm before clipping (a
    NumPy scalar of the data's dtype; a 0-d array on the GPU, left there). The squares are
    summed in float64 in one launch over every array (each array's chunks in order:
    deterministic), the factor is computed on the device, and one more launch scales every
    array. A NaN norm leaves the gradients as they are (the formula's Python ``min(1.0,
    nan)`` is 1; ``torch.nn.utils.clip_grad_norm_`` would make them NaN). ``max_norm >= 0``.
    """
    max_norm = NONNEGATIVE("max_norm", max_norm)
    gs = _arrays(grads, "clip_by_global_norm")
    if not gs:
        return [], np.float64(0.0)
    backend, arrays, dtype = _placed(gs, inplace)
    if backend.is_host:
        return _clip(backend, gs, arrays, dtype, max_norm, inplace)
    with backend.following(gs[0]):
        return _clip(backend, gs, arrays, dtype, max_norm, inplace)


def _clip(backend, gs, arrays, dtype, max_norm, inplace):
    totals = SQUARES.launch(backend, [arrays], ())
    norm, coef = backend.run_global_norm(totals, max_norm, dtype)
    if inplace:
        SCALED_IN_PLACE.launch(backend, [arrays], (), coef)
        return list(gs), norm if backend.is_host else pipeline.wrap(norm, gs[0])
    out = backend.empty_list([tuple(g.shape) for g in gs], dtype)
    SCALED.launch(backend, [arrays, out], (), coef)
    if backend.is_host:
        return out, norm
    return [pipeline.wrap(o, gs[0]) for o in out], pipeline.wrap(norm, gs[0])


def layer_grad_norms(grads):
    """``{name: ‖g‖₂}`` for a dict of gradients (``numpy.linalg.norm`` of each, flattened),
    in one launch over every array: Σ g² in float64, each array's chunks in order. Values
    are NumPy scalars of the data's dtype; on the GPU, 0-d arrays of the caller's kind
    (from one (n,) array of norms left on the device)."""
    names = list(grads)
    if not names:
        return {}
    backend, arrays, dtype = _placed([grads[n] for n in names])
    if backend.is_host:
        return dict(zip(names, _norms(backend, arrays, dtype), strict=True))
    first = grads[names[0]]
    with backend.following(first):
        norms = pipeline.wrap(_norms(backend, arrays, dtype), first)
    return {n: norms[i] for i, n in enumerate(names)}


def _norms(backend, arrays, dtype):
    totals = SQUARES.launch(backend, [arrays], ())
    return backend.run_norms(totals, dtype)


def gradient_stats(grads, *, quiet=False):
    """For a dict of gradients, print a line per array as the formula (name, mean, std,
    max |g|) and return the figures, ``{name: {"mean", "std", "max"}}`` (Python floats).

    One launch over every array sums g and g² in float64 and takes max |g| (NaN
    propagates); ``std = sqrt(Σg²/n - mean²)`` (biased, as ``numpy.std``), clamped at 0:
    exact to about 1e-16 (mean/std)² relative, so a gradient whose mean is 10^6 times its
    spread loses digits. On the GPU the figures are copied to the host (a
    synchronisation: they are printed). ``quiet=True`` prints nothing. An empty array:
    ``ValueError``."""
    names = list(grads)
    if not names:
        return {}
    for n in names:
        if math.prod(grads[n].shape) == 0:
            raise ValueError(f"gradient_stats: {n} is empty")
    backend, arrays, _ = _placed([grads[n] for n in names])
    if backend.is_host:
        totals = MOMENTS.launch(backend, [arrays], ())
    else:
        with backend.following(grads[names[0]]):
            totals = MOMENTS.launch(backend, [arrays], ()).copy_to_host()
    stats = {}
    for name, a, (s, ss, mx) in zip(names, arrays, totals.tolist(), strict=True):
        mean = s / a.size
        var = ss / a.size - mean * mean
        std = math.sqrt(var) if var > 0 else (var if var != var else 0.0)
        stats[name] = {"mean": mean, "std": std, "max": mx}
        if not quiet:
            print(f"{name:30s}  mean={mean:.2e}  std={std:.2e}  max={mx:.2e}")
    return stats


# --------------------------------------------------------------------------------------
# Numerical gradients
# --------------------------------------------------------------------------------------


@numba.njit(parallel=True, nogil=True)
def _central_differences(f, x, eps, grad, chunks):  # pragma: no cover - compiled
    n = x.size
    out = grad.reshape(n)
    size = (n + chunks - 1) // chunks
    for c in prange(chunks):
        own = x.copy()  # this thread's copy, in x's shape
        flat = own.reshape(n)
        for i in range(c * size, min(n, (c + 1) * size)):
            orig = flat[i]
            flat[i] = orig + eps
            fp = f(own)
            flat[i] = orig - eps
            fm = f(own)
            flat[i] = orig
            out[i] = (fp - fm) / (2 * eps)


def _compiled(f: Callable) -> bool:
    return isinstance(f, numba.core.registry.CPUDispatcher)


def numerical_gradient(f, x, eps=1e-5):
    """Central differences, the formula's: ``grad[i] = (f(x + eps e_i) - f(x - eps e_i)) /
    (2 eps)``, each perturbed element rounded to x's dtype as the formula writes it into
    ``x``; a new array of x's shape and dtype.

    A Numba-compiled ``f`` (``@numba.njit``) is evaluated at the 2n points in parallel on
    the CPU: each thread perturbs its own copy of ``x`` (``f`` must not keep it), and ``x``
    itself is never written. A Python ``f`` runs serially, as the formula: it is handed
    ``x`` itself, perturbed one element at a time, and ``x`` is restored exactly, even
    when ``f`` raises. ``x``: a host float array (numerical gradients run on the CPU).
    """
    eps = REAL("eps", eps)
    if eps == 0:
        raise ValueError("eps must not be 0")
    if pipeline.on_gpu(x):
        raise TypeError("numerical_gradient runs on the CPU: x must be a host array")
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        raise TypeError("x must be a float32 or float64 NumPy array (it is perturbed in place)")
    grad = np.zeros_like(x)
    if x.size == 0:
        return grad
    if _compiled(f):
        xc = np.ascontiguousarray(x)
        chunks = min(x.size, 4 * numba.get_num_threads())
        out = np.empty(x.shape, x.dtype)
        _central_differences(f, xc, eps, out, chunks)
        grad[...] = out
        return grad
    for idx in np.ndindex(x.shape):
        orig = x[idx]
        try:
            x[idx] = orig + eps
            fp = f(x)
            x[idx] = orig - eps
            fm = f(x)
        finally:
            x[idx] = orig
        grad[idx] = (fp - fm) / (2 * eps)
    return grad


def grad_check(f, grad_f, x, eps=1e-5, tol=1e-5, *, return_error=False):
    """Compare ``grad_f(x)`` with :func:`numerical_gradient`: the largest relative error
    ``|a - n| / (|a| + |n| + 1e-10)``; prints it as the formula ("PASS"/"FAIL" against
    ``tol``) and returns whether it is below ``tol`` (with ``return_error=True``:
    ``(ok, max_error)``)."""
    analytic = np.asarray(grad_f(x))
    numeric = numerical_gradient(f, x, eps)
    if analytic.shape != numeric.shape:
        raise ValueError(f"grad_f(x) has shape {analytic.shape} but x has {numeric.shape}")
    rel = np.abs(analytic - numeric) / (np.abs(analytic) + np.abs(numeric) + 1e-10)
    err = float(rel.max()) if rel.size else 0.0
    ok = bool(err < tol)
    print(f"Max relative error: {err:.2e} — {'PASS' if ok else 'FAIL'}")
    return (ok, err) if return_error else ok
