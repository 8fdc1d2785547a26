"""Property-based tests of the losses (hypothesis): random shapes and values, extremes
included (±1e4, 1e-300, 5e-324, NaN, ±inf, p outside [0, 1]), against the oracles of
tests/oracles.py; and the identities every loss must satisfy whatever the data:

* sum == mean * n (and for rmse: sum² == mean² * n), for values and gradients; the
  gradient of reduction="none" is that of "sum";
* value_and_grad == (value, grad);
* the gradient is the derivative: it matches a central finite difference at smooth points.

The GPU variants (``*_gpu``) run the same bodies under the CUDA simulator with a handful of
examples and float64 data only (the simulator runs the scalar code as Python, which is slow).
"""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import oracles as O
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mlkernels as mk
from conftest import to_device, to_host

# rmse_grad rescales an infinite gradient by 0 in NumPy (inf * 0 warns); the simulator
# runs the scalar code on NumPy scalars, which warn where compiled code does not
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

NAN, INF = math.nan, math.inf
EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}
TINY = {"float32": float(np.finfo(np.float32).tiny), "float64": float(np.finfo(np.float64).tiny)}

CPU = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
GPU = settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def cpu_params(names):
    return [pytest.param("cpu", n, id=f"cpu-{n}") for n in names]


def gpu_params(names):
    return [pytest.param("gpu", n, id=f"gpu-{n}") for n in names]


def fn(name, kind="value"):
    suffix = {"value": "", "grad": "_grad", "both": "_value_and_grad"}[kind]
    return getattr(mk, name + suffix)


def call(name, kind, args, device, **kwargs):
    return fn(name, kind)(*[to_device(a, device) for a in args], **kwargs)


# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------


def _flush(x: float) -> float:
    # values between 1e-100 and 1e-300 would make squares subnormal (few significant
    # bits, so no meaningful relative comparison); 1e-300 itself is in the extremes
    return 0.0 if abs(x) < 1e-100 else x


REAL_EXTREMES = [0.0, -0.0, 1.0, -1.0, 1e4, -1e4, 1e-300, -1e-300, 5e-324, NAN, INF, -INF]
PROB_EXTREMES = [
    0.0,
    1.0,
    1e-300,
    1e-16,
    1e-15,
    1 - 1e-15,
    1 - 1e-16,
    0.5,
    1.5,
    -0.5,
    1e4,
    -1e4,
    NAN,
    INF,
    -INF,
]
real = st.one_of(
    st.floats(-10, 10).map(_flush), st.floats(-3, 3).map(_flush), st.sampled_from(REAL_EXTREMES)
)
prob = st.one_of(
    st.floats(0, 1).map(_flush), st.floats(0, 1).map(_flush), st.sampled_from(PROB_EXTREMES)
)
unit = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1).map(_flush))
label01 = st.one_of(unit, unit, unit, st.just(NAN))
sign = st.sampled_from([-1.0, 1.0])
finite_real = st.floats(-10, 10).map(_flush)

ELEMENTS = {
    # name: (strategy of the first positional array, of the second)
    "mse": (real, real),
    "rmse": (real, real),
    "mae": (real, real),
    "huber": (real, real),
    "log_cosh": (real, real),
    "bce": (label01, prob),
    "cce": (label01, prob),
    "hinge": (sign, real),
    "squared_hinge": (sign, real),
    "focal": (label01, prob),
    "kl_divergence": (prob, prob),
    "js_divergence": (prob, prob),
    "nll": (real, None),
    "contrastive": (real, label01),
}


def elementwise_shapes():
    return hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=7)


@st.composite
def inputs(draw, name, dtype="float64", elements=None):
    """Positional array arguments of ``name`` (float64 data cast to ``dtype``)."""
    ea, eb = elements or ELEMENTS[name]
    if O.SPECS[name].rows:
        n = draw(st.integers(1, 6))
        c = draw(st.integers(1, 5))
        rest = draw(st.lists(st.integers(1, 3), max_size=1))
        shape = (n, c, *rest)
    else:
        shape = draw(elementwise_shapes())
    a = draw(hnp.arrays(np.float64, shape, elements=ea)).astype(dtype)
    if name == "nll":
        t = draw(
            hnp.arrays(
                np.int64, (shape[0], *shape[2:]), elements=st.integers(-shape[1], shape[1] - 1)
            )
        )
        return a, t
    b = draw(hnp.arrays(np.float64, shape, elements=eb)).astype(dtype)
    return a, b


# --------------------------------------------------------------------------------------
# Expected gradients, NaN rules included
# --------------------------------------------------------------------------------------


def expected_grad(name, args, reduction):
    """autograd's gradient, made NaN where an input of the element is NaN or (elementwise
    losses) where the element's term is NaN, e.g. inf - inf: NaN in, NaN out, where
    autograd's clamp / relu masks would turn it into 0; and, for rmse's reductions,
    NaN everywhere if the loss is NaN (every element's derivative involves the loss)."""
    value, g = O.torch_value_and_grad(name, args, reduction)
    if name == "nll":
        return g  # d(-log_probs[target]) = -1: involves no input value
    nan = np.zeros(g.shape, bool)
    for x in args:
        nan |= np.isnan(np.asarray(x, np.float64))
    if not O.SPECS[name].rows:
        nan |= np.isnan(O.np_terms(name, args))
    g = np.where(nan, np.nan, g)
    if name == "rmse" and reduction != "none" and math.isnan(value):
        g = np.full(g.shape, np.nan)
    return g


def _finite_max(x) -> float:
    x = np.abs(np.asarray(x, np.float64))
    return float(np.max(x, initial=0.0, where=np.isfinite(x)))


def check_against_oracles(name, args, device, dtype):
    rtol = O.rtol_for(dtype)
    for reduction in O.REDUCTIONS:
        v, g = call(name, "both", args, device, reduction=reduction)
        v, g = to_host(v), to_host(g)
        assert v.dtype == np.dtype(dtype) and g.dtype == np.dtype(dtype)
        assert v.shape == (O.value_shape(name, args) if reduction == "none" else ())
        assert g.shape == np.shape(args[O.SPECS[name].pred])
        O.assert_close(
            v,
            O.np_value(name, args, reduction),
            rtol=rtol,
            scale=O.np_scale(name, args, reduction),
            atol=TINY[dtype],
            what=f"{name}(reduction={reduction!r})",
        )
        ref = expected_grad(name, args, reduction)
        mag = _finite_max(ref)
        if name == "js_divergence":
            mag = max(mag, 0.5)
        O.assert_close(
            g,
            ref,
            rtol=rtol,
            atol=rtol * mag + TINY[dtype],
            what=f"{name}_grad(reduction={reduction!r})",
        )


# --------------------------------------------------------------------------------------
# Against the oracles
# --------------------------------------------------------------------------------------


@CPU
@given(data=st.data())
@pytest.mark.parametrize(("device", "name"), cpu_params(O.NAMES), indirect=["device"])
def test_random_inputs_match_the_oracles(device, name, data):
    dtype = data.draw(st.sampled_from(["float32", "float64"]), label="dtype")
    args = data.draw(inputs(name, dtype), label="args")
    check_against_oracles(name, args, device, dtype)


@GPU
@given(data=st.data())
@pytest.mark.parametrize(("device", "name"), gpu_params(["bce", "cce", "nll"]), indirect=["device"])
def test_random_inputs_match_the_oracles_gpu(device, name, data):
    args = data.draw(inputs(name, "float64"), label="args")
    check_against_oracles(name, args, device, "float64")


# --------------------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------------------


def _same(got, ref, tol, what):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=what + ": NaNs")
    inf = np.isinf(ref)
    np.testing.assert_array_equal(got[inf], ref[inf], err_msg=what + ": infinities")
    fin = np.isfinite(ref)
    with np.errstate(all="ignore"):
        ok = np.abs(got - ref) <= tol
    bad = fin & ~ok
    assert not bad.any(), f"{what}: got {got[bad][:5]}, expected {ref[bad][:5]}"


def check_reduction_identities(name, args, device, dtype):
    n = int(np.prod(O.value_shape(name, args)))
    f, g = fn(name), fn(name, "grad")
    dev = [to_device(a, device) for a in args]
    vs, vm = float(to_host(f(*dev, reduction="sum"))), float(to_host(f(*dev, reduction="mean")))
    gs, gm, gn = (to_host(g(*dev, reduction=r)) for r in ("sum", "mean", "none"))
    ulps = 8 * EPS[dtype]
    scale = O.np_scale(name, args, "sum")
    if name == "rmse":
        # sum = sqrt(S), mean = sqrt(S / n): the sum is the mean times sqrt(n)
        _same(vs, vm * math.sqrt(n), ulps * (abs(vs) + 1e-300), "rmse sum vs mean")
        _same(gs, gm * math.sqrt(n), ulps * (_finite_max(gs) + 1e-300), "rmse_grad sum vs mean")
        vn = to_host(f(*dev, reduction="none"))  # |e|
        sign = np.where(np.isnan(vn), np.nan, (vn > 0).astype(float))
        _same(np.abs(gn), sign, 0, "rmse_grad(none) = sign(e)")
        return
    _same(vs, vm * n, ulps * scale + n * TINY[dtype], f"{name}: sum vs mean * n")
    _same(
        gs,
        gm * n,
        ulps * (np.abs(gs) + _finite_max(gs) * 1e-3) + TINY[dtype],
        f"{name}_grad: sum vs mean * n",
    )
    # "none" differentiates each term: the gradient of the sum, bit for bit (same scale 1)
    _same(gn, gs, 2 * EPS[dtype] * np.abs(gs) + TINY[dtype], f"{name}_grad: none vs sum")
    vn = to_host(f(*dev, reduction="none")).astype(np.float64)
    with np.errstate(all="ignore"):
        total = float(np.sum(vn)) if not np.all(np.isfinite(vn)) else math.fsum(vn.ravel())
    tol = (1e-12 if dtype == "float64" else 1e-6) * scale + TINY[dtype]
    _same(vs, total, tol, f"{name}: sum vs the sum of none")


@CPU
@given(data=st.data())
@pytest.mark.parametrize(("device", "name"), cpu_params(O.NAMES), indirect=["device"])
def test_sum_is_mean_times_n(device, name, data):
    dtype = data.draw(st.sampled_from(["float32", "float64"]), label="dtype")
    args = data.draw(inputs(name, dtype), label="args")
    check_reduction_identities(name, args, device, dtype)


@GPU
@given(data=st.data())
@pytest.mark.parametrize(
    ("device", "name"), gpu_params(["js_divergence", "nll"]), indirect=["device"]
)
def test_sum_is_mean_times_n_gpu(device, name, data):
    args = data.draw(inputs(name, "float64"), label="args")
    check_reduction_identities(name, args, device, "float64")


def check_value_and_grad(name, args, device, dtype):
    dev = [to_device(a, device) for a in args]
    ulps = 8 * EPS[dtype]
    for reduction in O.REDUCTIONS:
        v, g = fn(name, "both")(*dev, reduction=reduction)
        v1 = fn(name)(*dev, reduction=reduction)
        g1 = fn(name, "grad")(*dev, reduction=reduction)
        v, g, v1, g1 = (np.asarray(to_host(x), np.float64) for x in (v, g, v1, g1))
        scale = O.np_scale(name, args, reduction)
        _same(v, v1, ulps * (np.abs(v1) + scale) + TINY[dtype], f"{name} value_and_grad[0]")
        _same(
            g,
            g1,
            ulps * (np.abs(g1) + _finite_max(g1) * 1e-3) + TINY[dtype],
            f"{name} value_and_grad[1]",
        )


@CPU
@given(data=st.data())
@pytest.mark.parametrize(("device", "name"), cpu_params(O.NAMES), indirect=["device"])
def test_value_and_grad_is_value_and_grad(device, name, data):
    dtype = data.draw(st.sampled_from(["float32", "float64"]), label="dtype")
    args = data.draw(inputs(name, dtype), label="args")
    check_value_and_grad(name, args, device, dtype)


@GPU
@given(data=st.data())
@pytest.mark.parametrize(("device", "name"), gpu_params(["rmse"]), indirect=["device"])
def test_value_and_grad_is_value_and_grad_gpu(device, name, data):
    args = data.draw(inputs(name, "float64"), label="args")
    check_value_and_grad(name, args, device, "float64")


# --------------------------------------------------------------------------------------
# Finite differences
# --------------------------------------------------------------------------------------

inner = st.floats(0.05, 0.95)
SMOOTH = {
    # name: (elements of the first array, of the second), chosen away from kinks and clips
    "mse": (finite_real, finite_real),
    "rmse": (finite_real, finite_real),
    "huber": (finite_real, finite_real),
    "log_cosh": (st.floats(-20, 20), st.floats(-20, 20)),
    "bce": (unit, inner),
    "cce": (unit, inner),
    "squared_hinge": (sign, finite_real),
    "focal": (unit, inner),
    "kl_divergence": (inner, inner),
    "js_divergence": (inner, inner),
    "nll": (finite_real, None),
    "contrastive": (st.floats(0, 3), unit),
}
KINK = {  # distance to the nearest non-smooth point of each term, which must be > 2 h
    "huber": lambda a, b: np.abs(np.abs(b - a) - 1.0),
    "squared_hinge": lambda a, b: np.abs(1.0 - a * b),
    "contrastive": lambda a, b: np.abs(1.0 - a),
}


def check_finite_difference(name, args, direction, device, reductions=("mean", "sum")):
    spec = O.SPECS[name]
    x = np.asarray(args[spec.pred], np.float64)
    if name in KINK:
        assume(np.all(KINK[name](np.asarray(args[0], float), np.asarray(args[1], float)) > 1e-4))
    if name == "rmse":
        assume(np.sqrt(np.mean((args[1] - args[0]) ** 2)) > 1e-3)
    v = direction.reshape(x.shape)
    h = 1e-6
    for reduction in reductions:

        def loss(z, reduction=reduction):
            a = list(args)
            a[spec.pred] = z
            return float(to_host(call(name, "value", a, device, reduction=reduction)))

        g = np.asarray(to_host(call(name, "grad", args, device, reduction=reduction)))
        fd = (loss(x + h * v) - loss(x - h * v)) / (2 * h)
        exact = float(np.sum(g * v))
        size = abs(loss(x)) + float(np.sum(np.abs(g))) + 1.0
        assert abs(fd - exact) <= 1e-5 * abs(exact) + 1e-8 * size, (
            f"{name}_grad(reduction={reduction!r}) . v = {exact}, finite difference {fd}"
        )


@st.composite
def smooth_case(draw, name):
    args = draw(inputs(name, "float64", SMOOTH[name]))
    pred = args[O.SPECS[name].pred]
    direction = draw(hnp.arrays(np.float64, pred.size, elements=st.floats(-1, 1)))
    return args, direction


FD_NAMES = tuple(SMOOTH)


@CPU
@given(data=st.data())
@pytest.mark.parametrize(("device", "name"), cpu_params(FD_NAMES), indirect=["device"])
def test_grad_matches_a_finite_difference(device, name, data):
    args, direction = data.draw(smooth_case(name), label="case")
    check_finite_difference(name, args, direction, device)


@GPU
@given(data=st.data())
@pytest.mark.parametrize(("device", "name"), gpu_params(["focal"]), indirect=["device"])
def test_grad_matches_a_finite_difference_gpu(device, name, data):
    args, direction = data.draw(smooth_case(name), label="case")
    check_finite_difference(name, args, direction, device, ("sum",))
