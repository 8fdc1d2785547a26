"""Test set-up: GPU kernels run under Numba's CUDA simulator unless a real GPU is asked for.

``NUMBA_ENABLE_CUDASIM`` must be set before numba is first imported, hence here. On a
machine with a GPU, run ``NUMBA_ENABLE_CUDASIM=0 pytest`` to test the real kernels.

Fixtures:
* ``device``: "cpu" and "gpu" (simulated or real); ``to_device(x, device)`` and
  ``to_host(x)`` move test data; ``sizes(device)`` gives the sizes to test.
* Under the simulator every GPU test runs with 2 blocks of 32 threads, so several blocks
  and the grid-stride loop are covered by tiny arrays.
"""

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import mlkernels as mk  # noqa: E402

SIMULATOR = os.environ["NUMBA_ENABLE_CUDASIM"] not in ("", "0")
GPU = SIMULATOR or mk.cuda_available()

CPU_SIZES = (1, 2, 31, 32, 33, 1000, 1009)
GPU_SIZES = (1, 2, 33, 131) if SIMULATOR else CPU_SIZES + (1 << 20,)


def sizes(device):
    return CPU_SIZES if device == "cpu" else GPU_SIZES


def to_device(x, device):
    if device == "cpu":
        return x
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(x))


def to_host(x):
    if hasattr(x, "copy_to_host"):
        return x.copy_to_host()
    return np.asarray(x)


@pytest.fixture(params=["cpu", "gpu"])
def device(request):
    if request.param == "gpu":
        if not GPU:
            pytest.skip("no GPU and the simulator is off")
        launch = mk.launch_config(threads=32, blocks=2) if SIMULATOR else mk.launch_config()
        with launch:
            yield "gpu"
    else:
        yield "cpu"
