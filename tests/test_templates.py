"""The templates the next families are declared on (foreach, pairwise, by_label), driven
here by small scalar functions written for the tests, on the CPU and on the GPU (the
simulator in CI), against NumPy and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba.extending import register_jitable
from scipy.spatial.distance import cdist

from conftest import to_device, to_host
from mlkernels._core import cpu
from mlkernels._core.templates import ByLabel, Foreach, PairOp, Pairwise


@register_jitable
def _momentum(p, v, g, s, params):
    """SGD with momentum, the update of optim.sgd: v = mu v + s g; p = p - lr v."""
    lr, mu = params
    v_new = mu * v + s * g
    return p - lr * v_new, v_new


@register_jitable
def _sq(g, s, params):
    return (g * g, abs(g))


@register_jitable
def _sq_step(acc, a, b):
    d = a - b
    return acc + d * d


@register_jitable
def _rbf_end(acc, params):
    return math.exp(-params[0] * acc)


@register_jitable
def _identity_end(acc, params):
    return acc


SQEUCLIDEAN = PairOp(0.0, _sq_step, _identity_end)
RBF = PairOp(0.0, _sq_step, _rbf_end)


def _sizes(device):
    # several groups, one of them empty, one across two foreach chunks on the CPU
    return (5, 0, cpu.FOREACH_CHUNK + 3, 1) if device == "cpu" else (5, 0, 33, 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_foreach_updates_a_list_of_arrays_in_place(device, dtype):
    rng = np.random.default_rng(0)
    sizes = _sizes(device)
    p = [rng.standard_normal(n).astype(dtype) for n in sizes]
    g = [rng.standard_normal(n).astype(dtype) for n in sizes]
    v = [rng.standard_normal(n).astype(dtype) for n in sizes]
    lr, mu = 0.1, 0.9
    want_v = [mu * vi + gi for vi, gi in zip(v, g, strict=True)]
    want_p = [pi - np.asarray(lr, dtype) * vi for pi, vi in zip(p, want_v, strict=True)]
    dp, dg, dv = ([to_device(a, device) for a in arrs] for arrs in (p, g, v))
    step = Foreach(_momentum, ("params", "velocity", "grads"), ("params", "velocity"))
    assert step.run({"params": dp, "grads": dg, "velocity": dv}, (lr, mu)) is None
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-14, "atol": 1e-15}
    for got, want in zip(dp + dv, want_p + want_v, strict=True):
        np.testing.assert_allclose(to_host(got), want, **tol)  # FMA may round differently
    for got, was in zip(dg, g, strict=True):
        np.testing.assert_array_equal(to_host(got), was)  # read, never written


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_foreach_writes_new_arrays_and_scales_by_a_device_factor(device, dtype):
    """An update into new arrays (the optimisers' ``update``): the parameters are read,
    not written; ``coef`` (on the device) scales the gradients."""
    rng = np.random.default_rng(2)
    sizes = _sizes(device)
    p, g, v = ([rng.standard_normal(n).astype(dtype) for n in sizes] for _ in range(3))
    new = [np.full(n, np.nan, dtype) for n in sizes]
    lr, mu, s = 0.1, 0.9, 0.25
    want_v = [mu * vi + s * gi for vi, gi in zip(v, g, strict=True)]
    want_p = [pi - lr * vi for pi, vi in zip(p, want_v, strict=True)]
    dp, dg, dv, dn = ([to_device(a, device) for a in arrs] for arrs in (p, g, v, new))
    step = Foreach(_momentum, ("params", "velocity", "grads"), ("new", "velocity"))
    coef = to_device(np.array([s]), device)
    step.run({"params": dp, "grads": dg, "velocity": dv, "new": dn}, (lr, mu), coef)
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-14, "atol": 1e-15}
    for got, want in zip(dn + dv, want_p + want_v, strict=True):
        np.testing.assert_allclose(to_host(got), want, **tol)
    for got, was in zip(dp, p, strict=True):
        np.testing.assert_array_equal(to_host(got), was)


def test_foreach_sums_and_maxima_per_array_in_one_launch(device):
    """clip_by_global_norm's Σ g² and gradient_stats' max |g|, per array: each square in
    the data's precision (float32 here), summed in float64, chunks in order; a NaN
    propagates through the max."""
    rng = np.random.default_rng(1)
    g = [rng.standard_normal(n).astype(np.float32) for n in _sizes(device)]
    g[0][3] = np.nan
    totals = to_host(
        Foreach(_sq, ("grads",), kinds=("sum", "max")).run(
            {"grads": [to_device(a, device) for a in g]}, ()
        )
    )
    assert totals.shape == (len(g), 2)
    for a, (ss, mx) in zip(g, totals, strict=True):
        if np.isnan(a).any():
            assert np.isnan(ss) and np.isnan(mx)
            continue
        squares = np.square(a)  # float32 squares, summed exactly
        assert ss == pytest.approx(math.fsum(map(float, squares)), rel=1e-12, abs=0)
        assert mx == (np.abs(a).max() if a.size else -np.inf)


def test_foreach_rejects_lists_that_do_not_fit():
    step = Foreach(_momentum, ("params", "velocity", "grads"), ("params", "velocity"))
    a = np.zeros(3)
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        step.run({"params": [a], "grads": [np.zeros(4)], "velocity": [a.copy()]}, (0.1, 0.9))
    with pytest.raises(ValueError, match="one length"):
        step.run({"params": [a], "grads": [], "velocity": [a.copy()]}, (0.1, 0.9))
    with pytest.raises(ValueError, match="contiguous"):
        step.run({"params": [np.zeros(6)[::2]], "grads": [a], "velocity": [a.copy()]}, (0.1, 0.9))
    with pytest.raises(TypeError, match="float32"):
        step.run({"params": [a, a.astype(np.float32)], "grads": [a, a], "velocity": [a, a]}, ())
    with pytest.raises(ValueError, match="writeable"):
        ro = np.zeros(3)
        ro.flags.writeable = False
        step.run({"params": [ro], "grads": [a], "velocity": [a.copy()]}, (0.1, 0.9))
    ro.flags.writeable = False
    step.run({"params": [a.copy()], "grads": [ro], "velocity": [a.copy()]}, (0.1, 0.9))  # read
    with pytest.raises(ValueError, match="either writes"):
        Foreach(_sq, ("grads",), ("grads",), kinds=("sum",)).run({"grads": [a.copy()]}, ())


@pytest.mark.parametrize("shape", [(7, 5, 3), (1, 1, 1), (70, 9, 20), (3, 4, 0), (0, 4, 2)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pairwise_tiles_give_scipys_distances_and_kernels(device, shape, dtype):
    n, m, d = shape
    if device == "gpu" and n * m > 100:
        shape, (n, m, d) = (9, 7, 5), (9, 7, 5)
    rng = np.random.default_rng(n * m + d)
    a, b = rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((m, d)).astype(dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = cdist(a64, b64, "sqeuclidean") if n and m else np.zeros((n, m))
    got = to_host(Pairwise(SQEUCLIDEAN).run(to_device(a, device), to_device(b, device), ()))
    rtol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12)
    out = to_device(np.full((n, m), np.nan, dtype), device)
    res = Pairwise(RBF).run(to_device(a, device), to_device(b, device), (0.5,), out=out)
    assert res is out or to_host(res).shape == (n, m)
    np.testing.assert_allclose(to_host(out), np.exp(-0.5 * want), rtol=rtol, atol=1e-12)


def test_pairwise_needs_rows_of_one_length():
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        Pairwise(SQEUCLIDEAN).run(np.zeros((3, 2)), np.zeros((4, 3)), ())


@pytest.mark.parametrize(("n", "d", "labels"), [(50, 3, 4), (1, 1, 1), (0, 2, 3), (300, 17, 9)])
def test_by_label_sums_and_counts_the_rows_of_each_label(device, n, d, labels):
    if device == "gpu" and n > 60:
        n, d = 40, 5
    rng = np.random.default_rng(n + d)
    x = rng.standard_normal((n, d)).astype(np.float32)
    lab = rng.integers(0, labels, n)
    sums, counts = ByLabel().run(to_device(x, device), to_device(lab, device), labels)
    want = np.zeros((labels, d))
    np.add.at(want, lab, x.astype(np.float64))
    np.testing.assert_allclose(to_host(sums), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(to_host(counts), np.bincount(lab, minlength=labels))


def test_by_label_rejects_labels_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ByLabel().run(np.zeros((2, 2)), np.array([0, 3]), 3)


# --------------------------------------------------------------------------------------
# Primitives: library calls on the CPU, numba.cuda kernels on the GPU (the simulator here)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k", "m"), [(5, 3, 4), (1, 1, 1), (9, 17, 6), (3, 0, 2)])
def test_matmul(device, n, k, m):
    from mlkernels._core import primitives

    rng = np.random.default_rng(n * k + m)
    a, b = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    got = to_host(primitives.matmul(to_device(a, device), to_device(b, device)))
    np.testing.assert_allclose(got, a @ b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("n", [0, 1, 7, 1000, 3001])
def test_cumsum(device, n):
    from mlkernels._core import primitives

    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    got = to_host(primitives.cumsum(to_device(x, device)))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.cumsum(x.astype(np.float64)), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 64, 100])
def test_argsort_is_stable_with_nan_last(device, n):
    from mlkernels._core import primitives

    rng = np.random.default_rng(n)
    x = rng.integers(0, 4, n).astype(np.float64)  # many ties
    x[rng.random(n) < 0.2] = np.nan
    got = to_host(primitives.argsort(to_device(x, device)))
    np.testing.assert_array_equal(got, np.argsort(x, kind="stable"))


@pytest.mark.parametrize("n", [1, 2, 6, 20])
def test_cholesky(device, n):
    from mlkernels._core import primitives

    rng = np.random.default_rng(n)
    g = rng.standard_normal((n, n))
    a = g @ g.T + n * np.eye(n)
    low = to_host(primitives.cholesky(to_device(a, device)))
    np.testing.assert_allclose(low, np.linalg.cholesky(a), rtol=1e-12, atol=1e-12)
    assert np.all(np.triu(low, 1) == 0)
