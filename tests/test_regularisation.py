"""Correctness of the regularisation functions (mlkernels/regularisation.py): weight
penalties and their gradients, max_norm, dropout.

Every test takes the ``device`` fixture (conftest.py): CPU kernels, and GPU kernels under
Numba's CUDA simulator (2 blocks x 32 threads, tiny arrays).

Oracles (tests/oracles_nn.py), float64: the verbatim NumPy formulas of ml_formulas.txt,
exactly rounded sums (math.fsum), PyTorch with autograd (the penalties as torch
expressions).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import oracles_nn as O
import pytest
import torch

import mlkernels as mk
from conftest import array_result, cases, scalar_result, sizes, to_device, to_host

DTYPES = ("float32", "float64")
GS = sizes("gpu")


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def dev(args, device):
    return [to_device(a, device) for a in args]


def weights(shape, dtype, rng):
    w = 0.7 * rng.standard_normal(shape)
    flat = w.reshape(-1)
    if flat.size >= 5:
        flat[:: max(1, flat.size // 5)] = 0.0  # sign(0) = 0
    return w.astype(dtype)


# --------------------------------------------------------------------------------------
# Weight penalties
# --------------------------------------------------------------------------------------

PENALTIES = {
    # name: (loss, grad, default hyper-parameters, torch name)
    "l2": (mk.l2_loss, mk.l2_grad, (1e-4,), "l2"),
    "l1": (mk.l1_loss, mk.l1_grad, (1e-4,), "l1"),
    "elastic_net": (mk.elastic_net, mk.elastic_net_grad, (1e-4, 1e-4), "elastic_net"),
}
HYPERS = {
    "l2": [(1e-4,), (0.0,), (0.5,), (3.0,)],
    "l1": [(1e-4,), (0.0,), (0.5,), (3.0,)],
    "elastic_net": [(1e-4, 1e-4), (0.0, 0.1), (0.2, 0.0), (0.5, 2.0)],
}
KEYS = {"l2": ("lam",), "l1": ("lam",), "elastic_net": ("lam1", "lam2")}


def penalty_ref(name, w, hyper):
    """(value, |terms| scale, gradient) from exactly rounded sums."""
    w = O.f64(w)
    with np.errstate(over="ignore"):
        sq = O.exact_sum(w * w)
    ab = O.exact_sum(np.abs(w))
    if name == "l2":
        (lam,) = hyper
        return lam * sq, lam * sq, 2 * lam * w
    if name == "l1":
        (lam,) = hyper
        return lam * ab, lam * ab, lam * np.sign(w)
    lam1, lam2 = hyper
    return lam1 * ab + lam2 * sq, lam1 * ab + lam2 * sq, lam1 * np.sign(w) + 2 * lam2 * w


def np_penalty(name, w, hyper):
    w = O.f64(w)
    if name == "l2":
        return O.np_l2_loss(w, *hyper), O.np_l2_grad(w, *hyper)
    if name == "l1":
        return O.np_l1_loss(w, *hyper), O.np_l1_grad(w, *hyper)
    g = hyper[0] * np.sign(w) + 2 * hyper[1] * w  # the formula file gives no elastic grad
    return O.np_elastic_net(w, *hyper), g


def check_penalty(name, w, hyper, dtype, device, *, how="positional"):
    loss, grad, _, _ = PENALTIES[name]
    if how == "default":
        args, kw, hyper = (), {}, PENALTIES[name][2]
    elif how == "positional":
        args, kw = hyper, {}
    else:
        args, kw = (), dict(zip(KEYS[name], hyper, strict=True))
    v = scalar_result(loss(to_device(w, device), *args, **kw), dtype, device)
    g = array_result(grad(to_device(w, device), *args, **kw), dtype, w.shape, device)
    ref, scale, gref = penalty_ref(name, w, hyper)
    tag = f"{name}{hyper} [{dtype}, {device}, {w.shape}]"
    O.assert_close(v, ref, dtype, scale=scale, what=f"value {tag}")
    npv, npg = np_penalty(name, w, hyper)
    O.assert_close(v, npv, dtype, scale=scale, what=f"value vs formula {tag}")
    tv, tg = O.torch_penalty(PENALTIES[name][3], w, *hyper)
    O.assert_close(v, tv, dtype, scale=scale, what=f"value vs torch {tag}")
    gscale = sum(hyper) * (1 + np.abs(O.f64(w)))
    O.assert_close(g, gref, dtype, scale=gscale, what=f"grad {tag}")
    O.assert_close(g, npg, dtype, scale=gscale, what=f"grad vs formula {tag}")
    O.assert_close(g, tg, dtype, scale=gscale, what=f"grad vs autograd {tag}")
    return v, g


@pytest.mark.parametrize(
    ("device", "name", "dtype", "n"),
    cases(
        [(nm, dt, n) for nm in PENALTIES for dt in DTYPES for n in sizes("cpu")],
        [
            (nm, dt, GS[-1])
            for nm, dt in zip(PENALTIES, ("float32", "float64", "float32"), strict=True)
        ],
        lambda nm, dt, n: f"{nm}-{dt}-n{n}",
    ),
    indirect=["device"],
)
def test_penalties(device, name, dtype, n):
    w = weights((n,), dtype, rng_for(name, dtype, n))
    check_penalty(name, w, PENALTIES[name][2], dtype, device, how="default")
    for i, hyper in enumerate(HYPERS[name]):
        if device == "gpu" and i != 2:
            continue
        check_penalty(name, w, hyper, dtype, device, how=("positional", "keyword")[i % 2])


@pytest.mark.parametrize(
    ("device", "name"),
    cases([(nm,) for nm in PENALTIES], [("elastic_net",)], str),
    indirect=["device"],
)
def test_penalties_nd_int_and_special_values(device, name):
    hyper = HYPERS[name][3]
    for shape in ((3, 4, 5), (1, 7), (2, 1, 3, 2)):
        w = weights(shape, "float64", rng_for(name, shape))
        check_penalty(name, w, hyper, "float64", device)
    w = np.array([-3, 0, 2, 5, -1]).astype(np.int32)  # ints: float64
    check_penalty(name, w, hyper, "float64", device)
    check_penalty(name, w.astype(bool), hyper, "float64", device)
    loss, grad, _, _ = PENALTIES[name]
    # NaN: a NaN loss, a NaN gradient where the weight is NaN
    w = np.array([0.5, np.nan, -2.0, 0.0])
    assert math.isnan(float(to_host(loss(to_device(w, device), *hyper))))
    g = to_host(grad(to_device(w, device), *hyper))
    assert np.isnan(g[1]) and not np.isnan(np.delete(g, 1)).any(), g


HUGE_WEIGHTS = [[np.inf], [-np.inf], [np.inf, -np.inf, 1.0], [1e200, -1e200], [1e300, 1.0]]


@pytest.mark.parametrize(
    ("device", "name", "w"),
    cases(
        [(nm, w) for nm in PENALTIES for w in HUGE_WEIGHTS],
        [("l1", HUGE_WEIGHTS[2]), ("l2", HUGE_WEIGHTS[0])],
        lambda nm, w: f"{nm}-{w}",
    ),
    indirect=["device"],
)
def test_penalties_of_infinite_and_huge_weights(device, name, w):
    """±inf weights: an infinite penalty (as the formula: lam * sum(w**2) = inf), the
    gradient lam * sign (+ 2 lam2 * w); 1e200 weights: l1 finite (6e200), l2 inf."""
    loss, grad, _, _ = PENALTIES[name]
    hyper = HYPERS[name][3]
    w = np.array(w)
    ref, _, gref = penalty_ref(name, w, hyper)
    got = float(to_host(loss(to_device(w, device), *hyper)))
    g = to_host(grad(to_device(w, device), *hyper))
    assert got == pytest.approx(ref, rel=1e-12), f"{name}({w.tolist()}, {hyper}) = {got}"
    np.testing.assert_array_equal(g, gref, err_msg=f"{name}_grad({w.tolist()}, {hyper})")


@pytest.mark.parametrize("name", list(PENALTIES))
def test_penalties_of_zero_d_weights(name):
    loss, grad, hyper, _ = PENALTIES[name]
    for w in (np.array(-1.5), 2.0, np.float32(0.25)):
        dtype = np.float32 if isinstance(w, np.float32) else np.float64
        v = loss(w)
        assert type(v) is dtype
        ref, _, gref = penalty_ref(name, np.array(w), hyper)
        assert float(v) == pytest.approx(ref, rel=O.rtol_for(dtype))
        g = grad(w)
        assert np.shape(g) == () and np.asarray(g).dtype == dtype
        assert float(g) == pytest.approx(float(gref), rel=O.rtol_for(dtype))


@pytest.mark.parametrize("name", list(PENALTIES))
def test_penalties_of_empty_weights_are_zero(name):
    """API: empty weights give a 0.0 sum, as np.sum (not the losses' empty-reduction error)."""
    loss, grad, _, _ = PENALTIES[name]
    for dtype in DTYPES:
        for shape in ((0,), (3, 0)):
            w = np.zeros(shape, dtype)
            v = loss(w)
            assert type(v) is np.dtype(dtype).type and float(v) == 0.0  # as np.sum
            g = grad(w)
            assert g.shape == shape and g.dtype == dtype


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_float32_penalties_accumulate_accurately(device):
    """A float32 sum over many weights stays within float32 rounding of the exact sum."""
    n = 1_000_003 if device == "cpu" else GS[-1]
    w = (1.0 + 0.01 * rng_for("acc").standard_normal(n)).astype(np.float32)
    for name in PENALTIES:
        loss = PENALTIES[name][0]
        hyper = HYPERS[name][3]
        v = scalar_result(loss(to_device(w, device), *hyper), "float32", device)
        ref = penalty_ref(name, w, hyper)[0]
        assert abs(v - ref) <= 1e-6 * abs(ref), (name, v, ref)


# --------------------------------------------------------------------------------------
# max_norm
# --------------------------------------------------------------------------------------


def max_norm_matrix(dtype):
    """Columns with norm 10 (> c), 1 (< c), 0, 3 (= c) and 50 (> c), c = 3."""
    rng = rng_for("maxnorm")
    W = rng.standard_normal((6, 5))
    W /= np.linalg.norm(W, axis=0, keepdims=True)
    W *= np.array([10.0, 1.0, 0.0, 3.0, 50.0])
    return W.astype(dtype)


def check_max_norm(W, c, dtype, device, *, positional=True):
    args = (c,) if positional else ()
    kw = {} if positional else {"c": c}
    got = array_result(mk.max_norm(to_device(W, device), *args, **kw), dtype, W.shape, device)
    ref = O.np_max_norm(O.f64(W), c)
    scale = np.abs(O.f64(W))
    tag = f"max_norm(c={c}) [{dtype}, {device}, {W.shape}]"
    O.assert_close(got, ref, dtype, scale=scale, what=tag)
    O.assert_close(got, O.torch_max_norm(W, c), dtype, scale=scale, what=tag + " vs torch")
    return got


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_max_norm_columns_above_and_below_c(device, dtype):
    W = max_norm_matrix(dtype)
    got = check_max_norm(W, 3.0, dtype, device)
    norms = np.linalg.norm(got.astype(np.float64), axis=0)
    before = np.linalg.norm(W.astype(np.float64), axis=0)[[0, 4]]
    # clipped to c (times norm / (norm + 1e-8), the formula's guard)
    np.testing.assert_allclose(
        norms[[0, 4]], 3.0 * before / (before + 1e-8), rtol=O.rtol_for(dtype)
    )
    np.testing.assert_array_equal(got[:, 1], W[:, 1])  # below c: untouched
    assert np.all(got[:, 2] == 0)
    default = to_host(mk.max_norm(to_device(W, device)))  # c = 3.0 by default
    np.testing.assert_array_equal(default, got)
    for c in (0.5, 0.0, 100.0):
        check_max_norm(W, c, dtype, device, positional=c != 0.5)
    assert np.all(to_host(mk.max_norm(to_device(W, device), 0.0)) == 0)


MAX_NORM_SHAPES = [(7,), (1, 5), (33, 5), (1009, 7), (4, 3, 2), (3, 1, 2, 2)]


@pytest.mark.parametrize(
    ("device", "shape", "dtype"),
    cases(
        [(s, dt) for s in MAX_NORM_SHAPES for dt in DTYPES],
        [((7,), "float64"), ((33, 5), "float32"), ((4, 3, 2), "float64")],
        lambda s, dt: f"{'x'.join(map(str, s))}-{dt}",
    ),
    indirect=["device"],
)
def test_max_norm_shapes(device, shape, dtype):
    """Norms over axis 0 (keepdims, as np.linalg.norm(W, axis=0)), for 1-d to 4-d W; the
    scales are chosen so that about half of the columns exceed c."""
    rng = rng_for("mn", shape, dtype)
    W = rng.standard_normal(shape) * rng.uniform(0.2, 2.0, shape[1:]) * 3 / math.sqrt(shape[0])
    check_max_norm(W.astype(dtype), 3.0, dtype, device)
    check_max_norm(W.astype(dtype), 1.0, dtype, device)


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_max_norm_nan_int_and_tiny_columns(device):
    W = max_norm_matrix("float64")
    W[2, 1] = np.nan
    got = to_host(mk.max_norm(to_device(W, device)))
    assert np.isnan(got[:, 1]).all(), "a NaN makes its column's norm NaN"
    assert not np.isnan(np.delete(got, 1, axis=1)).any()
    Wi = np.array([[3, 0, 1], [4, 0, -1]], dtype=np.int64)  # norms 5, 0, sqrt 2
    check_max_norm(Wi, 3.0, "float64", device)
    tiny = np.full((4, 2), 1e-9)  # norm 2e-9: c / (norm + 1e-8) > 1
    check_max_norm(tiny, 3.0, "float64", device)


# --------------------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------------------


def nonzero_data(shape, dtype, rng):
    x = rng.standard_normal(shape)
    x = np.where(np.abs(x) < 0.1, np.copysign(0.1, x), x)  # no zeros: y != 0 is the mask
    return x.astype(dtype)


def check_dropout(x, y, p, dtype):
    """y is x / (1 - p) where kept and exactly 0 where dropped; returns the mask."""
    assert y.shape == x.shape and y.dtype == np.dtype(dtype)
    kept = y != 0
    np.testing.assert_allclose(
        y[kept], O.f64(x)[kept] / (1 - p), rtol=O.ulps(dtype, 2), err_msg="kept values"
    )
    return kept


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_dropout_same_seed_same_mask_on_both_devices(device, dtype, p):
    n = GS[-1]
    x = nonzero_data((n,), dtype, rng_for("drop", dtype))
    y = to_host(mk.dropout(to_device(x, device), p, seed=1234))
    mask = check_dropout(x, y, p, dtype)
    assert 0 < mask.sum() < n
    again = to_host(mk.dropout(to_device(x, device), p, True, seed=1234))
    np.testing.assert_array_equal(again, y)
    cpu = mk.dropout(x, p=p, seed=1234)  # the CPU's mask for the same seed
    np.testing.assert_array_equal(cpu != 0, mask)
    np.testing.assert_allclose(cpu, y, rtol=O.ulps(dtype, 2))


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_dropout_masks_are_the_same_for_float32_and_float64(device):
    x = nonzero_data((GS[-1],), "float64", rng_for("drop-dt"))
    a = to_host(mk.dropout(to_device(x, device), 0.4, seed=7))
    b = to_host(mk.dropout(to_device(x.astype(np.float32), device), 0.4, seed=7))
    np.testing.assert_array_equal(a != 0, b != 0)


def test_dropout_different_seeds_differ():
    x = nonzero_data((20_000,), "float64", rng_for("seeds"))
    seeds = [0, 1, 2, 12345, 2**31 - 1, 2**31, 2**32, 2**32 + 1, 2**40, 2**62]
    masks = [mk.dropout(x, 0.5, seed=s) != 0 for s in seeds]
    for i in range(len(seeds)):
        for j in range(i):
            agree = float(np.mean(masks[i] == masks[j]))
            # independent masks agree on half of the elements (5 sigma: 0.018)
            assert abs(agree - 0.5) < 0.018, (seeds[i], seeds[j], agree)
    # numpy integers are the same seed as Python's
    np.testing.assert_array_equal(mk.dropout(x, 0.5, seed=np.int64(12345)) != 0, masks[3])
    np.testing.assert_array_equal(
        mk.dropout(x, 0.5, seed=np.uint32(7)) != 0, mk.dropout(x, 0.5, seed=7) != 0
    )


@pytest.mark.parametrize("p", [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95])
def test_dropout_kept_fraction_is_binomial(p):
    """1e5 elements: the kept fraction is within 5 sigma of 1 - p, overall and in each
    tenth of the array, and neighbours are independent (both kept (1 - p)^2 of the time)."""
    n = 100_000
    x = nonzero_data((n,), "float32", rng_for("frac"))
    for seed in (0, 99):
        kept = check_dropout(x, mk.dropout(x, p, seed=seed), p, "float32")
        sigma = math.sqrt(p * (1 - p) / n)
        assert abs(kept.mean() - (1 - p)) < 5 * sigma, (p, seed, kept.mean())
        chunk_sigma = math.sqrt(p * (1 - p) / (n // 10))
        for part in np.split(kept, 10):
            assert abs(part.mean() - (1 - p)) < 5 * chunk_sigma, (p, seed, part.mean())
        pairs = kept[:-1] & kept[1:]
        q = (1 - p) ** 2
        assert abs(pairs.mean() - q) < 5 * math.sqrt(q * (1 - q) / n) * 1.5, (p, pairs.mean())
        # rows of a 2-d array, strided: every other element is as random
        assert abs(kept[::2].mean() - (1 - p)) < 5 * sigma * math.sqrt(2)


def test_dropout_masks_are_nested_in_p_and_follow_the_flat_index():
    """u comes from a hash of (seed, flat index): for one seed the mask of a larger p is a
    subset of that of a smaller p; the mask of a prefix or of a reshaped array is the same."""
    x = nonzero_data((4000,), "float64", rng_for("nested"))
    masks = [mk.dropout(x, p, seed=5) != 0 for p in (0.1, 0.3, 0.5, 0.7, 0.9)]
    for lo, hi in zip(masks, masks[1:], strict=False):
        assert np.all(hi <= lo)
    y = mk.dropout(x, 0.5, seed=5)
    np.testing.assert_array_equal(mk.dropout(x[:1000], 0.5, seed=5), y[:1000])
    np.testing.assert_array_equal(mk.dropout(x.reshape(40, 100), 0.5, seed=5), y.reshape(40, 100))
    np.testing.assert_array_equal(
        mk.dropout(x.reshape(10, 20, 20), 0.5, seed=5), y.reshape(10, 20, 20)
    )


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_dropout_non_contiguous_input_is_its_contiguous_copy(device):
    x = nonzero_data((12, 10), "float64", rng_for("nc-drop"))
    d = to_device(x, device)
    for view, copy in ((d[::2], x[::2]), (d[:, ::-3], x[:, ::-3]), (d[::-1], x[::-1])):
        got = to_host(mk.dropout(view, 0.5, seed=3))
        ref = to_host(mk.dropout(to_device(np.ascontiguousarray(copy), device), 0.5, seed=3))
        np.testing.assert_array_equal(got, ref)
    if device == "cpu":
        np.testing.assert_array_equal(
            mk.dropout(np.asfortranarray(x), 0.5, seed=3), mk.dropout(x, 0.5, seed=3)
        )
        ro = x.copy()
        ro.flags.writeable = False
        np.testing.assert_array_equal(mk.dropout(ro, 0.5, seed=3), mk.dropout(x, 0.5, seed=3))


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_dropout_training_false_returns_x_itself(device):
    x = nonzero_data((GS[2],), "float32", rng_for("eval"))
    d = to_device(x, device)
    for p in (0.0, 0.5, 1.0):
        assert mk.dropout(d, p, False) is d
        assert mk.dropout(d, p=p, training=False, seed=3) is d
    np.testing.assert_array_equal(to_host(d), x)


# the simulator runs the kernel on NumPy scalars: inf * 0 (dropped inf) warns there
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_dropout_p_0_and_p_1(device, dtype):
    x = nonzero_data((GS[-1],), dtype, rng_for("p01", dtype))
    y0 = array_result(mk.dropout(to_device(x, device), 0.0, seed=1), dtype, x.shape, device)
    np.testing.assert_array_equal(y0, x)  # identity (u > 0 for every u except 0 itself)
    y1 = array_result(mk.dropout(to_device(x, device), 1.0, seed=1), dtype, x.shape, device)
    np.testing.assert_array_equal(y1, np.zeros_like(x))  # zeros, not 0 / 0 (as torch)
    x[[3, 7]] = [np.inf, -np.inf]
    y1 = to_host(mk.dropout(to_device(x, device), 1.0, seed=1))
    assert np.all(y1[np.isfinite(x)] == 0)


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_dropout_nan_in_nan_out(device):
    """NaN * mask is NaN in the formula whether the element is kept or dropped."""
    x = nonzero_data((GS[-1],), "float64", rng_for("drop-nan"))
    x[::3] = np.nan
    y = to_host(mk.dropout(to_device(x, device), 0.5, seed=11))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))


def test_dropout_seed_from_a_generator_and_from_numpys_global_state():
    x = nonzero_data((5000,), "float64", rng_for("gen"))
    a = mk.dropout(x, 0.5, seed=np.random.default_rng(42))
    b = mk.dropout(x, 0.5, seed=np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    g = np.random.default_rng(42)
    first, second = mk.dropout(x, 0.5, seed=g), mk.dropout(x, 0.5, seed=g)
    np.testing.assert_array_equal(first, a)
    assert not np.array_equal(first, second), "the generator must advance"
    c = mk.dropout(x, 0.5, seed=np.random.default_rng(43))
    assert not np.array_equal(a, c)
    # seed=None: drawn from numpy.random's global state
    state = np.random.get_state()  # noqa: NPY002 - the legacy global state is the API
    try:
        np.random.seed(3)  # noqa: NPY002
        u = mk.dropout(x, 0.5)
        v = mk.dropout(x, 0.5)
        np.random.seed(3)  # noqa: NPY002
        np.testing.assert_array_equal(mk.dropout(x, 0.5), u)
        np.testing.assert_array_equal(mk.dropout(x, 0.5, seed=None), v)
        assert not np.array_equal(u, v)
        check_dropout(x, u, 0.5, "float64")
    finally:
        np.random.set_state(state)  # noqa: NPY002


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_dropout_dtypes_and_shapes(device):
    x = np.arange(1, 25).reshape(2, 3, 4)
    y = array_result(mk.dropout(to_device(x, device), 0.25, seed=2), "float64", x.shape, device)
    check_dropout(x, y, 0.25, "float64")
    b = np.ones((5, 7), bool)
    y = array_result(mk.dropout(to_device(b, device), 0.5, seed=2), "float64", b.shape, device)
    assert set(np.unique(y)) <= {0.0, 2.0}
    if device == "cpu":
        assert np.shape(mk.dropout(np.array(3.0), 0.0, seed=1)) == ()
        assert mk.dropout(np.zeros((0, 3)), 0.5, seed=1).shape == (0, 3)
        t = mk.dropout(torch.ones(4, 5), 0.5, seed=1)  # a torch CPU tensor is host data
        assert isinstance(t, np.ndarray) and t.dtype == np.float32
