"""Correctness of the activations (issue 3): values and derivatives, softmax / log_softmax
and their vector-Jacobian products, dtypes, shapes, numerics at the extremes, NaN.

Every test takes the ``device`` fixture (conftest.py): the same body runs on the CPU kernel
and on the GPU kernel (Numba's CUDA simulator, 2 blocks x 32 threads, so tiny arrays).

Oracles (tests/oracles_nn.py), all float64: the verbatim NumPy formulas of
ml_formulas.txt, PyTorch functions with autograd derivatives, mpmath at 40 digits for the
extremes and the property tests, and analytic NumPy VJPs. Tolerances are the contract's
(float64 rtol 1e-10, float32 rtol 1e-5 against the float64 reference of the float32 data)
plus 16 ulps of the magnitude of the intermediate quantities (1 + |x|), the rounding
error a correct formula such as 1 - tanh² may make and no more.
"""

from __future__ import annotations

import math
import warnings
import zlib

import hypothesis.extra.numpy as hnp
import numpy as np
import oracles_nn as O
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlkernels as mk
from conftest import SIMULATOR, array_result, cases, sizes, to_device, to_host

DTYPES = ("float32", "float64")
GS = sizes("gpu")


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def fn(name: str, kind: str = "value"):
    return getattr(mk, name if kind == "value" else name + "_grad")


def call(name, kind, args, device, *hyper, **kwargs):
    if not isinstance(args, tuple):
        args = (args,)
    return fn(name, kind)(*[to_device(a, device) for a in args], *hyper, **kwargs)


def check_elementwise(name, x, dtype, device, hyper=None, *, positional=False):
    """Value and derivative of ``name`` at ``x`` against the NumPy formula, torch and
    autograd (and the formula file's own derivative where it gives one); ``hyper`` passed
    by keyword, or positionally if ``positional``."""
    hyper = hyper or {}
    dtype = np.dtype(dtype).name
    scale = 1.0 + np.abs(O.f64(x))
    pos, kw = (tuple(hyper.values()), {}) if positional else ((), hyper)
    v = array_result(call(name, "value", x, device, *pos, **kw), dtype, x.shape, device)
    g = array_result(call(name, "grad", x, device, *pos, **kw), dtype, x.shape, device)
    tv, tg = O.torch_value_and_grad(name, x, **hyper)
    tag = f"[{dtype}, {device}, {hyper}]"
    O.assert_close(v, tv, dtype, scale=scale, what=f"{name} vs torch {tag}")
    O.assert_close(v, O.np_value(name, x, **hyper), dtype, scale=scale, what=f"{name} vs formula")
    O.assert_close(g, tg, dtype, scale=scale, what=f"{name}_grad vs autograd {tag}")
    if name in O.NP_GRAD:
        O.assert_close(
            g, O.NP_GRAD[name](O.f64(x)), dtype, scale=scale, what=f"{name}_grad formula"
        )
    return v, g


# --------------------------------------------------------------------------------------
# Elementwise activations: the grid
# --------------------------------------------------------------------------------------

FULL = [(nm, dt, n) for nm in O.ELEMENTWISE for dt in DTYPES for n in sizes("cpu")]
if SIMULATOR:  # every activation twice: a partial block in float64, two blocks + stride in float32
    GPU_FEW = [(nm, "float64", GS[2]) for nm in O.ELEMENTWISE]
    GPU_FEW += [(nm, "float32", GS[-1]) for nm in O.ELEMENTWISE]
else:
    GPU_FEW = [(nm, dt, n) for nm in O.ELEMENTWISE for dt in DTYPES for n in GS]


@pytest.mark.parametrize(
    ("device", "name", "dtype", "n"),
    cases(FULL, GPU_FEW, lambda nm, dt, n: f"{nm}-{dt}-n{n}"),
    indirect=["device"],
)
def test_elementwise_value_and_grad(device, name, dtype, n):
    x = O.activation_data((n,), dtype, rng_for(name, dtype, n))
    check_elementwise(name, x, dtype, device)


HYPER_CASES = [
    ("leaky_relu", 0.0),
    ("leaky_relu", 0.2),
    ("leaky_relu", 1.0),
    ("leaky_relu", 3.0),
    ("elu", 0.5),
    ("elu", 2.0),
    ("elu", 0.0),
]


@pytest.mark.parametrize(
    ("device", "name", "alpha", "dtype"),
    cases(
        [(nm, a, dt) for nm, a in HYPER_CASES for dt in DTYPES],
        [("leaky_relu", 0.2, "float32"), ("elu", 2.0, "float64")],
        lambda nm, a, dt: f"{nm}-alpha{a}-{dt}",
    ),
    indirect=["device"],
)
def test_alpha(device, name, alpha, dtype):
    """alpha, by keyword and positionally, reaches the kernel: torch's negative_slope / alpha."""
    n = 1009 if device == "cpu" else GS[2]
    x = O.activation_data((n,), dtype, rng_for(name, alpha, dtype))
    v, g = check_elementwise(name, x, dtype, device, {"alpha": alpha})
    v2, g2 = check_elementwise(name, x, dtype, device, {"alpha": alpha}, positional=True)
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(g2, g)


@pytest.mark.parametrize("name", ["leaky_relu", "elu"])
def test_default_alpha_is_the_formulas(name):
    x = O.activation_data((101,), "float64", rng_for(name, "default"))
    default = O.HYPER[name]["alpha"]
    np.testing.assert_array_equal(fn(name)(x), fn(name)(x, default))
    np.testing.assert_array_equal(fn(name, "grad")(x), fn(name, "grad")(x, alpha=default))
    other = fn(name)(x, 0.37)
    assert not np.array_equal(other, fn(name)(x))
    O.assert_close(other, O.np_value(name, x, alpha=0.37), "float64", scale=1 + np.abs(x))


# --------------------------------------------------------------------------------------
# Conventions at 0, shapes, dtypes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_derivatives_at_zero_are_torchs(device, dtype):
    """relu_grad(0) = 0, leaky_relu_grad(0) = alpha, elu_grad(0) = alpha, selu_grad(0) =
    lambda * alpha (torch's one-sided conventions), at +0.0 and -0.0."""
    x = np.array([0.0, -0.0, 1.0, -1.0], dtype)
    expected = {
        "relu": [0.0, 0.0],
        "leaky_relu": [0.01, 0.01],
        "elu": [1.0, 1.0],
        "selu": [O.SELU_LAMBDA * O.SELU_ALPHA] * 2,
        "sigmoid": [0.25, 0.25],
        "tanh": [1.0, 1.0],
        "gelu": [0.5, 0.5],
        "swish": [0.5, 0.5],
        "mish": [math.tanh(math.log(2.0))] * 2,
    }
    for name, want in expected.items():
        g = to_host(call(name, "grad", x, device))
        np.testing.assert_allclose(g[:2], want, rtol=O.ulps(dtype, 4), err_msg=name)
        _, tg = O.torch_value_and_grad(name, x)
        np.testing.assert_allclose(g, tg, rtol=O.rtol_for(dtype), err_msg=name)
        v = to_host(call(name, "value", x, device))
        want_v = 0.5 if name == "sigmoid" else 0.0
        assert np.all(v[:2] == want_v), f"{name}(±0) = {v[:2]}"
    g = to_host(call("leaky_relu", "grad", x, device, 0.3))
    np.testing.assert_allclose(g[:2], [0.3, 0.3], rtol=O.ulps(dtype, 4))
    g = to_host(call("elu", "grad", x, device, 2.5))
    np.testing.assert_allclose(g[:2], [2.5, 2.5], rtol=O.ulps(dtype, 4))


ND_SHAPES = [(2, 3, 5), (1, 1, 7), (4, 33), (0,), (3, 0, 2), (2, 1, 2, 3)]


@pytest.mark.parametrize(
    ("device", "name"),
    cases([(nm,) for nm in O.ELEMENTWISE], [("sigmoid",), ("gelu",), ("mish",)], str),
    indirect=["device"],
)
def test_nd_shapes(device, name):
    """Any shape: the result has x's shape and equals the flattened computation."""
    for shape in ND_SHAPES:
        if device == "gpu" and 0 in shape:
            continue
        x = O.activation_data(shape, "float64", rng_for(name, shape))
        v, g = check_elementwise(name, x, "float64", device)
        if x.size:
            flat_v = to_host(call(name, "value", x.reshape(-1), device))
            np.testing.assert_array_equal(v.reshape(-1), flat_v)


@pytest.mark.parametrize("name", O.ELEMENTWISE)
def test_zero_dimensional_inputs(name):
    for x in (np.array(0.7), np.array(-1.3, np.float32), np.float64(2.0), 0.5, -3):
        dtype = np.float32 if np.asarray(x).dtype == np.float32 else np.float64
        for kind in ("value", "grad"):
            got = fn(name, kind)(x)
            assert np.shape(got) == (), f"{name} {kind} of {x!r}: shape {np.shape(got)}"
            assert np.asarray(got).dtype == dtype
            tv, tg = O.torch_value_and_grad(name, np.array(x, np.float64))
            ref = tv if kind == "value" else tg
            O.assert_close(np.asarray(got), ref, dtype, scale=1 + abs(float(x)), what=name)


INT_KINDS = ("int8", "int32", "int64", "uint8", "bool")


@pytest.mark.parametrize(
    ("device", "name", "kind"),
    cases(
        [(nm, k) for nm in (*O.ELEMENTWISE, *O.ROWWISE) for k in INT_KINDS],
        [("relu", "int32"), ("softmax", "int64")],
        lambda nm, k: f"{nm}-{k}",
    ),
    indirect=["device"],
)
def test_int_and_bool_inputs_compute_in_float64(device, name, kind):
    rng = rng_for(name, kind)
    lo = 0 if kind in ("uint8", "bool") else -6
    hi = 2 if kind == "bool" else 7
    x = rng.integers(lo, hi, (3, 6)).astype(kind)
    xf = x.astype(np.float64)
    if name in O.ROWWISE:
        got = array_result(call(name, "value", x, device), "float64", x.shape, device)
        O.assert_close(got, O.np_value(name, xf), "float64", scale=1 + np.abs(xf), what=name)
        dy = rng.integers(-3, 4, x.shape).astype(kind if kind != "uint8" else "int8")
        g = array_result(call(name, "grad", (x, dy), device), "float64", x.shape, device)
        _, ref = O.torch_softmax_vjp(name, xf, dy)
        O.assert_close(g, ref, "float64", scale=3.0, what=f"{name}_grad")
        return
    check_elementwise(name, x, "float64", device)


@pytest.mark.parametrize("name", [*O.ELEMENTWISE, *O.ROWWISE])
def test_float32_stays_float32_and_torch_cpu_tensors_are_host_data(name):
    x = O.activation_data((4, 9), "float32", rng_for(name, "f32"))
    got = fn(name)(x)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    t = fn(name)(torch.from_numpy(x.copy()))
    assert isinstance(t, np.ndarray) and t.dtype == np.float32
    np.testing.assert_array_equal(t, got)
    lst = fn(name)(x.astype(np.float64).tolist())  # a list: float64
    assert isinstance(lst, np.ndarray) and lst.dtype == np.float64


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_mixed_float32_float64_vjp_promotes(device):
    rng = rng_for("mixed")
    x = rng.standard_normal((3, 5))
    dy = rng.standard_normal((3, 5))
    for name in O.ROWWISE:
        for a, b in ((x.astype(np.float32), dy), (x, dy.astype(np.float32))):
            g = array_result(call(name, "grad", (a, b), device), "float64", x.shape, device)
            _, ref = O.torch_softmax_vjp(name, a, b)
            O.assert_close(g, ref, "float64", scale=3.0, what=f"{name}_grad mixed")


# --------------------------------------------------------------------------------------
# Extremes: finite, exact to rounding, no warnings
# --------------------------------------------------------------------------------------

BIG = [20.0, 30.0, 50.0, 88.0, 100.0, 710.0, 745.0, 800.0, 1000.0, 1e4]
EXTREME_X = [v for b in BIG for v in (b, -b)]


def _quietly(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return f(*args, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("device", "name"),
    cases([(nm,) for nm in O.ELEMENTWISE], [(nm,) for nm in O.ELEMENTWISE], str),
    indirect=["device"],
)
def test_extremes_are_finite_exact_and_silent(device, name, dtype):
    """±20 ... ±1e4: no overflow, no NaN, no warning; values and derivatives equal the
    exact (mpmath) ones to rounding."""
    x = np.array(EXTREME_X, dtype)
    v = to_host(_quietly(call, name, "value", x, device))
    g = to_host(_quietly(call, name, "grad", x, device))
    assert v.dtype == dtype and g.dtype == dtype
    assert np.all(np.isfinite(v)), f"{name}({x[~np.isfinite(v)]}) = {v[~np.isfinite(v)]}"
    assert np.all(np.isfinite(g)), f"{name}_grad({x[~np.isfinite(g)]}) = {g[~np.isfinite(g)]}"
    rtol = O.rtol_for(dtype) / 10
    O.assert_close(v, O.mp_value(name, x), dtype, rtol=rtol, scale=1.0, what=f"{name}(extreme)")
    O.assert_close(g, O.mp_grad(name, x), dtype, rtol=rtol, scale=1.0, what=f"{name}_grad(extr)")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_the_extremes_named_by_the_api(device, dtype):
    """sigmoid(±1000) = 1, 0 exactly; swish(-1000) = 0, swish(1000) = 1000, swish(1e4) =
    1e4; mish(1000) == 1000; elu(-1000) = -alpha; selu(-1000) = -lambda alpha; gelu(1e4)
    = 1e4, gelu(-1e4) = 0; tanh(±1000) = ±1. No warnings."""
    x = np.array([1000.0, -1000.0, 1e4, -1e4], dtype)

    def f(name, *hyper):
        return to_host(_quietly(call, name, "value", x, device, *hyper)).tolist()

    assert f("sigmoid")[:2] == [1.0, 0.0]
    assert f("tanh") == [1.0, -1.0, 1.0, -1.0]
    assert f("swish") == [1000.0, 0.0, 1e4, 0.0]
    assert f("mish")[0] == 1000.0 and f("mish")[2] == 1e4
    assert f("mish")[1] == 0.0 and f("mish")[3] == 0.0
    assert f("gelu")[2:] == [1e4, 0.0] and f("gelu")[:2] == [1000.0, 0.0]
    assert f("elu")[1] == -1.0 and f("elu", 2.5)[1] == -2.5
    lam_alpha = float(np.asarray(O.SELU_LAMBDA * O.SELU_ALPHA, dtype))
    assert f("selu")[1] == pytest.approx(-lam_alpha, rel=2 * O.EPS[dtype])
    assert f("relu") == [1000.0, 0.0, 1e4, 0.0]
    assert f("leaky_relu") == pytest.approx([1000.0, -10.0, 1e4, -100.0], rel=O.EPS[dtype])
    # derivatives there
    g = {nm: to_host(_quietly(call, nm, "grad", x, device)).tolist() for nm in O.ELEMENTWISE}
    assert g["sigmoid"] == [0.0, 0.0, 0.0, 0.0]
    assert g["tanh"] == [0.0, 0.0, 0.0, 0.0]
    assert g["swish"] == pytest.approx([1.0, 0.0, 1.0, 0.0], abs=1e-300)
    assert g["mish"] == pytest.approx([1.0, 0.0, 1.0, 0.0], abs=1e-300)
    assert g["gelu"] == pytest.approx([1.0, 0.0, 1.0, 0.0], abs=1e-300)
    assert g["elu"] == [1.0, 0.0, 1.0, 0.0]
    assert g["selu"] == pytest.approx([O.SELU_LAMBDA, 0.0, O.SELU_LAMBDA, 0.0], rel=O.EPS[dtype])


SPECIAL_X = [math.inf, -math.inf]
INF_TABLE = {  # name: (f(inf), f(-inf), f'(inf), f'(-inf)): limits without ambiguity
    "sigmoid": (1.0, 0.0, 0.0, 0.0),
    "tanh": (1.0, -1.0, 0.0, 0.0),
    "relu": (math.inf, 0.0, 1.0, 0.0),
    "leaky_relu": (math.inf, -math.inf, 1.0, 0.01),
    "elu": (math.inf, -1.0, 1.0, 0.0),
    "selu": (math.inf, -O.SELU_LAMBDA * O.SELU_ALPHA, O.SELU_LAMBDA, 0.0),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_infinities(device, dtype):
    x = np.array(SPECIAL_X, dtype)
    for name, (vp, vm, gp, gm) in INF_TABLE.items():
        v = to_host(call(name, "value", x, device))
        g = to_host(call(name, "grad", x, device))
        np.testing.assert_allclose(v, [vp, vm], rtol=2 * O.EPS[dtype], err_msg=name)
        np.testing.assert_allclose(g, [gp, gm], rtol=2 * O.EPS[dtype], err_msg=name + "_grad")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("device", "name"),
    cases([(nm,) for nm in O.ELEMENTWISE], [("relu",), ("leaky_relu",), ("swish",)], str),
    indirect=["device"],
)
def test_nan_in_nan_out(device, name, dtype):
    """NaN gives NaN, for the value and the derivative (also relu_grad / leaky_relu_grad,
    whose comparisons would otherwise turn NaN into 0 or alpha); other elements untouched."""
    x = O.activation_data((40,), dtype, rng_for(name, "nan"))
    pos = [0, 5, 6, 39]
    x[pos] = np.nan
    for kind, oracle in (("value", O.mp_value), ("grad", O.mp_grad)):
        got = to_host(call(name, kind, x, device))
        isnan = np.isnan(got)
        assert isnan[pos].all(), f"{name} {kind} at NaN: {got[pos]}"
        assert isnan.sum() == len(pos), f"{name} {kind}: NaN leaked to {np.flatnonzero(isnan)}"
        O.assert_close(got, oracle(name, x), dtype, scale=1 + np.abs(O.f64(x)), what=name)


# --------------------------------------------------------------------------------------
# softmax and log_softmax along the last axis
# --------------------------------------------------------------------------------------

SM_SHAPES_CPU = [(1,), (7,), (1009,), (3, 5), (2, 33), (64, 10), (5, 1009), (2, 3, 5), (4, 1)]
SM_SHAPES_CPU += [(2, 3, 4, 5), (0, 5)]
SM_SHAPES_GPU = [(7,), (3, 5), (2, 33), (2, 3, 5)]


def softmax_data(shape, dtype, rng):
    x = 3.0 * rng.standard_normal(shape)
    if len(shape) >= 2 and shape[0] >= 2:  # rows far from 0: the max subtraction matters
        x[0] += 500.0
        x[1] -= 500.0
    dy = rng.standard_normal(shape)
    return x.astype(dtype), dy.astype(dtype)


def _sm_tolerances(name, x, dy, value):
    """Scales: softmax values are in [0, 1]; log_softmax loses the rounding of x - max;
    the VJPs the rounding of dy and of the row sums."""
    xf = O.f64(x)
    row_mag = lambda a: np.max(np.abs(a), axis=-1, keepdims=True, initial=0.0)  # noqa: E731
    v_scale = (
        1.0
        if name == "softmax"
        else 1.0 + np.abs(xf - np.max(xf, axis=-1, keepdims=True, initial=-np.inf))
    )
    g_scale = np.broadcast_to(row_mag(O.f64(dy)), xf.shape)
    return v_scale, g_scale


def _check_softmax(name, x, dy, dtype, device):
    value = array_result(call(name, "value", x, device), dtype, x.shape, device)
    grad = array_result(call(name, "grad", (x, dy), device), dtype, x.shape, device)
    tv, tg = O.torch_softmax_vjp(name, x, dy)
    v_scale, g_scale = _sm_tolerances(name, x, dy, value)
    tag = f"[{dtype}, {device}, {x.shape}]"
    O.assert_close(value, tv, dtype, scale=v_scale, what=f"{name} vs torch {tag}")
    O.assert_close(value, O.np_value(name, x), dtype, scale=v_scale, what=f"{name} vs formula")
    analytic = O.an_softmax_grad if name == "softmax" else O.an_log_softmax_grad
    O.assert_close(grad, tg, dtype, scale=g_scale, what=f"{name}_grad vs autograd VJP {tag}")
    O.assert_close(grad, analytic(x, dy), dtype, scale=g_scale, what=f"{name}_grad vs analytic")
    return value, grad


def _shape_id(s):
    return "x".join(map(str, s)) or "0d"


@pytest.mark.parametrize(
    ("device", "name", "shape", "dtype"),
    cases(
        [(nm, s, dt) for nm in O.ROWWISE for s in SM_SHAPES_CPU for dt in DTYPES],
        [(nm, s, dt) for nm in O.ROWWISE for s, dt in zip(SM_SHAPES_GPU, DTYPES * 2, strict=True)],
        lambda nm, s, dt: f"{nm}-{_shape_id(s)}-{dt}",
    ),
    indirect=["device"],
)
def test_softmax_values_and_vjp(device, name, shape, dtype):
    x, dy = softmax_data(shape, dtype, rng_for(name, shape, dtype))
    value, _ = _check_softmax(name, x, dy, dtype, device)
    if name == "softmax" and value.size:
        np.testing.assert_allclose(value.sum(axis=-1), 1.0, rtol=O.ulps(dtype, 8) * shape[-1])


def _huge_rows(dtype):
    big = 1e300 if dtype == "float64" else 3e38
    return np.array(
        [
            [1000.0, 1000.0, -1e4],
            [-1000.0, -1000.0, -1e4],
            [big, big, big],
            [-big, -big, -big],
            [1000.0, 0.0, -1e4],
            [1e4, 1e4 - 1.0, -1e4],
        ],
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_softmax_of_huge_and_equal_values(device, dtype):
    """softmax([1000, 1000]) = [.5, .5], also for ±1e300 (float32: ±3e38); a 1000 gap gives
    exactly [1, 0]. No warnings."""
    rows = _huge_rows(dtype)
    sm = to_host(_quietly(call, "softmax", "value", rows, device))
    assert sm.dtype == dtype
    np.testing.assert_array_equal(sm[0], [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(sm[1], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(sm[2:4], 1 / 3, rtol=O.ulps(dtype, 2))
    np.testing.assert_array_equal(sm[4], [1.0, 0.0, 0.0])
    e = math.exp(-1.0)
    np.testing.assert_allclose(sm[5], [1 / (1 + e), e / (1 + e), 0.0], rtol=O.ulps(dtype, 4))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_log_softmax_of_huge_and_equal_values(device, dtype):
    """log_softmax of n equal values is -log(n) to rounding, however large they are (x - max
    is exactly 0: the result must not lose the ulp of x, as x - (max + log sum) does); a
    1000 gap gives exactly [0, -1000]. No warnings."""
    rows = _huge_rows(dtype)
    ls = to_host(_quietly(call, "log_softmax", "value", rows, device))
    assert ls.dtype == dtype
    ln2, ln3 = math.log(2.0), math.log(3.0)
    tol = O.ulps(dtype, 4)
    np.testing.assert_allclose(ls[2:4], -ln3, rtol=tol, err_msg="log_softmax([big] * 3)")
    np.testing.assert_allclose(ls[0], [-ln2, -ln2, -11000 - ln2], rtol=tol, err_msg="[1e3, 1e3]")
    np.testing.assert_allclose(ls[1], [-ln2, -ln2, -9000 - ln2], rtol=tol, err_msg="[-1e3, -1e3]")
    np.testing.assert_array_equal(ls[4], [0.0, -1000.0, -11000.0])
    l1pe = math.log1p(math.exp(-1.0))
    want = [-l1pe, -1.0 - l1pe, -2e4 - l1pe]
    np.testing.assert_allclose(ls[5], want, rtol=tol, err_msg="[1e4, 1e4 - 1]")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_softmax_vjps_at_huge_values(device, dtype):
    rows = _huge_rows(dtype)
    dy = np.array([[1.0, 0.0, 0.0]] * rows.shape[0], dtype)
    gs = to_host(_quietly(call, "softmax", "grad", (rows, dy), device))
    gl = to_host(_quietly(call, "log_softmax", "grad", (rows, dy), device))
    np.testing.assert_array_equal(gs[:2], [[0.25, -0.25, 0.0]] * 2)
    np.testing.assert_array_equal(gl[:2], [[0.5, -0.5, 0.0]] * 2)
    np.testing.assert_allclose(gs[2:4], [[2 / 9, -1 / 9, -1 / 9]] * 2, rtol=O.ulps(dtype, 4))
    np.testing.assert_allclose(gl[2:4], [[2 / 3, -1 / 3, -1 / 3]] * 2, rtol=O.ulps(dtype, 4))
    np.testing.assert_array_equal(gs[4], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(gl[4], [0.0, 0.0, 0.0])
    assert np.all(np.isfinite(gs)) and np.all(np.isfinite(gl))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_softmax_rows_with_minus_inf_entries(device, dtype):
    """-inf (a masked entry) gets probability 0 / log-probability -inf; its VJP entry is
    0 for softmax and dy for log_softmax (as torch's)."""
    x = np.array([[0.0, -np.inf, 1.0, 2.0], [-np.inf, 2.0, 2.0, -np.inf], [3.0, -1, 0.5, 7]])
    x = x.astype(dtype)
    dy = rng_for("masked", dtype).standard_normal(x.shape).astype(dtype)
    value, grad = _check_softmax("softmax", x, dy, dtype, device)
    assert np.all(value[np.isinf(x)] == 0)
    assert np.all(grad[np.isinf(x)] == 0)
    lvalue, lgrad = _check_softmax("log_softmax", x, dy, dtype, device)
    assert np.all(lvalue[np.isinf(x)] == -np.inf)
    np.testing.assert_array_equal(lgrad[np.isinf(x)], dy[np.isinf(x)])


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_softmax_nan_rows(device):
    """A NaN in x (or in dy for the VJPs) makes its whole row NaN, and only that row."""
    rng = rng_for("sm-nan")
    x = rng.standard_normal((4, 6))
    dy = rng.standard_normal((4, 6))
    x[1, 2] = np.nan
    dy[2, 5] = np.nan
    for name in O.ROWWISE:
        v = to_host(call(name, "value", x, device))
        assert np.isnan(v[1]).all() and not np.isnan(np.delete(v, 1, axis=0)).any(), name
        g = to_host(call(name, "grad", (x, dy), device))
        assert np.isnan(g[1]).all() and np.isnan(g[2]).all(), f"{name}_grad: {g}"
        assert not np.isnan(g[[0, 3]]).any(), f"{name}_grad: NaN leaked: {g}"
        ok = [0, 3]
        _, ref = O.torch_softmax_vjp(name, x[ok], dy[ok])
        O.assert_close(g[ok], ref, "float64", scale=3.0, what=f"{name}_grad other rows")


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_softmax_single_entry_rows(device):
    x = np.array([[3.0], [-1e300], [0.0]])
    dy = np.array([[2.0], [-1.0], [0.5]])
    np.testing.assert_array_equal(to_host(call("softmax", "value", x, device)), 1.0)
    np.testing.assert_array_equal(to_host(call("log_softmax", "value", x, device)), 0.0)
    np.testing.assert_array_equal(to_host(call("softmax", "grad", (x, dy), device)), 0.0)
    np.testing.assert_array_equal(to_host(call("log_softmax", "grad", (x, dy), device)), 0.0)


# --------------------------------------------------------------------------------------
# Properties (hypothesis)
# --------------------------------------------------------------------------------------

CPU = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
GPU = settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EXTREMES = [0.0, -0.0, 1e-300, -1e-300, 5e-324, 1e-8, -1e-8, 1000.0, -1000.0, 1e4, -1e4]
EXTREMES += [88.0, -88.0, 710.0, -710.0, 745.0, -745.0, math.nan]
reals = st.one_of(
    st.floats(-60, 60), st.floats(-3, 3), st.sampled_from(EXTREMES), st.floats(-1e6, 1e6)
)


def _shapes():
    return hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=6)


@st.composite
def activation_inputs(draw, dtype):
    return draw(hnp.arrays(np.float64, _shapes(), elements=reals)).astype(dtype)


def _property_elementwise(name, x, dtype, device):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = to_host(call(name, "value", x, device))
        g = to_host(call(name, "grad", x, device))
    scale = 1.0 + np.abs(O.f64(x))
    O.assert_close(v, O.mp_value(name, x), dtype, scale=scale, what=f"{name}({x.tolist()})")
    O.assert_close(g, O.mp_grad(name, x), dtype, scale=scale, what=f"{name}_grad({x.tolist()})")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", O.ELEMENTWISE)
@pytest.mark.parametrize("device", ["cpu"], indirect=True)
def test_property_elementwise_matches_mpmath(device, name, dtype):
    """Any values, |x| up to 1e6 with the extremes and NaN: exact (mpmath) value and
    derivative within the contract's tolerance, no warning."""

    @CPU
    @given(x=activation_inputs(dtype))
    def run(x):
        _property_elementwise(name, x, dtype, device)

    run()


@pytest.mark.parametrize("name", ["sigmoid", "gelu", "mish", "elu"])
@pytest.mark.parametrize("device", ["gpu"], indirect=True)
def test_property_elementwise_matches_mpmath_gpu(device, name):
    @GPU
    @given(x=activation_inputs("float64"))
    def run(x):
        _property_elementwise(name, x, "float64", device)

    run()


row_reals = st.one_of(st.floats(-30, 30), st.floats(-1e3, 1e3), st.sampled_from([0.0, 1e3, -1e3]))


@st.composite
def softmax_inputs(draw, dtype):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    x = draw(hnp.arrays(np.float64, shape, elements=row_reals)).astype(dtype)
    dy = draw(hnp.arrays(np.float64, shape, elements=st.floats(-10, 10))).astype(dtype)
    return x, dy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu"], indirect=True)
def test_property_softmax(device, dtype):
    """Rows of probabilities summing to 1, log_softmax == log(softmax) where softmax is
    normal, both VJPs sum to 0 along the row (J^T 1 = 0 for a distribution), shifting a
    row by a constant changes nothing, and everything matches torch."""

    @CPU
    @given(data=softmax_inputs(dtype))
    def run(data):
        x, dy = data
        s = to_host(call("softmax", "value", x, device))
        ls = to_host(call("log_softmax", "value", x, device))
        n = x.shape[-1]
        assert np.all((s >= 0) & (s <= 1))
        np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=O.ulps(dtype, 4) * n)
        normal = s > np.finfo(dtype).tiny * 1e3
        O.assert_close(
            np.log(s[normal].astype(np.float64)), ls[normal], dtype, scale=1 + np.abs(ls[normal])
        )
        for name in O.ROWWISE:
            _check_softmax(name, x, dy, dtype, device)
            g = O.f64(to_host(call(name, "grad", (x, dy), device)))
            mag = np.max(np.abs(O.f64(dy)), axis=-1, initial=0.0)
            # each element is rounded to the dtype: to its subnormal spacing near 0
            grain = n * np.finfo(dtype).smallest_subnormal
            assert np.all(np.abs(g.sum(axis=-1)) <= O.ulps(dtype, 8) * n * mag + grain), name
        # shift invariance by a power of two (x + c exact for these magnitudes)
        shifted = (O.f64(x) + 64.0).astype(dtype)
        if np.array_equal(O.f64(shifted) - 64.0, O.f64(x)):
            s2 = to_host(call("softmax", "value", shifted, device))
            np.testing.assert_allclose(s2, s, rtol=O.ulps(dtype, 8), atol=O.ulps(dtype, 2))

    run()
