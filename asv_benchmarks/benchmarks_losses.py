"""The losses: run time, GB/s and speedup over NumPy, beside the machine's bandwidth.

``time_*`` benchmarks time one call (synchronised on the GPU). ``track_*`` benchmarks
measure inside, as the median of a few calls: GB/s is the bytes of the input arrays over
that time, and the speedup is measured against the NumPy formula in the same process,
interleaved, so that it holds on a noisy machine where absolute times do not. Relate
GB/s to ``MemoryBandwidth.track_bandwidth`` of the same run.

Parameters with ``device="cuda"`` are skipped (n/a) when no real GPU is usable.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from asv_benchmarks import _common
from asv_benchmarks._common import DEVICES, DTYPES, LOSSES, SIZES
from mlkernels import _registry


class Losses:
    """Each loss: value, gradient and value-and-gradient, all sizes, dtypes and devices."""

    params = (LOSSES, SIZES, DTYPES, DEVICES)
    param_names = ("loss", "n", "dtype", "device")
    timeout = 300.0

    def setup(self, loss: str, n: int, dtype: str, device: str) -> None:
        self.case = _common.case(loss, n, dtype, device)

    def time_value(self, loss: str, n: int, dtype: str, device: str) -> None:
        self.case.call("value")

    def time_grad(self, loss: str, n: int, dtype: str, device: str) -> None:
        self.case.call("grad")

    def time_value_and_grad(self, loss: str, n: int, dtype: str, device: str) -> None:
        self.case.call("value_and_grad")

    def track_value_gbps(self, loss: str, n: int, dtype: str, device: str) -> float:
        return self.case.gbps("value")

    track_value_gbps.unit = "GB/s"

    def track_value_and_grad_gbps(self, loss: str, n: int, dtype: str, device: str) -> float:
        return self.case.gbps("value_and_grad")

    track_value_and_grad_gbps.unit = "GB/s"

    def track_speedup_over_numpy(self, loss: str, n: int, dtype: str, device: str) -> float:
        return self.case.speedup()

    track_speedup_over_numpy.unit = "x"


class NumpyFormulas:
    """The NumPy formulas of the registry: the baseline (CPU only)."""

    params = (LOSSES, SIZES, DTYPES)
    param_names = ("loss", "n", "dtype")
    timeout = 300.0

    def setup(self, loss: str, n: int, dtype: str) -> None:
        self.formula = _registry.ENTRIES[loss].reference
        self.args = _common.host_data(loss, n, dtype)

    def time_numpy_formula(self, loss: str, n: int, dtype: str) -> None:
        self.formula(*self.args)


@njit(parallel=True, fastmath={"reassoc", "contract"}, cache=False)
def _sum2(a, b):  # pragma: no cover - compiled
    s = 0.0
    for i in prange(a.size):
        s += a[i] + b[i]
    return s


class MemoryBandwidth:
    """Streaming bandwidth of the machine, to relate the losses' GB/s to.

    CPU: a numba parallel sum over two float64 arrays of 1e8 bytes together (read only,
    as a loss reads its two inputs). GPU: a device-to-device copy of 512 MiB of float64,
    counting the bytes read and written.
    """

    params = (DEVICES,)
    param_names = ("device",)
    timeout = 120.0

    def setup(self, device: str) -> None:
        _common.require(device)
        sync = _common.synchronizer(device)
        if device == "cuda":
            src = _common.cuda.device_array(1 << 26, np.float64)
            dst = _common.cuda.device_array(1 << 26, np.float64)
            self.nbytes = 2 * src.nbytes
            self.call = lambda: dst.copy_to_device(src)
        else:
            a = np.full(6_250_000, 1.0)
            b = np.full(6_250_000, 2.0)
            self.nbytes = a.nbytes + b.nbytes
            self.call = lambda: _sum2(a, b)
        self.call()  # compile the sum (about 1 s); the first copy
        sync()
        self.sync = sync

    def track_bandwidth(self, device: str) -> float:
        (seconds,) = _common.median_seconds((self.call, self.sync))
        return self.nbytes / seconds / 1e9

    track_bandwidth.unit = "GB/s"
