"""Correctness of the normalisation functions (mlkernels/normalisation.py): batch_norm and
layer_norm and their backward passes.

Every test takes the ``device`` fixture (conftest.py): CPU kernels, and GPU kernels under
Numba's CUDA simulator (2 blocks x 32 threads, tiny arrays).

Oracles (tests/oracles_nn.py), float64: the verbatim NumPy formulas of ml_formulas.txt,
PyTorch with autograd (F.batch_norm(training=True), F.layer_norm) and analytic NumPy
backward passes.
"""

from __future__ import annotations

import zlib

import numpy as np
import oracles_nn as O
import pytest

import mlkernels as mk
from conftest import array_result, cases, sizes, to_device, to_host

DTYPES = ("float32", "float64")
GS = sizes("gpu")


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def dev(args, device):
    return [to_device(a, device) for a in args]


# --------------------------------------------------------------------------------------
# batch_norm
# --------------------------------------------------------------------------------------


def bn_scales(x, gamma, beta, dy, eps):
    """Magnitudes of the intermediate quantities, per output (see O.assert_close)."""
    x, gamma, beta, dy = (O.f64(a) for a in (x, gamma, beta, dy))
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    inv = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv
    xs = np.abs(x_hat) + (np.abs(x) + np.abs(mu)) * inv  # x - mu loses eps * |x|
    return {
        "y": np.abs(gamma) * xs + np.abs(beta),
        "mu": np.mean(np.abs(x), axis=0),
        "var": np.mean(np.abs(x - mu) * (np.abs(x) + np.abs(mu)), axis=0),
        "x_hat": xs,
        "dx": np.abs(gamma)
        * inv
        * (np.abs(dy) + np.mean(np.abs(dy), axis=0) + xs * np.mean(np.abs(dy) * xs, axis=0)),
        "dgamma": np.sum(np.abs(dy) * xs, axis=0),
        "dbeta": np.sum(np.abs(dy), axis=0),
    }


def check_batch_norm(x, gamma, beta, dy, dtype, device, eps=None):
    epsa = () if eps is None else (eps,)
    e = 1e-5 if eps is None else eps
    fshape = x.shape[1:]
    res = mk.batch_norm(*dev((x, gamma, beta), device), *epsa)
    assert isinstance(res, tuple) and len(res) == 4
    y, mu, var, x_hat = (
        array_result(r, dtype, s, device)
        for r, s in zip(res, (x.shape, fshape, fshape, x.shape), strict=True)
    )
    sc = bn_scales(x, gamma, beta, dy, e)
    ny, nmu, nvar, nx_hat = O.np_batch_norm(*(O.f64(a) for a in (x, gamma, beta)), e)
    # torch refuses a batch of one and eps = 0 in training mode: the other oracles only
    use_torch = x.shape[0] > 1 and e > 0
    if use_torch:
        ty, tdx, tdg, tdb = O.torch_batch_norm(x, gamma, beta, dy, e)
    tag = f"[{dtype}, {device}, {x.shape}, eps={e}]"
    O.assert_close(y, ny, dtype, scale=sc["y"], what=f"batch_norm y {tag}")
    if use_torch:
        O.assert_close(y, ty, dtype, scale=sc["y"], what=f"batch_norm y vs torch {tag}")
    O.assert_close(mu, nmu, dtype, scale=sc["mu"], what=f"batch_norm mu {tag}")
    O.assert_close(var, nvar, dtype, scale=sc["var"], what=f"batch_norm var {tag}")
    O.assert_close(x_hat, nx_hat, dtype, scale=sc["x_hat"], what=f"batch_norm x_hat {tag}")
    grads = mk.batch_norm_grad(*dev((x, gamma, dy), device), *epsa)
    assert isinstance(grads, tuple) and len(grads) == 3
    dx, dg, db = (
        array_result(r, dtype, s, device)
        for r, s in zip(grads, (x.shape, fshape, fshape), strict=True)
    )
    adx, adg, adb = O.an_batch_norm_grad(x, gamma, dy, e)
    for got, a, key in ((dx, adx, "dx"), (dg, adg, "dgamma"), (db, adb, "dbeta")):
        if use_torch:
            t = {"dx": tdx, "dgamma": tdg, "dbeta": tdb}[key]
            what = f"batch_norm_grad {key} vs autograd {tag}"
            O.assert_close(got, t, dtype, scale=sc[key], what=what)
        O.assert_close(got, a, dtype, scale=sc[key], what=f"batch_norm_grad {key} analytic {tag}")
    return (y, mu, var, x_hat), (dx, dg, db)


BN_SHAPES_CPU = [(8, 5), (1, 3), (2, 1), (33, 4), (1009, 3), (6, 3, 4), (5, 2, 1, 3)]
BN_GPU = [((5, 3), "float64"), ((33, 2), "float32"), ((4, 3, 2), "float64")]


@pytest.mark.parametrize(
    ("device", "shape", "dtype"),
    cases(
        [(s, dt) for s in BN_SHAPES_CPU for dt in DTYPES],
        BN_GPU,
        lambda s, dt: f"{'x'.join(map(str, s))}-{dt}",
    ),
    indirect=["device"],
)
def test_batch_norm_and_grad(device, shape, dtype):
    """(y, mu, var, x_hat) as the formula (biased variance), and (dx, dgamma, dbeta) as
    torch autograd through F.batch_norm(training=True) and the analytic backward pass."""
    x, gamma, beta, dy = O.norm_data(shape, shape[1:], dtype, rng_for("bn", shape, dtype))
    check_batch_norm(x, gamma, beta, dy, dtype, device)


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_batch_norm_eps_and_one_d_input(device):
    x, gamma, beta, dy = O.norm_data((9, 4), (4,), "float64", rng_for("bn-eps"))
    for eps in (0.0, 0.1, 3.0):
        check_batch_norm(x, gamma, beta, dy, "float64", device, eps=eps)
    kw = mk.batch_norm(*dev((x, gamma, beta), device), eps=0.1)
    pos = mk.batch_norm(*dev((x, gamma, beta), device), 0.1)
    for a, b in zip(kw, pos, strict=True):
        np.testing.assert_array_equal(to_host(a), to_host(b))
    if device == "cpu":  # x (n,): gamma, beta, mu, var 0-d
        x1 = x[:, 0]
        g1, b1, d1 = np.array(gamma[0]), np.array(beta[0]), dy[:, 0]
        y, mu, var, x_hat = mk.batch_norm(x1, g1, b1)
        ny, nmu, nvar, nxh = O.np_batch_norm(x1, g1, b1)
        assert np.shape(mu) == () and np.shape(var) == () and y.shape == x1.shape
        O.assert_close(y, ny, "float64", scale=10.0, what="1-d batch_norm")
        O.assert_close(var, nvar, "float64", scale=float(nvar), what="1-d var")
        dx, dg, db = mk.batch_norm_grad(x1, g1, d1)
        adx, adg, adb = O.an_batch_norm_grad(x1, g1, d1)
        O.assert_close(dx, adx, "float64", scale=10.0, what="1-d dx")
        O.assert_close(dg, adg, "float64", scale=10.0, what="1-d dgamma")


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_batch_norm_int_input_and_nan_columns(device):
    rng = rng_for("bn-int")
    x = rng.integers(-5, 6, (7, 3))
    gamma, beta, dy = np.ones(3), np.zeros(3), rng.standard_normal((7, 3))
    check_batch_norm(x, gamma, beta, dy, "float64", device)
    xf = rng.standard_normal((7, 3))
    xf[4, 1] = np.nan
    y, mu, var, x_hat = (to_host(r) for r in mk.batch_norm(*dev((xf, gamma, beta), device)))
    for a in (y, x_hat):
        assert np.isnan(a[:, 1]).all() and not np.isnan(a[:, [0, 2]]).any()
    assert np.isnan(mu[1]) and np.isnan(var[1]) and not np.isnan(mu[[0, 2]]).any()
    dx, dg, db = (to_host(r) for r in mk.batch_norm_grad(*dev((xf, gamma, dy), device)))
    assert np.isnan(dx[:, 1]).all() and not np.isnan(dx[:, [0, 2]]).any()
    assert np.isnan(dg[1]) and not np.isnan(dg[[0, 2]]).any()


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_batch_norm_is_stable_for_a_large_mean(device):
    """1e6 + N(0, 1) in float32: var within 1e-3 of the float64 variance of the same
    float32 data, where E[x^2] - E[x]^2 in float32 is off by orders of magnitude."""
    n = 200_000 if device == "cpu" else 64
    rng = rng_for("bn-stable")
    x = (1e6 + rng.standard_normal((n, 3))).astype(np.float32)
    gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    x64 = x.astype(np.float64)
    mu64, var64 = x64.mean(axis=0), x64.var(axis=0)
    naive = (x * x).mean(axis=0) - x.mean(axis=0) ** 2  # float32 throughout
    assert np.all(np.abs(naive - var64) > 0.1 * var64), "the data must defeat the naive formula"
    y, mu, var, x_hat = (to_host(r) for r in mk.batch_norm(*dev((x, gamma, beta), device)))
    assert var.dtype == np.float32
    np.testing.assert_allclose(var, var64, rtol=1e-3)
    assert np.all(np.abs(mu - mu64) <= 0.0625), (mu, mu64)  # one float32 ulp at 1e6
    ref_hat = (x64 - mu64) / np.sqrt(var64 + 1e-5)
    np.testing.assert_allclose(x_hat, ref_hat, atol=0.05)  # mu's rounding: <= 1/32
    np.testing.assert_allclose(y, ref_hat, atol=0.05)
    np.testing.assert_allclose(np.mean(x_hat.astype(np.float64), axis=0), 0.0, atol=0.05)
    dy = rng.standard_normal((n, 3)).astype(np.float32)
    dx, dg, db = (to_host(r) for r in mk.batch_norm_grad(*dev((x, gamma, dy), device)))
    adx, adg, adb = O.an_batch_norm_grad(x, gamma, dy)
    s_dy = np.sum(np.abs(dy.astype(np.float64)), axis=0)
    assert np.all(np.abs(db - adb) <= 1e-6 * s_dy), (db, adb)
    assert np.all(np.abs(dg - adg) <= 0.04 * s_dy), (dg, adg)  # mu's rounding shifts x_hat
    np.testing.assert_allclose(dx, adx, atol=0.05 * float(np.max(np.abs(dy))))


# --------------------------------------------------------------------------------------
# layer_norm
# --------------------------------------------------------------------------------------


def ln_scales(x, gamma, beta, dy, eps):
    x, gamma, beta, dy = (O.f64(a) for a in (x, gamma, beta, dy))
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv
    xs = np.abs(x_hat) + (np.abs(x) + np.abs(mu)) * inv
    g = np.abs(dy * gamma)
    lead = tuple(range(x.ndim - 1))
    return {
        "y": np.abs(gamma) * xs + np.abs(beta),
        "dx": inv
        * (g + np.mean(g, axis=-1, keepdims=True) + xs * np.mean(g * xs, axis=-1, keepdims=True)),
        "dgamma": np.sum(np.abs(dy) * xs, axis=lead),
        "dbeta": np.sum(np.abs(dy), axis=lead),
    }


def check_layer_norm(x, gamma, beta, dy, dtype, device, eps=None):
    epsa = () if eps is None else (eps,)
    e = 1e-5 if eps is None else eps
    y = array_result(mk.layer_norm(*dev((x, gamma, beta), device), *epsa), dtype, x.shape, device)
    sc = ln_scales(x, gamma, beta, dy, e)
    ny = O.np_layer_norm(*(O.f64(a) for a in (x, gamma, beta)), e)
    ty, tdx, tdg, tdb = O.torch_layer_norm(x, gamma, beta, dy, e)
    tag = f"[{dtype}, {device}, {x.shape}, eps={e}]"
    O.assert_close(y, ny, dtype, scale=sc["y"], what=f"layer_norm vs formula {tag}")
    O.assert_close(y, ty, dtype, scale=sc["y"], what=f"layer_norm vs torch {tag}")
    grads = mk.layer_norm_grad(*dev((x, gamma, dy), device), *epsa)
    assert isinstance(grads, tuple) and len(grads) == 3
    f = x.shape[-1:]
    dx, dg, db = (
        array_result(r, dtype, s, device) for r, s in zip(grads, (x.shape, f, f), strict=True)
    )
    adx, adg, adb = O.an_layer_norm_grad(x, gamma, dy, e)
    for got, t, a, key in ((dx, tdx, adx, "dx"), (dg, tdg, adg, "dgamma"), (db, tdb, adb, "dbeta")):
        O.assert_close(
            got, t, dtype, scale=sc[key], what=f"layer_norm_grad {key} vs autograd {tag}"
        )
        O.assert_close(got, a, dtype, scale=sc[key], what=f"layer_norm_grad {key} analytic {tag}")
    return y, (dx, dg, db)


LN_SHAPES_CPU = [(4, 7), (1, 1009), (33, 5), (500, 64), (2, 3, 5), (9,), (5, 1), (2, 2, 2, 3)]
LN_GPU = [((3, 5), "float64"), ((2, 33), "float32"), ((2, 3, 5), "float64")]


@pytest.mark.parametrize(
    ("device", "shape", "dtype"),
    cases(
        [(s, dt) for s in LN_SHAPES_CPU for dt in DTYPES],
        LN_GPU,
        lambda s, dt: f"{'x'.join(map(str, s))}-{dt}",
    ),
    indirect=["device"],
)
def test_layer_norm_and_grad(device, shape, dtype):
    """Statistics over the last axis, any leading shape; (dx, dgamma, dbeta) as torch
    autograd through F.layer_norm, dgamma and dbeta summed over every leading axis."""
    rng = rng_for("ln", shape, dtype)
    x = (rng.standard_normal(shape) * 2 + rng.standard_normal(shape[:-1] + (1,)) * 3).astype(dtype)
    gamma = (1 + 0.5 * rng.standard_normal(shape[-1:])).astype(dtype)
    beta = rng.standard_normal(shape[-1:]).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    check_layer_norm(x, gamma, beta, dy, dtype, device)


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_layer_norm_eps_int_nan(device):
    x, _, _, dy = O.norm_data((4, 6), (6,), "float64", rng_for("ln-eps"))
    gamma, beta = 1 + rng_for("g").standard_normal(6), rng_for("b").standard_normal(6)
    for eps in (0.0, 0.1, 3.0):
        check_layer_norm(x, gamma, beta, dy, "float64", device, eps=eps)
    kw = to_host(mk.layer_norm(*dev((x, gamma, beta), device), eps=0.1))
    pos = to_host(mk.layer_norm(*dev((x, gamma, beta), device), 0.1))
    np.testing.assert_array_equal(kw, pos)
    xi = rng_for("ln-int").integers(-4, 5, (4, 6))
    check_layer_norm(xi, gamma, beta, dy, "float64", device)
    xn = x.copy()
    xn[2, 3] = np.nan
    y = to_host(mk.layer_norm(*dev((xn, gamma, beta), device)))
    assert np.isnan(y[2]).all() and not np.isnan(np.delete(y, 2, axis=0)).any()
    dx, dg, db = (to_host(r) for r in mk.layer_norm_grad(*dev((xn, gamma, dy), device)))
    assert np.isnan(dx[2]).all() and not np.isnan(np.delete(dx, 2, axis=0)).any()
    assert np.isnan(dg).all() and not np.isnan(db).any()


@pytest.mark.parametrize("device", ["cpu", "gpu"], indirect=True)
def test_layer_norm_is_stable_for_a_large_mean(device):
    """Rows 1e6 + N(0, 1) in float32: the float64 answer for the float32 data, to the
    rounding of a float32 mean (1/32)."""
    shape = (64, 256) if device == "cpu" else (2, 40)
    rng = rng_for("ln-stable")
    x = (1e6 + rng.standard_normal(shape)).astype(np.float32)
    gamma, beta = np.ones(shape[-1], np.float32), np.zeros(shape[-1], np.float32)
    x64 = x.astype(np.float64)
    ref = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-5)
    y = to_host(mk.layer_norm(*dev((x, gamma, beta), device)))
    np.testing.assert_allclose(y, ref, atol=0.05)
    np.testing.assert_allclose(np.std(y.astype(np.float64), axis=-1), 1.0, rtol=1e-3)
