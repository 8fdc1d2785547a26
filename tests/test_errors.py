"""Bad input gives a clear error and loses nothing (API.md section 5), for the losses.

Shapes that do not fit, empty reductions, bad hyper-parameters, bad reductions, bad
dtypes, out-of-range nll targets -> ValueError / TypeError with a message naming what is
wrong; inputs are never modified; strided, negatively strided, Fortran-ordered and
read-only inputs give the results of their contiguous copies; ``out=`` is written in place
and returned; host/device mixes raise ``mk.DeviceMismatchError`` (a ValueError).
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import oracles as O
import pytest

import mlkernels as mk
from conftest import to_device, to_host

KINDS = ("value", "grad", "both")


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def fn(name: str, kind: str = "value"):
    suffix = {"value": "", "grad": "_grad", "both": "_value_and_grad"}[kind]
    return getattr(mk, name + suffix)


def call(name, kind, args, device, *hyper, **kwargs):
    return fn(name, kind)(*[to_device(a, device) for a in args], *hyper, **kwargs)


def both_devices(names, gpu_names=None):
    """(device, name) params: every name on the CPU, a few on the GPU."""
    gpu_names = names[:2] if gpu_names is None else gpu_names
    return [pytest.param("cpu", n, id=f"cpu-{n}") for n in names] + [
        pytest.param("gpu", n, id=f"gpu-{n}") for n in gpu_names
    ]


# --------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------

ELEMENTWISE_BAD = [((3,), (4,)), ((3,), (3, 1)), ((2, 3), (3, 2)), ((5,), ())]


def _bad_shape_cases():
    out = []
    for name in O.NAMES:
        a, b = O.SPECS[name].args
        if name == "cce":
            pairs = [((3, 4), (3, 5)), ((4, 4), (3, 4)), ((3, 4, 2), (3, 4)), ((3, 4), (3, 4, 2))]
        elif name == "nll":  # (log_probs, targets)
            pairs = [((3, 4), (4,)), ((3, 4), (3, 4)), ((3, 4, 2), (3,)), ((3, 4, 2), (3, 4))]
        else:
            pairs = ELEMENTWISE_BAD
        for sa, sb in pairs:
            out.append(pytest.param("cpu", name, sa, sb, id=f"cpu-{name}-{a}{sa}-{b}{sb}"))
    out.append(pytest.param("gpu", "mse", (3,), (4,), id="gpu-mse"))
    out.append(pytest.param("gpu", "nll", (3, 4), (4,), id="gpu-nll"))
    return out


def _arrays(name, sa, sb, rng):
    a = rng.random(sa)
    b = rng.random(sb)
    if name == "nll":
        b = rng.integers(0, sa[1] if len(sa) > 1 else 1, sb)
    return a, b


@pytest.mark.parametrize(
    ("device", "name", "shape_a", "shape_b"), _bad_shape_cases(), indirect=["device"]
)
def test_shapes_that_do_not_fit(device, name, shape_a, shape_b):
    """ValueError naming both arguments and both shapes, raised before any kernel runs
    (an ``out=`` array is left untouched); no broadcasting."""
    a_name, b_name = O.SPECS[name].args
    args = _arrays(name, shape_a, shape_b, rng_for(name, shape_a, shape_b))
    for kind in KINDS:
        for reduction in ("mean", "none"):
            with pytest.raises(ValueError) as info:
                call(name, kind, args, device, reduction=reduction)
            msg = str(info.value)
            for word in (a_name, b_name, str(tuple(shape_a)), str(tuple(shape_b))):
                assert word in msg, f"{word!r} not in {msg!r}"
    pred_shape = (shape_a, shape_b)[O.SPECS[name].pred]
    sentinel = np.full(pred_shape, 7.0)
    out = to_device(sentinel, device)
    with pytest.raises(ValueError):
        fn(name, "grad")(*[to_device(a, device) for a in args], out=out)
    np.testing.assert_array_equal(to_host(out), sentinel)


ROWS_1D = [("cce", (6,)), ("cce", ()), ("nll", (6,))]


# (conftest's to_device makes a 0-d array 1-d: no 0-d case on the GPU)
@pytest.mark.parametrize(
    ("device", "name", "shape"),
    [pytest.param("cpu", n, s, id=f"cpu-{n}-{s}") for n, s in ROWS_1D]
    + [pytest.param("gpu", n, s, id=f"gpu-{n}-{s}") for n, s in ROWS_1D if s],
    indirect=["device"],
)
def test_rows_losses_need_a_class_axis(device, name, shape):
    x = np.full(shape, 0.5)
    other = np.zeros(shape, dtype=np.int64) if name == "nll" else np.full(shape, 1.0)
    args = (x, other) if name == "nll" else (other, x)
    pred = O.SPECS[name].args[O.SPECS[name].pred]
    for kind in KINDS:
        with pytest.raises(ValueError, match=re.escape(pred)) as info:
            call(name, kind, args, device)
        assert str(shape) in str(info.value)


# --------------------------------------------------------------------------------------
# Empty inputs
# --------------------------------------------------------------------------------------


def _empty(name, dtype="float64"):
    if name == "cce":
        return np.zeros((0, 4)), np.zeros((0, 4), dtype)
    if name == "nll":
        return np.zeros((0, 4), dtype), np.zeros(0, np.int64)
    return np.zeros(0, dtype), np.zeros(0, dtype)


@pytest.mark.parametrize(
    ("device", "name"), both_devices(O.NAMES, ["mse", "nll"]), indirect=["device"]
)
def test_empty_input_to_a_reduction_raises(device, name):
    args = _empty(name)
    for kind in KINDS:
        for reduction in ("mean", "sum"):
            with pytest.raises(ValueError, match="empty"):
                call(name, kind, args, device, reduction=reduction)
    with pytest.raises(ValueError, match="empty"):
        call(name, "value", args, device)  # the default reduction


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("device", "name"), both_devices(O.NAMES, ["mse", "cce"]), indirect=["device"]
)
def test_empty_input_with_reduction_none_is_empty(device, name, dtype):
    args = _empty(name, dtype)
    pred = args[O.SPECS[name].pred]
    vshape = O.value_shape(name, args)
    for got in (
        call(name, "value", args, device, reduction="none"),
        call(name, "both", args, device, reduction="none")[0],
    ):
        h = to_host(got)
        assert h.shape == vshape and h.dtype == dtype
    for got in (
        call(name, "grad", args, device, reduction="none"),
        call(name, "both", args, device, reduction="none")[1],
    ):
        h = to_host(got)
        assert h.shape == pred.shape and h.dtype == dtype
    # N-D empties keep their shape
    if not O.SPECS[name].rows:
        a, b = np.zeros((3, 0, 2), dtype), np.zeros((3, 0, 2), dtype)
        assert to_host(call(name, "value", (a, b), device, reduction="none")).shape == (3, 0, 2)
        assert to_host(call(name, "grad", (a, b), device, reduction="none")).shape == (3, 0, 2)


# --------------------------------------------------------------------------------------
# Hyper-parameters and reduction
# --------------------------------------------------------------------------------------

BAD_VALUES = [
    ("huber", {"delta": -1.0}),
    ("huber", {"delta": -1e-300}),
    ("huber", {"delta": float("nan")}),
    ("huber", {"delta": float("inf")}),
    ("contrastive", {"margin": -0.5}),
    ("contrastive", {"margin": float("nan")}),
    ("contrastive", {"margin": float("-inf")}),
    ("bce", {"eps": -1e-3}),
    ("bce", {"eps": 0.5}),
    ("bce", {"eps": 0.7}),
    ("bce", {"eps": float("nan")}),
    ("focal", {"eps": 0.5}),
    ("focal", {"eps": -0.1}),
    ("focal", {"alpha": -0.1}),
    ("focal", {"alpha": 1.1}),
    ("focal", {"alpha": float("nan")}),
    ("focal", {"gamma": -1.0}),
    ("focal", {"gamma": -1e-9}),
    ("focal", {"gamma": float("inf")}),
    ("cce", {"eps": -0.1}),
    ("cce", {"eps": 1.5}),
    ("cce", {"eps": float("nan")}),
    ("kl_divergence", {"eps": -1.0}),
    ("kl_divergence", {"eps": 2.0}),
    ("kl_divergence", {"eps": float("inf")}),
]


def _hyper_id(name, hyper):
    return name + "-" + "-".join(f"{k}={v}" for k, v in hyper.items())


def _bad_value_cases():
    out = [pytest.param("cpu", n, h, id="cpu-" + _hyper_id(n, h)) for n, h in BAD_VALUES]
    out += [pytest.param("gpu", n, h, id="gpu-" + _hyper_id(n, h)) for n, h in BAD_VALUES[:1]]
    return out


@pytest.mark.parametrize(("device", "name", "hyper"), _bad_value_cases(), indirect=["device"])
def test_invalid_hyperparameter_values(device, name, hyper):
    """Negative delta / margin, eps outside [0, 0.5) (bce, focal) or [0, 1] (cce, kl),
    alpha outside [0, 1], gamma < 0, and any non-finite value: ValueError naming it."""
    (key,) = hyper
    args = O.make_inputs(name, 8, "float64", rng_for(name, "hyper"))
    for kind in KINDS:
        with pytest.raises(ValueError, match=key):
            call(name, kind, args, device, **hyper)
    # positionally too
    names = list(O.SPECS[name].hyper)
    positional = [hyper.get(k, O.SPECS[name].hyper[k]) for k in names[: names.index(key) + 1]]
    with pytest.raises(ValueError, match=key):
        call(name, "value", args, device, *positional)


NOT_NUMBERS = ["1.0", None, [1.0], 1j, object(), b"1"]
WITH_HYPER = [n for n in O.NAMES if O.SPECS[n].hyper]


@pytest.mark.parametrize("bad", NOT_NUMBERS, ids=lambda b: type(b).__name__)
@pytest.mark.parametrize("name", WITH_HYPER)
def test_non_number_hyperparameters_raise_type_error(name, bad):
    args = O.make_inputs(name, 8, "float64", rng_for(name, "type"))
    for key in O.SPECS[name].hyper:
        for kind in KINDS:
            with pytest.raises(TypeError, match=key):
                fn(name, kind)(*args, **{key: bad})


@pytest.mark.parametrize("name", WITH_HYPER)
def test_numpy_and_int_hyperparameters_are_numbers(name):
    """np.float32 / np.float64 / np.int64 / int hyper-parameters act as the float."""
    args = O.make_inputs(name, 16, "float64", rng_for(name, "np-hyper"))
    for key in O.SPECS[name].hyper:
        value = 0.25 if key in ("eps", "alpha") else 1.0
        ref = fn(name)(*args, **{key: value})
        for cast in (np.float64, np.float32):
            assert fn(name)(*args, **{key: cast(value)}) == pytest.approx(ref, rel=1e-6)
        if value == 1.0:
            for cast in (int, np.int64):
                assert fn(name)(*args, **{key: cast(value)}) == ref


BAD_REDUCTIONS = ["avg", "MEAN", "Mean", "", "batchmean", None, 1, "mean "]


@pytest.mark.parametrize("reduction", BAD_REDUCTIONS, ids=repr)
@pytest.mark.parametrize(("device", "name"), both_devices(O.NAMES, ["mse"]), indirect=["device"])
def test_invalid_reduction(device, name, reduction):
    args = O.make_inputs(name, 8, "float64", rng_for(name, "red"))
    for kind in KINDS:
        with pytest.raises(ValueError, match="reduction"):
            call(name, kind, args, device, reduction=reduction)


@pytest.mark.parametrize("name", O.NAMES)
def test_reduction_and_out_are_keyword_only(name):
    args = O.make_inputs(name, 8, "float64", rng_for(name, "kw"))
    extra = list(O.SPECS[name].hyper.values())
    with pytest.raises(TypeError):
        fn(name)(*args, *extra, "sum")
    with pytest.raises(TypeError):
        fn(name, "grad")(*args, *extra, "sum", None)
    with pytest.raises(TypeError):
        fn(name)(*args, reduce="sum")  # an unknown keyword


# --------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------

BAD_DTYPES = {
    "complex128": lambda s: np.full(s, 0.5 + 0.5j),
    "complex64": lambda s: np.full(s, 0.5 + 0j, np.complex64),
    "object": lambda s: np.full(s, 0.5, dtype=object),
    "str": lambda s: np.full(s, "a"),
    "bytes": lambda s: np.full(s, b"a"),
    "datetime64": lambda s: np.full(s, np.datetime64("2024-01-01")),
    "timedelta64": lambda s: np.full(s, np.timedelta64(1, "s")),
    "float16": lambda s: np.full(s, 0.5, np.float16),
}


def _bad_dtype_cases():
    out = []
    for name in O.NAMES:
        for pos, arg in enumerate(O.SPECS[name].args):
            for dt in BAD_DTYPES:
                out.append(pytest.param("cpu", name, pos, dt, id=f"cpu-{name}-{arg}-{dt}"))
    out.append(pytest.param("gpu", "mse", 1, "complex128", id="gpu-mse-y_hat-complex128"))
    return out


@pytest.mark.parametrize(("device", "name", "pos", "bad"), _bad_dtype_cases(), indirect=["device"])
def test_unsupported_dtypes_raise_type_error_naming_the_argument(device, name, pos, bad):
    args = list(O.make_inputs(name, 6, "float64", rng_for(name, "dtype")))
    args[pos] = BAD_DTYPES[bad](args[pos].shape)
    arg = O.SPECS[name].args[pos]
    dtype = str(args[pos].dtype)
    for kind in KINDS:
        with pytest.raises(TypeError) as info:
            call(name, kind, args, device)
        msg = str(info.value)
        assert arg in msg and dtype in msg, msg


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_float_nll_targets_are_rejected(device):
    lp, t = O.make_inputs("nll", 6, "float64", rng_for("nll-float"))
    for kind in KINDS:
        with pytest.raises(TypeError, match="targets"):
            call("nll", kind, (lp, t.astype(np.float64)), device)


# --------------------------------------------------------------------------------------
# nll targets out of range
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [5, -6, 10**9, -(2**40)])
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_nll_targets_out_of_range(device, bad):
    """Targets outside [-C, C) (C = 5): ValueError on the CPU; on the GPU (no check before
    the launch) the kernel must not read out of bounds: a ValueError or a NaN term."""
    lp, t = O.make_inputs("nll", 6, "float64", rng_for("nll-range"))
    t = t.copy()
    t[3] = bad
    if device == "cpu":
        for kind in KINDS:
            for reduction in O.REDUCTIONS:
                with pytest.raises(ValueError, match="targets"):
                    call("nll", kind, (lp, t), device, reduction=reduction)
        return
    try:
        v = to_host(call("nll", "value", (lp, t), device, reduction="none"))
    except ValueError:
        return
    assert np.isnan(v[3]) and np.all(np.isfinite(np.delete(v, 3)))


# --------------------------------------------------------------------------------------
# Inputs are never modified; layouts
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "name"), both_devices(O.NAMES, ["bce", "nll"]), indirect=["device"]
)
def test_inputs_are_never_modified(device, name):
    args = O.make_inputs(name, 33, "float32", rng_for(name, "readonly"))
    dev = [to_device(a, device) for a in args]
    before = [to_host(a).copy() if device == "gpu" else a.copy() for a in dev]
    spec = O.SPECS[name]
    for kind in KINDS:
        for reduction in O.REDUCTIONS:
            fn(name, kind)(*dev, reduction=reduction)
    out = to_device(np.empty(args[spec.pred].shape, np.float32), device)
    fn(name, "grad")(*dev, out=out)
    after = [to_host(a) if device == "gpu" else a for a in dev]
    for b, a in zip(before, after, strict=True):
        assert a.tobytes() == b.tobytes()


def _views(x: np.ndarray, kind: str, device: str):
    """A view of the data ``x`` laid out as ``kind``, and the same data contiguous."""
    if kind == "strided":
        base = np.repeat(x, 2, axis=0)  # every other row/element is x
        v = to_device(base, device)[::2]
    elif kind == "negative":
        base = np.ascontiguousarray(np.repeat(x, 2, axis=0)[::-1])
        v = to_device(base, device)[::-2]
    elif kind == "fortran":
        if device == "gpu":
            from numba import cuda

            v = cuda.to_device(np.asfortranarray(x))
        else:
            v = np.asfortranarray(x)
    elif kind == "readonly":
        v = x.copy()
        v.flags.writeable = False
    else:
        raise KeyError(kind)
    return v, np.ascontiguousarray(x)


LAYOUTS = ("strided", "negative", "fortran", "readonly")


def _layout_cases():
    out = [pytest.param("cpu", n, k, id=f"cpu-{n}-{k}") for n in O.NAMES for k in LAYOUTS]
    out += [
        pytest.param("gpu", n, k, id=f"gpu-{n}-{k}")
        for n, k in (("mse", "strided"), ("cce", "negative"))
    ]
    return out


@pytest.mark.parametrize(("device", "name", "layout"), _layout_cases(), indirect=["device"])
def test_non_contiguous_and_read_only_inputs(device, name, layout):
    """Results equal those of contiguous copies, for every function and reduction."""
    shape = (9, 4, 3) if O.SPECS[name].rows else (9, 4)
    if layout == "negative" and not O.SPECS[name].rows:
        shape = (37,)
    args = O.make_inputs(name, 0, "float64", rng_for(name, layout), shape=shape)
    views, plain = zip(*(_views(a, layout, device) for a in args), strict=True)
    if device == "cpu":
        for v in views:
            if layout == "readonly":
                assert not v.flags.writeable
            else:
                assert not v.flags.c_contiguous
    for kind in KINDS:
        for reduction in O.REDUCTIONS if device == "cpu" else ("sum", "none"):
            got = fn(name, kind)(*views, reduction=reduction)
            ref = call(name, kind, plain, device, reduction=reduction)
            for g, r in zip(
                got if kind == "both" else [got], ref if kind == "both" else [ref], strict=True
            ):
                np.testing.assert_array_equal(to_host(g), to_host(r))


# --------------------------------------------------------------------------------------
# out=
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "name", "dtype"),
    [
        pytest.param("cpu", n, dt, id=f"cpu-{n}-{dt}")
        for n in O.NAMES
        for dt in ("float32", "float64")
    ]
    + [
        pytest.param("gpu", n, dt, id=f"gpu-{n}-{dt}")
        for n, dt in (("mse", "float32"), ("nll", "float64"))
    ],
    indirect=["device"],
)
def test_out_is_written_in_place_and_returned(device, name, dtype):
    args = O.make_inputs(name, 21, dtype, rng_for(name, "out"))
    dev = [to_device(a, device) for a in args]
    pred_shape = args[O.SPECS[name].pred].shape
    vshape = O.value_shape(name, args)
    for reduction in O.REDUCTIONS:
        out = to_device(np.full(pred_shape, np.nan, dtype), device)
        got = fn(name, "grad")(*dev, reduction=reduction, out=out)
        assert got is out
        np.testing.assert_array_equal(
            to_host(out), to_host(fn(name, "grad")(*dev, reduction=reduction))
        )
        # value_and_grad: out= receives the gradient
        out = to_device(np.full(pred_shape, np.nan, dtype), device)
        value, got = fn(name, "both")(*dev, reduction=reduction, out=out)
        assert got is out
        ref_v, ref_g = fn(name, "both")(*dev, reduction=reduction)
        np.testing.assert_array_equal(to_host(out), to_host(ref_g))
        np.testing.assert_array_equal(to_host(value), to_host(ref_v))
    out = to_device(np.full(vshape, np.nan, dtype), device)
    got = fn(name)(*dev, reduction="none", out=out)
    assert got is out
    np.testing.assert_array_equal(to_host(out), to_host(fn(name)(*dev, reduction="none")))


@pytest.mark.parametrize(
    ("device", "name"), both_devices(O.NAMES, ["mse", "cce"]), indirect=["device"]
)
def test_bad_out_raises(device, name):
    args = O.make_inputs(name, 12, "float32", rng_for(name, "bad-out"))
    dev = [to_device(a, device) for a in args]
    pred_shape = args[O.SPECS[name].pred].shape
    vshape = O.value_shape(name, args)
    wrong_shape = (pred_shape[0] + 1, *pred_shape[1:])
    for f, shape, kw in (
        (fn(name, "grad"), pred_shape, {}),
        (fn(name, "both"), pred_shape, {}),
        (fn(name), vshape, {"reduction": "none"}),
    ):
        bad_shape = to_device(np.zeros((shape[0] + 1, *shape[1:]), np.float32), device)
        with pytest.raises(ValueError, match="shape"):
            f(*dev, out=bad_shape, **kw)
        bad_dtype = to_device(np.zeros(shape, np.float64), device)
        with pytest.raises((TypeError, ValueError), match="dtype"):
            f(*dev, out=bad_dtype, **kw)
        flat = to_device(np.zeros(int(np.prod(shape)), np.float32), device)
        if len(shape) > 1:
            with pytest.raises(ValueError, match="shape"):
                f(*dev, out=flat, **kw)
    assert wrong_shape != pred_shape
    # a reduction returns a scalar: no out= for it
    with pytest.raises((TypeError, ValueError)):
        fn(name)(*dev, reduction="mean", out=to_device(np.zeros(vshape, np.float32), device))


@pytest.mark.parametrize("name", O.NAMES)
def test_out_that_cannot_be_written_is_rejected_or_written_correctly(name):
    """A read-only out= raises; a non-contiguous one is either written correctly (as a
    NumPy ufunc would) or refused with ValueError: never a silently wrong result."""
    args = O.make_inputs(name, 12, "float64", rng_for(name, "nc-out"))
    pred_shape = args[O.SPECS[name].pred].shape
    ref = fn(name, "grad")(*args)
    ro = np.zeros(pred_shape)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        fn(name, "grad")(*args, out=ro)
    assert not ro.any()
    base = np.zeros((pred_shape[0] * 2, *pred_shape[1:]))
    strided = base[::2]
    try:
        got = fn(name, "grad")(*args, out=strided)
    except ValueError:
        assert not base.any()
    else:
        assert got is strided
        np.testing.assert_array_equal(strided, ref)
        assert not base[1::2].any()
    with pytest.raises(TypeError):
        fn(name, "grad")(*args, out=np.zeros(pred_shape).tolist())


@pytest.mark.parametrize("name", O.NAMES)
def test_out_may_alias_an_input(name):
    """As with NumPy ufuncs, out= may be the prediction array itself."""
    args = O.make_inputs(name, 40, "float64", rng_for(name, "alias"))
    pred = O.SPECS[name].pred
    ref = fn(name, "grad")(*args, reduction="sum")
    aliased = [a.copy() for a in args]
    got = fn(name, "grad")(*aliased, reduction="sum", out=aliased[pred])
    assert got is aliased[pred]
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name", ["mse", "rmse", "cce"])
def test_a_reduction_does_not_depend_on_where_out_lies_in_memory(name):
    """Arrays side by side in one buffer, in every order, against separate arrays: the
    same bits. (LLVM versions a loop with stores by where its arrays lie; a sum taken in
    that loop changed its last bit with the out= buffer's address.)"""
    bad = []
    for n in range(2, 48):
        args = O.make_inputs(name, n, "float64", rng_for(name, "layout", n))
        pred = O.SPECS[name].pred
        ref_v, ref_g = fn(name, "both")(*[a.copy() for a in args], reduction="sum")
        size = sum(a.size for a in args) + args[pred].size
        for order in ((0, 1, 2), (2, 0, 1), (0, 2, 1)):
            buf = np.empty(size)
            views, at = {}, 0
            for k in order:  # k == 2: the out= buffer
                a = args[pred] if k == 2 else args[k]
                views[k] = buf[at : at + a.size].reshape(a.shape)
                at += a.size
            for k in (0, 1):
                views[k][...] = args[k]
            value, grad = fn(name, "both")(views[0], views[1], reduction="sum", out=views[2])
            if value != ref_v or not np.array_equal(grad, ref_g):
                bad.append((n, order))
    assert not bad


# --------------------------------------------------------------------------------------
# Host / device mixes
# --------------------------------------------------------------------------------------


def test_device_mismatch_error_is_a_value_error():
    assert issubclass(mk.DeviceMismatchError, ValueError)


@pytest.mark.parametrize("name", ["mse", "bce", "nll", "contrastive"])
@pytest.mark.parametrize("device", ["gpu"], indirect=True)
def test_mixing_host_and_device_arrays(device, name):
    args = O.make_inputs(name, 8, "float64", rng_for(name, "mix"))
    names = O.SPECS[name].args
    for host in (0, 1):
        mixed = [a if i == host else to_device(a, device) for i, a in enumerate(args)]
        for kind in KINDS:
            with pytest.raises(mk.DeviceMismatchError) as info:
                fn(name, kind)(*mixed)
            assert isinstance(info.value, ValueError)
            assert names[0] in str(info.value) and names[1] in str(info.value)
    # out= on the other device than the inputs
    pred_shape = args[O.SPECS[name].pred].shape
    with pytest.raises(mk.DeviceMismatchError):
        fn(name, "grad")(*args, out=to_device(np.zeros(pred_shape), device))
    with pytest.raises(mk.DeviceMismatchError):
        fn(name, "grad")(*[to_device(a, device) for a in args], out=np.zeros(pred_shape))
