"""The one call pipeline every public function runs, and the dispatcher inside it.

``call(spec, args, kwargs)``: bind the arguments (:meth:`Formula.bind`) -> validate the
hyper-parameters (:meth:`Formula.validate`), the dtypes and the shapes, all BEFORE any
kernel runs -> place the arrays on their device -> allocate the results (or check the
caller's ``out=``, and work in a scratch array when it overlaps an input the kernel
cannot alias) -> launch (the formula's template, ``templates.py``) -> return the caller's
kind of array (its ``out=`` object itself when given). The common host call (positional
NumPy float arrays of one dtype, :func:`host_call`) takes the same steps in fewer Python
operations: nothing to place or convert, and a map's or a sum's kernel called at once.

* Device: arrays exposing ``__cuda_array_interface__`` (CuPy, PyTorch CUDA, Numba device
  arrays) and the CUDA simulator's device arrays run on the GPU, with no host copy;
  everything else goes through ``numpy.asarray`` and runs on the CPU. Mixing the two raises
  :class:`DeviceMismatchError` naming the arguments.
* dtype: float32 stays float32, float64 stays float64, a mix promotes to float64; integer
  and bool inputs are computed in float64; anything else is a ``TypeError``.
* Results come back as the caller's kind of array (the first array argument's kind).

The GPU backend (``gpu``) is imported only when a device array is seen, so
``import mlkernels`` never imports ``numba.cuda``.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

from mlkernels._core import cpu as _cpu


class DeviceMismatchError(ValueError):
    """Host (NumPy) and device (CUDA) arrays were mixed in one call."""


def on_gpu(x: Any) -> bool:
    """True for CUDA arrays (``__cuda_array_interface__``) and simulator device arrays."""
    if type(x) is np.ndarray:  # the common case, without two failing attribute lookups
        return False
    return hasattr(x, "__cuda_array_interface__") or bool(getattr(x, "__cuda_ndarray__", False))


def gpu_backend() -> ModuleType:
    from mlkernels._core import gpu

    return gpu


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


class Job:
    """One call on its way through the pipeline: the placed arrays, the dtype, the
    parameters and the caller's ``out=``; templates ask it for their results."""

    __slots__ = (
        "spec",
        "arguments",
        "params",
        "backend",
        "arrays",
        "dtype",
        "out",
        "like",
        "_outs",
    )

    def __init__(self, spec: Any, arguments: dict[str, Any], params: tuple) -> None:
        self.spec, self.arguments, self.params = spec, arguments, params
        self.out = arguments.get("out")
        self._outs = None
        roles = spec.arrays
        named = {n: arguments[n] for n in roles}
        self.like = first = arguments[next(iter(roles))]  # results come back as its kind
        host = type(first) is np.ndarray and first.dtype.char in "fd" and first.dtype.isnative
        if host and spec.n_arrays == len(roles):  # (class indices are never float arrays)
            dt = first.dtype
            for a in named.values():  # the common case: C-contiguous host floats of one
                if type(a) is not np.ndarray or a.dtype is not dt or not a.flags.c_contiguous:
                    break  # dtype: nothing to place, look up or convert
            else:
                self.backend, self.arrays, self.dtype = _cpu, named, dt
                return
        self.backend, self.arrays = place(named)
        reals = {n: a for n, a in self.arrays.items() if roles[n] in ("data", "feature")}
        self.dtype = real_dtype(reals)
        for name, a in self.arrays.items():
            if roles[name] in ("label", "index"):
                check_labels({name: a}, "iub" if roles[name] == "index" else "fiub")

    @classmethod
    def host(cls, spec: Any, arrays: tuple, params: tuple, out: Any, arguments: dict) -> Job:
        """The job of a :func:`host_call`: its arrays already checked, nothing to place."""
        job = cls.__new__(cls)
        job.spec, job.params, job.backend, job.out, job._outs = spec, params, _cpu, out, None
        job.arrays = dict(zip(spec.arrays, arrays, strict=True))
        job.like, job.dtype = arrays[0], arrays[0].dtype
        job.arguments = arguments  # the keyword arguments over the defaults
        return job

    def result(
        self, shape: tuple, inputs: tuple = (), *, use_out: bool = True, dtype: Any = None
    ) -> tuple[Any, Any]:
        """``(result, work)``: the array the caller gets (its ``out=``, checked, when
        ``use_out``) and the one the kernel writes. They differ when ``out=`` overlaps one
        of the kernel's ``inputs`` in a way the template cannot alias (NumPy's ufuncs buffer
        such calls too); :meth:`settle` copies ``work`` into the result."""
        backend, dtype = self.backend, dtype or self.dtype
        if not use_out or self.out is None:
            res = backend.empty(shape, dtype)
            return res, res
        res = check_out(backend, self.out, shape, dtype)
        safe = self.spec.template.alias_safe
        for a in inputs:
            if a is None:
                continue
            kind = backend.overlap(res, a)
            if kind == "partial" or (kind == "same" and not safe):
                work = backend.empty(shape, dtype)
                self._outs = [*(self._outs or ()), (res, work)]
                return res, work
        return res, res

    def settle(self) -> None:
        """Copy the results computed in scratch arrays into the caller's ``out=``."""
        for res, work in self._outs or ():
            if self.backend.is_host:
                res[...] = work
            else:
                copy_device(work, res)
        self._outs = None

    def give(self, result: Any) -> Any:
        """What the caller gets: device results as the caller's kind of array, its own
        ``out=`` object where a result is that array."""
        if self._outs:
            self.settle()
        if self.backend.is_host:
            return result
        return self._give(result)

    def _give(self, r: Any) -> Any:
        if isinstance(r, tuple):
            return tuple(self._give(x) for x in r)
        if r is None:
            return None
        if self.out is not None and getattr(r, "__cuda_array_interface__", None) is not None:
            mine = self.backend.as_device_array(self.out)
            if mine is r or (self.backend.overlap(mine, r) == "same"):
                return self.out
        return wrap(r, self.like)


def copy_device(src: Any, dst: Any) -> None:
    """``dst[...] = src`` for two device arrays of one shape (C-contiguous)."""
    dst.copy_to_device(src)


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)  # NumPy's native float dtypes


def host_call(spec: Any, args: tuple, kwargs: dict) -> tuple | None:
    """The common call, in few steps: arrays by position, hyper-parameters by position or
    keyword-only (``reduction=``, ``seed=``) or left to their defaults, ``out=``; every
    array argument a C-contiguous NumPy float32 or float64 array of one dtype. Returns
    ``(arrays, params, out, arguments)`` (the hyper-parameters validated; ``arguments``
    the keyword ones over the defaults), or None: the general path takes the call (and
    gives its errors)."""
    n = spec.n_arrays
    if len(args) < n or (kwargs and not spec.host_keywords.issuperset(kwargs)):
        return None
    dt = getattr(args[0], "dtype", None)
    if dt is not _F64 and dt is not _F32:
        return None
    for a in args[:n]:
        if type(a) is not np.ndarray or a.dtype is not dt or not a.flags.c_contiguous:
            return None
    if not kwargs:
        if len(args) == n and spec.no_hyper:
            return args[:n], (0.0,), None, spec.defaults
        params = spec.validate_positional(args[n:], spec.defaults)
        return None if params is None else (args[:n], params, None, spec.defaults)
    arguments = {**spec.defaults, **kwargs}
    params = spec.validate_positional(args[n:], arguments)
    return None if params is None else (args[:n], params, arguments["out"], arguments)


def call(spec: Any, args: tuple, kwargs: dict) -> Any:
    """Run one call of a public formula through the pipeline (see the module docstring)."""
    arguments = None
    if spec.shortcut is not None:  # e.g. dropout(x, training=False) is x: no kernel, no check
        arguments = spec.bind(args, kwargs)
        done = spec.shortcut(arguments)
        if done is not None:
            return done
    host = host_call(spec, args, kwargs)
    if host is not None:
        done = spec.template.fast(spec, *host)
        if done is not None:
            return done
    if arguments is None:
        arguments = spec.bind(args, kwargs)
    params = spec.validate(arguments)
    return spec.template.run(Job(spec, arguments, params))
