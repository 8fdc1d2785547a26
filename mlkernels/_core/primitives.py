"""Matrix products, scans, sorts and Cholesky factors: the building blocks a formula calls
between its kernels (attention's scores, PCA's covariance, a metric's ranks, a Gaussian
process's factor). Not templates: well-kept libraries do these better than a hand-written
kernel would, so each primitive is a library call per backend, and a numba.cuda kernel
only where no library is at hand (and for the CUDA simulator, which runs it in CI).

=============  ==========================  ==============================  ====================
primitive      CPU (NumPy arrays)          GPU (device arrays)             GPU, faster path
=============  ==========================  ==============================  ====================
``matmul``     ``numpy.matmul`` (BLAS)     ``gpu.pairwise`` tiles, a dot   cuBLAS through the
                                           per pair                        caller's CuPy/torch
``cumsum``     ``numpy.cumsum``, float64   a three-pass chunked scan       ``cupy.cumsum`` /
                                                                           ``torch.cumsum``
``argsort``    ``numpy.argsort`` (stable)  a bitonic sort of (key, index)  ``cupy.argsort`` /
                                           pairs (stable, NaN last)        ``torch.argsort``
``cholesky``   ``numpy.linalg.cholesky``   a column kernel (2n launches)   cuSOLVER through
               (LAPACK)                                                    CuPy / torch
=============  ==========================  ==============================  ====================

The faster path is taken when ``like`` (the caller's own array, as the pipeline keeps it)
is a CuPy array or a CUDA tensor and that library is importable; results are then the
library's arrays, viewed as Numba device arrays (no copy). Numerics match the CPU's to
rounding; the GPU kernels accumulate in float64.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from mlkernels._core.pipeline import on_gpu


def _library(like: Any) -> Any:
    """CuPy or torch when ``like`` is one of their device arrays (and so is importable)."""
    if like is None:
        return None
    module = type(like).__module__.split(".")[0]
    if module in ("cupy", "torch") and module in sys.modules:
        return sys.modules[module]
    return None


def _from_library(x: Any) -> Any:
    from mlkernels._core import gpu

    return gpu.as_device_array(x)


def _to_library(lib: Any, x: Any) -> Any:
    if lib.__name__ == "cupy":
        return lib.asarray(x)
    return lib.as_tensor(x, device="cuda")


def matmul(a: Any, b: Any, like: Any = None) -> Any:
    """``a @ b`` of (n, k) and (k, m) matrices, in their dtype."""
    if not on_gpu(a):
        return np.matmul(a, b)
    lib = _library(like)
    if lib is not None:
        return _from_library(lib.matmul(_to_library(lib, a), _to_library(lib, b)))
    from mlkernels._core import gpu

    n, m = a.shape[0], b.shape[1]
    dtype = np.result_type(np.dtype(a.dtype), np.dtype(b.dtype))
    out = gpu.empty((n, m), dtype)
    bt = gpu.flat(b.T, dtype).reshape(m, b.shape[0])  # rows of B^T: the pairs' second rows
    gpu.run_pairwise(gpu.DOT, gpu.flat(a, dtype).reshape(a.shape), bt, (0.0,), out)
    return out


def cumsum(x: Any, like: Any = None) -> Any:
    """The running sums of a 1-D array, accumulated in float64, in its dtype."""
    if not on_gpu(x):
        return np.cumsum(x, dtype=np.float64).astype(x.dtype, copy=False)
    lib = _library(like)
    if lib is not None and lib.__name__ == "cupy":
        return _from_library(lib.cumsum(lib.asarray(x), dtype=lib.float64).astype(x.dtype))
    if lib is not None:
        t = lib.as_tensor(x, device="cuda")
        return _from_library(lib.cumsum(t, 0, dtype=lib.float64).to(t.dtype))
    from mlkernels._core import gpu

    return gpu.cumsum(x)


def argsort(x: Any, like: Any = None) -> Any:
    """Stable ascending order of a 1-D array (NaN last, as ``numpy.argsort``), int64."""
    if not on_gpu(x):
        return np.argsort(x, kind="stable")
    lib = _library(like)
    if lib is not None and lib.__name__ == "cupy":
        return _from_library(lib.argsort(lib.asarray(x)))
    if lib is not None:
        return _from_library(lib.argsort(lib.as_tensor(x, device="cuda"), stable=True))
    from mlkernels._core import gpu

    return gpu.argsort(x)


def cholesky(a: Any, like: Any = None) -> Any:
    """The lower Cholesky factor L of a symmetric positive-definite (n, n) matrix,
    ``a = L Lᵀ``. Not positive definite: ``numpy.linalg.LinAlgError`` on the CPU, NaN in
    the factor on the GPU (which does not synchronise to check)."""
    if not on_gpu(a):
        return np.linalg.cholesky(a)
    lib = _library(like)
    if lib is not None and lib.__name__ == "cupy":
        return _from_library(lib.linalg.cholesky(lib.asarray(a)))
    if lib is not None:
        return _from_library(lib.linalg.cholesky(lib.as_tensor(a, device="cuda")))
    from mlkernels._core import gpu

    return gpu.cholesky(a)


__all__ = ["argsort", "cholesky", "cumsum", "matmul"]
