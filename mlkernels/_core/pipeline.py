"""The one call pipeline every public function runs, and the dispatcher inside it.

``call(spec, args, kwargs)``: bind the arguments (:meth:`Formula.bind`) -> validate the
hyper-parameters (:meth:`Formula.validate`), the dtypes and the shapes, all BEFORE any
kernel runs -> place the arrays on their device -> allocate the results (or check the
caller's ``out=``, and work in a scratch array when it overlaps an input the kernel
cannot alias) -> launch (the formula's template, ``templates.py``) -> return the caller's
kind of array (its ``out=`` object itself when given).

The common host call (positional C-contiguous NumPy float arrays of one dtype) is first
offered to the formula's quick call (``template.quick``, read by :func:`quick_parser`):
the same checks and the same kernels in as few Python operations as it takes, one numba
dispatch for most formulas; anything it does not take (another device or dtype, an
overlapping ``out=``, a bad argument) comes here, which gives the errors.

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
from collections.abc import Callable
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
    """Return a device result as the same kind of array as ``like`` (CuPy, torch, Numba):
    the caller's library's own array when the result was allocated there (``gpu.owned``),
    else a view of it in that library."""
    mine = gpu_backend().owned(result)
    if mine is not None:
        return mine
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
        if host and spec.real_arrays:
            dt = first.dtype
            for a in named.values():  # the common case: C-contiguous host floats of one
                if type(a) is not np.ndarray or a.dtype is not dt or not a.flags.c_contiguous:
                    break  # dtype: nothing to place, look up or convert
            else:
                self.backend, self.arrays, self.dtype = _cpu, named, dt
                return
        self.backend, self.arrays = place(named)
        reals = {n: a for n, a in self.arrays.items() if roles[n] in ("data", "feature")}
        self.dtype = real_dtype(reals) if reals else _F64  # labels alone: float64 results
        for name, a in self.arrays.items():
            if roles[name] in ("label", "index"):
                check_labels({name: a}, "iub" if roles[name] == "index" else "fiub")

    @classmethod
    def host(cls, spec: Any, arrays: dict, params: tuple, out: Any, arguments: dict) -> Job:
        """The job of a quick call (:func:`quick_parser`): its arrays already checked,
        nothing to place."""
        job = cls.__new__(cls)
        job.spec, job.params, job.backend, job.out, job._outs = spec, params, _cpu, out, None
        job.arrays = arrays
        job.like = first = next(iter(arrays.values()))
        job.dtype = first.dtype
        roles = spec.arrays
        if roles[next(iter(arrays))] != "data":  # labels first (the metrics): the first
            reals = [a.dtype for n, a in arrays.items() if roles[n] in ("data", "feature")]
            job.dtype = reals[0] if reals else _F64  # real array's (float labels decide none)
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
                self.backend.copy(work, res)
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


# NumPy's native dtypes (singletons: compared with ``is``)
_F32, _F64, _I64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)


def quick_parser(spec: Any) -> Callable[[tuple, dict], tuple | None] | None:
    """The argument reader of a formula's quick call (see ``Formula.quick``), or None when
    the formula has none (its arrays do not lead the signature, or the first holds class
    indices).

    ``parse(args, kwargs)`` accepts the common host call: the arrays by position, each a
    C-contiguous NumPy float32 or float64 array of one dtype (class indices: int64);
    hyper-parameters by position or keyword-only (``reduction=``, ``seed=``) or left to
    their defaults; ``out=``. It returns ``(params, out, arguments)`` (the
    hyper-parameters validated; ``arguments`` the keyword ones over the defaults, never to
    be changed), or None: the general path takes the call (and gives its errors). No dict
    is built and nothing validated twice for a call that passes no hyper-parameter: the
    defaults' parameters are kept, unless a validator draws something (dropout's
    ``seed=None``). A shortcut (``Formula.shortcut``) is decided by the hyper-parameters,
    never taken at their defaults: it is looked for only when some are passed."""
    n = spec.n_arrays
    roles = list(spec.arrays.values())
    if n > len(roles):
        return None
    if roles[0] in ("label", "index"):
        return _labels_parser(spec, n, roles)
    index = tuple(role == "index" for role in roles)  # class indices: int64 arrays
    fixed = _fixed(spec)
    shortcut = spec.shortcut
    hypers = _hyper_reader(spec, n, fixed)

    def parse(args: tuple, kwargs: dict) -> tuple | None:
        if len(args) < n:
            return None
        x = args[0]
        if type(x) is not np.ndarray:
            return None
        dt = x.dtype
        if (dt is not _F64 and dt is not _F32) or not x.flags.c_contiguous:
            return None
        for k in range(1, n):
            a = args[k]
            if type(a) is not np.ndarray or not a.flags.c_contiguous:
                return None
            if a.dtype is not (_I64 if index[k] else dt):
                return None
        if shortcut is not None and (kwargs or len(args) > n):
            if shortcut(spec.bind(args, kwargs)) is not None:
                return None  # dropout(x, training=False): the general path gives x
        return hypers(args, kwargs)

    parse.fixed = fixed  # the parameters of a call that passes no hyper-parameter, if fixed
    return parse


def _fixed(spec: Any) -> tuple | None:
    """The parameters of a call that passes no hyper-parameter, kept for every such call;
    None when a validator draws (marked ``draws = True``: dropout's ``seed=None`` draws
    from NumPy's generator at each call) or a hyper-parameter has no default."""
    if any(getattr(check, "draws", False) for check in spec.hyper.values()):
        return None
    return spec.validate_positional((), spec.defaults)


def _hyper_reader(spec: Any, n: int, fixed: tuple | None) -> Callable[[tuple, dict], tuple | None]:
    """The end of a quick parser: ``(params, out, arguments)`` from the hyper-parameters
    after the ``n`` arrays (by position, or keyword-only), or None for the general path."""
    defaults, keywords, validate = spec.defaults, spec.host_keywords, spec.validate_positional

    def hypers(args: tuple, kwargs: dict) -> tuple | None:
        if not kwargs:
            if len(args) == n and fixed is not None:
                return fixed, None, defaults
            params = validate(args[n:], defaults)
            return None if params is None else (params, None, defaults)
        if not keywords.issuperset(kwargs):
            return None
        arguments = {**defaults, **kwargs}
        params = validate(args[n:], arguments)
        return None if params is None else (params, arguments.get("out"), arguments)

    return hypers


def _labels_parser(spec: Any, n: int, roles: list) -> Callable[[tuple, dict], tuple | None]:
    """The quick parser of a formula whose arrays start with labels (the metrics): label
    arrays of any integer or bool dtype (``label``: float too), real ones float32 or
    float64 of one dtype, all C-contiguous NumPy arrays."""
    kinds = ["iub" if r == "index" else "iubfd" if r == "label" else "" for r in roles[:n]]
    hypers = _hyper_reader(spec, n, _fixed(spec))

    def parse(args: tuple, kwargs: dict) -> tuple | None:
        if len(args) < n:
            return None
        dt = None
        for k in range(n):
            a = args[k]
            if type(a) is not np.ndarray or not a.flags.c_contiguous:
                return None
            if kinds[k]:
                if a.dtype.kind not in kinds[k] or a.dtype.char == "e":
                    return None
            elif (
                a.dtype is not _F64
                and a.dtype is not _F32
                or (dt is not None and a.dtype is not dt)
            ):
                return None
            else:
                dt = a.dtype
        return hypers(args, kwargs)

    parse.fixed = None
    return parse


def quick_generic(spec: Any, parse: Callable) -> Callable[[tuple, dict], Any]:
    """A quick call for a template without one of its own: the parsed call through
    ``template.run``, with nothing to place or convert."""
    run = spec.template.run
    names = tuple(spec.arrays)

    def quick(args: tuple, kwargs: dict) -> Any:
        parsed = parse(args, kwargs)
        if parsed is None:
            return None
        params, out, arguments = parsed
        arrays = dict(zip(names, args[: len(names)], strict=True))
        return run(Job.host(spec, arrays, params, out, arguments))

    return quick


def call(spec: Any, args: tuple, kwargs: dict) -> Any:
    """Run one call of a public formula through the pipeline (see the module docstring)."""
    arguments = spec.bind(args, kwargs)
    if spec.shortcut is not None:  # e.g. dropout(x, training=False) is x: no kernel, no check
        done = spec.shortcut(arguments)
        if done is not None:
            return done
    params = spec.validate(arguments)
    job = Job(spec, arguments, params)
    if job.backend.is_host:
        return spec.template.run(job)
    with job.backend.following(job.like):  # the caller's stream and memory pool
        return spec.template.run(job)
