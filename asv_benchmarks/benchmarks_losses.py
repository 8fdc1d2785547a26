"""The losses: run time, GB/s and speedup over NumPy, beside the machine's bandwidth.

``time_*`` benchmarks time one call (synchronised on the GPU). ``track_*`` benchmarks
measure inside, as the median of a few calls: GB/s is the bytes of the input arrays over
that time, and the speedup is measured against the NumPy formula in the same process,
interleaved, so that it holds on a noisy machine where absolute times do not. Relate
GB/s to ``MemoryBandwidth.track_bandwidth`` of the same run.

Parameters with ``device="cuda"`` are skipped (n/a) when no real GPU is usable.
"""

from __future__ import annotations

from asv_benchmarks import _common
from asv_benchmarks._common import DEVICES, DTYPES, LOSSES, SIZES
from mlkernels._bench import measure as _bench
from mlkernels._bench import registry as _registry


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


class MemoryBandwidth:
    """Streaming bandwidth of the machine, to relate the losses' GB/s to: the main job's
    probe (``mlkernels._bench.measure.BandwidthProbe``). CPU: a numba parallel sum over two
    float64 arrays of 80 MB each (read only, as a loss reads its two inputs). GPU: a
    device-to-device copy of 256 MiB of float64, counting the bytes read and written.
    """

    params = (DEVICES,)
    param_names = ("device",)
    timeout = 120.0

    def setup(self, device: str) -> None:
        _common.require(device)
        self.probe = _bench.BandwidthProbe(device, 0)

    def track_bandwidth(self, device: str) -> float:
        return self.probe.measure(repeat=5).gbps

    track_bandwidth.unit = "GB/s"
