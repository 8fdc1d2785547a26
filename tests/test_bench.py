"""The measuring code: the registry, its PyTorch baselines, the main job and precompile,
on tiny data (the numbers are not looked at, only that every code path runs and checks)."""

import math

import numpy as np
import pytest

import mlkernels as mk
from conftest import spy_on_kinds
from mlkernels import __main__ as main_job
from mlkernels import reference
from mlkernels._bench import measure as _bench
from mlkernels._bench import registry as _registry
from mlkernels._core.spec import FORMULAS

#: One entry of each kind and layout: loss, flat map, row map with a VJP, scalar, tuple,
#: a map with out= on rows, dropout's own check.
SAMPLE = ["mse", "sigmoid", "softmax_grad", "l2_loss", "batch_norm", "layer_norm", "dropout"]


def test_every_public_function_is_in_the_registry_with_its_formula():
    public = {n for n in mk.__all__ if callable(getattr(mk, n))}
    public -= {"cuda_available", "launch_config", "precompile", "show_config"}
    public -= {n for n in public if n.endswith("_value_and_grad") or n.endswith("Error")}
    public -= {n + "_grad" for n in _registry.ENTRIES if _registry.ENTRIES[n].kind == "loss"}
    # the schedules are declared formulas, not timed one by one (test_schedules.py)
    public -= {n for n, f in FORMULAS.items() if f.family in _registry.UNTIMED}
    # classes and functions over lists (optimisers, gradient tools): not formulas of n
    # elements; the main job's optimiser table times them (test_optimisers.py and
    # test_gradients.py check them against their formulas)
    over_lists = {"Adam", "AdamW", "NAG", "SGDMomentum", "clip_by_global_norm"}
    over_lists |= {"layer_grad_norms", "gradient_stats", "numerical_gradient", "grad_check"}
    assert all(hasattr(reference, n) for n in over_lists)
    public -= over_lists | {"SGD", "Schedule", "schedule"}  # (no formula of their own)
    assert public <= set(_registry.ENTRIES), public - set(_registry.ENTRIES)
    for entry in _registry.ENTRIES.values():
        assert entry.family in _registry.FAMILIES
        assert entry.reference is getattr(reference, entry.name)
        assert entry.derivative is None or entry.derivative in _registry.ENTRIES


@pytest.mark.parametrize("name", ["sigmoid", "softmax", "layer_norm_grad", "max_norm"])
def test_rows_and_flat_data(name):
    entry = _registry.ENTRIES[name]
    args = entry.args(1000, "float32", cols=50)
    assert all(a.dtype == np.float32 for a in args)
    assert args[0].shape == ((20, 50) if entry.layout == "rows" else (1000,))


def test_rel_error():
    e = np.array([1.0, -2.0, 0.0])
    assert _registry.rel_error(e, e) == 0
    assert _registry.rel_error(e + [0, 0, 1e-3], e) == pytest.approx(5e-4)
    assert _registry.rel_error(np.array([np.nan, 1, 0]), e) == math.inf
    assert _registry.rel_error((e, 3.0), (e, 3.0)) == 0
    assert _registry.rel_error(e[:2], e) == math.inf


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_baselines_compute_the_formula(dtype):
    """Each PyTorch baseline computes what the NumPy formula does (else the ratio of times
    compares different work)."""
    pytest.importorskip("torch")
    baselines = _registry.torch_baselines()
    assert baselines
    for name in baselines:
        entry = _registry.ENTRIES[name]
        args = entry.args(600, dtype, seed=1, cols=20)
        fn, sync = entry.torch_call(args)
        got = fn()
        sync()
        got = tuple(t.numpy() for t in got) if isinstance(got, tuple) else got.numpy()
        expected = entry.reference(*args)
        if name == "batch_norm":  # PyTorch returns y only
            expected = expected[0]
        limit = 1e-5 if dtype == "float32" else 1e-12
        if name == "max_norm":  # torch.renorm adds 1e-7 to the norm, the formula 1e-8
            limit = 1e-5
        assert entry.error(got, expected, args) < limit, name


def test_measure_every_kind():
    probes = {(d, k): _bench.BandwidthProbe(d, 1000, k) for d in ["cpu"] for k in ["read", "copy"]}
    report = _bench.run(SAMPLE, 2000, "float32", repeat=2, progress=False, probes=probes, cols=40)
    assert [r.name for r in report.results] == SAMPLE
    assert not report.failures
    by = {r.name: r for r in report.results}
    assert by["mse"].probe == "read" and by["sigmoid"].probe == "copy"
    assert set(by["mse"].times) == {"value", "value_and_grad", "value_and_grad_out"}
    assert set(by["sigmoid"].times) == {"value", "out"}
    assert by["softmax_grad"].shape == (50, 40)
    assert by["sigmoid"].nbytes == 2 * 2000 * 4  # the input and the output
    for r in report.results:
        assert r.value_s > 0 and r.numpy_s > 0 and report.pct_of_bandwidth(r) > 0
        assert math.isfinite(r.torch_s) == (r.name != "mse" and _has_torch())
    table = _bench.format_table(report)
    for name in SAMPLE:
        assert name in table
    assert "== normalisation" in table and "FAIL" not in table


def test_a_wrong_result_fails_the_check(monkeypatch):
    entry = _registry.ENTRIES["relu"]
    wrong = _registry.Entry(entry.spec, override=lambda x: np.maximum(0, x) + 1)
    result = _bench.measure(wrong, wrong.args(100, "float64"), repeat=1)
    assert not result.ok and result.rel_err > 0.1
    assert "FAIL" in _bench.format_table(_bench.Report(100, "float64", results=[result]))


def test_main_job_runs_a_family(capsys):
    status = main_job.main(
        ["--n", "3000", "--repeat", "1", "--family", "normalisation", "--cols", "30"]
        + ["--no-progress", "--dtype", "float32"]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "batch_norm_grad" in out and "(100, 30)" in out and "mse" not in out
    assert "n=1,000" in out  # the small calls' column


def test_main_job_only_and_family_must_meet(capsys):
    assert main_job.main(["--only", "mse", "--family", "activations", "--no-progress"]) == 2


def test_precompile_new_names():
    names = ["gelu_grad", "log_softmax_grad", "elastic_net", "max_norm", "layer_norm_grad"]
    assert mk.precompile(names, dtypes=("float32",), progress=False) == names
    with pytest.raises(ValueError, match="unknown"):
        mk.precompile(["no_such_formula"], progress=False)


def test_precompile_in_worker_processes_fills_the_disk_cache(tmp_path):
    """Workers compile into an empty cache; the calling process then only loads (its
    own compilations would add index entries of this process's: there are none)."""
    import os
    import subprocess
    import sys

    code = (
        "import mlkernels as mk, os\n"
        "names = ['mse', 'gelu', 'softmax', 'l1_grad']\n"
        "assert mk.precompile(names, dtypes=('float64',), progress=False, workers=2) == names\n"
        "from mlkernels._core import jit\n"
        "print(jit.cache_dir())\n"
    )
    env = {**os.environ, "MLKERNELS_CACHE_DIR": str(tmp_path), "NUMBA_ENABLE_CUDASIM": "0"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    # index files are named <factory>_<source digest>.<factory>.locals.<kernel>-...
    made = {p.name.split(".")[0].rsplit("_", 1)[0] for p in tmp_path.rglob("*.nbi")}
    assert {"make_map", "make_reduce", "make_rows"} <= made
    with pytest.raises(ValueError, match="workers"):
        mk.precompile(["mse"], progress=False, workers=0)


def test_precompile_compiles_the_kernels_the_sizes_run(monkeypatch):
    """Serial kernels for calls below MLKERNELS_PARALLEL_MIN elements, parallel ones from
    it; both by default."""
    from mlkernels import activations
    from mlkernels._core import cpu as _cpu
    from mlkernels._core import threads as _threads

    ran = spy_on_kinds(monkeypatch, _cpu.map(activations._relu, 1, 2, False, False))
    big = _threads.PARALLEL_MIN
    for sizes, kinds in [(None, {"serial", "parallel"}), ([10], {"serial"}), ([big], {"parallel"}),
                         ([10, 4 * big], {"serial", "parallel"}), ([], set())]:  # fmt: skip
        ran.clear()
        mk.precompile(["relu"], dtypes=("float32",), progress=False, sizes=sizes)
        assert set(ran) == kinds, sizes


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
