"""The one place mlkernels imports its CUDA compiler from.

``numba.cuda`` comes from numba-cuda, in maintenance mode since mid-2026; its successor,
numba-cuda-mlir, keeps the ``cuda.jit`` / ``cuda.grid`` / ``cuda.shared`` API. Moving to it
(or to another provider of that API) is a change of this file only: every GPU module
imports ``cuda`` from here. The tests keep numba-cuda and its simulator
(``NUMBA_ENABLE_CUDASIM=1``).
"""

from numba import cuda


def fake_array_type() -> type:
    """The simulator's device array type (the tests' simulator stays numba-cuda's)."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    return FakeCUDAArray


__all__ = ["cuda", "fake_array_type"]
