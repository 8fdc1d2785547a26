"""Optimisers and gradient clipping: mlkernels beside the NumPy formula and PyTorch.

* ``OptimiserStep.time_step``: one step of Adam / AdamW on ONE parameter of n = 1e7
  elements, by each ``library``: mlkernels ``opt.step(p, g)`` (in place), ``numpy`` the
  formula's ``p = opt.update(p, g)`` (``mlkernels.reference``; a new array each step,
  rebound) and ``torch`` ``torch.optim.Adam`` / ``AdamW(fused=True)`` with ``p.grad`` set.
  The optimiser's state carries over from step to step (the steady state of a training
  run; the first step, which allocates it, runs in ``setup``).
* ``OptimiserUpdate.time_update``: the formula's call, ``theta = opt.update(theta,
  grad)`` (a new array each step), by mlkernels and by the NumPy formula.
* ``OptimiserStepSpeedup``: mlkernels' GB/s for a step (an Adam step reads p, g, m and v
  and writes p, m and v: 7 arrays, 28 bytes per element in float32, 56 in float64; relate
  it to ``benchmarks_activations.CopyBandwidth``) and its speedup over PyTorch's fused
  optimiser, interleaved in one process, as the other suites' ``*Speedup`` classes.
* ``OptimiserManyParams.time_fresh_adam``: 200 parameters of 5e4 elements, a FRESH Adam
  optimiser made and 3 steps taken (construction, state allocation and steps all timed):
  mlkernels' one ``step`` over the list (one fused launch per step), PyTorch's fused Adam
  over the list, and a Python loop over the formula's ``update``, one optimiser per array.
* ``OptimiserClipGlobalNorm.time_clip``: ``clip_by_global_norm`` of those 200 arrays
  (max_norm 1): mlkernels returning new arrays (``mlkernels``) and in place
  (``mlkernels_inplace``), ``torch.nn.utils.clip_grad_norm_(..., foreach=True)`` (in
  place) and the formula.

The smoke run (``MLKERNELS_ASV_SMOKE=1``) takes n = 1e3 and 3 parameters of 100. asv
re-runs ``setup`` before every timed call: the data are made once per process, and what a
call changes in place (parameters, clipped gradients) is restored there from a copy, so
that every call of ``OptimiserManyParams`` and ``OptimiserClipGlobalNorm`` starts from the
same values. The kernels are compiled (or loaded) in ``setup`` on tiny data, the serial or
the parallel kernel as the real call runs; PyTorch's first call of each op runs in
``setup`` too. Nothing runs at import (asv's forkserver imports the suite once).

Parameters with ``device="cuda"`` are n/a without a real GPU (mlkernels on Numba device
arrays; PyTorch on "cuda" needs a CUDA build); ``numpy`` on "cuda" is always n/a.

    asv run --quick -b Optimiser
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import mlkernels as mk
from asv_benchmarks import _common
from asv_benchmarks._common import DEVICES, DTYPES, LIBRARIES, SMOKE, require
from mlkernels import reference
from mlkernels._bench.measure import _noop, synchronizer
from mlkernels._bench.registry import torch_device_usable
from mlkernels._core import threads as _threads

OPTIMISERS = ["Adam", "AdamW"]
#: Hyper-parameters, the same for the three libraries (the defaults otherwise: betas
#: 0.9 / 0.999, eps 1e-8).
LR, WEIGHT_DECAY = 1e-3, 0.01
N_LARGE = 1_000 if SMOKE else 10_000_000
#: ``OptimiserManyParams`` and ``OptimiserClipGlobalNorm``: this many arrays of this size.
MANY, MANY_SIZE = (3, 100) if SMOKE else (200, 50_000)
FRESH_STEPS = 3
MAX_NORM = 1.0
#: An Adam step moves 7 arrays: reads p, g, m, v; writes p, m, v.
ADAM_ARRAYS = 7
UPDATE_LIBRARIES = ["mlkernels", "numpy"]
CLIP_LIBRARIES = ["mlkernels", "mlkernels_inplace", "numpy", "torch"]


# --------------------------------------------------------------------------------------
# Data: host arrays made once per process, and their copies on each library's device
# --------------------------------------------------------------------------------------

_CALLS: dict[tuple, Any] = {}  # the latest call made (asv runs one parameter set per process)


def _cached(key: tuple, make: Callable[[], Any], keep: int = 1) -> Any:
    """``make()`` once per process for ``key``; only the ``keep`` latest are kept."""
    if key not in _CALLS:
        while len(_CALLS) >= keep:
            del _CALLS[next(iter(_CALLS))]
        _CALLS[key] = make()
    return _CALLS[key]


def _host(count: int, n: int, dtype: str, seed: int = 0) -> tuple[list, list]:
    """``count`` parameters and gradients of ``n`` elements each (normal, unit scale)."""
    rng = np.random.default_rng(seed)
    ps = [rng.standard_normal(n).astype(dtype) for _ in range(count)]
    gs = [rng.standard_normal(n).astype(dtype) for _ in range(count)]
    return ps, gs


def _check(library: str, device: str, libraries: list[str]) -> None:
    """n/a (NotImplementedError) for a combination that does not exist here."""
    if library not in libraries:
        raise ValueError(f"unknown library {library!r}")
    if device != "cpu" and library == "numpy":
        raise NotImplementedError("NumPy runs on the CPU only")
    require(device)
    if library == "torch":
        if _common.torch is None:
            raise NotImplementedError("PyTorch is not importable")
        if not torch_device_usable(device):
            raise NotImplementedError(f"PyTorch cannot run on {device} here")


class _Arrays:
    """Arrays of one library on one device: ``ps``, ``gs`` (lists), ``reset()`` restores
    the values that ``ps`` (and, with ``grads=True``, ``gs``) had when made."""

    def __init__(self, library: str, device: str, ps: list, gs: list, *, grads: bool = False):
        self.sync = synchronizer(device)
        if library == "torch":
            torch = _common.torch
            dev = "cuda" if device == "cuda" else "cpu"
            self.ps = [torch.from_numpy(p.copy()).to(dev).requires_grad_(True) for p in ps]
            self.gs = [torch.from_numpy(g.copy()).to(dev) for g in gs]
            for p, g in zip(self.ps, self.gs, strict=True):
                p.grad = g
        elif device == "cuda":
            cuda = _common.cuda
            self.ps = [cuda.to_device(p) for p in ps]
            self.gs = [cuda.to_device(g) for g in gs]
        else:
            self.ps = [p.copy() for p in ps]
            self.gs = [g.copy() for g in gs]
        self._library = library
        self._saved = [(a, _copy(a)) for a in self.ps + (self.gs if grads else [])]
        self.sync()

    def reset(self) -> None:
        if self._library == "torch":
            with _common.torch.no_grad():
                for a, saved in self._saved:
                    a.copy_(saved)
        elif isinstance(self.ps[0], np.ndarray):
            for a, saved in self._saved:
                np.copyto(a, saved)
        else:
            for a, saved in self._saved:
                a.copy_to_device(saved)
        self.sync()


def _copy(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        return a.copy()
    if hasattr(a, "clone"):
        return a.detach().clone()
    saved = _common.cuda.device_array_like(a)
    saved.copy_to_device(a)
    return saved


def _mk_optimiser(name: str, **kw: Any) -> Any:
    hyper = {"weight_decay": WEIGHT_DECAY} if name == "AdamW" else {}
    return getattr(mk, name)(lr=LR, **hyper, **kw)


def _ref_optimiser(name: str) -> Any:
    hyper = {"weight_decay": WEIGHT_DECAY} if name == "AdamW" else {}
    return getattr(reference, name)(lr=LR, **hyper)


def _torch_optimiser(name: str, tensors: list) -> Any:
    hyper = {"weight_decay": WEIGHT_DECAY} if name == "AdamW" else {}
    return getattr(_common.torch.optim, name)(tensors, lr=LR, fused=True, **hyper)


def _warm(run: Callable[[list, list], object], dtype: str, device: str, work: int) -> None:
    """Compile (or load) the kernels ``run(ps, gs)`` launches for ``work`` elements in all,
    on tiny data, ``run`` called twice (an optimiser's first step from zero state has a
    kernel of its own): on the CPU the parallel kernels when the real call runs them, else
    the serial ones; on the GPU the kernels (the real data's first call follows anyway)."""
    ps, gs = _host(2, 16, dtype, seed=1)
    if device == "cuda":
        cuda = _common.cuda
        ps, gs = [cuda.to_device(p) for p in ps], [cuda.to_device(g) for g in gs]
    parallel = device == "cpu" and work >= _threads.PARALLEL_MIN
    with _threads.parallel_min(0 if parallel else _threads.PARALLEL_MIN):
        run(ps, gs)
        run(ps, gs)
    if device == "cuda":
        _common.cuda.synchronize()


def _reused(make: Callable[[], Any], call: Callable[[Any, list, list], object]):
    """``run(ps, gs)`` for :func:`_warm`: one optimiser, made at the first call, whose
    steps (or updates) follow each other."""
    made: list = []

    def run(ps: list, gs: list) -> None:
        if not made:
            made.append(make())
        call(made[0], ps, gs)

    return run


class _Call:
    """A call to time, ``fn()``, and what waits for it, ``sync()``; ``reset()`` restores
    what ``fn`` changed in place (nothing for most)."""

    def __init__(self, fn: Callable[[], object], sync: Callable[[], None], reset=None):
        self.fn, self.sync = fn, sync
        self.reset = reset or (lambda: None)

    def __call__(self) -> None:
        self.fn()
        self.sync()


# --------------------------------------------------------------------------------------
# The calls
# --------------------------------------------------------------------------------------


def _adam_step(name: str, n: int, dtype: str, library: str, device: str) -> _Call:
    """One step of ``name`` on one parameter of ``n`` elements, in place (the NumPy
    formula: a new array, rebound); the first step has run."""
    ps, gs = _host(1, n, dtype)
    arrays = _Arrays(library, device, ps, gs)
    (p,), (g,) = arrays.ps, arrays.gs
    if library == "mlkernels":
        _warm(_reused(lambda: _mk_optimiser(name), lambda o, a, b: o.step(a, b)), dtype, device, n)
        opt = _mk_optimiser(name)

        def fn() -> None:
            opt.step(p, g)

    elif library == "numpy":
        ref, box = _ref_optimiser(name), [p]

        def fn() -> None:
            box[0] = ref.update(box[0], g)

    else:
        fn = _torch_optimiser(name, [p]).step
    call = _Call(fn, arrays.sync)
    call()  # the first step: allocates the state (and sets PyTorch's op up)
    return call


def _adam_update(name: str, n: int, dtype: str, library: str, device: str) -> _Call:
    """The formula's ``theta = opt.update(theta, grad)``, by mlkernels or NumPy."""
    ps, gs = _host(1, n, dtype)
    arrays = _Arrays(library, device, ps, gs)
    box, g = [arrays.ps[0]], arrays.gs[0]
    if library == "mlkernels":
        run = _reused(lambda: _mk_optimiser(name), lambda o, a, b: o.update(a[0], b[0]))
        _warm(run, dtype, device, n)
        opt = _mk_optimiser(name)
    else:
        opt = _ref_optimiser(name)

    def fn() -> None:
        box[0] = opt.update(box[0], g)

    call = _Call(fn, arrays.sync)
    call()
    return call


def _fresh_adam(count: int, n: int, dtype: str, library: str, device: str) -> _Call:
    """A new Adam optimiser and ``FRESH_STEPS`` steps over ``count`` parameters;
    ``reset()`` restores the parameters."""
    ps, gs = _host(count, n, dtype)
    if library == "numpy":  # the formula's update writes nothing: ps stay as they are

        def fn() -> None:
            opts, cur = [reference.Adam(lr=LR) for _ in ps], list(ps)
            for _ in range(FRESH_STEPS):
                for i, opt in enumerate(opts):
                    cur[i] = opt.update(cur[i], gs[i])

        call = _Call(fn, _noop)
        call()
        return call
    arrays = _Arrays(library, device, ps, gs)
    if library == "mlkernels":
        run = _reused(lambda: mk.Adam(lr=LR), lambda o, a, b: o.step(a, b))
        _warm(run, dtype, device, count * n)

        def fn() -> None:
            opt = mk.Adam(lr=LR)
            for _ in range(FRESH_STEPS):
                opt.step(arrays.ps, arrays.gs)

    else:

        def fn() -> None:
            opt = _torch_optimiser("Adam", arrays.ps)
            for _ in range(FRESH_STEPS):
                opt.step()

    call = _Call(fn, arrays.sync, arrays.reset)
    call()
    call.reset()
    return call


def _clip(count: int, n: int, dtype: str, library: str, device: str) -> _Call:
    """``clip_by_global_norm`` of ``count`` gradients by ``library``; ``reset()`` restores
    the gradients that an in-place clip scaled."""
    ps, gs = _host(count, n, dtype)
    if library == "numpy":
        call = _Call(lambda: reference.clip_by_global_norm(gs, MAX_NORM), _noop)
        call()
        return call
    arrays = _Arrays("torch" if library == "torch" else "mlkernels", device, ps, gs, grads=True)
    inplace = library == "mlkernels_inplace"
    if library == "torch":
        clip = _common.torch.nn.utils.clip_grad_norm_

        def fn() -> None:
            clip(arrays.ps, MAX_NORM, foreach=True)

    else:
        _warm(
            lambda a, b: mk.clip_by_global_norm(b, MAX_NORM, inplace=inplace),
            dtype,
            device,
            count * n,
        )

        def fn() -> None:
            mk.clip_by_global_norm(arrays.gs, MAX_NORM, inplace=inplace)

    call = _Call(fn, arrays.sync, arrays.reset)
    call()
    call.reset()
    return call


# --------------------------------------------------------------------------------------
# The suites
# --------------------------------------------------------------------------------------


class OptimiserStep:
    """One in-place step of Adam / AdamW on one parameter, by mlkernels, NumPy, PyTorch."""

    params = (OPTIMISERS, [N_LARGE], DTYPES, LIBRARIES, DEVICES)
    param_names = ("optimiser", "n", "dtype", "library", "device")
    timeout = 300.0

    def setup(self, optimiser: str, n: int, dtype: str, library: str, device: str) -> None:
        _check(library, device, LIBRARIES)
        key = ("step", optimiser, n, dtype, library, device)
        self.run = _cached(key, lambda: _adam_step(optimiser, n, dtype, library, device))

    def time_step(self, optimiser: str, n: int, dtype: str, library: str, device: str):
        self.run()


class OptimiserUpdate:
    """The formula's ``theta = opt.update(theta, grad)`` (a new array), mlkernels vs NumPy."""

    params = (OPTIMISERS, [N_LARGE], DTYPES, UPDATE_LIBRARIES, DEVICES)
    param_names = ("optimiser", "n", "dtype", "library", "device")
    timeout = 300.0

    def setup(self, optimiser: str, n: int, dtype: str, library: str, device: str) -> None:
        _check(library, device, UPDATE_LIBRARIES)
        key = ("update", optimiser, n, dtype, library, device)
        self.run = _cached(key, lambda: _adam_update(optimiser, n, dtype, library, device))

    def time_update(self, optimiser: str, n: int, dtype: str, library: str, device: str):
        self.run()


class OptimiserStepSpeedup:
    """mlkernels' GB/s for an Adam / AdamW step (7 arrays moved) and its speedup over
    PyTorch's fused optimiser, measured interleaved in one process, n = 1e7."""

    params = (OPTIMISERS, [N_LARGE], DTYPES, DEVICES)
    param_names = ("optimiser", "n", "dtype", "device")
    timeout = 300.0

    def setup(self, optimiser: str, n: int, dtype: str, device: str) -> None:
        require(device)
        args = (optimiser, n, dtype, "mlkernels", device)
        self.mlk = _cached(("step", *args), lambda: _adam_step(*args), keep=2)
        self.nbytes = ADAM_ARRAYS * n * np.dtype(dtype).itemsize

    def track_gbps(self, optimiser: str, n: int, dtype: str, device: str) -> float:
        (seconds,) = _common.median_seconds((self.mlk.fn, self.mlk.sync))
        return self.nbytes / seconds / 1e9

    track_gbps.unit = "GB/s"

    def track_speedup_over_torch(self, optimiser: str, n: int, dtype: str, device: str):
        """NaN (asv: n/a) without PyTorch on this device."""
        if _common.torch is None or not torch_device_usable(device):
            return math.nan
        args = (optimiser, n, dtype, "torch", device)
        t = _cached(("step", *args), lambda: _adam_step(*args), keep=2)
        torch_s, mlk_s = _common.median_seconds(
            (t.fn, t.sync), (self.mlk.fn, self.mlk.sync), min_reps=1
        )
        return torch_s / mlk_s

    track_speedup_over_torch.unit = "x"


class OptimiserManyParams:
    """A fresh Adam and 3 steps over 200 parameters of 5e4: one fused mlkernels step per
    list, PyTorch's fused Adam, or the formula's update in a Python loop."""

    params = ([MANY], [MANY_SIZE], DTYPES, LIBRARIES, DEVICES)
    param_names = ("arrays", "n", "dtype", "library", "device")
    timeout = 300.0

    def setup(self, arrays: int, n: int, dtype: str, library: str, device: str) -> None:
        _check(library, device, LIBRARIES)
        key = ("fresh", arrays, n, dtype, library, device)
        self.run = _cached(key, lambda: _fresh_adam(arrays, n, dtype, library, device))
        self.run.reset()

    def time_fresh_adam(self, arrays: int, n: int, dtype: str, library: str, device: str):
        self.run()


class OptimiserClipGlobalNorm:
    """clip_by_global_norm of 200 gradients of 5e4: mlkernels (new arrays, in place),
    PyTorch's clip_grad_norm_(foreach=True) and the formula."""

    params = ([MANY], [MANY_SIZE], DTYPES, CLIP_LIBRARIES, DEVICES)
    param_names = ("arrays", "n", "dtype", "library", "device")
    timeout = 300.0

    def setup(self, arrays: int, n: int, dtype: str, library: str, device: str) -> None:
        _check(library, device, CLIP_LIBRARIES)
        key = ("clip", arrays, n, dtype, library, device)
        self.run = _cached(key, lambda: _clip(arrays, n, dtype, library, device))
        self.run.reset()

    def time_clip(self, arrays: int, n: int, dtype: str, library: str, device: str):
        self.run()
