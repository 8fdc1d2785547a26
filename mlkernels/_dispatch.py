"""The one dispatcher: where the data lives, what dtype to compute in, what to return.

* Device: arrays exposing ``__cuda_array_interface__`` (CuPy, PyTorch CUDA, Numba device
  arrays) and the CUDA simulator's device arrays run on the GPU, with no host copy;
  everything else goes through ``numpy.asarray`` and runs on the CPU. Mixing the two raises
  :class:`DeviceMismatchError` naming the arguments.
* dtype: float32 stays float32, float64 stays float64, a mix promotes to float64; integer
  and bool inputs are computed in float64; anything else is a ``TypeError``.
* Results come back as the caller's kind of array (the first array argument's kind).

The GPU backend (``_gpu``) is imported only when a device array is seen, so
``import mlkernels`` never imports ``numba.cuda``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from mlkernels import _cpu
from mlkernels._math import identity

REDUCTIONS = ("mean", "sum", "none")


class RowOp(NamedTuple):
    """A row-wise operation for the ``rows`` templates (see ``_cpu.rows``): ``part``
    reduces (part of) a row to a state of 5 float64, ``merge`` merges two parts' states
    (on the GPU a row is split over a block), ``emit`` writes the row's results."""

    part: Callable
    merge: Callable
    emit: Callable


class ColOp(NamedTuple):
    """A column operation for the ``cols_*`` templates (see ``_cpu.cols_reduce``): ``size``
    float64 statistics per column, built by ``push``, ``merge`` and ``final``; ``emit``
    writes the elementwise results from them."""

    size: int
    push: Callable
    merge: Callable
    final: Callable
    emit: Callable


class DeviceMismatchError(ValueError):
    """Host (NumPy) and device (CUDA) arrays were mixed in one call."""


def on_gpu(x: Any) -> bool:
    """True for CUDA arrays (``__cuda_array_interface__``) and simulator device arrays."""
    if type(x) is np.ndarray:  # the common case, without two failing attribute lookups
        return False
    return hasattr(x, "__cuda_array_interface__") or bool(getattr(x, "__cuda_ndarray__", False))


def gpu_backend() -> ModuleType:
    from mlkernels import _gpu

    return _gpu


def place(named: dict[str, Any]) -> tuple[ModuleType, dict[str, Any]]:
    """Pick the backend from where the arrays live and view each one as its array type."""
    if all(type(x) is np.ndarray for x in named.values()):
        return _cpu, named  # the common case: nothing to look up or convert
    gpu = [name for name, x in named.items() if on_gpu(x)]
    if not gpu:
        return _cpu, {name: np.asarray(x) for name, x in named.items()}
    host = [name for name in named if name not in gpu]
    if host:
        raise DeviceMismatchError(
            f"{', '.join(gpu)} on the GPU but {', '.join(host)} on the host: move them to "
            "one device (mlkernels copies nothing between host and device)"
        )
    backend = gpu_backend()
    return backend, {name: backend.as_device_array(x) for name, x in named.items()}


def _kind_error(name: str, dtype: np.dtype) -> TypeError:
    return TypeError(f"{name} has dtype {dtype}, which mlkernels does not compute with")


def real_dtype(named: dict[str, Any]) -> np.dtype:
    """The dtype to compute in for real-valued arguments (float32 only if all are)."""
    rest = iter(named.values())
    first = np.dtype(next(rest).dtype)
    if first.char in "fd" and first.isnative:  # the common case, checked cheaply (NumPy's
        for x in rest:  # float dtypes are singletons)
            if x.dtype is not first:
                break
        else:
            return first
    dtypes = []
    for name, x in named.items():
        dt = np.dtype(x.dtype)
        if dt.kind in "iub":
            dt = np.dtype(np.float64)
        elif dt not in (np.float32, np.float64):
            raise _kind_error(name, dt)
        dtypes.append(dt)
    return np.result_type(*dtypes)


def check_labels(named: dict[str, Any], kinds: str = "fiub") -> None:
    for name, x in named.items():
        dt = np.dtype(x.dtype)
        if dt.kind not in kinds or dt == np.float16:
            raise _kind_error(name, dt)


def same_shape(a_name: str, a: Any, b_name: str, b: Any) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{a_name} has shape {tuple(a.shape)} but {b_name} has shape {tuple(b.shape)}; "
            "they must be equal (no broadcasting)"
        )


def check_out(backend: ModuleType, out: Any, shape: tuple, dtype: np.dtype) -> Any:
    """Validate a user's ``out=`` array and return it as the backend's array type."""
    if (backend is _cpu) == on_gpu(out):
        raise DeviceMismatchError("out= must live on the same device as the inputs")
    arr = backend.as_device_array(out)
    if not isinstance(arr, np.ndarray) and backend is _cpu:
        raise TypeError(f"out= must be a numpy.ndarray, not {type(out).__name__}")
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"out= has shape {tuple(arr.shape)}, expected {tuple(shape)}")
    if np.dtype(arr.dtype) != dtype:
        raise TypeError(f"out= has dtype {arr.dtype}, expected {dtype}")
    if not backend.is_c_contiguous(arr) or (backend is _cpu and not arr.flags.writeable):
        raise ValueError("out= must be a writeable C-contiguous array")
    return arr


def wrap(result: Any, like: Any) -> Any:
    """Return a device result as the same kind of array as ``like`` (CuPy, torch, Numba)."""
    module = type(like).__module__.split(".")[0]
    if module == "cupy":
        return sys.modules["cupy"].asarray(result)
    if module == "torch":
        return sys.modules["torch"].as_tensor(result, device=like.device)
    return result


def real_numbers(named: dict[str, Any]) -> dict[str, float]:
    """Hyper-parameters as finite Python floats (TypeError / ValueError naming them)."""
    values = {}
    for name, v in named.items():
        if type(v) is float and math.isfinite(v):  # the common case, checked cheaply
            values[name] = v
            continue
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a real number, not {type(v).__name__}")
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, not {v}")
        values[name] = float(v)
    return values


def nonnegative(named: dict[str, Any]) -> tuple[float, ...]:
    """Finite, non-negative hyper-parameters as a float tuple (for the kernels' params)."""
    values = real_numbers(named)
    for name, v in values.items():
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    return tuple(values.values())


def _result(backend: ModuleType, out: Any, shape: tuple, dtype: np.dtype) -> Any:
    if out is None:
        return backend.empty(shape, dtype)
    return check_out(backend, out, shape, dtype)


def scratch(backend: ModuleType, res: Any, out: Any, *inputs: Any) -> Any:
    """Where a kernel writes ``res``: ``res`` itself, or a new array when the caller's
    ``out=`` shares memory with an input (host arrays), as NumPy's ufuncs buffer such
    calls: the kernel would read values it already overwrote, or take a slower loop that
    sums in another order. :func:`settle` copies it into ``res`` afterwards."""
    if out is not None and backend.is_host:
        if any(a is not None and np.may_share_memory(res, a) for a in inputs):
            return backend.empty(tuple(res.shape), res.dtype)
    return res


def settle(res: Any, work: Any) -> None:
    """Copy the kernel's result into the caller's ``out=`` if it went elsewhere."""
    if work is not res:
        res[...] = work


def give(backend: ModuleType, result: Any, out: Any, like: Any) -> Any:
    """What the caller gets: its own ``out=`` object, or the result as its kind of array."""
    if out is not None:
        return out
    return result if backend.is_host else wrap(result, like)


def host_float(x: Any) -> np.ndarray | None:
    """``x`` itself when it is a C-contiguous NumPy float32 or float64 array, else None:
    the common case, for which a small call skips placing, dtype resolution and copies
    (each a few hundred nanoseconds that NumPy's own formula does not pay)."""
    if type(x) is np.ndarray:
        dt = x.dtype
        if dt.char in "fd" and dt.isnative and x.flags.c_contiguous:
            return x
    return None


def map_unary(f: Callable, want: str, x: Any, params: tuple, out: Any = None) -> Any:
    """``f(x, i, params) -> (value, derivative)`` over every element of ``x``, any shape;
    returns the values (``want="value"``) or the derivatives (``"grad"``)."""
    xa = host_float(x) if out is None else None
    if xa is not None:  # the fast path: a new result of x's dtype and shape
        res = np.empty(xa.shape, xa.dtype)
        flat = res.reshape(-1)
        value, grad = (flat, None) if want == "value" else (None, flat)
        _cpu.run_unary(f, xa.reshape(-1), params or (0.0,), value, grad)
        return res
    backend, arrs = place({"x": x})
    xa = arrs["x"]
    dtype = real_dtype(arrs)
    res = _result(backend, out, tuple(xa.shape), dtype)
    flat_x = backend.flat(xa, dtype)
    work = scratch(backend, res, out, flat_x)
    flat_res = work.reshape(work.size)
    value, grad = (flat_res, None) if want == "value" else (None, flat_res)
    backend.run_unary(f, flat_x, params or (0.0,), value, grad)
    settle(res, work)
    return give(backend, res, out, x)


def _features(named: dict[str, Any], shape: tuple, what: str) -> None:
    for name, a in named.items():
        if a is not None and tuple(a.shape) != shape:
            raise ValueError(
                f"{name} has shape {tuple(a.shape)}; it must have shape {shape} ({what})"
            )


def _as_2d(
    x: tuple[str, Any],
    y: tuple[str, Any] | None,
    w: tuple[str, Any] | None,
    b: tuple[str, Any] | None,
    axis: int,
) -> tuple:
    """Place ``(name, array)`` pairs and view them as the templates see them.

    ``x`` (and ``y``, of its shape) as (n, c): rows along the last axis (``axis=-1``:
    c is the last axis) or columns along the first (``axis=0``: n is the first axis); ``w``
    and ``b`` as flat (c,) arrays, which must have the shape of the features. Returns ``(backend,
    dtype, shape of x, x2, y2, w1, b1)``, absent pairs as None.
    """
    backend, arrs = place(dict(p for p in (x, y, w, b) if p is not None))
    dtype = real_dtype(arrs)
    xa = arrs[x[0]]
    if xa.ndim == 0:
        raise ValueError(f"{x[0]} must have at least one dimension (the one reduced)")
    shape = tuple(xa.shape)
    feats = shape[-1:] if axis == -1 else shape[1:]
    c = math.prod(feats)
    n = math.prod(shape[:-1]) if axis == -1 else shape[0]
    if y is not None:
        same_shape(x[0], xa, y[0], arrs[y[0]])
    what = f"the last axis of {x[0]}" if axis == -1 else f"the shape of {x[0]} without axis 0"
    _features({p[0]: arrs[p[0]] for p in (w, b) if p is not None}, feats, what)

    def as2d(pair):
        return None if pair is None else backend.flat(arrs[pair[0]], dtype).reshape(n, c)

    def as1d(pair):
        return None if pair is None else backend.flat(arrs[pair[0]], dtype)

    return backend, dtype, shape, as2d(x), as2d(y), as1d(w), as1d(b)


def map_rows(
    op: Any,
    x: tuple[str, Any],
    y: tuple[str, Any] | None,
    w: tuple[str, Any] | None,
    b: tuple[str, Any] | None,
    params: tuple,
    out: Any = None,
    stats: bool = False,
) -> Any:
    """A row-wise operation along the last axis of ``x`` (see ``_cpu.rows``).

    Arguments are ``(name, array)`` pairs: ``y`` has the shape of ``x``, ``w`` and ``b``
    the shape of its last axis. Returns the result of ``x``'s shape, and with
    ``stats=True`` also the (rows, 2) float64 per-row statistics (on the device) and the
    (rows, c) views of ``x`` and ``y`` the kernel read, in the dtype it computed in.
    """
    backend, dtype, shape, x2, y2, w1, b1 = _as_2d(x, y, w, b, axis=-1)
    res = _result(backend, out, shape, dtype)
    work = scratch(backend, res, out, x2, y2, w1, b1)
    st = backend.empty((x2.shape[0], 2), np.dtype(np.float64)) if stats else None
    backend.run_rows(op, x2, y2, w1, b1, params, work.reshape(x2.shape), st)
    settle(res, work)
    result = give(backend, res, out, x[1])
    return (result, st, x2, y2) if stats else result


def map_cols(
    op: Any,
    x: tuple[str, Any],
    y: tuple[str, Any] | None = None,
    w: tuple[str, Any] | None = None,
    b: tuple[str, Any] | None = None,
    params: tuple = (0.0,),
    outputs: int = 1,
    out: Any = None,
    aux: Any = None,
) -> tuple:
    """A column operation along axis 0 of ``x`` (see ``_cpu.cols_reduce``).

    ``y`` has the shape of ``x``, ``w`` and ``b`` the shape ``x.shape[1:]`` (the columns);
    ``aux`` is passed to the reduction as it is. ``outputs`` (0, 1 or 2) arrays of ``x``'s
    shape are written by the elementwise pass, the first into ``out=`` if given. Returns
    ``(first output, second output, statistics (op.size, c) float64, backend, dtype)``.
    """
    backend, dtype, shape, x2, y2, w1, b1 = _as_2d(x, y, w, b, axis=0)
    res = [_result(backend, out if i == 0 else None, shape, dtype) for i in range(outputs)]
    work = list(res)  # out= is the first output, if any: that one may overlap an input
    if outputs:
        work[0] = scratch(backend, res[0], out, x2, y2, aux, w1, b1)
    k_out = [r.reshape(x2.shape) for r in work] + [None] * (2 - outputs)
    acc = backend.run_cols(op, x2, y2, aux, w1, b1, params, k_out[0], k_out[1])
    for r, wk in zip(res, work, strict=True):
        settle(r, wk)
    res = [give(backend, r, out if i == 0 else None, x[1]) for i, r in enumerate(res)]
    res += [None] * (2 - outputs)
    return res[0], res[1], acc, backend, dtype


def run_terms(
    backend: ModuleType,
    pattern: str,
    fg: Callable,
    fin: Callable,
    a: Any,
    b: Any,
    params: tuple,
    reduction: str,
    want: str,
    dtype: np.dtype,
    value_shape: tuple,
    grad_shape: tuple,
    vbuf: Any = None,
    gbuf: Any = None,
) -> Any:
    """Run a term kernel and reduce it: the orchestration every reduction shares.

    ``want`` is "value", "grad" or "both". ``value_shape`` is the shape of the per-term
    values (what ``reduction="none"`` returns), ``grad_shape`` that of the prediction;
    ``vbuf`` and ``gbuf`` are the caller's buffers for them (``out=``), if any.
    Reduced values are ``fin(sum * scale)`` with scale 1/n for a mean; the gradient is
    written in the same pass, times ``scale``, and rescaled by ``fin``'s derivative when
    ``fin`` is not the identity (rmse).
    """
    n = math.prod(value_shape)
    # the kernels see the prediction as b: flat (N,) or rows (n, C, R) with values (n, R)
    k_value = b.shape if b.ndim == 1 else (b.shape[0], b.shape[2])
    gout = kgout = gwork = None
    if want != "value":
        gout = gbuf if gbuf is not None else backend.empty(grad_shape, dtype)
        gwork = scratch(backend, gout, gbuf, a, b)
        kgout = gwork.reshape(b.shape)
    if reduction == "none":
        vout = kvout = vwork = None
        if want != "grad":
            vout = vbuf if vbuf is not None else backend.empty(value_shape, dtype)
            vwork = scratch(backend, vout, vbuf, a, b)
            kvout = vwork.reshape(k_value)
        backend.launch(pattern, fg, a, b, params, dtype.type(1), kvout, kgout, False)
        if vout is not None:
            settle(vout, vwork)
        if gout is not None:
            settle(gout, gwork)
        return _wanted(want, vout, gout)
    if n == 0:
        raise ValueError(f"reduction={reduction!r} of an empty input")
    scale = 1.0 / n if reduction == "mean" else 1.0
    mult = dtype.type(scale)
    if want == "grad" and fin is identity:
        backend.launch(pattern, fg, a, b, params, mult, None, kgout, False)
        settle(gout, gwork)
        return gout
    total = backend.launch(pattern, fg, a, b, params, mult, None, kgout, True)
    value, d = backend.finish(total, scale, fin, dtype)
    if gout is not None:
        if fin is not identity:
            backend.rescale(gwork, d)
        settle(gout, gwork)
    return _wanted(want, value, gout)


def _wanted(want: str, value: Any, grad: Any) -> Any:
    if want == "value":
        return value
    return grad if want == "grad" else (value, grad)
