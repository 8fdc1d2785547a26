"""Regularisation and normalisation: mlkernels beside the NumPy formula and PyTorch.

* ``Penalties``: l1_loss, l2_loss, elastic_net (reductions), their gradients and dropout,
  on n = 1e3, 1e5, 1e7 elements.
* ``LayerNorm``: layer_norm and layer_norm_grad on 4096 rows of 64, 1024 and 4096.
* ``BatchNorm``: batch_norm and batch_norm_grad (statistics over the batch axis) and
  max_norm (norms of the columns) on a (4096, 1024) batch.

As in ``benchmarks_activations``: ``time_call`` by each ``library`` (mlkernels, the NumPy
formula, PyTorch's equivalent: ``F.layer_norm``, ``F.batch_norm(training=True)``,
``F.dropout``, ``torch.renorm``; backward passes through ``native_layer_norm_backward``
and ``native_batch_norm_backward`` after the forward op that gives them the statistics),
and the ``*Speedup`` classes: mlkernels' GB/s and speedup over PyTorch measured
interleaved, on the large sizes only (n = 1e7; rows of 1024 and 4096; the (4096, 1024)
batch).
"""

from __future__ import annotations

from asv_benchmarks import _common
from asv_benchmarks._common import DEVICES, DTYPES, LIBRARIES, SIZES, smoke
from mlkernels._bench import registry as _registry

PENALTIES = smoke(
    [e.name for e in _registry.entries(families=["regularisation"]) if e.layout == "flat"]
)
LAYER_NORM = ["layer_norm", "layer_norm_grad"]
BATCH = smoke(["batch_norm", "batch_norm_grad", "max_norm"])
ROWS = 4096
ROW_LENGTHS = smoke([64, 1024, 4096], 1)
LARGE = [SIZES[-1]]  # the tracks' sizes: out of every cache
LARGE_ROWS = smoke([1024, 4096], 1)


class Penalties(_common._LibraryTimes):
    """Weight penalties, their gradients and dropout, by mlkernels, NumPy and PyTorch."""

    params = (PENALTIES, SIZES, DTYPES, LIBRARIES, DEVICES)


class PenaltiesSpeedup(_common._Tracks):
    """mlkernels' GB/s and speedup over PyTorch: penalties and dropout, n = 1e7."""

    params = (PENALTIES, LARGE, DTYPES, DEVICES)


class LayerNorm(_common._LibraryTimes):
    """layer_norm and its backward pass on 4096 rows, by mlkernels, NumPy and PyTorch."""

    params = (LAYER_NORM, ROW_LENGTHS, DTYPES, LIBRARIES, DEVICES)
    param_names = ("function", "cols", "dtype", "library", "device")
    rows = ROWS


class LayerNormSpeedup(_common._Tracks):
    """mlkernels' GB/s and speedup over PyTorch: layer_norm and its backward pass."""

    params = (LAYER_NORM, LARGE_ROWS, DTYPES, DEVICES)
    param_names = ("function", "cols", "dtype", "device")
    rows = ROWS


class BatchNorm(_common._LibraryTimes):
    """batch_norm, its backward pass and max_norm on (4096, 1024), by each library."""

    params = (BATCH, [1024], DTYPES, LIBRARIES, DEVICES)
    param_names = ("function", "cols", "dtype", "library", "device")
    rows = ROWS


class BatchNormSpeedup(_common._Tracks):
    """mlkernels' GB/s and speedup over PyTorch: batch_norm (and backward) and max_norm."""

    params = (BATCH, [1024], DTYPES, DEVICES)
    param_names = ("function", "cols", "dtype", "device")
    rows = ROWS
