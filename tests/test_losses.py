"""Correctness of the loss family: values, reductions, gradients, dtypes and numerics.

Every test takes the ``device`` fixture (conftest.py): the same body runs on the CPU kernel
and on the GPU kernel (Numba's CUDA simulator unless a real GPU is asked for). The CPU gets
the full grid (both dtypes x sizes 1, 2, 31, 32, 33, 1000, 1009 x every reduction); the
simulator is slow, so the GPU gets a few combinations chosen from ``sizes("gpu")`` that
still cover both dtypes, every reduction, a single element and several blocks.

Oracles (tests/oracles.py): a per-element NumPy implementation for values, PyTorch autograd
in float64 for gradients, PyTorch's built-in losses as a third opinion, and the verbatim
NumPy formulas (mlkernels.reference) for the drop-in check.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import oracles as O
import pytest
import torch

import mlkernels as mk
from conftest import SIMULATOR, array_result, cases, scalar_result, sizes, to_device, to_host
from mlkernels import reference

DTYPES = ("float32", "float64")
EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}
TINY = {"float32": float(np.finfo(np.float32).tiny), "float64": float(np.finfo(np.float64).tiny)}


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def fn(name: str, kind: str = "value"):
    f = getattr(mk, name)
    return {
        "value": f,
        "grad": getattr(mk, name + "_grad"),
        "both": getattr(mk, name + "_value_and_grad"),
    }[kind]


def call(name, kind, args, device, *hyper, **kwargs):
    return fn(name, kind)(*[to_device(a, device) for a in args], *hyper, **kwargs)


def result(got, dtype, shape, reduction, device):
    if reduction == "none":
        return array_result(got, dtype, shape, device)
    return scalar_result(got, dtype, device)


def n_terms(name, args) -> int:
    return int(np.prod(O.value_shape(name, args)))


def check_value(got, name, args, reduction, dtype, device, *, hyper=None, rtol=None):
    hyper = hyper or {}
    dtype = np.dtype(dtype).name
    h = result(got, dtype, O.value_shape(name, args), reduction, device)
    O.assert_close(
        h,
        O.np_value(name, args, reduction, **hyper),
        rtol=rtol or O.rtol_for(dtype),
        scale=O.np_scale(name, args, reduction, **hyper),
        atol=TINY[dtype],
        what=f"{name}(reduction={reduction!r}) [{dtype}, {device}]",
    )
    return h


def grad_atol(name, args, reduction, ref, rtol, dtype) -> float:
    """Absolute slack for a gradient: rtol times its largest entry (js_divergence's
    gradient is a difference of two O(1) terms: rtol times their size)."""
    mag = float(np.max(np.abs(ref), initial=0.0, where=np.isfinite(ref)))
    if name == "js_divergence":
        mag = max(mag, 0.5 / (n_terms(name, args) if reduction == "mean" else 1))
    return rtol * mag + TINY[np.dtype(dtype).name]


def check_grad(got, name, args, reduction, dtype, device, *, hyper=None, rtol=None):
    hyper = hyper or {}
    dtype = np.dtype(dtype).name
    rtol = rtol or O.rtol_for(dtype)
    pred = args[O.SPECS[name].pred]
    h = array_result(got, dtype, np.shape(pred), device)
    _, ref = O.torch_value_and_grad(name, args, reduction, **hyper)
    O.assert_close(
        h,
        ref,
        rtol=rtol,
        atol=grad_atol(name, args, reduction, ref, rtol, dtype),
        what=f"{name}_grad(reduction={reduction!r}) [{dtype}, {device}]",
    )
    return h


def check_value_and_grad(name, args, reduction, dtype, device):
    """Call the loss and its gradient separately, check both against the oracles and
    return them (on the host)."""
    v = check_value(
        call(name, "value", args, device, reduction=reduction), name, args, reduction, dtype, device
    )
    g = check_grad(
        call(name, "grad", args, device, reduction=reduction), name, args, reduction, dtype, device
    )
    return v, g


def _ident(name, dtype, n, reduction):
    return f"{name}-{dtype}-n{n}-{reduction}"


GS = sizes("gpu")
FULL = [
    (nm, dt, n, r) for nm in O.NAMES for dt in DTYPES for n in sizes("cpu") for r in O.REDUCTIONS
]
if SIMULATOR:
    # a single element, a partial block, several blocks with a grid-stride loop: two of
    # the three combinations per loss, in turn, so that each loss sees a reduction
    GPU_COMBOS = (
        ("float64", GS[2], "mean"),
        ("float32", GS[-1], "none"),
        ("float64", GS[0], "sum"),
    )
    GPU_FEW = [(nm, *GPU_COMBOS[(i + j) % 3]) for i, nm in enumerate(O.NAMES) for j in (0, 2)]
else:  # a real GPU is fast: the whole grid, and a million elements
    GPU_FEW = [(nm, dt, n, r) for nm in O.NAMES for dt in DTYPES for n in GS for r in O.REDUCTIONS]
GRID = cases(FULL, GPU_FEW, _ident)
VG_GRID = cases(
    [c for c in FULL if c[2] in (1, 33, 1009)], GPU_FEW if not SIMULATOR else GPU_FEW[::6], _ident
)


# --------------------------------------------------------------------------------------
# Values, gradients, value_and_grad on the whole grid
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("device", "name", "dtype", "n", "reduction"), GRID, indirect=["device"])
def test_value(device, name, dtype, n, reduction):
    args = O.make_inputs(name, n, dtype, rng_for(name, n, dtype))
    got = call(name, "value", args, device, reduction=reduction)
    check_value(got, name, args, reduction, dtype, device)


@pytest.mark.parametrize(("device", "name", "dtype", "n", "reduction"), GRID, indirect=["device"])
def test_grad(device, name, dtype, n, reduction):
    args = O.make_inputs(name, n, dtype, rng_for(name, n, dtype))
    got = call(name, "grad", args, device, reduction=reduction)
    check_grad(got, name, args, reduction, dtype, device)


@pytest.mark.parametrize(
    ("device", "name", "dtype", "n", "reduction"), VG_GRID, indirect=["device"]
)
def test_value_and_grad(device, name, dtype, n, reduction):
    """value_and_grad returns (value, grad) equal to the separate calls (to a few ulps:
    they are different kernels, free to reassociate the sum and to contract to FMA)."""
    args = O.make_inputs(name, n, dtype, rng_for(name, n, dtype, "vg"))
    both = call(name, "both", args, device, reduction=reduction)
    assert isinstance(both, tuple) and len(both) == 2
    v = check_value(both[0], name, args, reduction, dtype, device)
    g = check_grad(both[1], name, args, reduction, dtype, device)
    v1 = result(
        call(name, "value", args, device, reduction=reduction),
        dtype,
        O.value_shape(name, args),
        reduction,
        device,
    )
    g1 = to_host(call(name, "grad", args, device, reduction=reduction))
    ulps = 8 * EPS[dtype]
    O.assert_close(
        v,
        v1,
        rtol=ulps,
        scale=O.np_scale(name, args, reduction),
        what="value_and_grad()[0] vs value()",
    )
    O.assert_close(
        g,
        g1,
        rtol=ulps,
        atol=ulps * float(np.max(np.abs(g1), initial=0)),
        what="value_and_grad()[1] vs grad()",
    )


def _default_cases():
    cpu = [(nm, 1009) for nm in O.NAMES]
    gpu = [(nm, GS[2]) for nm in ("mse", "kl_divergence", "js_divergence", "nll")]
    return cases(cpu, gpu, lambda nm, n: f"{nm}-n{n}")


@pytest.mark.parametrize(("device", "name", "n"), _default_cases(), indirect=["device"])
def test_drop_in_for_the_numpy_formula(device, name, n):
    """Default call == the verbatim NumPy formula; the default reduction is the formula's
    (mean, but sum for kl_divergence and js_divergence), for the gradient too."""
    args = O.make_inputs(name, n, "float64", rng_for(name, n, "drop-in"))
    default = O.SPECS[name].default_reduction
    ref = getattr(reference, name)(*args)
    got = scalar_result(call(name, "value", args, device), "float64", device)
    O.assert_close(
        got,
        ref,
        rtol=1e-10,
        scale=O.np_scale(name, args, default),
        what=f"{name} vs mlkernels.reference.{name}",
    )
    explicit = scalar_result(
        call(name, "value", args, device, reduction=default), "float64", device
    )
    assert got == explicit
    g = to_host(call(name, "grad", args, device))
    g_explicit = to_host(call(name, "grad", args, device, reduction=default))
    np.testing.assert_array_equal(g, g_explicit)
    v, g2 = call(name, "both", args, device)
    assert scalar_result(v, "float64", device) == pytest.approx(got, rel=1e-13, abs=1e-300)
    np.testing.assert_allclose(to_host(g2), g, rtol=1e-13, atol=1e-300)


def _builtin_cases():
    cpu = [(nm, r) for nm in O.BUILTIN for r in O.REDUCTIONS]
    gpu = [(nm, "mean") for nm in O.BUILTIN]
    return cases(cpu, gpu, lambda nm, r: f"{nm}-{r}")


@pytest.mark.parametrize(("device", "name", "reduction"), _builtin_cases(), indirect=["device"])
def test_matches_torch_builtin_loss(device, name, reduction):
    """An oracle sharing no code with the others: torch.nn.functional's own losses."""
    n = 1009 if device == "cpu" else GS[-1]
    args = O.make_inputs(name, n, "float64", rng_for(name, "builtin"))
    value, grad = O.torch_builtin(name, args, reduction)
    v, g = call(name, "both", args, device, reduction=reduction)
    v = result(v, "float64", O.value_shape(name, args), reduction, device)
    O.assert_close(
        v, value, rtol=1e-10, scale=O.np_scale(name, args, reduction), what=f"{name} vs torch"
    )
    O.assert_close(
        to_host(g),
        grad,
        rtol=1e-10,
        atol=1e-10 * np.max(np.abs(grad)),
        what=f"{name}_grad vs torch autograd of the built-in",
    )


# --------------------------------------------------------------------------------------
# Hyper-parameters, positional and keyword
# --------------------------------------------------------------------------------------

HYPER_CASES = [
    ("huber", {"delta": 0.0}),
    ("huber", {"delta": 0.3}),
    ("huber", {"delta": 2.5}),
    ("huber", {"delta": 100.0}),
    ("bce", {"eps": 0.0}),
    ("bce", {"eps": 0.1}),
    ("bce", {"eps": 0.4999}),
    ("cce", {"eps": 0.0}),
    ("cce", {"eps": 0.3}),
    ("cce", {"eps": 1.0}),
    ("focal", {"alpha": 0.0, "gamma": 0.0}),
    ("focal", {"alpha": 1.0, "gamma": 0.5}),
    ("focal", {"alpha": 0.6, "gamma": 1.0}),
    ("focal", {"alpha": 0.25, "gamma": 3.5, "eps": 1e-3}),
    ("kl_divergence", {"eps": 0.0}),
    ("kl_divergence", {"eps": 1e-3}),
    ("contrastive", {"margin": 0.0}),
    ("contrastive", {"margin": 0.5}),
    ("contrastive", {"margin": 3.0}),
]


def _hyper_id(name, hyper, *rest):
    return "-".join([name, *(f"{k}={v}" for k, v in hyper.items()), *map(str, rest)])


def _hyper_cases():
    cpu = [(nm, h, dt, r) for nm, h in HYPER_CASES for dt in DTYPES for r in O.REDUCTIONS]
    gpu = [(nm, h, "float64", "mean") for i, (nm, h) in enumerate(HYPER_CASES) if i % 7 == 0]
    return cases(cpu, gpu, _hyper_id)


@pytest.mark.parametrize(
    ("device", "name", "hyper", "dtype", "reduction"), _hyper_cases(), indirect=["device"]
)
def test_hyperparameters(device, name, hyper, dtype, reduction):
    n = 1000 if device == "cpu" else GS[-1]
    args = O.make_inputs(name, n, dtype, rng_for(name, "hyper", dtype))
    # positionally, in the formula's order (every earlier one given its default)
    names = list(O.SPECS[name].hyper)
    last = max(names.index(k) for k in hyper)
    positional = [hyper.get(k, O.SPECS[name].hyper[k]) for k in names[: last + 1]]
    v_pos = call(name, "value", args, device, *positional, reduction=reduction)
    v_kw = call(name, "value", args, device, reduction=reduction, **hyper)
    h = check_value(v_pos, name, args, reduction, dtype, device, hyper=hyper)
    np.testing.assert_array_equal(to_host(v_kw) if device == "gpu" else v_kw, h)
    g = call(name, "grad", args, device, reduction=reduction, **hyper)
    check_grad(g, name, args, reduction, dtype, device, hyper=hyper)
    g_pos = call(name, "grad", args, device, *positional, reduction=reduction)
    np.testing.assert_array_equal(to_host(g_pos), to_host(g))
    vb, gb = call(name, "both", args, device, *positional, reduction=reduction)
    np.testing.assert_allclose(to_host(gb), to_host(g), rtol=8 * EPS[dtype], atol=TINY[dtype])


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_hyperparameters_reach_the_kernel(device):
    """Different hyper-parameters give different results (a kernel cached for one set of
    parameters is not reused for another)."""
    y, yh = O.make_inputs("huber", 200, "float64", rng_for("hyper-cache"))
    values = {
        d: float(to_host(call("huber", "value", (y, yh), device, d))) for d in (0.1, 0.5, 1.0, 2.0)
    }
    assert len(set(values.values())) == 4
    for d, v in values.items():
        assert v == pytest.approx(reference.huber(y, yh, d), rel=1e-12)


# --------------------------------------------------------------------------------------
# N-D inputs
# --------------------------------------------------------------------------------------


def _nd_elementwise_cases():
    cpu = [(nm, dt, r) for nm in O.ELEMENTWISE for dt in DTYPES for r in O.REDUCTIONS]
    gpu = [(nm, "float64", "none") for nm in O.ELEMENTWISE]
    return cases(cpu, gpu, lambda nm, dt, r: f"{nm}-{dt}-{r}")


@pytest.mark.parametrize(
    ("device", "name", "dtype", "reduction"), _nd_elementwise_cases(), indirect=["device"]
)
def test_nd_elementwise(device, name, dtype, reduction):
    """Elementwise losses on (3, 5, 7) arrays: "none" and the gradient keep the shape."""
    args = O.make_inputs(name, 0, dtype, rng_for(name, "nd"), shape=(3, 5, 7))
    check_value_and_grad(name, args, reduction, dtype, device)
    # the same as on the flattened data
    flat = tuple(a.reshape(-1) for a in args)
    g_flat = to_host(call(name, "grad", flat, device, reduction=reduction))
    g = to_host(call(name, "grad", args, device, reduction=reduction))
    np.testing.assert_array_equal(g, g_flat.reshape(g.shape))


ROW_SHAPES = [(7, 4), (1, 1), (3, 1), (7, 4, 3), (6, 1, 2), (5, 3, 2, 4), (2, 3, 0)]


def _rows_cases():
    cpu = [
        (nm, s, dt, r)
        for nm in ("cce", "nll")
        for s in ROW_SHAPES
        for dt in DTYPES
        for r in O.REDUCTIONS
        if not (0 in s and r != "none")
    ]
    gpu = [
        (nm, s, "float64", r)
        for nm in ("cce", "nll")
        for s, r in (((7, 4, 3), "none"), ((5, 3, 2, 4), "mean"))
    ]
    return cases(cpu, gpu, lambda nm, s, dt, r: f"{nm}-{'x'.join(map(str, s))}-{dt}-{r}")


@pytest.mark.parametrize(
    ("device", "name", "shape", "dtype", "reduction"), _rows_cases(), indirect=["device"]
)
def test_nd_rows(device, name, shape, dtype, reduction):
    """cce and nll: classes along axis 1 of (n, C) or (n, C, d1, ...) inputs; "none" gives
    one value per (sample, position): shape (n, d1, ...); nll targets have that shape."""
    args = O.make_inputs(name, 0, dtype, rng_for(name, shape, dtype), shape=shape)
    if name == "nll":
        assert args[1].shape == (shape[0], *shape[2:])
    check_value_and_grad(name, args, reduction, dtype, device)


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_nll_negative_targets_count_from_the_end(device):
    lp, t = O.make_inputs("nll", 40, "float64", rng_for("nll-neg"), classes=6)
    neg = np.where(np.arange(t.size) % 2 == 0, t - 6, t)  # half of them in [-6, 0)
    assert neg.min() < 0
    for reduction in O.REDUCTIONS:
        a = to_host(call("nll", "value", (lp, t), device, reduction=reduction))
        b = to_host(call("nll", "value", (lp, neg), device, reduction=reduction))
        np.testing.assert_array_equal(a, b)
        ga = to_host(call("nll", "grad", (lp, t), device, reduction=reduction))
        gb = to_host(call("nll", "grad", (lp, neg), device, reduction=reduction))
        np.testing.assert_array_equal(ga, gb)
    # the boundary values -C and C - 1 are valid
    edge = np.array([-6, 5, 0, -1])
    got = to_host(call("nll", "value", (lp[:4], edge), device, reduction="none"))
    np.testing.assert_array_equal(got, -lp[np.arange(4), edge])


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_nll_reads_only_the_target_entries(device):
    lp, t = O.make_inputs("nll", 50, "float64", rng_for("nll-nan"))
    poisoned = lp.copy()
    mask = np.ones(lp.shape, bool)
    mask[np.arange(50), t] = False
    poisoned[mask] = np.nan
    v = float(to_host(call("nll", "value", (poisoned, t), device)))
    assert v == pytest.approx(float(to_host(call("nll", "value", (lp, t), device))), rel=1e-15)
    g = to_host(call("nll", "grad", (poisoned, t), device, reduction="sum"))
    assert np.all(g[mask] == 0) and np.all(g[~mask] == -1)


# --------------------------------------------------------------------------------------
# dtype rules
# --------------------------------------------------------------------------------------

TWO_REAL = ("mse", "rmse", "mae", "huber", "log_cosh", "kl_divergence", "js_divergence")
WITH_LABELS = tuple(n for n in O.NAMES if O.SPECS[n].label is not None)


def _mixed_cases():
    cpu = [
        (nm, a, b) for nm in O.NAMES for a, b in (("float32", "float64"), ("float64", "float32"))
    ]
    gpu = [(nm, "float32", "float64") for nm in ("mse", "bce", "kl_divergence")]
    return cases(cpu, gpu, lambda nm, a, b: f"{nm}-{a}-{b}")


@pytest.mark.parametrize(("device", "name", "first", "second"), _mixed_cases(), indirect=["device"])
def test_mixed_float32_float64(device, name, first, second):
    """Two real arrays of different precision compute in float64; a label's dtype never
    decides the result's (float64 labels with float32 predictions give float32)."""
    spec = O.SPECS[name]
    args = O.make_inputs(name, 33, "float64", rng_for(name, "mixed"))
    args = tuple(
        a if a.dtype.kind in "iub" else a.astype(dt)
        for a, dt in zip(args, (first, second), strict=True)
    )
    pred_dtype = np.dtype((first, second)[spec.pred])
    if name in TWO_REAL:
        expected = np.dtype("float64")
    else:
        expected = pred_dtype  # the other argument is a label (or int nll targets)
    for reduction in O.REDUCTIONS:
        check_value_and_grad(name, args, reduction, expected, device)


INT_KINDS = ("int8", "int32", "int64", "uint16", "bool")


def _int_inputs(name, kind):
    """Integer / bool versions of the real arrays, values in each formula's domain."""
    rng = rng_for(name, kind)
    n = 37
    b01 = rng.integers(0, 2, n)
    if name in ("mse", "rmse", "mae", "huber", "log_cosh"):
        hi = 2 if kind == "bool" else 4
        return rng.integers(0, hi, n).astype(kind), rng.integers(0, hi, n).astype(kind)
    if name in ("bce", "focal"):
        return b01.astype(kind), rng.integers(0, 2, n).astype(kind)  # p in {0, 1}: clipped
    if name in ("hinge", "squared_hinge"):
        hi = 2 if kind == "bool" else 3
        return np.where(b01 == 1, 1, -1), rng.integers(0, hi, n).astype(kind)
    if name in ("kl_divergence", "js_divergence"):
        return b01.astype(kind), rng.integers(0, 2, n).astype(kind)
    if name == "contrastive":
        hi = 2 if kind == "bool" else 3
        return rng.integers(0, hi, n).astype(kind), b01.astype(kind)
    if name == "cce":
        y = np.eye(4, dtype=np.int64)[rng.integers(0, 4, 9)]
        return y.astype(kind), np.eye(4)[rng.integers(0, 4, 9)].astype(kind)
    if name == "nll":
        hi = 2 if kind == "bool" else 5
        lp = rng.integers(0, hi, (9, 4))
        lp = (lp if kind.startswith("uint") or kind == "bool" else -lp).astype(kind)
        return lp, rng.integers(0, 4, 9)
    raise KeyError(name)


def _int_cases():
    cpu = [(nm, k) for nm in O.NAMES for k in INT_KINDS]
    gpu = [(nm, "int32") for nm in ("mse", "bce", "nll")]
    return cases(cpu, gpu, lambda nm, k: f"{nm}-{k}")


@pytest.mark.parametrize(("device", "name", "kind"), _int_cases(), indirect=["device"])
def test_int_and_bool_inputs_compute_in_float64(device, name, kind):
    args = _int_inputs(name, kind)
    for reduction in O.REDUCTIONS:
        check_value_and_grad(name, args, reduction, "float64", device)


LABEL_DTYPES = {
    "bce": ("int8", "int64", "uint8", "uint64", "bool", "float32", "float64"),
    "focal": ("int8", "int64", "uint8", "uint64", "bool", "float32", "float64"),
    "contrastive": ("int8", "int64", "uint8", "uint64", "bool", "float32", "float64"),
    "hinge": ("int8", "int16", "int64", "float32", "float64"),
    "squared_hinge": ("int8", "int16", "int64", "float32", "float64"),
    "cce": ("int8", "int64", "uint8", "uint32", "bool", "float32", "float64"),
    "nll": ("int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "bool"),
}


def _label_cases():
    cpu = [(nm, ld, dt) for nm, lds in LABEL_DTYPES.items() for ld in lds for dt in DTYPES]
    gpu = [(nm, LABEL_DTYPES[nm][0], "float32") for nm in ("bce", "cce", "nll")]
    return cases(cpu, gpu, lambda nm, ld, dt: f"{nm}-labels_{ld}-{dt}")


@pytest.mark.parametrize(
    ("device", "name", "label_dtype", "dtype"), _label_cases(), indirect=["device"]
)
def test_label_dtypes_do_not_change_the_result_dtype(device, name, label_dtype, dtype):
    """Labels (y of bce / hinge / focal / contrastive, y_onehot of cce, targets of nll) may
    be any integer or bool dtype (API.md section 3); the prediction's dtype decides."""
    shape = (20, 2) if name == "nll" and label_dtype == "bool" else None  # classes {0, 1}
    args = O.make_inputs(
        name, 20, dtype, rng_for(name, label_dtype), shape=shape, label_dtype=label_dtype
    )
    assert args[O.SPECS[name].label].dtype == np.dtype(label_dtype)
    for reduction in O.REDUCTIONS:
        check_value_and_grad(name, args, reduction, dtype, device)


@pytest.mark.parametrize("device", ["cpu"], indirect=True)
def test_array_likes_run_on_the_cpu(device):
    """Lists, tuples, Python scalars and PyTorch CPU tensors go through numpy.asarray."""
    y, yh = [0.5, 1.0, -2.0], (1.0, 1.5, 0.0)
    ref = mk.mse(np.array(y), np.array(yh))
    assert mk.mse(y, yh) == ref and type(mk.mse(y, yh)) is np.float64
    t = mk.mse(torch.tensor(y, dtype=torch.float64), torch.tensor(yh, dtype=torch.float64))
    assert t == ref and type(t) is np.float64
    t32 = mk.mse_grad(torch.tensor(y), torch.tensor(yh))  # torch's default float32
    assert type(t32) is np.ndarray and t32.dtype == np.float32
    np.testing.assert_allclose(t32, mk.mse_grad(np.array(y), np.array(yh)), rtol=1e-6)
    assert mk.mse(2.0, 0.5) == 2.25
    g = mk.huber_grad(2.0, 0.5, reduction="none")
    assert np.shape(g) == () and float(g) == -1.0


# --------------------------------------------------------------------------------------
# Numerics where the NumPy text is broken
# --------------------------------------------------------------------------------------

BIG = [1.0, 1.5, 20.0, 30.0, 700.0, 710.0, 711.0, 1e3, 1e4, 1.5e4, 1e5, 1e15, 1e38]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_log_cosh_large_errors(device, dtype):
    """log(cosh(e)) overflows in the formula for |e| > 710; mlkernels is finite and exact:
    |e| - log 2 + log1p(exp(-2|e|))."""
    e = np.array(BIG + [-x for x in BIG] + ([1e300, -1e300] if dtype == "float64" else []))
    e = e.astype(dtype)
    y = np.zeros_like(e)
    a = np.abs(e.astype(np.float64))
    exact = a - math.log(2) + np.log1p(np.exp(-2 * a))
    v = array_result(
        call("log_cosh", "value", (y, e), device, reduction="none"), dtype, e.shape, device
    )
    assert np.all(np.isfinite(v))
    # float32 data is computed in float32: a + log1p(e^-2a) - log 2 takes three roundings
    # and e^-2a = expm1(-2a) + 1 carries expm1's (faithful, not correctly rounded: NumPy's
    # float32 expm1 in the simulator) error, up to 2 float32 ulp (2.5e-7 relative) at a = 1.5;
    # tanh = (1 - e^-2a) / (1 + e^-2a) is within 1.5 ulp (four roundings)
    rtol = O.rtol_for(dtype) / 100 if dtype == "float64" else 2.5e-7
    O.assert_close(v, exact, rtol=rtol, what="log_cosh(large)")
    g = to_host(call("log_cosh", "grad", (y, e), device, reduction="none"))
    g_rtol = rtol
    O.assert_close(g, np.tanh(e.astype(np.float64)), rtol=g_rtol, what="log_cosh_grad(large)")
    # and swapped arguments: the residual changes sign, the value does not
    v2 = to_host(call("log_cosh", "value", (e, y), device, reduction="none"))
    np.testing.assert_array_equal(v2, v)
    m = scalar_result(call("log_cosh", "value", (y, e), device), dtype, device)
    assert m == pytest.approx(exact.mean(), rel=O.rtol_for(dtype))


TINY_E = [1e-1, 1e-2, 1e-3, 1e-5, 1e-8, 1e-10, 1e-20, 1e-100, 1e-150, 1e-160, 1e-300, 0.0]


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_log_cosh_tiny_errors(device):
    """log(cosh(e)) rounds to 0 in the formula for |e| < 1e-8; mlkernels gives e²/2."""
    e = np.array(TINY_E + [-x for x in TINY_E])
    y = np.full_like(e, 0.0)
    series = e**2 / 2 - e**4 / 12 + e**6 / 45 - 17 * e**8 / 2520
    v = to_host(call("log_cosh", "value", (y, e), device, reduction="none"))
    small = np.abs(e) <= 1e-2  # the truncated series is exact to rounding there
    O.assert_close(v[small], series[small], rtol=1e-14, atol=1e-320, what="log_cosh(tiny)")
    O.assert_close(v, O.log_cosh_exact(e), rtol=1e-14, atol=1e-320, what="log_cosh(small)")
    assert v[TINY_E.index(1e-10)] > 0  # where log(cosh(1e-10)) == 0.0
    g = to_host(call("log_cosh", "grad", (y, e), device, reduction="none"))
    O.assert_close(g, np.tanh(e), rtol=1e-15, what="log_cosh_grad(tiny)")


def _clip_cases():
    cpu = [
        (nm, dt)
        for nm in ("bce", "focal", "cce", "kl_divergence", "js_divergence")
        for dt in DTYPES
    ]
    gpu = [(nm, "float32") for nm in ("bce", "cce", "kl_divergence")]
    return cases(cpu, gpu, lambda nm, dt: f"{nm}-{dt}")


def _clip_inputs(name, dtype):
    eps = 1e-15
    edge = [0.0, 1.0, eps, 1 - eps, eps / 2, 1 - eps / 4, 1e-300, 0.3, 1.5, -0.5]
    if name in ("bce", "focal"):
        p = np.array(edge * 2)
        y = np.repeat([0.0, 1.0], len(edge))
        return y, p.astype(dtype)
    if name == "cce":
        p = np.array(
            [
                [0.0, 1.0, 0.0],
                [0.5, 0.5, 0.0],
                [1e-300, 0.3, 0.7],
                [eps, 1.0, 1.5],
                [eps / 2, 0.5, 0.5],
            ]
        )
        y = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0], [1, 0, 0], [1, 0, 0]])
        return y, p.astype(dtype)
    q = np.array(edge * 2)
    p = np.repeat([0.0, 0.6], len(edge))
    return p.astype(dtype), q.astype(dtype)


@pytest.mark.parametrize(("device", "name", "dtype"), _clip_cases(), indirect=["device"])
def test_clipping_at_0_and_1(device, name, dtype):
    """p (or q) = 0 and 1 give finite values equal to the float64 formula (whose float32
    version rounds 1 - eps to 1 and returns inf / NaN); the gradient is 0 wherever the
    clip is active, as torch.clamp's."""
    args = _clip_inputs(name, dtype)
    for reduction in O.REDUCTIONS:
        v, g = check_value_and_grad(name, args, reduction, dtype, device)
        assert np.all(np.isfinite(v))
        assert np.all(np.isfinite(g))
    # the verbatim formula, in float64, agrees on the mean
    args64 = tuple(np.asarray(a, np.float64) for a in args)
    with np.errstate(all="ignore"):
        ref = getattr(reference, name)(*args64)
    assert np.isfinite(ref)
    got = scalar_result(call(name, "value", args, device), dtype, device)
    assert got == pytest.approx(ref, rel=O.rtol_for(dtype), abs=1e-300)
    # zero gradient where clipped (the prediction is the second argument here)
    pred = np.asarray(args[1], np.float64)
    lo, hi = 1e-15, (1.0 if name in ("cce", "kl_divergence", "js_divergence") else 1 - 1e-15)
    g = to_host(call(name, "grad", args, device, reduction="none"))
    clipped = (pred < lo) | (pred > hi)
    if name != "js_divergence":  # js also differentiates through m = (p + q) / 2
        assert np.all(g[clipped] == 0)


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_bce_float32_certainly_wrong_is_finite(device):
    """float32 p = 1 with y = 0 is finite (the clip is done in float64, where 1 - 1e-15
    exists), not inf as in the float32 formula."""
    for p, y in ((1.0, 0.0), (0.0, 1.0)):
        args = (np.array([y], np.float32), np.array([p], np.float32))
        v = scalar_result(call("bce", "value", args, device), "float32", device)
        assert np.isfinite(v) and v == pytest.approx(-math.log(1e-15), rel=1e-4)
    with np.errstate(all="ignore"):  # the formula in float32: log(1 - float32(1 - 1e-15))
        assert reference.bce(np.zeros(1, np.float32), np.ones(1, np.float32)) == np.inf


# --------------------------------------------------------------------------------------
# NaN and inf
# --------------------------------------------------------------------------------------


def _nan_position(name, args):
    """Where to put a NaN in the prediction: an element, or a target entry for nll."""
    if name == "nll":
        return (2, int(args[1][2]))
    if name == "cce":
        return (2, 1)
    return (4,)


def _nan_cases():
    cpu = [
        (nm, which, dt)
        for nm in O.NAMES
        for which in ("pred", "other")
        for dt in DTYPES
        if not (nm == "nll" and which == "other")
    ]
    gpu = [(nm, "pred", "float64") for nm in ("rmse", "cce", "nll")]
    return cases(cpu, gpu, lambda nm, w, dt: f"{nm}-{w}-{dt}")


@pytest.mark.parametrize(("device", "name", "which", "dtype"), _nan_cases(), indirect=["device"])
def test_nan_in_nan_out(device, name, which, dtype):
    """A NaN makes its own term NaN (and every reduction), and the gradient NaN where the
    element's derivative involves it; the other elements are untouched. rmse's gradient
    involves the loss itself, so a NaN anywhere makes all of it NaN. nll's gradient (-1/n
    at the targets) does not depend on log_probs."""
    spec = O.SPECS[name]
    args = [a.copy() for a in O.make_inputs(name, 9, dtype, rng_for(name, "nan"))]
    k = spec.pred if which == "pred" else 1 - spec.pred
    pos = _nan_position(name, args)
    args[k] = args[k].astype(np.result_type(args[k].dtype, np.float32))
    args[k][pos] = np.nan
    args = tuple(args)
    row = pos[:1] if spec.rows else pos
    v = to_host(call(name, "value", args, device, reduction="none"))
    assert np.isnan(v[row]) and np.isnan(v).sum() == 1, v
    for reduction in ("mean", "sum"):
        assert math.isnan(float(to_host(call(name, "value", args, device, reduction=reduction))))
    for reduction in O.REDUCTIONS:
        g = to_host(call(name, "grad", args, device, reduction=reduction))
        vb, gb = call(name, "both", args, device, reduction=reduction)
        np.testing.assert_array_equal(np.isnan(to_host(gb)), np.isnan(g))
        if name == "nll":
            assert not np.isnan(g).any()
            continue
        if name == "rmse" and reduction != "none":
            assert np.isnan(g).all(), f"rmse_grad(reduction={reduction!r}) = {g}"
            continue
        assert np.isnan(g[pos]), f"grad at the NaN: {g[pos]}"
        assert np.isnan(g).sum() == 1, f"NaN leaked into other elements: {g}"


INF = math.inf

# name: [(label-or-first, prediction-or-second, value term, gradient term)] for the
# defaults (reduction="none"); derived by hand from the formulas.
INF_TABLE = {
    "mse": [(0.0, INF, INF, INF), (0.0, -INF, INF, -INF), (INF, 0.0, INF, -INF)],
    "rmse": [(0.0, INF, INF, 1.0), (0.0, -INF, INF, -1.0), (INF, 0.0, INF, -1.0)],
    "mae": [(0.0, INF, INF, 1.0), (0.0, -INF, INF, -1.0), (-INF, 2.0, INF, 1.0)],
    "huber": [(0.0, INF, INF, 1.0), (0.0, -INF, INF, -1.0), (INF, 2.0, INF, -1.0)],
    "log_cosh": [(0.0, INF, INF, 1.0), (0.0, -INF, INF, -1.0), (-INF, 0.0, INF, 1.0)],
    "bce": [
        (1.0, INF, -math.log(1 - 1e-15), 0.0),
        (0.0, -INF, -math.log(1 - 1e-15), 0.0),
        (1.0, -INF, -math.log(1e-15), 0.0),
    ],
    "hinge": [(1.0, INF, 0.0, 0.0), (-1.0, INF, INF, 1.0), (1.0, -INF, INF, -1.0)],
    "squared_hinge": [(1.0, INF, 0.0, 0.0), (-1.0, INF, INF, INF), (1.0, -INF, INF, -INF)],
    "focal": [(1.0, INF, None, 0.0), (0.0, -INF, None, 0.0), (1.0, -INF, None, 0.0)],
    "kl_divergence": [
        (0.5, INF, 0.5 * math.log(0.5), 0.0),
        (0.5, -INF, 0.5 * math.log(0.5 / 1e-15), 0.0),
    ],
    "js_divergence": [
        (0.5, INF, 0.25 * math.log(0.5), 0.0),
        (0.5, -INF, 0.25 * math.log(0.5 / 1e-15), 0.0),
    ],
    "contrastive": [(INF, 1.0, INF, INF), (3.0, 0.0, 0.0, 0.0)],
}


def _inf_cases():
    cpu = [(nm, dt) for nm in INF_TABLE for dt in DTYPES]
    gpu = [(nm, "float64") for nm in ("mse", "log_cosh", "hinge", "kl_divergence")]
    return cases(cpu, gpu, lambda nm, dt: f"{nm}-{dt}")


# rmse_grad rescales an infinite gradient by 0 in NumPy, which warns (inf * 0)
@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")
@pytest.mark.parametrize(("device", "name", "dtype"), _inf_cases(), indirect=["device"])
def test_inf_handling(device, name, dtype):
    """±inf: infinite losses where the formula is infinite, finite where the formula clips,
    and the gradient's limit (±1 for |e|-like losses, 0 on a flat or clipped part)."""
    rows = INF_TABLE[name]
    a = np.array([r[0] for r in rows] + [0.5]).astype(dtype)
    b = np.array([r[1] for r in rows] + [0.25]).astype(dtype)
    args = (a, b)
    n = len(rows)
    v = to_host(call(name, "value", args, device, reduction="none"))
    g = to_host(call(name, "grad", args, device, reduction="none"))
    ref_v = O.np_terms(name, args)
    for i, (_, _, value, grad) in enumerate(rows):
        expected = ref_v[i] if value is None else value
        assert v[i] == pytest.approx(expected, rel=1e-6), f"value of row {i}: {v[i]}"
        assert g[i] == pytest.approx(grad, rel=1e-6), f"gradient of row {i}: {g[i]}"
    # the finite element is unaffected, on both devices and reductions
    O.assert_close(v[n:], ref_v[n:], rtol=O.rtol_for(dtype), what="finite element")
    mean = float(to_host(call(name, "value", args, device, reduction="mean")))
    assert mean == pytest.approx(float(np.mean(v.astype(np.float64))), rel=1e-6)
    gm = to_host(call(name, "grad", args, device, reduction="mean"))
    if name == "rmse":
        assert gm[n] == 0  # e / (n L) with L = inf
    else:
        np.testing.assert_allclose(gm[n], g[n] / (n + 1), rtol=1e-6)


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_inf_nll(device):
    lp = np.log(np.full((3, 4), 0.25))
    lp[0, 2] = -np.inf  # the target: an impossible class
    lp[1, 0] = -np.inf  # not a target
    t = np.array([2, 1, 3])
    v = to_host(call("nll", "value", (lp, t), device, reduction="none"))
    assert v[0] == np.inf and np.all(np.isfinite(v[1:]))
    assert float(to_host(call("nll", "value", (lp, t), device))) == np.inf
    g = to_host(call("nll", "grad", (lp, t), device))
    expected = np.zeros((3, 4))
    expected[np.arange(3), t] = -1 / 3
    np.testing.assert_array_equal(g, expected)


# --------------------------------------------------------------------------------------
# Accuracy and determinism of the reductions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mse", "mae", "bce", "kl_divergence"])
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_float32_reductions_accumulate_accurately(device, name):
    """API.md section 4: a float32 reduction is within 1e-6 of the float64 result (a float32
    accumulator over 2 million terms would be off by ~1e-4)."""
    n = 2_000_003 if device == "cpu" else max(sizes(device))
    args = O.make_inputs(name, n, "float32", rng_for(name, "accumulate"))
    for reduction in ("mean", "sum"):
        got = scalar_result(
            call(name, "value", args, device, reduction=reduction), "float32", device
        )
        ref = O.np_value(name, args, reduction)
        assert abs(got - ref) <= 1e-6 * abs(ref), (got, ref)


@pytest.mark.parametrize(
    ("device", "name"),
    [pytest.param("cpu", nm, id=f"cpu-{nm}") for nm in O.NAMES]
    + [pytest.param("gpu", nm, id=f"gpu-{nm}") for nm in ("mse", "cce", "nll")],
    indirect=["device"],
)
def test_reductions_are_deterministic(device, name):
    n = 100_003 if device == "cpu" else GS[-1]
    args = O.make_inputs(name, n, "float32", rng_for(name, "det"))
    first = [to_host(call(name, "value", args, device, reduction=r)) for r in ("mean", "sum")]
    g0 = to_host(call(name, "grad", args, device))
    for _ in range(3 if device == "cpu" else 1):
        again = [to_host(call(name, "value", args, device, reduction=r)) for r in ("mean", "sum")]
        assert [a.tobytes() for a in again] == [f.tobytes() for f in first]
        assert to_host(call(name, "grad", args, device)).tobytes() == g0.tobytes()
