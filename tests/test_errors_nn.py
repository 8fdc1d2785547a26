"""Bad input gives a clear error and loses nothing (API.md section 5), for issue 3's
functions: activations, softmaxes, penalties, max_norm, dropout, batch_norm, layer_norm.

Shapes that do not fit -> ValueError naming the arguments and shapes, before any kernel
runs (an ``out=`` array is left untouched); bad dtypes -> TypeError naming the argument;
bad hyper-parameters -> ValueError naming them; ``out=`` written in place and returned,
or refused (wrong shape / dtype / device / layout); host and device arrays mixed ->
``mk.DeviceMismatchError``; inputs never modified; strided, negatively strided, Fortran
and read-only inputs give the results of their contiguous copies; several Python threads
at once give the serial results.
"""

from __future__ import annotations

import inspect
import re
import threading
import zlib

import numpy as np
import oracles_nn as O
import pytest

import mlkernels as mk
from conftest import to_device, to_host
from mlkernels._core.spec import FORMULAS


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


ELEMENTWISE_FNS = [n for a in O.ELEMENTWISE for n in (a, a + "_grad")]
# name: positional array parameters, for the families of this file, from their declarations
FAMILIES = ("activations", "regularisation", "normalisation")
ARRAYS = {f.name: tuple(f.arrays) for f in FORMULAS.values() if f.family in FAMILIES}
NAMES = tuple(ARRAYS)
SCALAR = tuple(n for n in NAMES if FORMULAS[n].returns == "scalar")  # no out=
TUPLES = tuple(n for n in NAMES if FORMULAS[n].returns == "tuple")  # no out=
WITH_OUT = tuple(n for n in NAMES if FORMULAS[n].has_out)
KW = {"dropout": {"seed": 17}}  # dropout's mask must be reproducible for comparisons


def make_args(name, shape=(6, 5), dtype="float64", rng=None):
    """Positional arrays of ``name`` with typical values; gamma / beta fit x's shape."""
    rng = rng or rng_for(name, shape, dtype)
    x = 2.0 * rng.standard_normal(shape)
    arrays = ARRAYS[name]
    if name.startswith("batch_norm"):
        f = shape[1:]
    elif name.startswith("layer_norm"):
        f = shape[-1:]
    else:
        f = None
    out = []
    for a in arrays:
        if a in ("x", "weights", "W"):
            v = x
        elif a == "dy":
            v = rng.standard_normal(shape)
        elif a == "gamma":
            v = 1.0 + 0.3 * rng.standard_normal(f)
        else:  # beta
            v = rng.standard_normal(f)
        out.append(np.asarray(v).astype(dtype))
    return tuple(out)


def fn(name):
    return getattr(mk, name)


def call(name, args, device, **kwargs):
    return fn(name)(*[to_device(a, device) for a in args], **{**KW.get(name, {}), **kwargs})


def both_devices(names, gpu_names):
    return [pytest.param("cpu", n, id=f"cpu-{n}") for n in names] + [
        pytest.param("gpu", n, id=f"gpu-{n}") for n in gpu_names
    ]


def results(r):
    return [to_host(a) for a in (r if isinstance(r, tuple) else (r,))]


# --------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------

BAD_SHAPES = [
    # (name, {argument: shape}, the arguments the message must name)
    ("softmax_grad", {"x": (3, 5), "dy": (3, 4)}, ("x", "dy")),
    ("softmax_grad", {"x": (3, 5), "dy": (5,)}, ("x", "dy")),
    ("softmax_grad", {"x": (3, 5), "dy": (3, 5, 1)}, ("x", "dy")),
    ("softmax_grad", {"x": (3, 5), "dy": (2, 5)}, ("x", "dy")),
    ("log_softmax_grad", {"x": (3, 5), "dy": (3, 4)}, ("x", "dy")),
    ("log_softmax_grad", {"x": (7,), "dy": (1, 7)}, ("x", "dy")),
    ("batch_norm", {"x": (6, 4), "gamma": (5,), "beta": (4,)}, ("gamma",)),
    ("batch_norm", {"x": (6, 4), "gamma": (4,), "beta": (3,)}, ("beta",)),
    ("batch_norm", {"x": (6, 4), "gamma": (1, 4), "beta": (4,)}, ("gamma",)),
    ("batch_norm", {"x": (6, 3, 4), "gamma": (4,), "beta": (3, 4)}, ("gamma",)),
    ("batch_norm_grad", {"x": (6, 4), "gamma": (4,), "dy": (6, 5)}, ("x", "dy")),
    ("batch_norm_grad", {"x": (6, 4), "gamma": (4,), "dy": (5, 4)}, ("x", "dy")),
    ("batch_norm_grad", {"x": (6, 4), "gamma": (3,), "dy": (6, 4)}, ("gamma",)),
    ("layer_norm", {"x": (3, 5), "gamma": (4,), "beta": (5,)}, ("gamma",)),
    ("layer_norm", {"x": (3, 5), "gamma": (5,), "beta": (6,)}, ("beta",)),
    ("layer_norm", {"x": (3, 5), "gamma": (3, 5), "beta": (5,)}, ("gamma",)),
    ("layer_norm_grad", {"x": (3, 5), "gamma": (5,), "dy": (3, 4)}, ("x", "dy")),
    ("layer_norm_grad", {"x": (3, 5), "gamma": (1,), "dy": (3, 5)}, ("gamma",)),
]


def _bad_shape_id(name, shapes, _):
    return name + "-" + "-".join(f"{k}{v}" for k, v in shapes.items())


@pytest.mark.parametrize(
    ("device", "name", "shapes", "named"),
    [pytest.param("cpu", *c, id="cpu-" + _bad_shape_id(*c)) for c in BAD_SHAPES]
    + [pytest.param("gpu", *c, id="gpu-" + _bad_shape_id(*c)) for c in BAD_SHAPES[::6]],
    indirect=["device"],
)
def test_shapes_that_do_not_fit(device, name, shapes, named):
    """ValueError naming the arguments and their shapes, before any kernel runs (an out=
    array is left untouched); no broadcasting."""
    rng = rng_for(name, str(shapes))
    args = [rng.standard_normal(shapes[a]) for a in ARRAYS[name]]
    with pytest.raises(ValueError) as info:
        call(name, args, device)
    msg = str(info.value)
    for a in named:
        assert re.search(rf"\b{a}\b", msg), f"{a!r} not named in {msg!r}"
        assert str(tuple(shapes[a])) in msg, f"shape {shapes[a]} of {a} not in {msg!r}"
    if name in WITH_OUT:
        sentinel = np.full(shapes["x"], 7.0)
        out = to_device(sentinel, device)
        with pytest.raises(ValueError):
            call(name, args, device, out=out)
        np.testing.assert_array_equal(to_host(out), sentinel)


NEEDS_AN_AXIS = [
    ("softmax", {"x": ()}),
    ("log_softmax", {"x": ()}),
    ("softmax_grad", {"x": (), "dy": ()}),
    ("log_softmax_grad", {"x": (), "dy": ()}),
    ("layer_norm", {"x": (), "gamma": (), "beta": ()}),
    ("layer_norm_grad", {"x": (), "gamma": (), "dy": ()}),
    ("batch_norm", {"x": (), "gamma": (), "beta": ()}),
    ("batch_norm_grad", {"x": (), "gamma": (), "dy": ()}),
    ("batch_norm", {"x": (0, 3), "gamma": (3,), "beta": (3,)}),  # n >= 1
    ("batch_norm_grad", {"x": (0, 3), "gamma": (3,), "dy": (0, 3)}),
]


@pytest.mark.parametrize(
    ("name", "shapes"), NEEDS_AN_AXIS, ids=[_bad_shape_id(*c, None) for c in NEEDS_AN_AXIS]
)
def test_inputs_without_the_axis_the_function_needs(name, shapes):
    """softmaxes and layer_norm need a last axis, batch_norm a non-empty axis 0: ValueError
    naming x."""
    args = [np.ones(shapes[a]) for a in ARRAYS[name]]
    with pytest.raises(ValueError, match=r"\bx\b"):
        fn(name)(*args)


# --------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------

BAD_DTYPES = {
    "complex128": lambda s: np.full(s, 0.5 + 0.5j),
    "complex64": lambda s: np.full(s, 0.5 + 0j, np.complex64),
    "object": lambda s: np.full(s, 0.5, dtype=object),
    "str": lambda s: np.full(s, "a"),
    "datetime64": lambda s: np.full(s, np.datetime64("2024-01-01")),
    "timedelta64": lambda s: np.full(s, np.timedelta64(1, "s")),
    "float16": lambda s: np.full(s, 0.5, np.float16),
}


def _bad_dtype_cases():
    out = [
        pytest.param("cpu", name, pos, bad, id=f"cpu-{name}-{arg}-{bad}")
        for name in NAMES
        for pos, arg in enumerate(ARRAYS[name])
        for bad in BAD_DTYPES
    ]
    out += [
        pytest.param("gpu", "softmax_grad", 1, "complex128", id="gpu-softmax_grad-dy-complex128"),
        pytest.param("gpu", "batch_norm", 1, "complex128", id="gpu-batch_norm-gamma-complex128"),
    ]
    return out


@pytest.mark.parametrize(("device", "name", "pos", "bad"), _bad_dtype_cases(), indirect=["device"])
def test_unsupported_dtypes_raise_type_error_naming_the_argument(device, name, pos, bad):
    args = list(make_args(name, (4, 3)))
    args[pos] = BAD_DTYPES[bad](args[pos].shape)
    arg = ARRAYS[name][pos]
    dtype = str(args[pos].dtype)
    with pytest.raises(TypeError) as info:
        call(name, args, device)
    msg = str(info.value)
    assert re.search(rf"\b{arg}\b", msg) and dtype in msg, msg


# --------------------------------------------------------------------------------------
# Hyper-parameters
# --------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
BAD_HYPER = [
    *[
        (n, "lam", v)
        for n in ("l2_loss", "l2_grad", "l1_loss", "l1_grad")
        for v in (-1.0, -1e-300, NAN, INF, -INF)
    ],
    *[
        (n, k, v)
        for n in ("elastic_net", "elastic_net_grad")
        for k in ("lam1", "lam2")
        for v in (-0.5, NAN, INF)
    ],
    ("max_norm", "c", -1.0),
    ("max_norm", "c", -1e-300),
    ("max_norm", "c", NAN),
    *[("dropout", "p", v) for v in (-0.1, 1.1, -1e-300, 1 + 1e-15, NAN, INF)],
    ("dropout", "seed", -1),
    *[
        (n, "eps", v)
        for n in ("batch_norm", "batch_norm_grad", "layer_norm", "layer_norm_grad")
        for v in (-1e-5, NAN, INF)
    ],
]


@pytest.mark.parametrize(
    ("device", "name", "key", "value"),
    [pytest.param("cpu", *c, id=f"cpu-{c[0]}-{c[1]}={c[2]}") for c in BAD_HYPER]
    + [
        pytest.param("gpu", "l2_loss", "lam", -1.0, id="gpu-l2_loss-lam=-1"),
        pytest.param("gpu", "dropout", "p", 1.5, id="gpu-dropout-p=1.5"),
        pytest.param("gpu", "layer_norm", "eps", -1.0, id="gpu-layer_norm-eps=-1"),
    ],
    indirect=["device"],
)
def test_invalid_hyperparameter_values(device, name, key, value):
    """Negative or non-finite lam / lam1 / lam2 / eps, c < 0 or NaN, p outside [0, 1],
    a negative seed: ValueError naming the parameter, by keyword and positionally."""
    args = make_args(name, (5, 4))
    with pytest.raises(ValueError, match=key):
        fn(name)(*[to_device(a, device) for a in args], **{key: value})
    if key != "seed":  # seed is keyword-only
        params = inspect.signature(fn(name)).parameters
        names = list(params)
        k = names.index(key)
        defaults = [params[p].default for p in names[len(args) : k]]
        with pytest.raises(ValueError, match=key):
            fn(name)(*[to_device(a, device) for a in args], *defaults, value)


NOT_NUMBERS = ["1.0", None, [0.5], 1j, object()]
HYPER_KEYS = [
    ("l2_loss", "lam"),
    ("l1_grad", "lam"),
    ("elastic_net", "lam1"),
    ("elastic_net_grad", "lam2"),
    ("max_norm", "c"),
    ("dropout", "p"),
    ("batch_norm", "eps"),
    ("layer_norm_grad", "eps"),
    ("leaky_relu", "alpha"),
    ("elu_grad", "alpha"),
]


@pytest.mark.parametrize("bad", NOT_NUMBERS, ids=lambda b: type(b).__name__)
@pytest.mark.parametrize(("name", "key"), HYPER_KEYS)
def test_non_number_hyperparameters_raise_type_error(name, key, bad):
    args = make_args(name, (5, 4))
    with pytest.raises(TypeError, match=key):
        fn(name)(*args, **{key: bad})


@pytest.mark.parametrize("bad", [1.5, "3", [1]], ids=repr)
def test_dropout_seed_of_the_wrong_kind(bad):
    x = np.ones(10)
    with pytest.raises((TypeError, ValueError), match="seed"):
        mk.dropout(x, 0.5, seed=bad)


def test_numpy_scalar_hyperparameters_are_numbers():
    x = make_args("elu", (5, 4))[0]
    np.testing.assert_array_equal(mk.elu(x, np.float32(0.5)), mk.elu(x, 0.5))
    np.testing.assert_array_equal(mk.leaky_relu(x, np.float64(0.2)), mk.leaky_relu(x, 0.2))
    assert mk.l2_loss(x, np.float64(0.5)) == mk.l2_loss(x, 0.5)
    assert mk.l1_loss(x, 1) == mk.l1_loss(x, 1.0)
    np.testing.assert_array_equal(mk.max_norm(x, np.int64(2)), mk.max_norm(x, 2.0))
    np.testing.assert_array_equal(
        mk.dropout(x, np.float32(0.5), seed=1), mk.dropout(x, 0.5, seed=1)
    )
    g, b = np.ones(4), np.zeros(4)
    np.testing.assert_array_equal(
        mk.layer_norm(x, g, b, np.float64(0.1)), mk.layer_norm(x, g, b, 0.1)
    )


KEYWORD_ONLY = [
    ("sigmoid", ()),
    ("gelu_grad", ()),
    ("leaky_relu", (0.01,)),
    ("elu_grad", (1.0,)),
    ("softmax", ()),
    ("log_softmax_grad", ()),
    ("l2_grad", (1e-4,)),
    ("elastic_net_grad", (1e-4, 1e-4)),
    ("max_norm", (3.0,)),
    ("layer_norm", (1e-5,)),
]


@pytest.mark.parametrize(("name", "hyper"), KEYWORD_ONLY, ids=[c[0] for c in KEYWORD_ONLY])
def test_out_and_seed_are_keyword_only(name, hyper):
    args = make_args(name, (5, 4))
    out = np.empty((5, 4))
    with pytest.raises(TypeError):
        fn(name)(*args, *hyper, out)
    with pytest.raises(TypeError):
        fn(name)(*args, outt=out)  # an unknown keyword
    x = np.ones(4)
    with pytest.raises(TypeError):
        mk.dropout(x, 0.5, True, 3)  # seed=
    with pytest.raises(TypeError):
        mk.dropout(x, 0.5, True, None, np.empty(4))


# --------------------------------------------------------------------------------------
# out=
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("device", "name"),
    both_devices(WITH_OUT, ["sigmoid_grad", "softmax_grad", "layer_norm", "dropout"]),
    indirect=["device"],
)
def test_out_is_written_in_place_and_returned(device, name, dtype):
    args = make_args(name, (6, 5), dtype)
    ref = to_host(call(name, args, device))
    out = to_device(np.full((6, 5), np.nan, dtype), device)
    got = call(name, args, device, out=out)
    assert got is out
    np.testing.assert_array_equal(to_host(out), ref)


@pytest.mark.parametrize("name", ELEMENTWISE_FNS)
def test_out_may_be_the_input(name):
    """An in-place activation: out=x, as with NumPy ufuncs."""
    (x,) = make_args(name, (7, 9))
    ref = fn(name)(x)
    y = x.copy()
    assert fn(name)(y, out=y) is y
    np.testing.assert_array_equal(y, ref)


OUT_ALIASES = [
    (name, k)
    for name in WITH_OUT
    for k, a in enumerate(ARRAYS[name])
    if a in ("x", "weights", "W", "dy")  # the arguments of the result's shape
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "k"), OUT_ALIASES, ids=[f"{n}-{k}" for n, k in OUT_ALIASES])
def test_out_may_be_any_input_of_its_shape(name, k, dtype):
    """out= one of the inputs (CPU): the bits of a separate out=, as with NumPy ufuncs.
    softmax_grad(x, dy, out=dy) was off by up to 0.4 when the row pass kept its
    exponentials in out= and read dy afterwards."""
    args = make_args(name, (33, 37), dtype)
    ref = call(name, args, "cpu")
    aliased = [a.copy() for a in args]
    got = call(name, aliased, "cpu", out=aliased[k])
    assert got is aliased[k]
    np.testing.assert_array_equal(got, ref)


ROW_FNS = ["softmax", "log_softmax", "softmax_grad", "log_softmax_grad", "layer_norm"]


@pytest.mark.parametrize("name", ROW_FNS)
def test_a_row_result_does_not_depend_on_where_out_lies_in_memory(name):
    """x (and dy) and out= side by side in one buffer, in every order, against separate
    arrays: the same bits. (softmax's row sums were taken in the loop that stores the
    exponentials, whose vectorised or scalar version LLVM picks by the addresses.)"""
    bad = []
    for c in range(2, 40):
        args = make_args(name, (3, c))
        ref = call(name, [a.copy() for a in args], "cpu")
        rows = [k for k, a in enumerate(args) if a.shape == (3, c)]  # x, dy
        for order in ((0, 1, 2), (2, 0, 1), (0, 2, 1), (1, 2, 0)):
            buf = np.empty(3 * 3 * c)
            place = {slot: buf[i * 3 * c : (i + 1) * 3 * c].reshape(3, c) for i, slot in
                     enumerate(order)}  # fmt: skip
            laid = list(args)
            for slot, k in enumerate(rows):
                place[slot][...] = args[k]
                laid[k] = place[slot]
            got = call(name, laid, "cpu", out=place[2])
            if not np.array_equal(got, ref):
                bad.append((c, order))
    assert not bad


@pytest.mark.parametrize(
    ("device", "name"), both_devices(WITH_OUT, ["relu", "log_softmax"]), indirect=["device"]
)
def test_bad_out_raises(device, name):
    args = [to_device(a, device) for a in make_args(name, (6, 5), "float32")]
    kw = KW.get(name, {})
    f = fn(name)
    with pytest.raises(ValueError, match="shape"):
        f(*args, out=to_device(np.zeros((7, 5), np.float32), device), **kw)
    with pytest.raises(ValueError, match="shape"):
        f(*args, out=to_device(np.zeros(30, np.float32), device), **kw)
    with pytest.raises((TypeError, ValueError), match="dtype"):
        f(*args, out=to_device(np.zeros((6, 5), np.float64), device), **kw)
    base = np.zeros((12, 5), np.float32)  # a non-contiguous out: refused, nothing written
    with pytest.raises(ValueError):
        f(*args, out=to_device(base, device)[::2] if device == "gpu" else base[::2], **kw)
    assert not base.any()
    other = "cpu" if device == "gpu" else "gpu"
    with pytest.raises(mk.DeviceMismatchError):
        f(*args, out=to_device(np.zeros((6, 5), np.float32), other), **kw)
    if device == "cpu":
        ro = np.zeros((6, 5), np.float32)
        ro.flags.writeable = False
        with pytest.raises(ValueError):
            f(*args, out=ro, **kw)
        with pytest.raises(TypeError):
            f(*args, out=np.zeros((6, 5), np.float32).tolist(), **kw)


# --------------------------------------------------------------------------------------
# Host / device mixes
# --------------------------------------------------------------------------------------

MULTI = ("softmax_grad", "log_softmax_grad", "batch_norm", "batch_norm_grad", "layer_norm")
MULTI += ("layer_norm_grad",)


@pytest.mark.parametrize("name", MULTI)
@pytest.mark.parametrize("device", ["gpu"], indirect=True)
def test_mixing_host_and_device_arrays(device, name):
    args = make_args(name, (4, 3))
    names = ARRAYS[name]
    for host in range(len(args)):
        mixed = [a if i == host else to_device(a, device) for i, a in enumerate(args)]
        with pytest.raises(mk.DeviceMismatchError) as info:
            fn(name)(*mixed)
        assert isinstance(info.value, ValueError)
        msg = str(info.value)
        assert names[host] in msg, msg


@pytest.mark.parametrize("name", ["sigmoid", "softmax", "max_norm", "dropout", "l2_grad"])
@pytest.mark.parametrize("device", ["gpu"], indirect=True)
def test_out_on_the_other_device(device, name):
    args = make_args(name, (4, 3))
    with pytest.raises(mk.DeviceMismatchError):
        call(name, args, "cpu", out=to_device(np.zeros((4, 3)), device))
    with pytest.raises(mk.DeviceMismatchError):
        call(name, args, device, out=np.zeros((4, 3)))


# --------------------------------------------------------------------------------------
# Inputs never modified; layouts
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "name"),
    both_devices(NAMES, ["softmax_grad", "batch_norm_grad", "dropout"]),
    indirect=["device"],
)
def test_inputs_are_never_modified(device, name):
    args = make_args(name, (6, 5), "float32")
    dev = [to_device(a, device) for a in args]
    before = [a.copy() for a in args]
    fn(name)(*dev, **KW.get(name, {}))
    if name in WITH_OUT:
        fn(name)(*dev, out=to_device(np.empty((6, 5), np.float32), device), **KW.get(name, {}))
    for b, a in zip(before, dev, strict=True):
        assert to_host(a).tobytes() == b.tobytes()


def _views(x: np.ndarray, kind: str, device: str):
    """A view of the data ``x`` laid out as ``kind`` (on ``device``)."""
    if kind == "strided":
        return to_device(np.repeat(x, 2, axis=0), device)[::2]
    if kind == "negative":
        return to_device(np.ascontiguousarray(np.repeat(x, 2, axis=0)[::-1]), device)[::-2]
    if kind == "columns":  # strided along the last axis (rows of softmax / layer_norm)
        return to_device(np.repeat(x, 2, axis=-1), device)[..., ::2]
    if kind == "fortran":
        if device == "gpu":
            from numba import cuda

            return cuda.to_device(np.asfortranarray(x))
        return np.asfortranarray(x)
    if kind == "readonly":
        v = x.copy()
        v.flags.writeable = False
        return v
    raise KeyError(kind)


LAYOUTS = ("strided", "negative", "columns", "fortran", "readonly")


@pytest.mark.parametrize(
    ("device", "name", "layout"),
    [pytest.param("cpu", n, k, id=f"cpu-{n}-{k}") for n in NAMES for k in LAYOUTS]
    + [
        pytest.param("gpu", n, k, id=f"gpu-{n}-{k}")
        for n, k in (("gelu", "negative"), ("softmax", "columns"), ("layer_norm_grad", "strided"))
    ],
    indirect=["device"],
)
def test_non_contiguous_and_read_only_inputs(device, name, layout):
    """Every array argument laid out as ``layout``: the results of contiguous copies."""
    args = make_args(name, (6, 4, 5) if layout != "negative" else (9, 5), "float64")
    shape = args[0].shape
    views = []
    for a in args:
        if a.shape == shape or layout in ("fortran", "readonly"):
            views.append(_views(a, layout, device))
        else:  # gamma / beta: a strided view of their own
            views.append(_views(a, "strided", device) if a.ndim else a)
    if device == "cpu":
        for v in views:
            if layout == "readonly":
                assert not v.flags.writeable
            elif layout != "fortran" and v.ndim:
                assert not v.flags.c_contiguous
    got = results(fn(name)(*views, **KW.get(name, {})))
    ref = results(call(name, args, device))
    for g, r in zip(got, ref, strict=True):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=O.ulps("float64", 4), atol=1e-300)


# --------------------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------------------


def test_eight_threads_at_once_give_the_serial_results():
    rng = rng_for("threads")
    data = [
        (rng.standard_normal((400, 64)), rng.standard_normal((400, 64)), 1 + rng.random(64))
        for _ in range(8)
    ]
    zeros = np.zeros(64)
    calls = [
        lambda x, dy, g: mk.softmax(x),
        lambda x, dy, g: mk.log_softmax_grad(x, dy),
        lambda x, dy, g: mk.gelu_grad(x),
        lambda x, dy, g: mk.mish(x),
        lambda x, dy, g: mk.batch_norm(x, g, zeros)[0],
        lambda x, dy, g: mk.batch_norm_grad(x, g, dy)[0],
        lambda x, dy, g: mk.layer_norm(x, g, zeros),
        lambda x, dy, g: mk.layer_norm_grad(x, g, dy)[1],
        lambda x, dy, g: mk.dropout(x, 0.3, seed=5),
        lambda x, dy, g: np.asarray(mk.elastic_net(x, 0.1, 0.2)),
        lambda x, dy, g: mk.max_norm(x, 2.0),
    ]
    expected = [[np.asarray(f(*d)) for f in calls] for d in data]
    runs = [None] * len(data)
    barrier = threading.Barrier(len(data))

    def work(k):
        barrier.wait()
        runs[k] = [[np.asarray(f(*data[k])) for f in calls] for _ in range(3)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(data))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, rs in enumerate(runs):
        for run in rs:
            for got, want in zip(run, expected[k], strict=True):
                np.testing.assert_array_equal(got, want)
