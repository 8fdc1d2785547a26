"""Small calls: a training loop's batch of a few hundred to ten thousand elements, where
the Python around a kernel, not the kernel, takes the time. Every formula on host arrays
at n = 100, 1000 and 10^4 (row functions: rows of 32), beside its NumPy formula.

``time_mlkernels`` and ``time_numpy`` are asv's own timings of one call each;
``track_speedup`` is the NumPy formula's time over mlkernels', both measured in the same
process, alternating (best of 5 rounds of 200 calls): the ratio to watch. The smoke run
(``MLKERNELS_ASV_SMOKE=1``) takes n = 1000 and one formula per template only.

    asv continuous -b SmallCalls <previous commit> HEAD
"""

from __future__ import annotations

from asv_benchmarks._common import SMOKE
from mlkernels._bench import measure as _measure
from mlkernels._bench import registry as _registry

#: The smoke run: one formula per template (map, sum, loss, classes, rows, cols, both).
SMOKE_NAMES = ["mse", "nll", "sigmoid", "softmax", "l2_loss", "max_norm", "layer_norm_grad"]
NAMES = SMOKE_NAMES if SMOKE else list(_registry.ENTRIES)
SIZES = [1000] if SMOKE else [100, 1000, 10_000]


class SmallCalls:
    """One call of each formula on ``n`` host elements, float64, and its NumPy formula."""

    params = (NAMES, SIZES)
    param_names = ("function", "n")
    timeout = 120

    def setup(self, function: str, n: int) -> None:
        self.entry = entry = _registry.ENTRIES[function]
        self.args = entry.args(n, "float64", cols=min(_measure.SMALL_COLS, n))
        self.f, self.ref = entry.function, entry.reference
        self.f(*self.args)  # compile (or load) the kernel this size runs

    def time_mlkernels(self, function: str, n: int) -> None:
        self.f(*self.args)

    def time_numpy(self, function: str, n: int) -> None:
        self.ref(*self.args)

    def track_speedup(self, function: str, n: int) -> float:
        return _measure.small_call_speedup(self.entry, "float64", n)

    track_speedup.unit = "x NumPy"
