"""Shared helpers of the asv suite: parameters, data, timing. Defines no benchmarks.

asv.conf.json sets ``"launch_method": "forkserver"``: each benchmark runs in a process
forked from a server that imported the suite once, instead of a new interpreter (asv's
default "spawn" costs ~0.6 s per benchmark and parameter here, and the suite has ~1100).
So the imports are done here, once: numba.cuda, and numba's CPU target (a tiny serial
``njit`` function; its first compilation imports numba's libraries, ~0.5 s). Nothing here
starts a thread or touches the CUDA driver: a forked child could not use them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

import mlkernels
from mlkernels import _registry
from mlkernels._bench import _noop, synchronizer

try:  # import once in the server, not in every benchmark process; starts no driver
    from numba import cuda
except ImportError:  # pragma: no cover - numba without its CUDA target
    cuda = None


@njit(cache=False)
def _serial_identity(x):  # pragma: no cover - compiled
    return x


_serial_identity(0)  # serial: initialises numba's CPU target without starting threads

LOSSES = [e.name for e in _registry.ENTRIES.values() if e.family == "losses"]
SIZES = [1_000, 100_000, 10_000_000]
DTYPES = ["float32", "float64"]
DEVICES = ["cpu", "cuda"]

#: Repetitions of the timing inside a ``track_`` benchmark: at least ``MIN_REPS``, at
#: most ``MAX_REPS``, and no new one once ``BUDGET_S`` seconds have been spent.
MIN_REPS, MAX_REPS, BUDGET_S = 3, 9, 1.0


def require(device: str) -> None:
    """Skip (asv records n/a) when ``device`` is "cuda" and no real GPU is usable."""
    if device == "cuda" and (cuda is None or not mlkernels.cuda_available()):
        raise NotImplementedError("no usable CUDA GPU")


def median_seconds(*calls: tuple[Callable[[], object], Callable[[], None]]) -> list[float]:
    """Median wall time of each ``(fn, sync)``; the calls are interleaved in each round."""
    samples: list[list[float]] = [[] for _ in calls]
    start_all = time.perf_counter()
    for rep in range(MAX_REPS):
        if rep >= MIN_REPS and time.perf_counter() - start_all > BUDGET_S:
            break
        for (fn, sync), times in zip(calls, samples, strict=True):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
    return [statistics.median(s) for s in samples]


class Case:
    """One loss at one size, dtype and device: its data and its three functions.

    Every function has been called once (compiled, or loaded from the disk cache) when
    the constructor returns, so no benchmark times compilation.
    """

    def __init__(self, name: str, n: int, dtype: str, device: str) -> None:
        require(device)
        self.entry = entry = _registry.ENTRIES[name]
        self.host_args = entry.args(n, dtype)
        self.input_bytes = sum(a.nbytes for a in self.host_args)
        self.sync = synchronizer(device)
        if device == "cuda":
            self.args = tuple(cuda.to_device(a) for a in self.host_args)
            warm = self.args  # a GPU call is cheap: warm on the real data
        else:
            self.args = self.host_args
            warm = entry.args(2 * _registry.CLASSES, dtype)  # CPU kernels: types only
        f = entry.function
        self.fns = {"value": f, "grad": f.grad, "value_and_grad": f.value_and_grad}
        for fn in self.fns.values():
            fn(*warm)
        self.sync()

    def call(self, kind: str) -> None:
        """Run ``value``, ``grad`` or ``value_and_grad`` once and wait for it."""
        self.fns[kind](*self.args)
        self.sync()

    def gbps(self, kind: str) -> float:
        """Bytes of the inputs over the median time of ``kind``, in GB/s."""
        fn = self.fns[kind]
        (seconds,) = median_seconds((lambda: fn(*self.args), self.sync))
        return self.input_bytes / seconds / 1e9

    def speedup(self) -> float:
        """NumPy formula time (on the CPU) / mlkernels value time, medians, interleaved."""
        f, ref = self.fns["value"], self.entry.reference
        numpy_s, mlk_s = median_seconds(
            (lambda: ref(*self.host_args), _noop), (lambda: f(*self.args), self.sync)
        )
        return numpy_s / mlk_s


_CASES: dict[tuple, Any] = {}  # the latest Case, or the NumPy baseline's data


def case(name: str, n: int, dtype: str, device: str) -> Case:
    """The :class:`Case` of these parameters, made once per process.

    asv re-runs ``setup`` before every timing sample: data made once keeps that cheap.
    Only the latest case is kept (asv runs one parameter set per process anyway).
    """
    key = (name, n, dtype, device)
    if key not in _CASES:
        _CASES.clear()
        _CASES[key] = Case(name, n, dtype, device)
    return _CASES[key]


def host_data(name: str, n: int, dtype: str) -> tuple[np.ndarray, ...]:
    """The registry's data for ``name`` (the NumPy baseline's input), made once per process."""
    key = ("numpy", name, n, dtype)
    if key not in _CASES:
        _CASES.clear()
        _CASES[key] = _registry.ENTRIES[name].args(n, dtype)
    return _CASES[key]
