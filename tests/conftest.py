"""Test set-up: GPU kernels run under Numba's CUDA simulator unless a real GPU is asked for.

``NUMBA_ENABLE_CUDASIM`` must be set before numba is first imported, hence here. On a
machine with a GPU, run ``NUMBA_ENABLE_CUDASIM=0 pytest`` to test the real kernels.

Fixtures:
* ``device``: "cpu" and "gpu" (simulated or real); ``to_device(x, device)`` and
  ``to_host(x)`` move test data; ``sizes(device)`` gives the sizes to test.
* ``cases``, ``scalar_result``, ``array_result``: shared parametrisation and result checks.
* ``spy_on_kinds``: which compilation (serial or parallel) of a CPU kernel calls run.
* hypothesis: the "ci" profile when ``CI`` is set (derandomized, no database).
* ``REPORT``: lines a test leaves for the end of the session (the ptxas table), also
  from pytest-xdist's workers (``python -m pytest -n auto``).
* Under the simulator every GPU test runs with 2 blocks of 32 threads, so several blocks
  and the grid-stride loop are covered by tiny arrays.
"""

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

import mlkernels as mk  # noqa: E402

SIMULATOR = os.environ["NUMBA_ENABLE_CUDASIM"] not in ("", "0")
GPU = SIMULATOR or mk.cuda_available()

# CI (CI=true): hypothesis draws the same examples on every run (a failure reproduces from
# the log, none comes and goes with the seed) and keeps no example database.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI", "") not in ("", "0", "false") else "default")

#: Lines printed at the end of the test session (``pytest_terminal_summary``): a test
#: leaves them with ``record_property(REPORT_KEY, lines)``, which reaches this process
#: from pytest-xdist's workers too.
REPORT_KEY = "report"
REPORT: list[str] = []


def pytest_runtest_logreport(report):
    if report.when != "call":  # the teardown's report carries the properties again
        return
    for key, lines in report.user_properties:
        if key == REPORT_KEY:
            REPORT.extend(lines)


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.write_sep("-", "report")
        for line in REPORT:
            terminalreporter.write_line(line)


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


def cases(grid_cpu, grid_gpu, ident):
    """pytest params (device first, fed to the ``device`` fixture indirectly)."""
    out = [pytest.param("cpu", *c, id="cpu-" + ident(*c)) for c in grid_cpu]
    out += [pytest.param("gpu", *c, id="gpu-" + ident(*c)) for c in grid_gpu]
    return out


def scalar_result(got, dtype, device) -> float:
    """A reduction's result: a NumPy scalar of the dtype on the CPU, a 0-d device array
    on the GPU. Returns its value."""
    dtype = np.dtype(dtype)
    if device == "cpu":
        assert type(got) is dtype.type, f"expected a {dtype.type.__name__}, got {type(got)}"
        return float(got)
    assert hasattr(got, "copy_to_host"), f"expected a device array, got {type(got)}"
    h = to_host(got)
    assert h.shape == () and h.dtype == dtype, (h.shape, h.dtype)
    return float(h)


def array_result(got, dtype, shape, device) -> np.ndarray:
    """An array result: a NumPy array on the CPU, a device array on the GPU."""
    if device == "cpu":
        assert type(got) is np.ndarray, f"expected numpy.ndarray, got {type(got)}"
    else:
        assert hasattr(got, "copy_to_host"), f"expected a device array, got {type(got)}"
    h = to_host(got)
    assert h.dtype == np.dtype(dtype), f"dtype {h.dtype}, expected {dtype}"
    assert h.shape == tuple(shape), f"shape {h.shape}, expected {tuple(shape)}"
    return h


def spy_on_kinds(monkeypatch, kernel) -> list[str]:
    """Record which compilation of a CPU kernel (``"serial"`` or ``"parallel"``, see
    ``mlkernels._core.jit.CpuKernel``) each call runs; returns the list it appends to."""
    ran: list[str] = []
    for kind in ("serial", "parallel"):
        compiled = getattr(kernel, kind)

        def spy(*args, _kind=kind, _compiled=compiled):
            ran.append(_kind)
            return _compiled(*args)

        monkeypatch.setattr(kernel, kind, spy)
    return ran


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
