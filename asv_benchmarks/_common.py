"""Shared helpers of the asv suite: parameters, data, timing, and the base classes of the
suites that compare mlkernels with NumPy and PyTorch. Defines no benchmarks itself (the
base classes' names start with "_", which asv's discovery skips).

asv.conf.json sets ``"launch_method": "forkserver"``: each benchmark runs in a process
forked from a server that imported the suite once, instead of a new interpreter (asv's
default "spawn" costs ~0.6 s per benchmark and parameter here, and the suite has
thousands). So the imports are done here, once: numba.cuda, numba's CPU target (a tiny
serial ``njit`` function; its first compilation imports numba's libraries, ~0.5 s) and
PyTorch when it is installed (~1.6 s). Nothing here starts a thread or touches the CUDA
driver: a forked child could not use them.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

import mlkernels
from mlkernels._bench import registry as _registry
from mlkernels._bench.measure import _noop, synchronizer
from mlkernels._core import threads as _threads

try:  # import once in the server, not in every benchmark process; starts no driver
    from mlkernels._core.cuda import cuda
except ImportError:  # pragma: no cover - numba without its CUDA target
    cuda = None

try:  # the PyTorch baselines: imported once in the server too (starts no thread)
    import torch
except ImportError:  # pragma: no cover - PyTorch is optional
    torch = None


@njit(cache=False)
def _serial_identity(x):  # pragma: no cover - compiled
    return x


_serial_identity(0)  # serial: initialises numba's CPU target without starting threads

#: ``MLKERNELS_ASV_SMOKE=1`` (CI's ``asv run --quick``): every benchmark runs, on small data,
#: to prove that it works rather than to time it.
SMOKE = os.environ.get("MLKERNELS_ASV_SMOKE", "") not in ("", "0")


def smoke(values: list, keep: int = 2) -> list:
    """``values``, or their first ``keep`` in a smoke run: every benchmark (each method of
    each suite) runs, on a few of its parameters (the tests cover every formula)."""
    return list(values)[:keep] if SMOKE else list(values)


LOSSES = smoke([e.name for e in _registry.ENTRIES.values() if e.family == "losses"])
SIZES = [1_000] if SMOKE else [1_000, 100_000, 10_000_000]  # one size in a smoke run
DTYPES = ["float32", "float64"]
DEVICES = ["cpu", "cuda"]
#: Who computes: mlkernels, the NumPy formula (CPU only) or PyTorch's equivalent.
LIBRARIES = ["mlkernels", "numpy", "torch"]

#: Repetitions of the timing inside a ``track_`` benchmark: at least ``MIN_REPS``, at
#: most ``MAX_REPS``, and no new one once ``BUDGET_S`` seconds have been spent.
MIN_REPS, MAX_REPS, BUDGET_S = 3, 9, 1.0


def require(device: str) -> None:
    """Skip (asv records n/a) when ``device`` is "cuda" and no real GPU is usable."""
    if device == "cuda" and (cuda is None or not mlkernels.cuda_available()):
        raise NotImplementedError("no usable CUDA GPU")


def median_seconds(
    *calls: tuple[Callable[[], object], Callable[[], None]], min_reps: int = MIN_REPS
) -> list[float]:
    """Median wall time of each ``(fn, sync)``; the calls are interleaved in each round."""
    samples: list[list[float]] = [[] for _ in calls]
    start_all = time.perf_counter()
    for rep in range(MAX_REPS):
        if rep >= min_reps and time.perf_counter() - start_all > BUDGET_S:
            break
        for (fn, sync), times in zip(calls, samples, strict=True):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
    return [statistics.median(s) for s in samples]


class Case:
    """One formula at one size, dtype and device: its data and its calls.

    The calls are the registry's (``Entry.calls``): ``"value"`` (the function) and, for a
    loss, ``"grad"`` and ``"value_and_grad"``; for a function returning an array, ``"out"``.
    Every call has been made once (compiled, or loaded from the disk cache) when the
    constructor returns, so no benchmark times compilation. ``cols``: the row length of a
    row function (``n // cols`` rows).
    """

    def __init__(self, name: str, n: int, dtype: str, device: str, cols: int | None = None):
        require(device)
        self.device = device
        self.entry = entry = _registry.ENTRIES[name]
        self.host_args = entry.args(n, dtype, cols=cols)
        self.input_bytes = sum(a.nbytes for a in self.host_args)
        self.sync = synchronizer(device)
        if device == "cuda":
            self.args = tuple(cuda.to_device(a) for a in self.host_args)
            warm = self.args  # a GPU call is cheap: warm on the real data
        else:
            self.args = self.host_args
            warm = entry.args(2 * _registry.CLASSES, dtype, cols=5)  # CPU kernels: types only
        # tiny data, but the kernels (serial or parallel) that calls on n elements run
        parallel = device == "cpu" and n >= _threads.PARALLEL_MIN
        with _threads.parallel_min(0 if parallel else _threads.PARALLEL_MIN):
            for fn in entry.calls(warm).values():
                fn()
        self.fns = entry.calls(self.args)
        #: bytes a call moves: the inputs, and the arrays it returns (none for a loss)
        self.nbytes = self.input_bytes
        if entry.writes_arrays:
            self.nbytes += _nbytes(self.fns["value"]())
        self.sync()

    def call(self, kind: str = "value") -> None:
        """Run ``value``, ``grad``, ``value_and_grad`` or ``out`` once and wait for it."""
        self.fns[kind]()
        self.sync()

    def gbps(self, kind: str = "value") -> float:
        """Bytes moved (inputs, and returned arrays) over the median time of ``kind``, GB/s."""
        (seconds,) = median_seconds((self.fns[kind], self.sync))
        return self.nbytes / seconds / 1e9

    def speedup(self, min_reps: int = MIN_REPS) -> float:
        """NumPy formula time (on the CPU) / mlkernels value time, medians, interleaved."""
        f, ref = self.fns["value"], self.entry.reference
        numpy_s, mlk_s = median_seconds(
            (lambda: ref(*self.host_args), _noop), (f, self.sync), min_reps=min_reps
        )
        return numpy_s / mlk_s

    def torch_speedup(self, min_reps: int = MIN_REPS) -> float:
        """PyTorch time (same device) / mlkernels value time, medians, interleaved; NaN
        (asv: n/a) without PyTorch, a PyTorch equivalent, or PyTorch on this device."""
        baseline = self.entry.torch_call(self.host_args, self.device)
        if baseline is None:
            return math.nan
        t_fn, t_sync = baseline
        t_fn()  # PyTorch's first call of an op sets things up
        t_sync()
        torch_s, mlk_s = median_seconds(
            (t_fn, t_sync), (self.fns["value"], self.sync), min_reps=min_reps
        )
        return torch_s / mlk_s


_CASES: dict[tuple, Any] = {}  # the latest Case, or the NumPy baseline's data


def case(name: str, n: int, dtype: str, device: str, cols: int | None = None) -> Case:
    """The :class:`Case` of these parameters, made once per process.

    asv re-runs ``setup`` before every timing sample: data made once keeps that cheap.
    Only the latest case is kept (asv runs one parameter set per process anyway).
    """
    key = (name, n, dtype, device, cols)
    if key not in _CASES:
        _CASES.clear()
        _CASES[key] = Case(name, n, dtype, device, cols)
    return _CASES[key]


def host_data(name: str, n: int, dtype: str, cols: int | None = None) -> tuple[np.ndarray, ...]:
    """The registry's data for ``name`` (the NumPy baseline's input), made once per process."""
    key = ("numpy", name, n, dtype, cols)
    if key not in _CASES:
        _CASES.clear()
        _CASES[key] = _registry.ENTRIES[name].args(n, dtype, cols=cols)
    return _CASES[key]


def _nbytes(result: object) -> int:
    if isinstance(result, tuple):
        return sum(_nbytes(r) for r in result)
    return int(getattr(result, "nbytes", 0))


def library_call(
    name: str, n: int, dtype: str, library: str, device: str, cols: int | None = None
) -> Callable[[], None]:
    """The call to time: ``name`` computed by ``library`` on ``device`` (synchronised).

    mlkernels: the function (compiled beforehand). numpy: the NumPy formula, CPU only.
    torch: PyTorch's equivalent, on the CPU, or on "cuda" with a CUDA build of PyTorch.
    Raises NotImplementedError (asv: n/a) for a combination that does not exist here.
    """
    if library == "mlkernels":
        c = case(name, n, dtype, device, cols)
        return c.call
    if device != "cpu" and library == "numpy":
        raise NotImplementedError("NumPy runs on the CPU only")
    require(device)
    if library == "numpy":
        args = host_data(name, n, dtype, cols)
        formula = _registry.ENTRIES[name].reference
        return lambda: formula(*args)
    if library != "torch":
        raise ValueError(f"unknown library {library!r}")
    if torch is None:
        raise NotImplementedError("PyTorch is not importable")
    baseline = _registry.ENTRIES[name].torch_call(host_data(name, n, dtype, cols), device)
    if baseline is None:
        raise NotImplementedError(f"no PyTorch equivalent of {name} on {device}")
    fn, sync = baseline
    fn()  # PyTorch's first call of an op sets things up
    sync()

    def call() -> None:
        fn()
        sync()

    return call


class _LibraryTimes:
    """Base of a family's timing suite: ``time_call`` of one formula by one library.

    A subclass sets ``params = (functions, sizes, DTYPES, LIBRARIES, DEVICES)``. A size is
    ``n`` (elements per array) when ``rows`` is None, else the row length of ``rows``
    rows. The times of mlkernels, the NumPy formula and PyTorch then sit side by side in
    one benchmark, one ``library`` parameter apart.
    """

    param_names = ("function", "n", "dtype", "library", "device")
    rows: int | None = None
    timeout = 300.0

    def setup(self, function: str, size: int, dtype: str, library: str, device: str) -> None:
        n, cols = (size, None) if self.rows is None else (self.rows * size, size)
        self.run = library_call(function, n, dtype, library, device, cols)

    def time_call(self, function: str, size: int, dtype: str, library: str, device: str):
        self.run()


class _Tracks:
    """Base of a family's tracking suite: mlkernels' GB/s and its speedup over PyTorch,
    measured in the same process, interleaved (the ratio holds on a noisy machine where
    absolute times do not).

    A subclass sets ``params = (functions, sizes, DTYPES, DEVICES)``; sizes as in
    :class:`_LibraryTimes`, and only large ones: GB/s means memory bandwidth only for data
    far larger than the caches, and the small sizes' times are in the ``_LibraryTimes``
    suite beside them. GB/s counts the inputs and the arrays returned; relate it to
    ``benchmarks_activations.CopyBandwidth`` (functions returning arrays) or to
    ``benchmarks_losses.MemoryBandwidth`` (reductions). PyTorch is timed at least once,
    then until about a second is spent (``MIN_REPS`` does not apply).

    The speedup over the NumPy formula is not tracked here (the NumPy formulas on 1e7
    elements would double the quick run's time): it is ``library="numpy"`` over
    ``library="mlkernels"`` in the ``_LibraryTimes`` suite, and ``python -m mlkernels``
    measures it interleaved.
    """

    param_names = ("function", "n", "dtype", "device")
    rows: int | None = None
    timeout = 300.0

    def setup(self, function: str, size: int, dtype: str, device: str) -> None:
        n, cols = (size, None) if self.rows is None else (self.rows * size, size)
        self.case = case(function, n, dtype, device, cols)

    def track_gbps(self, function: str, size: int, dtype: str, device: str) -> float:
        return self.case.gbps()

    track_gbps.unit = "GB/s"

    def track_speedup_over_torch(self, function: str, size: int, dtype: str, device: str):
        return self.case.torch_speedup(min_reps=1)

    track_speedup_over_torch.unit = "x"
