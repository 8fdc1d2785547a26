"""The activations: mlkernels beside the NumPy formula and PyTorch, in the same suite.

* ``Elementwise``: the 18 elementwise activations and their derivatives (``sigmoid``,
  ``sigmoid_grad``, ...) on n = 1e3, 1e5, 1e7 elements.
* ``Rows``: softmax, log_softmax and their vector-Jacobian products on 4096 rows of 64,
  1024 and 4096 columns (along the last axis).

``time_call`` times one call by each ``library``: ``mlkernels``, ``numpy`` (the formula;
CPU only) and ``torch`` (PyTorch's equivalent: ``torch.sigmoid``, ``F.gelu(approximate=
"tanh")``, ...; derivatives are PyTorch's backward ops given an all-ones upstream gradient,
see ``mlkernels._bench.registry.torch_baselines``). The ``*Speedup`` classes track mlkernels'
GB/s (inputs + returned arrays; relate to ``CopyBandwidth``) and its speedup over
PyTorch, measured interleaved in one process, on the large sizes only (n = 1e7; rows of
1024 and 4096): the quick run stays short, and GB/s means memory bandwidth only there.

Parameters with ``device="cuda"`` are n/a without a real GPU (and torch on "cuda" without
a CUDA build of PyTorch); ``numpy`` on "cuda" is always n/a.
"""

from __future__ import annotations

from asv_benchmarks import _common
from asv_benchmarks._common import DEVICES, DTYPES, LIBRARIES, SIZES, smoke
from mlkernels._bench import measure as _bench
from mlkernels._bench import registry as _registry

ELEMENTWISE = smoke(
    [e.name for e in _registry.ENTRIES.values() if e.family == "activations" and e.layout == "flat"]
)
ROW_FUNCTIONS = smoke(
    [e.name for e in _registry.ENTRIES.values() if e.family == "activations" and e.layout == "rows"]
)
ROWS = 4096
ROW_LENGTHS = smoke([64, 1024, 4096], 1)
LARGE = [SIZES[-1]]  # the tracks' sizes: out of every cache
LARGE_ROWS = smoke([1024, 4096], 1)


class Elementwise(_common._LibraryTimes):
    """Each elementwise activation and derivative, by mlkernels, NumPy and PyTorch."""

    params = (ELEMENTWISE, SIZES, DTYPES, LIBRARIES, DEVICES)


class ElementwiseSpeedup(_common._Tracks):
    """mlkernels' GB/s and speedup over PyTorch, elementwise activations, n = 1e7."""

    params = (ELEMENTWISE, LARGE, DTYPES, DEVICES)


class Rows(_common._LibraryTimes):
    """softmax, log_softmax and their VJPs on 4096 rows, by mlkernels, NumPy and PyTorch."""

    params = (ROW_FUNCTIONS, ROW_LENGTHS, DTYPES, LIBRARIES, DEVICES)
    param_names = ("function", "cols", "dtype", "library", "device")
    rows = ROWS


class RowsSpeedup(_common._Tracks):
    """mlkernels' GB/s and speedup over PyTorch, softmax and log_softmax (and VJPs)."""

    params = (ROW_FUNCTIONS, LARGE_ROWS, DTYPES, DEVICES)
    param_names = ("function", "cols", "dtype", "device")
    rows = ROWS


class CopyBandwidth:
    """Streaming read + write bandwidth, to relate the GB/s of functions that return arrays
    to: the main job's probe (``mlkernels._bench.measure.BandwidthProbe(kind="copy")``). CPU: a
    numba parallel ``b = 2 a`` over 80 MB float64 arrays, counting both. GPU: a
    device-to-device copy of 256 MiB of float64, counting the bytes read and written.
    """

    params = (DEVICES,)
    param_names = ("device",)
    timeout = 120.0

    def setup(self, device: str) -> None:
        _common.require(device)
        self.probe = _bench.BandwidthProbe(device, 0, kind="copy")

    def track_bandwidth(self, device: str) -> float:
        return self.probe.measure(repeat=5).gbps

    track_bandwidth.unit = "GB/s"
