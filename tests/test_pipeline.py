"""What every formula inherits from the one declaration and the one pipeline: ``out=`` that
may alias any input, results that do not depend on the number of threads, the caller's
``out=`` object returned, and templates whose arity comes from the declaration. Driven by
the table of declarations (``mlkernels._core.spec.FORMULAS``); the results are checked
against un-aliased calls and against themselves under other thread counts, not against
a formula (the family tests do that)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mlkernels as mk
from conftest import to_device, to_host
from mlkernels._bench import registry
from mlkernels._core import cpu
from mlkernels._core.spec import FORMULAS
from mlkernels.config import launch_config

SHAPE_N, COLS = 12 * 7, 7  # flat formulas get 84 elements, row ones (12, 7)
#: The formulas the registry makes data for (every family but the schedules, whose own
#: tests, test_schedules.py, cover the same calls with their required parameters).
TIMED = [FORMULAS[name] for name in registry.ENTRIES]


def _args(name: str, dtype: str = "float64") -> tuple:
    return registry.ENTRIES[name].args(SHAPE_N, dtype, seed=3, cols=COLS)


def _calls(spec):
    """The public functions of a declaration that take ``out=`` (a loss: its gradient)."""
    f = getattr(mk, spec.name)
    if spec.returns == "loss":
        return [("grad", f.grad), ("value_and_grad", f.value_and_grad)]
    return [("value", f)] if spec.has_out else []


def _out_shape(spec, args):
    names = list(spec.arrays)
    pred = getattr(spec.template, "pred", names[0])
    return args[names.index(pred)].shape


ALIASES = [
    (spec.name, which, k)
    for spec in TIMED
    for which, _ in _calls(spec)
    for k, a in enumerate(_args(spec.name))
    if a.shape == _out_shape(spec, _args(spec.name)) and a.dtype.kind == "f"
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("device", "name", "which", "k"),
    [pytest.param("cpu", *c, id=f"cpu-{c[0]}-{c[1]}-{c[2]}") for c in ALIASES]
    + [pytest.param("gpu", *c, id=f"gpu-{c[0]}-{c[1]}-{c[2]}") for c in ALIASES[::5]],
    indirect=["device"],
)
def test_out_may_alias_any_input_of_its_shape(device, name, which, k, dtype):
    """out= one of the inputs gives the bits of a separate out=, as NumPy's ufuncs do, on
    both devices (softmax_grad(x, dy, out=dy) on the GPU was off by up to 0.4)."""
    spec = FORMULAS[name]
    f = dict(_calls(spec))[which]
    args = _args(name, dtype)
    kw = {"seed": 7} if name == "dropout" else {}  # the same mask in both calls
    with launch_config(threads=32, blocks=2):
        ref = f(*[to_device(a, device) for a in args], **kw)
        aliased = [to_device(a.copy(), device) for a in args]
        got = f(*aliased, out=aliased[k], **kw)
    grad = got[1] if isinstance(got, tuple) else got
    assert grad is aliased[k]
    ref = ref[1] if isinstance(ref, tuple) else ref
    np.testing.assert_array_equal(to_host(grad), to_host(ref))


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_out_is_the_callers_object_for_a_loss_gradient(device):
    """mse_grad(..., out=device array) returns that array, not a new wrapper of it."""
    y, y_hat = (to_device(a, device) for a in _args("mse"))
    out = to_device(np.empty(SHAPE_N), device)
    assert mk.mse_grad(y, y_hat, out=out) is out
    value, grad = mk.mse_value_and_grad(y, y_hat, out=out)
    assert grad is out


# --------------------------------------------------------------------------------------
# Reductions and statistics do not depend on the number of threads
# --------------------------------------------------------------------------------------

DIGESTS = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np
    import mlkernels as mk
    from mlkernels._bench import registry
    from mlkernels._core.spec import FORMULAS

    def digest(r):
        parts = r if isinstance(r, tuple) else (r,)
        h = hashlib.sha256()
        for p in parts:
            h.update(np.ascontiguousarray(p).tobytes())
        return h.hexdigest()[:16]

    out = {}
    for name in registry.ENTRIES:
        spec = FORMULAS[name]
        args = registry.ENTRIES[spec.name].args(int(sys.argv[1]), "float64", seed=1, cols=64)
        f = getattr(mk, spec.name)
        kw = {"seed": 7} if spec.name == "dropout" else {}
        out[spec.name] = digest(f(*args, **kw))
        if spec.returns == "loss":
            for reduction in ("mean", "sum", "none"):
                vg = f.value_and_grad(*args, reduction=reduction)
                out[f"{spec.name}-{reduction}"] = digest(vg)
    # the foreach sums over a list (chunks of 65536: several per array) and a fused step
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(k) for k in (3, 70_000, int(sys.argv[1]), 131_073)]
    clipped, norm = mk.clip_by_global_norm(grads, 1.0)
    out["clip_by_global_norm"] = digest((*clipped, np.asarray(norm)))
    out["layer_grad_norms"] = digest(tuple(np.asarray(v) for v in
                                           mk.layer_grad_norms(dict(enumerate(grads))).values()))
    figures = mk.gradient_stats(dict(enumerate(grads)), quiet=True)
    out["gradient_stats"] = digest(np.array([list(v.values()) for v in figures.values()]))
    params = [g[::-1].copy() for g in grads]
    opt = mk.AdamW(max_grad_norm=0.5)
    for _ in range(2):
        opt.step(params, grads)
    out["AdamW.step"] = digest(tuple(params))
    print(json.dumps(out))
    """
)


def _digests(threads: int, n: int) -> dict:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), MLKERNELS_PARALLEL_MIN="0")
    run = subprocess.run(
        [sys.executable, "-c", DIGESTS, str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


def test_every_result_is_bit_identical_with_1_2_and_8_threads():
    """Every formula (losses for every reduction, with their gradients; penalties; softmax
    sums; the norms' statistics) on ~10^5 elements with the parallel kernels forced
    (MLKERNELS_PARALLEL_MIN=0): the same bits with NUMBA_NUM_THREADS=1, 2 and 8. (mse's
    sum over 10^6 float64 changed its last digits with the thread count before the
    chunks were fixed by the size.)"""
    n = 98_304  # 24 chunks of 4096 in a reduction; 1536 rows of 64
    one, two, eight = (_digests(t, n) for t in (1, 2, 8))
    assert set(one) >= set(registry.ENTRIES)
    assert one == two == eight, {k for k in one if not one[k] == two[k] == eight[k]}


def test_the_chunks_of_a_sum_follow_the_size_only():
    assert [cpu.sum_chunks(n) for n in (0, 4095, 4096, 98_304, 10**9)] == [1, 1, 1, 24, 256]


# --------------------------------------------------------------------------------------
# The templates take the arity a declaration gives them
# --------------------------------------------------------------------------------------


def _counts(y, p, params):
    """A confusion-matrix term: (tp, fp, fn) of binary labels and a threshold of 0.5."""
    hit = 1 if p >= params[0] else 0
    pos = 1 if y > 0.5 else 0
    return hit * pos, hit * (1 - pos), (1 - hit) * pos


def _moments(x, params):
    return x, x * x


@pytest.mark.parametrize("n", [0, 1, 1000, 50_000])
def test_reduce_with_int64_counts_and_several_accumulators(n):
    from numba.extending import register_jitable

    f = register_jitable(_counts)
    rng = np.random.default_rng(n)
    y = (rng.random(n) < 0.4).astype(np.float64)
    p = rng.random(n)
    total = cpu.run_reduce(f, [y, p], (0.5,), 1.0, [None, None, None], 3, True, "int64")
    hit, pos = p >= 0.5, y > 0.5
    want = [np.sum(hit & pos), np.sum(hit & ~pos), np.sum(~hit & pos)]
    assert total.dtype == np.int64 and total.tolist() == want


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_reduce_writes_its_outputs_and_sums_two_moments(device):
    """One pass: k = 2 float64 sums (Σx, Σx²) on either device, against NumPy's."""
    from numba.extending import register_jitable

    from mlkernels._core import pipeline

    backend = cpu if device == "cpu" else pipeline.gpu_backend()

    def put(a):
        return to_device(a, device)

    get = to_host
    f = register_jitable(_moments)
    x = np.random.default_rng(1).standard_normal(3000)
    o0, o1 = put(np.zeros(3000)), put(np.zeros(3000))
    with launch_config(threads=32, blocks=2):
        total = backend.run_reduce(f, [put(x)], (0.0,), 2.0, [o0, o1], 2, True)
    t = get(total)
    np.testing.assert_allclose(t, [x.sum(), (x * x).sum()], rtol=1e-12)
    np.testing.assert_array_equal(get(o0), x)
    np.testing.assert_array_equal(get(o1), x * x)  # accumulated results are not scaled


def test_generated_sources_are_shown_in_tracebacks():
    import linecache

    kernel = cpu.map(_moments, 1, 2, False, False)
    code = kernel.parallel.py_func.__code__
    assert "def map_kernel(x0, params, o0, o1):" in "".join(linecache.getlines(code.co_filename))


def _quick_calls(spec, args, dtype):
    """The common host calls of a formula: (label, function, keywords), ``out=`` fresh."""
    f = getattr(mk, spec.name)
    seed = {"seed": 5} if "seed" in spec.signature.parameters else {}
    calls = [("value", f, seed)]
    if spec.returns == "loss":
        shape = _out_shape(spec, args)
        calls += [
            ("grad", f.grad, {}),
            ("value_and_grad", f.value_and_grad, {"reduction": "sum"}),
            ("sum", f, {"reduction": "sum"}),
        ]
        if spec.real_arrays:  # (nll checks its targets after its kernel: never into out=)
            calls.append(("grad out", f.grad, {"out": lambda: np.empty(shape, dtype)}))
    elif spec.has_out:
        calls.append(("out", f, {**seed, "out": lambda: np.empty(args[0].shape, dtype)}))
    return calls


def _same(got, want) -> bool:
    if isinstance(want, tuple):
        return len(got) == len(want) and all(map(_same, got, want))
    return type(got) is type(want) and np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(registry.ENTRIES))
def test_the_common_host_call_is_quick_and_gives_the_general_result(monkeypatch, name, dtype):
    """Host arrays of one float dtype, hyper-parameters left to their defaults or by
    keyword, ``out=``: every formula's quick call (``Formula.quick``) takes it, builds no
    ``Job`` of the general path, and gives what the general path gives, to the bit, with
    the caller's ``out=`` object returned."""
    from mlkernels._core import pipeline

    spec = FORMULAS[name]
    args = _args(name, dtype)
    calls = _quick_calls(spec, args, dtype)

    def keywords(kw):
        return {k: v() if callable(v) else v for k, v in kw.items()}

    want = [pipeline.call(fn.spec, args, keywords(kw)) for _, fn, kw in calls]

    def general(*a, **k):
        raise AssertionError("the general path ran")

    monkeypatch.setattr(pipeline.Job, "__init__", general)
    for (label, fn, kw), expected in zip(calls, want, strict=True):
        kw = keywords(kw)
        got = fn(*args, **kw)
        assert _same(got, expected), label
        if "out" in kw:
            assert (got[1] if isinstance(got, tuple) else got) is kw["out"], label


def test_what_the_quick_call_does_not_take_goes_the_general_way():
    """Integer labels, a strided input, an ``out=`` that partly overlaps an input, an
    error (found before the kernel, or by a quick kernel): the general path takes them
    (and gives the same result or the same error)."""
    rng = np.random.default_rng(4)
    y, p = rng.standard_normal(40), rng.standard_normal(40)
    want = np.mean((y - p) ** 2)
    assert mk.mse(y.astype(np.int64), p) == pytest.approx(np.mean((y.astype(np.int64) - p) ** 2))
    assert mk.mse(np.repeat(y, 2)[::2], p) == pytest.approx(want, rel=1e-14)
    buf = np.concatenate([p, [0.0]])
    got = mk.mse_grad(y, buf[:40], out=buf[1:])  # overlaps its input shifted by one
    np.testing.assert_allclose(got, 2 * (p - y) / 40, rtol=1e-14)
    with pytest.raises(ValueError, match="delta must be >= 0"):
        mk.huber(y, p, -1.0)
    with pytest.raises(ValueError, match="targets must lie in"):
        mk.nll(np.log(np.full((4, 3), 1 / 3)), np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        mk.mse(y, p, reduction="avg")
    assert mk.dropout(y, 0.5, False) is y  # the shortcut: training=False is x itself
    # a small label count's quick kernel finds a bad label: the general path names it
    with pytest.raises(ValueError, match=r"y_pred has 1 labels outside \[0, 3\)"):
        mk.confusion_matrix(np.array([0, 1, 2]), np.array([0, 1, 3]), 3)
    with pytest.raises(ValueError, match="y has a negative label"):
        mk.mutual_information_labels(np.array([0, 1]), np.array([0, -1]))
    with pytest.raises(ValueError, match="at least one dimension"):
        mk.entropy(np.array(0.5))
    # labels of another dtype than a loss's predictions: converted by the general path
    labels = (y > 0).astype(np.int8)
    assert mk.bce(labels, 1 / (1 + np.exp(-p))) == mk.bce(
        labels.astype(np.float64), 1 / (1 + np.exp(-p))
    )
