"""What users run: a NumPy training loop with BLAS products between the formula calls.

The loop is ``examples/train_mlp.py`` (loaded from the repository, so the benchmark and
the example a user copies are the same code): a 64-512-10 MLP on scikit-learn's digits
shifted 8 ways (14,376 samples; synthetic data of that shape without scikit-learn),
batches of 256, float64, its ``relu``, ``relu_grad``, ``softmax``, ``cce``, ``l2_loss``
and ``l2_grad`` from the NumPy formulas or from mlkernels.

* ``TrainingLoop.time_epoch``: one epoch by each ``library``, side by side; ``extra``
  adds what a real program runs between epochs: nothing, a PyTorch validation pass
  (PyTorch's own OpenMP pool) or a scikit-learn KMeans (OpenMP in Cython, and BLAS).
* ``TrainingLoopSpeedup.track_speedup``: the NumPy formulas' epoch time over
  mlkernels', medians of epochs run alternately in one process (the ratio holds on a
  noisy machine where absolute times do not). Goal: >= 1.0 (it was 0.03-0.04 with
  numba's OpenMP layer spinning against OpenBLAS's threads).
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path

import mlkernels

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_mlp.py"
LIBRARIES = ["numpy", "mlkernels"]
EXTRAS = ["none", "torch", "sklearn"]


def _example():
    """The example module, loaded once per process from the repository."""
    if "train_mlp" not in sys.modules:
        spec = importlib.util.spec_from_file_location("train_mlp", EXAMPLE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["train_mlp"] = module
        spec.loader.exec_module(module)
    return sys.modules["train_mlp"]


def _require(extra: str) -> None:
    name = {"torch": "torch", "sklearn": "sklearn"}.get(extra)
    if name is not None and importlib.util.find_spec(name) is None:
        raise NotImplementedError(f"{name} is not installed")


def _formulas(library: str):
    return mlkernels if library == "mlkernels" else _example().NUMPY


class TrainingLoop:
    """One training epoch, the formulas by NumPy or by mlkernels."""

    params = (LIBRARIES, EXTRAS)
    param_names = ("library", "extra")
    timeout = 300.0

    def setup(self, library: str, extra: str) -> None:
        _require(extra)
        ex = _example()
        self.x, self.y, _ = ex.load_data()
        self.f = _formulas(library)
        ex.train(self.f, self.x, self.y, epochs=1, extra=extra)  # compiles or loads

    def time_epoch(self, library: str, extra: str) -> None:
        _example().train(self.f, self.x, self.y, epochs=1, extra=extra)


class TrainingLoopSpeedup:
    """NumPy formulas' epoch time / mlkernels' epoch time, epochs run alternately."""

    params = (EXTRAS,)
    param_names = ("extra",)
    rounds = 5
    timeout = 300.0

    def setup(self, extra: str) -> None:
        _require(extra)
        ex = _example()
        self.x, self.y, _ = ex.load_data()
        for f in (ex.NUMPY, mlkernels):
            ex.train(f, self.x, self.y, epochs=1, extra=extra)

    def track_speedup(self, extra: str) -> float:
        ex = _example()
        times: dict[str, list[float]] = {"numpy": [], "mlkernels": []}
        for r in range(self.rounds):
            order = LIBRARIES if r % 2 == 0 else LIBRARIES[::-1]
            for library in order:
                epoch, _ = ex.train(_formulas(library), self.x, self.y, epochs=1, extra=extra)
                times[library] += epoch
        return statistics.median(times["numpy"]) / statistics.median(times["mlkernels"])

    track_speedup.unit = "x"
