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

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from mlkernels import _cpu
from mlkernels._math import identity

REDUCTIONS = ("mean", "sum", "none")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class DeviceMismatchError(ValueError):
    """Host (NumPy) and device (CUDA) arrays were mixed in one call."""


def on_gpu(x: Any) -> bool:
    """True for CUDA arrays (``__cuda_array_interface__``) and simulator device arrays."""
    return hasattr(x, "__cuda_array_interface__") or bool(getattr(x, "__cuda_ndarray__", False))


def gpu_backend() -> ModuleType:
    from mlkernels import _gpu

    return _gpu


def place(named: dict[str, Any]) -> tuple[ModuleType, dict[str, Any]]:
    """Pick the backend from where the arrays live and view each one as its array type."""
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
    first = np.dtype(next(iter(named.values())).dtype)
    if first in _FLOATS and all(x.dtype == first for x in named.values()):
        return first  # the common case, without np.result_type's cost
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
    n = int(np.prod(value_shape))
    # the kernels see the prediction as b: flat (N,) or rows (n, C, R) with values (n, R)
    k_value = b.shape if b.ndim == 1 else (b.shape[0], b.shape[2])
    gout = kgout = None
    if want != "value":
        gout = gbuf if gbuf is not None else backend.empty(grad_shape, dtype)
        kgout = gout.reshape(b.shape)
    if reduction == "none":
        vout = kvout = None
        if want != "grad":
            vout = vbuf if vbuf is not None else backend.empty(value_shape, dtype)
            kvout = vout.reshape(k_value)
        backend.launch(pattern, fg, a, b, params, dtype.type(1), kvout, kgout, False)
        return {"value": vout, "grad": gout, "both": (vout, gout)}[want]
    if n == 0:
        raise ValueError(f"reduction={reduction!r} of an empty input")
    scale = 1.0 / n if reduction == "mean" else 1.0
    mult = dtype.type(scale)
    if want == "grad" and fin is identity:
        backend.launch(pattern, fg, a, b, params, mult, None, kgout, False)
        return gout
    total = backend.launch(pattern, fg, a, b, params, mult, None, kgout, True)
    value, d = backend.finish(total, scale, fin, dtype)
    if gout is not None and fin is not identity:
        backend.rescale(gout, d)
    return {"value": value, "grad": gout, "both": (value, gout)}[want]
