"""CPU threads: TBB by default (loaded from the ``tbb`` package), a warned fallback, the
user's ``NUMBA_THREADING_LAYER`` respected; small calls on the serial kernels; results
that do not depend on the threads; forking after a kernel ran; concurrent callers.

Most checks run in a fresh interpreter: numba picks its threading layer once per process.
"""

import os
import subprocess
import sys
import textwrap
import threading
from importlib import metadata
from pathlib import Path

import numba
import numpy as np
import pytest

import mlkernels as mk
from conftest import spy_on_kinds
from mlkernels._core import threads as _threads

ROOT = Path(__file__).resolve().parents[1]
BIG = _threads.PARALLEL_MIN  # calls on this many elements run on every thread


def _tbb_installed() -> bool:
    try:
        metadata.distribution("tbb")
    except metadata.PackageNotFoundError:
        return False
    return True


def _run(code: str, tmp_path, *, check: bool = True, timeout: float = 300, **env):
    """Run ``code`` in a fresh interpreter (mlkernels from this checkout, no simulator),
    sharing the JIT cache of the test run when it has one."""
    cache = os.environ.get("MLKERNELS_CACHE_DIR") or str(tmp_path / "cache")
    full = {**os.environ, "MLKERNELS_CACHE_DIR": cache, **env}
    for key in ("NUMBA_ENABLE_CUDASIM", "NUMBA_THREADING_LAYER"):
        if key not in env:
            full.pop(key, None)
    full["PYTHONPATH"] = os.pathsep.join([str(ROOT), full.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        cwd=tmp_path,
    )
    if check:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


# One parallel-sized call of each CPU template; the results, saved to an .npz file.
EVERY_TEMPLATE = f"""
import sys, warnings
import numpy as np
warnings.simplefilter("error")  # no fallback warning expected here
import mlkernels as mk, numba
rng = np.random.default_rng(7)
n = {BIG}
y, yh = rng.standard_normal(n), rng.standard_normal(n)
x = rng.standard_normal((n // 64, 64)).astype(np.float32)
labels = rng.integers(0, 64, n // 64)
onehot = np.eye(64)[labels]
p = mk.softmax(x.astype(np.float64))
g = np.ones(64, np.float32)
res = dict(
    mse=mk.mse(y, yh), mse_sum=mk.mse(y, yh, reduction="sum"), huber_grad=mk.huber_grad(y, yh),
    l2=mk.l2_loss(yh), cce=mk.cce(onehot, p), cce_none=mk.cce(onehot, p, reduction="none"),
    nll=mk.nll(np.log(p), labels), nll_grad=mk.nll_grad(np.log(p), labels),
    relu=mk.relu(yh), gelu=mk.gelu(x), softmax=mk.softmax(x), layer_norm=mk.layer_norm(x, g, g),
    batch_norm=mk.batch_norm(x, g, g)[0],
)
np.savez(sys.argv[1] if len(sys.argv) > 1 else "out.npz", **res)
print(numba.get_num_threads())
"""


def test_the_default_layer_is_tbb_and_show_config_says_why(tmp_path):
    done = _run(
        """
        import numpy as np, mlkernels as mk, numba
        mk.relu(np.ones(1 << 20))
        print(numba.threading_layer())
        mk.show_config()
        """,
        tmp_path,
    )
    lines = done.stdout.splitlines()
    config = next(line for line in lines if "threading layer:" in line)
    if _tbb_installed():
        assert lines[0] == "tbb", done.stdout
        assert "threading layer: tbb (the default: " in config
        assert "RuntimeWarning" not in done.stderr
    else:  # a platform without tbb wheels: the documented fallback, with its warning
        assert lines[0] == "omp", done.stdout
        assert "TBB could not be loaded" in config and "TBB could not be loaded" in done.stderr
    assert f"calls on < {BIG} elements run on the calling thread" in config


def test_without_tbb_it_falls_back_to_openmp_with_one_warning_saying_why(tmp_path):
    done = _run(
        """
        import ctypes, warnings
        real = ctypes.CDLL.__init__
        def no_tbb(self, name, *a, **k):  # as if the tbb package were not installed
            if "tbb" in str(name):
                raise OSError(f"{name}: cannot open shared object file")
            real(self, name, *a, **k)
        ctypes.CDLL.__init__ = no_tbb
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import numpy as np, mlkernels as mk, numba
            assert mk.mse(np.ones(1 << 20), np.zeros(1 << 20)) == 1.0
        print(numba.threading_layer())
        ours = [w for w in caught if "mlkernels" in str(w.message)]
        print(len(ours), ours[0].category.__name__, ours[0].message)
        mk.show_config()
        """,
        tmp_path,
    )
    layer, warning = done.stdout.splitlines()[:2]
    assert layer == "omp"
    assert warning.startswith("1 RuntimeWarning mlkernels: TBB could not be loaded")
    assert "pip install tbb" in warning and "fork" in warning
    assert "threading layer: omp (TBB could not be loaded: " in done.stdout


@pytest.mark.parametrize("layer", ["workqueue", "omp", "tbb"])
def test_the_users_threading_layer_is_respected(tmp_path, layer):
    if layer == "tbb" and not _tbb_installed():
        pytest.skip("the tbb package is not installed on this platform")
    done = _run(
        """
        import numpy as np, mlkernels as mk, numba
        mk.relu(np.ones(1 << 20))
        print(numba.threading_layer())
        mk.show_config()
        """,
        tmp_path,
        NUMBA_THREADING_LAYER=layer,
    )
    assert done.stdout.splitlines()[0] == layer
    assert f"threading layer: {layer} (NUMBA_THREADING_LAYER is set" in done.stdout
    assert "RuntimeWarning" not in done.stderr


def test_tbb_is_found_where_the_package_put_it_when_the_loader_cannot(monkeypatch):
    """A virtual environment's ``lib/`` is not on the loader's path: the library is
    loaded by its path, found from the ``tbb`` distribution's file list."""
    if not _tbb_installed():
        pytest.skip("the tbb package is not installed on this platform")
    name = _threads._TBB_NAMES[sys.platform]
    listed = [str(f.locate()) for f in metadata.files("tbb") if Path(str(f)).name == name]
    assert listed and all(Path(p).exists() for p in listed)
    assert set(listed) <= set(_threads._tbb_candidates(name))
    monkeypatch.setattr(_threads, "_tbb_candidates", lambda n: ["libtbb-missing.so.12", *listed])
    loaded, where = _threads._load_tbb()
    assert loaded and where == listed[0]


def test_no_tbb_anywhere_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(_threads, "_tbb_candidates", lambda n: ["/nonexistent/libtbb.so.12"])
    loaded, why = _threads._load_tbb()
    assert not loaded and "not found" in why and "pip install tbb" in why


def test_a_bad_parallel_min_is_a_warning_and_the_default(tmp_path):
    done = _run(
        "from mlkernels._core import threads; print(threads.PARALLEL_MIN)",
        tmp_path,
        MLKERNELS_PARALLEL_MIN="lots",
    )
    assert done.stdout.split() == [str(1 << 18)]
    assert "MLKERNELS_PARALLEL_MIN='lots'" in done.stderr


def test_small_calls_run_the_serial_kernel_and_large_ones_the_parallel_one(monkeypatch):
    from mlkernels import activations
    from mlkernels._core import cpu as _cpu

    ran = spy_on_kinds(monkeypatch, _cpu.map(activations._relu, 1, 2, False, False))
    x = np.random.default_rng(0).standard_normal(BIG).astype(np.float32)
    np.testing.assert_array_equal(mk.relu(x[: BIG - 1]), np.maximum(0, x[: BIG - 1]))
    np.testing.assert_array_equal(mk.relu(x), np.maximum(0, x))
    with _threads.parallel_min(0):  # the threshold is read at every call
        np.testing.assert_array_equal(mk.relu(x[:10]), np.maximum(0, x[:10]))
    assert ran == ["serial", "parallel", "parallel"]
    assert _threads.PARALLEL_MIN == BIG


def test_results_do_not_depend_on_the_threads(tmp_path):
    """Every CPU template, on parallel-sized data: all threads (the default), one thread
    (``NUMBA_NUM_THREADS=1``) and the serial kernels (``MLKERNELS_PARALLEL_MIN`` above the
    size) give bit-identical results, reductions included (their chunks follow the size,
    not the threads)."""
    runs = {
        "default": {},
        "one-thread": {"NUMBA_NUM_THREADS": "1"},
        "serial": {"MLKERNELS_PARALLEL_MIN": str(1 << 40)},
    }
    results = {}
    for name, env in runs.items():
        out = tmp_path / f"{name}.npz"
        done = _run(EVERY_TEMPLATE.replace('"out.npz"', repr(str(out))), tmp_path, **env)
        results[name] = dict(np.load(out))
        threads = done.stdout.split()[0]
        assert threads == ("1" if name == "one-thread" else str(numba.config.NUMBA_NUM_THREADS))
    base = results["default"]
    for name in ("one-thread", "serial"):
        for key, value in base.items():
            assert results[name][key].tobytes() == value.tobytes(), (name, key)


def test_the_results_agree_with_numpy_on_parallel_sized_data(tmp_path):
    """The parallel path itself (not only its agreement with the serial one)."""
    out = tmp_path / "out.npz"
    _run(EVERY_TEMPLATE.replace('"out.npz"', repr(str(out))), tmp_path)
    got = dict(np.load(out))
    rng = np.random.default_rng(7)
    y, yh = rng.standard_normal(BIG), rng.standard_normal(BIG)
    x = rng.standard_normal((BIG // 64, 64)).astype(np.float32)
    labels = rng.integers(0, 64, BIG // 64)
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got["mse"], np.mean((y - yh) ** 2), rtol=1e-12)
    np.testing.assert_allclose(got["mse_sum"], np.sum((y - yh) ** 2), rtol=1e-12)
    np.testing.assert_allclose(got["l2"], 1e-4 * np.sum(yh**2), rtol=1e-12)
    np.testing.assert_allclose(got["relu"], np.maximum(0, yh))
    np.testing.assert_allclose(got["softmax"], p, rtol=2e-6, atol=1e-9)
    nll = -np.mean(np.log(p[np.arange(labels.size), labels]))
    np.testing.assert_allclose(got["nll"], nll, rtol=1e-6)
    np.testing.assert_allclose(got["cce"], nll, rtol=1e-6)
    np.testing.assert_allclose(got["cce_none"], -np.log(p[np.arange(labels.size), labels]), 1e-6)


FORK = f"""
import multiprocessing as mp, sys
import numpy as np
import mlkernels as mk, numba
x = np.random.default_rng(3).standard_normal({2 * BIG})

def work(k):  # parallel-sized calls: every thread of the threading layer takes part
    return float(mk.mse(x, x * k)), mk.relu(x * k), mk.softmax(x.reshape(-1, 512) * k)

parent = [work(k) for k in (1, 2, 3)]  # the kernels run (and start their threads) here
print(numba.threading_layer(), flush=True)
ctx = mp.get_context("fork")
if sys.argv[1] == "pool":
    with ctx.Pool(2) as pool:
        children = pool.map_async(work, (1, 2, 3)).get(timeout=120)
    for (v, r, s), (cv, cr, cs) in zip(parent, children):
        assert v == cv and r.tobytes() == cr.tobytes() and s.tobytes() == cs.tobytes()
    print("children agree")
else:  # one forked child; its exit code tells whether it could run a kernel
    child = ctx.Process(target=work, args=(1,))
    child.start()
    child.join(60)
    print("child exit", child.exitcode)
"""


def test_a_fork_started_pool_computes_in_its_children(tmp_path):
    """multiprocessing's fork start method (Python 3.11's default on Linux), DataLoader
    workers, gunicorn and Celery prefork workers fork a process that ran kernels."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    done = _run(FORK.replace("sys.argv[1]", "'pool'"), tmp_path, timeout=240)
    assert done.stdout.split("\n")[:2] == ["tbb" if _tbb_installed() else "omp", "children agree"]


def test_the_same_fork_kills_the_child_under_gnu_openmp(tmp_path):
    """The negative control: why OpenMP is not the default (the fork test can fail)."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    done = _run(FORK.replace("sys.argv[1]", "'process'"), tmp_path, NUMBA_THREADING_LAYER="omp")
    layer, result = done.stdout.splitlines()[:2]
    if layer != "omp":
        pytest.skip(f"numba's OpenMP layer is not available here ({layer})")
    assert result != "child exit 0", done.stderr[-2000:]
    assert "fork() called from a process already using GNU OpenMP" in done.stderr


@pytest.mark.parametrize("n", [50_000, BIG + 1], ids=["small", "parallel"])
def test_eight_python_threads_at_once_give_the_serial_results(n):
    rng = np.random.default_rng(1)
    data = [(rng.standard_normal(n), rng.standard_normal(n)) for _ in range(8)]
    calls = [
        lambda y, yh: mk.mse(y, yh),
        lambda y, yh: mk.huber_value_and_grad(y, yh, 0.5)[1],
        lambda y, yh: mk.log_cosh(y, yh, reduction="none"),
        lambda y, yh: mk.hinge_grad(np.sign(y), yh),
        lambda y, yh: mk.softmax(yh.reshape(-1, 50) if n % 50 == 0 else yh),
        lambda y, yh: mk.relu_grad(yh),
    ]
    expected = [[np.asarray(f(y, yh)) for f in calls] for y, yh in data]
    results = [None] * len(data)
    barrier = threading.Barrier(len(data))

    def work(k):
        barrier.wait()
        results[k] = [[np.asarray(f(*data[k])) for f in calls] for _ in range(3)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(data))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, runs in enumerate(results):
        for run in runs:
            for got, want in zip(run, expected[k], strict=True):
                np.testing.assert_array_equal(got, want)
