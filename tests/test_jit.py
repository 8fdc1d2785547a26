"""The JIT: nothing compiled at import, a disk cache a new process hits, invalidated when
the package's sources change, no crash without a writable cache; determinism (threads:
``test_threads.py``)."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import GPU, SIMULATOR, to_device, to_host

ROOT = Path(__file__).resolve().parents[1]

# Prints the cache statistics of the kernels one mse call used, as "hits misses result".
PROBE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import mlkernels as mk
    from mlkernels import losses
    from mlkernels._core import cpu as _cpu
    from mlkernels._core import jit as _jit
    y = np.arange(10.0)
    value = mk.mse(y, y + 1.0)
    kernel = _cpu.reduce(losses._mse, 2, 1, 2, "float64", True).serial  # 10 elements: serial
    hits = sum(kernel.stats.cache_hits.values())
    misses = sum(kernel.stats.cache_misses.values())
    assert mk.__file__.startswith(sys.argv[1]), mk.__file__
    print(hits, misses, repr(float(value)), _jit.cache_dir())
    """
)


# Import mlkernels from a given directory even where an editable install maps it elsewhere.
IMPORT_FROM = textwrap.dedent(
    """
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location(
        "mlkernels", {init!r}, submodule_search_locations=[{pkg!r}])
    module = importlib.util.module_from_spec(spec)
    sys.modules["mlkernels"] = module
    spec.loader.exec_module(module)
    """
)


def _python(code, cache_dir, root=ROOT):
    pkg = Path(root) / "mlkernels"
    env = {**os.environ, "MLKERNELS_CACHE_DIR": str(cache_dir)}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    prelude = IMPORT_FROM.format(init=str(pkg / "__init__.py"), pkg=str(pkg))
    done = subprocess.run(
        [sys.executable, "-c", prelude + code, str(pkg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_import_compiles_nothing_and_does_not_import_cuda(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        import mlkernels
        from mlkernels._core import cpu as _cpu
        print(_cpu.reduce.cache_info().currsize, _cpu.classes_dense.cache_info().currsize,
              _cpu.classes_index.cache_info().currsize, "numba.cuda" in sys.modules)
        """
    )
    assert _python(code, tmp_path) == ["0", "0", "0", "False"]


def test_a_new_process_hits_the_disk_cache(tmp_path):
    hits, misses, value, where = _python(PROBE, tmp_path)
    assert (hits, misses, value) == ("0", "1", "1.0")
    assert Path(where).parent == tmp_path and any(Path(where).glob("*.nbi"))
    hits, misses, value, _ = _python(PROBE, tmp_path)
    assert (hits, misses, value) == ("1", "0", "1.0")


def test_the_cache_is_invalidated_when_any_source_changes(tmp_path):
    """Editing a scalar helper in another module than the kernel template must not leave
    stale machine code in use (numba alone re-validates only the template's own file)."""
    pkg = tmp_path / "src"
    shutil.copytree(
        ROOT / "mlkernels", pkg / "mlkernels", ignore=shutil.ignore_patterns("__pycache__")
    )
    cache = tmp_path / "cache"
    assert _python(PROBE, cache, pkg)[:3] == ["0", "1", "1.0"]
    assert _python(PROBE, cache, pkg)[:3] == ["1", "0", "1.0"]
    losses = pkg / "mlkernels" / "losses.py"
    source = losses.read_text()
    edited = source.replace("    return e * e, e + e\n", "    return 3 * e * e, e + e\n", 1)
    assert edited != source
    losses.write_text(edited)
    hits, misses, value, _ = _python(PROBE, cache, pkg)
    assert (hits, misses, value) == ("0", "1", "3.0")


OUTSIDE = textwrap.dedent(
    """
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from numba.extending import register_jitable
    from mlkernels._core import cpu
    import scalar_op
    out = np.empty(3)
    cpu.run_map(register_jitable(scalar_op.f), [np.zeros(3)], (0.0,), [out])
    print(out[0])
    """
)


def test_a_kernel_of_scalar_code_outside_the_package_is_recompiled_when_it_changes(tmp_path):
    """A template's kernel keyed on a scalar function of another module (a test's, a
    user's): numba's cache knows that function by name only, so an edit of it must change
    which cache entry is used."""
    op = tmp_path / "scalar_op.py"
    op.write_text("def f(x, params):\n    return (x + 1.0,)\n")
    cache = tmp_path / "cache"

    def run():
        return _python(OUTSIDE.replace("sys.argv[2]", repr(str(tmp_path))), cache)[-1]

    assert run() == "1.0"
    op.write_text("def f(x, params):\n    return (x + 2.0,)\n")
    assert run() == "2.0"
    op.write_text("def f(x, params):\n    return (x + 1.0,)\n")
    assert run() == "1.0"


CONCURRENT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import mlkernels as mk
    names = sys.argv[2].split(",")
    while time.time() < float(sys.argv[3]):  # start together
        time.sleep(0.001)
    rng = np.random.default_rng(0)
    y, y_hat = rng.random(50) * 0.9 + 0.05, rng.random(50) * 0.9 + 0.05
    for name in names:
        print(name, repr(float(getattr(mk, name)(y, y_hat))))
    """
)


def _concurrently(cache, groups):
    import time

    start = time.time() + 3.0
    prelude = IMPORT_FROM.format(init=str(ROOT / "mlkernels" / "__init__.py"),
                                 pkg=str(ROOT / "mlkernels"))  # fmt: skip
    env = {**os.environ, "MLKERNELS_CACHE_DIR": str(cache)}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", prelude + CONCURRENT, str(ROOT), ",".join(g), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for g in groups
    ]
    out = {}
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        out.update(line.split() for line in stdout.splitlines())
    return out


def test_processes_compiling_kernels_of_one_template_into_one_cache_at_once(tmp_path):
    """Four processes compile different losses (kernels of one template) into one empty
    cache at the same moment, then a fresh process loads every one: each gives its own
    result, the same as without a cache. (Before, numba kept every kernel of a template in
    ONE index file, updated by an unlocked read-modify-write; and a template's inner
    helper had one name for every formula: loaded into one process, the kernels that
    different processes had compiled called one helper, and huber gave another loss.)"""
    losses = ["mse", "mae", "huber", "log_cosh", "bce", "hinge", "squared_hinge", "focal"]
    losses += ["kl_divergence", "js_divergence", "contrastive", "rmse"]
    cache = tmp_path / "cache"
    first = _concurrently(cache, [losses[k::4] for k in range(4)])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    uncached = _concurrently(blocker / "no-cache", [losses])
    loaded = _concurrently(cache, [losses])
    assert first == uncached == loaded, (first, uncached, loaded)
    assert len(set(uncached.values())) == len(losses)  # twelve different formulas
    indexes = list(next(cache.iterdir()).glob("*reduce_kernel_serial*.nbi"))
    assert len(indexes) == len(losses) - 1  # an index of each kernel's (rmse runs mse's)


def test_a_cache_folder_others_can_write_to_is_not_used(tmp_path):
    """A cache is pickled code: loading one from a folder another user can write to would
    run their code. Such a folder means no disk cache, and one warning naming it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    code = PROBE.replace("import sys", "import sys, warnings; warnings.simplefilter('always')")
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_FROM.format(init=str(ROOT / "mlkernels" / "__init__.py"),
         pkg=str(ROOT / "mlkernels")) + code, str(ROOT / "mlkernels")],
        capture_output=True, text=True, timeout=300,
        env={**{k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"},
             "MLKERNELS_CACHE_DIR": str(shared)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "None"  # cache_dir(): no cache
    assert str(shared) in done.stderr and "writable by others" in done.stderr
    assert done.stderr.count("compiles without a disk cache") == 1
    assert not any(shared.iterdir())  # nothing written there either


# The disk caches of GPU kernels, read without a GPU: numba-cuda builds a kernel's cache
# (its folder and index file) when the kernel is made, compiling only at the first launch.
GPU_CACHES = textwrap.dedent(
    """
    from mlkernels import losses
    from mlkernels._core import gpu, jit
    kernels = [
        gpu.reduce(losses._mse, 2, 1, 2, "float64", True),
        gpu.reduce(losses._mae, 2, 1, 2, "float64", True),  # the same template as mse's
        gpu.reduce(losses._bce, 2, 1, 2, "float64", False),
        gpu._rescale,
    ]
    for k in kernels:
        c = k._cache
        folder = getattr(c, "_cache_path", None) == str((jit.cache_dir() or jit.Path()) / "cuda")
        index = c._cache_file._index_name if folder else "-"
        print(type(c).__name__, folder, index, "_locked" in k.compile.__qualname__)
    """
)


def test_gpu_kernels_are_cached_on_disk_a_file_each_under_a_lock(tmp_path):
    rows = np.array(_python(GPU_CACHES, tmp_path)).reshape(-1, 4)
    assert (rows[:, 0] == "CUDACache").all() and (rows[:, 1] == "True").all()
    assert (rows[:, 3] == "True").all()  # compiled and saved holding the kernel's lock
    mse, mae, bce, rescale = rows[:, 2]
    assert mse != mae and mse.split("-")[0] == mae.split("-")[0]  # one template, 2 files
    assert len(set(rows[:, 2])) == 4 and all(i.endswith(".nbi") for i in rows[:, 2])


def test_gpu_kernels_are_not_cached_from_a_folder_others_can_write_to(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    rows = np.array(_python(GPU_CACHES, shared)).reshape(-1, 4)
    assert (rows[:, 0] == "NullCache").all() and (rows[:, 3] == "False").all()
    assert not any(shared.iterdir())


@pytest.mark.skipif(not SIMULATOR, reason="the simulator's kernels (a real GPU: see below)")
def test_gpu_kernels_are_not_cached_under_the_simulator():
    from mlkernels import losses
    from mlkernels._core import gpu

    kernel = gpu.reduce(losses._mse, 2, 1, 2, "float64", True)
    assert type(kernel).__name__ == "FakeCUDAKernel" and not hasattr(kernel, "_cache")


GPU_PROBE = textwrap.dedent(
    """
    import numpy as np
    from numba import cuda
    import mlkernels as mk
    from mlkernels import losses
    from mlkernels._core import gpu
    y = cuda.to_device(np.arange(10.0))
    value = float(mk.mse(y, cuda.to_device(np.arange(10.0) + 1.0)).copy_to_host())
    kernel = gpu.reduce(losses._mse, 2, 1, 2, "float64", True)
    print(sum(kernel.stats.cache_hits.values()), sum(kernel.stats.cache_misses.values()), value)
    """
)


@pytest.mark.skipif(SIMULATOR or not GPU, reason="needs a real GPU")
def test_a_new_process_loads_the_gpu_kernels_from_the_disk_cache(tmp_path):
    """On a real GPU: the second process loads mse's kernel instead of compiling it."""
    assert _python(GPU_PROBE, tmp_path) == ["0", "1", "1.0"]
    assert _python(GPU_PROBE, tmp_path) == ["1", "0", "1.0"]


def test_numba_cache_dir_is_the_root_when_mlkernels_has_none(tmp_path):
    env = {"MLKERNELS_CACHE_DIR": "", "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    code = "from mlkernels._core import jit; print(jit.cache_dir())"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
        env={**os.environ, **env}, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith(str(tmp_path / "numba" / "mlkernels-"))


def test_no_writable_cache_directory_means_no_cache_not_an_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    hits, misses, value, where = _python(PROBE, blocker / "cache")
    assert (hits, value, where) == ("0", "1.0", "None")


@pytest.mark.parametrize("name", ["mse", "log_cosh", "cce", "nll", "kl_divergence"])
def test_reductions_are_bit_identical_run_after_run(device, name):
    from mlkernels._bench.registry import ENTRIES

    n = 100_003 if device == "cpu" else 97
    args = [to_device(a, device) for a in ENTRIES[name].args(n, np.float32, seed=3)]
    fn = ENTRIES[name].function
    first_v, first_g = (to_host(r) for r in fn.value_and_grad(*args))
    for _ in range(3):
        v, g = (to_host(r) for r in fn.value_and_grad(*args))
        assert v.tobytes() == first_v.tobytes()
        assert g.tobytes() == first_g.tobytes()
        assert to_host(fn(*args)).tobytes() == first_v.tobytes()


def test_caches_of_other_builds_are_pruned_after_30_days_unused(tmp_path):
    stale, recent = tmp_path / "mlkernels-0.0.1-old", tmp_path / "mlkernels-0.0.2-recent"
    for folder in (stale, recent):
        folder.mkdir()
        (folder / "kernel.nbi").write_text("")
    month_ago = __import__("time").time() - 31 * 86400
    os.utime(stale, (month_ago, month_ago))
    _, _, value, where = _python(PROBE, tmp_path)
    assert value == "1.0" and Path(where).exists()
    assert not stale.exists() and recent.exists()
