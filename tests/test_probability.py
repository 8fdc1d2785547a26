"""Probability and information (mlkernels.probability) against SciPy, scikit-learn
and the NumPy formulas of the specification ("Probability & Statistics",
``mlkernels.reference``).

Every device test takes the ``device`` fixture (conftest.py): the same body runs on the
CPU kernel and on the GPU kernel (Numba's CUDA simulator, 2 blocks of 32 threads, so the
GPU data stay tiny). Real-valued data run in float32 (rtol 1e-5 against a float64
reference on float64 copies) and float64; label arrays run over int8, int32, int64, uint8
and bool. Tails (logpdf at x = 1e3, an underflowing 100-d density), bad covariances,
argument errors, untouched and non-contiguous inputs and data far from zero close the file.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import mutual_info_score

import mlkernels as mk
from conftest import array_result, scalar_result, to_device, to_host
from mlkernels import reference

DTYPES = ("float32", "float64")
LABEL_DTYPES = ("int8", "int32", "int64", "uint8", "bool")
RTOL = {"float32": 1e-5, "float64": 1e-10}


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def dev(device, *arrays):
    return [to_device(a, device) for a in arrays]


def spd(d, rng, scale=1.0):
    a = rng.standard_normal((d, d))
    return scale * (a @ a.T / d + 0.5 * np.eye(d))


def distributions(shape, rng, zeros=True):
    p = rng.random(shape)
    if zeros:
        p[p < 0.2] = 0.0
    return p / p.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------
# Univariate Gaussian
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mu,sigma", [(0, 1), (1.5, 0.3), (-20.0, 7.0)])
def test_gaussian_pdf_logpdf_match_scipy(device, dtype, mu, sigma):
    """gaussian_pdf and gaussian_logpdf keep the dtype and shape and equal
    scipy.stats.norm(mu, sigma).pdf / .logpdf and the pdf formula, within |z| <= 4."""
    rng = rng_for("norm", dtype, mu, sigma)
    x = (mu + sigma * rng.uniform(-4, 4, (3, 37))).astype(dtype)
    x64 = x.astype("float64")
    xd = to_device(x, device)
    pdf = array_result(mk.gaussian_pdf(xd, mu, sigma), dtype, x.shape, device)
    logpdf = array_result(mk.gaussian_logpdf(xd, mu=mu, sigma=sigma), dtype, x.shape, device)
    np.testing.assert_allclose(pdf, stats.norm(mu, sigma).pdf(x64), rtol=RTOL[dtype])
    np.testing.assert_allclose(pdf, reference.gaussian_pdf(x64, mu, sigma), rtol=RTOL[dtype])
    np.testing.assert_allclose(
        logpdf, stats.norm(mu, sigma).logpdf(x64), rtol=RTOL[dtype], atol=RTOL[dtype]
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_defaults_tails_and_out(device, dtype):
    """Defaults mu=0, sigma=1; logpdf stays finite far in the tails (x = +-1e3, where the
    pdf underflows to 0); out= is written in place and returned."""
    x = np.array([-1e3, -40.0, 0.0, 1.0, 40.0, 1e3], dtype)
    logpdf = to_host(mk.gaussian_logpdf(to_device(x, device)))
    assert np.all(np.isfinite(logpdf))
    np.testing.assert_allclose(logpdf, stats.norm.logpdf(x.astype("float64")), rtol=RTOL[dtype])
    pdf = to_host(mk.gaussian_pdf(to_device(x, device)))
    np.testing.assert_allclose(pdf, stats.norm.pdf(x.astype("float64")), rtol=RTOL[dtype])
    assert pdf[0] == 0.0 and pdf[-1] == 0.0
    out = to_device(np.empty_like(x), device)
    got = mk.gaussian_pdf(to_device(x, device), 0.0, 2.0, out=out)
    assert got is out
    tiny = float(np.finfo(dtype).tiny)  # float32: 2.8e-88 underflows to 0
    want = stats.norm(0, 2).pdf(x.astype("float64"))
    np.testing.assert_allclose(to_host(out), want, rtol=RTOL[dtype], atol=tiny)


def test_gaussian_sigma_must_be_positive():
    """sigma <= 0 is a ValueError naming it."""
    for f in (mk.gaussian_pdf, mk.gaussian_logpdf):
        for sigma in (0.0, -1.0):
            with pytest.raises(ValueError, match="sigma"):
                f(np.zeros(3), 0.0, sigma)


# --------------------------------------------------------------------------------------
# Multivariate Gaussian
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 3, 16])
def test_mvn_matches_scipy(device, dtype, d):
    """mvn_pdf and mvn_logpdf equal scipy.stats.multivariate_normal for one point (a
    scalar) and for a batch (n,), keeping the dtype; the pdf equals the formula."""
    rng = rng_for("mvn", dtype, d)
    mu = rng.standard_normal(d)
    sigma = spd(d, rng)
    x = mu + rng.standard_normal((7, d)) * 0.5
    ref = stats.multivariate_normal(mu, sigma)
    x_t, mu_t, s_t = (a.astype(dtype) for a in (x, mu, sigma))
    xs, mus, ss = (a.astype("float64") for a in (x_t, mu_t, s_t))
    rtol = 1e-4 if dtype == "float32" else 1e-10  # the float32 Cholesky of a 16x16
    md, sd = dev(device, mu_t, s_t)
    one = scalar_result(mk.mvn_pdf(to_device(x_t[0], device), md, sd), dtype, device)
    assert one == pytest.approx(reference.mvn_pdf(xs[0], mus, ss), rel=rtol)
    assert one == pytest.approx(stats.multivariate_normal(mus, ss).pdf(xs[0]), rel=rtol)
    one = scalar_result(mk.mvn_logpdf(to_device(x_t[0], device), md, sd), dtype, device)
    assert one == pytest.approx(stats.multivariate_normal(mus, ss).logpdf(xs[0]), rel=rtol)
    batch = array_result(mk.mvn_pdf(to_device(x_t, device), md, sd), dtype, (7,), device)
    np.testing.assert_allclose(batch, stats.multivariate_normal(mus, ss).pdf(xs), rtol=rtol)
    batch = array_result(mk.mvn_logpdf(to_device(x_t, device), md, sd), dtype, (7,), device)
    np.testing.assert_allclose(batch, stats.multivariate_normal(mus, ss).logpdf(xs), rtol=rtol)
    if dtype == "float64":
        np.testing.assert_allclose(batch, ref.logpdf(x), rtol=1e-10)


@pytest.mark.parametrize("parallel", [False, True])
def test_mvn_many_points_span_blocks_and_chunks(parallel):
    """Points over two full chunks of blocks and a partial block (cpu.MVN_BLOCK points a
    block, MVN_CHUNK blocks a thread's turn), on the calling thread and on every thread:
    SciPy's log-density, and the same bits either way."""
    from mlkernels._core import cpu, threads

    rng = rng_for("mvn-many")
    d = 5
    n = 2 * cpu.MVN_BLOCK * cpu.MVN_CHUNK + 37
    mu, sigma = rng.standard_normal(d), spd(d, rng)
    x = mu + rng.standard_normal((n, d))
    want = stats.multivariate_normal(mu, sigma).logpdf(x)
    with threads.parallel_min(0 if parallel else 1 << 62):
        got = mk.mvn_logpdf(x, mu, sigma)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_array_equal(got, mk.mvn_logpdf(x, mu, sigma))


def test_mvn_logpdf_finite_where_pdf_underflows(device):
    """d = 100 with a small covariance and a distant point: the density underflows to 0
    (as SciPy's), the log-density is finite and equals SciPy's."""
    rng = rng_for("mvn-100")
    d = 100
    mu = np.zeros(d)
    sigma = spd(d, rng, scale=0.01)
    x = mu + 1.0 + 0.1 * rng.standard_normal((2, d))
    want = stats.multivariate_normal(mu, sigma).logpdf(x)
    assert np.all(want < -800) and np.all(stats.multivariate_normal(mu, sigma).pdf(x) == 0)
    md, sd = dev(device, mu, sigma)
    got = array_result(mk.mvn_logpdf(to_device(x, device), md, sd), "float64", (2,), device)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    np.testing.assert_array_equal(to_host(mk.mvn_pdf(to_device(x, device), md, sd)), [0.0, 0.0])


def test_mvn_rejects_bad_covariances():
    """A singular, a non-symmetric, an indefinite or a non-square Sigma is a ValueError."""
    mu, x = np.zeros(3), np.ones(3)
    singular = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    asymmetric = np.array([[2.0, 0.5, 0.0], [0.1, 2.0, 0.0], [0.0, 0.0, 2.0]])
    indefinite = np.diag([1.0, -1.0, 1.0])
    for f in (mk.mvn_pdf, mk.mvn_logpdf):
        for bad in (singular, asymmetric, indefinite, np.eye(3)[:, :2]):
            with pytest.raises(ValueError):
                f(x, mu, bad)


# --------------------------------------------------------------------------------------
# Maximum likelihood, entropy, cross-entropy, perplexity
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (33,), (4, 25)])
def test_gaussian_mle_is_the_formula(device, dtype, shape):
    """gaussian_mle is (x.mean(), x.var()) over all elements, scalars of the dtype."""
    rng = rng_for("mle", dtype, shape)
    x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(dtype)
    got = mk.gaussian_mle(to_device(x, device))
    assert isinstance(got, tuple) and len(got) == 2
    mean, var = (scalar_result(g, dtype, device) for g in got)
    want_mean, want_var = reference.gaussian_mle(x.astype("float64"))
    assert mean == pytest.approx(want_mean, rel=RTOL[dtype])
    assert var == pytest.approx(want_var, rel=RTOL[dtype], abs=1e-300)


def test_gaussian_mle_far_from_zero_float32(device):
    """1e6 + N(0, 1) in float32: the mean and the variance equal NumPy's float64 on float64
    copies (mean to 1e-7, var to 1e-5)."""
    rng = rng_for("mle-far")
    n = 200 if device == "gpu" else 100_000
    x = (1e6 + rng.standard_normal(n)).astype("float32")
    mean, var = (scalar_result(g, "float32", device) for g in mk.gaussian_mle(to_device(x, device)))
    want_mean, want_var = reference.gaussian_mle(x.astype("float64"))
    assert mean == pytest.approx(want_mean, rel=1e-7)
    assert var == pytest.approx(want_var, rel=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("base", [None, np.e, 2])
def test_entropy_matches_scipy_and_formula(device, dtype, base):
    """entropy of a 1-D distribution (zeros ignored) is a scalar, of an N-D array one value
    per row along the last axis, equal to scipy.stats.entropy(axis=-1) and the formula."""
    rng = rng_for("entropy", dtype, base)
    p = distributions((3, 4, 9), rng).astype(dtype)
    p64 = p.astype("float64")
    scale = 1.0 if base in (None, np.e) else np.log(base)
    kw = {} if base is None else {"base": base}
    one = scalar_result(mk.entropy(to_device(p[0, 0], device), **kw), dtype, device)
    assert one == pytest.approx(reference.entropy(p64[0, 0]) / scale, rel=RTOL[dtype])
    assert one == pytest.approx(stats.entropy(p64[0, 0], base=base), rel=max(RTOL[dtype], 1e-7))
    rows = array_result(mk.entropy(to_device(p, device), **kw), dtype, (3, 4), device)
    want = np.array([[reference.entropy(r) for r in m] for m in p64]) / scale
    np.testing.assert_allclose(rows, want, rtol=RTOL[dtype])
    # scipy renormalises each row; float32 rows sum to 1 only to ~1e-7
    np.testing.assert_allclose(rows, stats.entropy(p64, base=base, axis=-1), rtol=1e-5)


def test_entropy_bad_base():
    """base must be > 0 and != 1: ValueError naming it."""
    for base in (0.0, 1.0, -2.0):
        with pytest.raises(ValueError, match="base"):
            mk.entropy(np.array([0.5, 0.5]), base=base)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_is_the_formula(device, dtype):
    """cross_entropy is -sum p log(clip(q, eps, 1)) (zeros in q clipped), a scalar for
    1-D, one value per row for 2-D; base=2 divides by log 2; H(p, p) = H(p)."""
    rng = rng_for("xent", dtype)
    p = distributions((5, 11), rng).astype(dtype)
    q = distributions((5, 11), rng).astype(dtype)
    q[0, :3] = 0.0
    p64, q64 = p.astype("float64"), q.astype("float64")
    pd, qd = dev(device, p, q)
    rows = array_result(mk.cross_entropy(pd, qd), dtype, (5,), device)
    np.testing.assert_allclose(
        rows, [reference.cross_entropy(a, b) for a, b in zip(p64, q64, strict=True)], rtol=1e-5
    )
    rows = array_result(mk.cross_entropy(pd, qd, 1e-6, base=2), dtype, (5,), device)
    want = [reference.cross_entropy(a, b, 1e-6) / np.log(2) for a, b in zip(p64, q64, strict=True)]
    np.testing.assert_allclose(rows, want, rtol=RTOL[dtype] * 10)
    one = scalar_result(mk.cross_entropy(*dev(device, p[1], q[1])), dtype, device)
    assert one == pytest.approx(reference.cross_entropy(p64[1], q64[1]), rel=RTOL[dtype])
    same = scalar_result(mk.cross_entropy(*dev(device, p[2], p[2])), dtype, device)
    assert same == pytest.approx(reference.entropy(p64[2]), rel=RTOL[dtype])
    with pytest.raises(ValueError):
        mk.cross_entropy(p, q[:, :5])


@pytest.mark.parametrize("dtype", DTYPES)
def test_perplexity_is_the_formula(device, dtype):
    """perplexity = exp(-mean(log_probs)) in the dtype; uniform over V words gives V."""
    rng = rng_for("ppl", dtype)
    lp = np.log(rng.uniform(0.01, 1.0, 150)).astype(dtype)
    got = scalar_result(mk.perplexity(to_device(lp, device)), dtype, device)
    assert got == pytest.approx(reference.perplexity(lp.astype("float64")), rel=RTOL[dtype])
    uniform = np.full(64, -np.log(50.0), dtype)
    assert scalar_result(mk.perplexity(to_device(uniform, device)), dtype, device) == (
        pytest.approx(50.0, rel=RTOL[dtype])
    )


# --------------------------------------------------------------------------------------
# Mutual information
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["int64", "float64", "float32"])
def test_mutual_information_of_a_table(device, dtype):
    """mutual_information of counts equals sklearn's mutual_info_score(contingency=) and
    the KL formula; the probabilities (counts / sum) give the same; base=2 divides by log 2."""
    rng = rng_for("mi", dtype)
    counts = rng.integers(0, 20, (4, 6))
    counts[1, :] = 0  # an empty row: zero cells are skipped
    want = mutual_info_score(None, None, contingency=counts)
    assert want == pytest.approx(reference.mutual_information(counts), rel=1e-12)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    out = "float32" if dtype == "float32" else "float64"
    table = counts.astype(dtype)
    got = scalar_result(mk.mutual_information(to_device(table, device)), out, device)
    assert got == pytest.approx(want, rel=rtol)
    if dtype != "int64":
        probs = (counts / counts.sum()).astype(dtype)
        got = scalar_result(mk.mutual_information(to_device(probs, device)), out, device)
        assert got == pytest.approx(want, rel=rtol)
    got = scalar_result(mk.mutual_information(to_device(table, device), base=2), out, device)
    assert got == pytest.approx(want / np.log(2), rel=rtol)


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_mutual_information_labels_matches_sklearn(device, label_dtype):
    """mutual_information_labels(x, y) equals sklearn's mutual_info_score(x, y) for every
    label dtype (classes 0..3, or 0/1 for bool), with dependent labels."""
    rng = rng_for("mi-labels", label_dtype)
    c = 2 if label_dtype == "bool" else 4
    x = rng.integers(0, c, 150)
    y = np.where(rng.random(150) < 0.6, x, rng.integers(0, c, 150))
    xd, yd = dev(device, x.astype(label_dtype), y.astype(label_dtype))
    got = scalar_result(mk.mutual_information_labels(xd, yd), "float64", device)
    assert got == pytest.approx(mutual_info_score(x, y), rel=1e-12)
    got = scalar_result(mk.mutual_information_labels(xd, yd, base=2), "float64", device)
    assert got == pytest.approx(mutual_info_score(x, y) / np.log(2), rel=1e-12)


def test_mutual_information_labels_rejects_bad_labels():
    """Negative labels are a ValueError, float labels a TypeError, mismatched lengths a
    ValueError naming both arguments."""
    x = np.array([0, 1, 2, 1])
    with pytest.raises(ValueError):
        mk.mutual_information_labels(x, np.array([0, -1, 2, 1]))
    with pytest.raises(TypeError):
        mk.mutual_information_labels(x, np.array([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="(?s)(?=.*x).*y"):
        mk.mutual_information_labels(x, x[:3])


# --------------------------------------------------------------------------------------
# Arguments: errors, untouched and non-contiguous inputs
# --------------------------------------------------------------------------------------


def test_argument_errors():
    """Complex input: TypeError naming the argument; empty input to gaussian_mle and
    perplexity: ValueError; a mis-sized mu: ValueError."""
    z = np.ones(4, "complex128")
    for f, name in (
        (mk.gaussian_pdf, "x"),
        (mk.gaussian_mle, "x"),
        (mk.entropy, "p"),
        (mk.perplexity, "log_probs"),
    ):
        with pytest.raises(TypeError, match=name):
            f(z)
    with pytest.raises(TypeError, match="q"):
        mk.cross_entropy(np.ones(4) / 4, z)
    for f in (mk.gaussian_mle, mk.perplexity):
        with pytest.raises(ValueError):
            f(np.zeros(0))
    with pytest.raises(ValueError):
        mk.mvn_logpdf(np.ones(3), np.zeros(2), np.eye(3))


def test_inputs_untouched_and_strided(device):
    """No function modifies its inputs; step-2 slices give the values of their contiguous
    copies."""
    rng = rng_for("prob-strided")
    x = rng.standard_normal(120)
    p = distributions((6, 10), rng)
    q = distributions((6, 10), rng)
    joint = rng.integers(1, 9, (6, 8)).astype("float64")
    labels = rng.integers(0, 3, 120)
    host = (x, p, q, joint, labels)
    saved = [a.copy() for a in host]
    xd, pd, qd, jd, ld = dev(device, *host)
    calls = [
        (mk.gaussian_pdf, (xd[::2],), (x[::2],)),
        (mk.gaussian_logpdf, (xd[::2], 1.0, 2.0), (x[::2], 1.0, 2.0)),
        (mk.gaussian_mle, (xd[::2],), (x[::2],)),
        (mk.entropy, (pd[:, ::2],), (p[:, ::2],)),
        (mk.cross_entropy, (pd[::2], qd[::2]), (p[::2], q[::2])),
        (mk.perplexity, (xd[::2],), (x[::2],)),
        (mk.mutual_information, (jd[:, ::2],), (joint[:, ::2],)),
        (mk.mutual_information_labels, (ld[::2], ld[1::2]), (labels[::2], labels[1::2])),
    ]
    for f, strided, packed in calls:
        packed = [
            to_device(np.ascontiguousarray(a), device) if isinstance(a, np.ndarray) else a
            for a in packed
        ]
        a, b = f(*strided), f(*packed)
        a, b = (a, b) if isinstance(a, tuple) else ((a,), (b,))
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(to_host(u), to_host(v), err_msg=f.__name__)
    for d, h, s in zip((xd, pd, qd, jd, ld), host, saved, strict=True):
        np.testing.assert_array_equal(to_host(d), s)
        np.testing.assert_array_equal(h, s)
    rng2 = rng_for("mvn-strided")
    sigma, mu = spd(3, rng2), rng2.standard_normal(3)
    pts = rng2.standard_normal((8, 6))
    kept = (sigma.copy(), mu.copy(), pts.copy())
    got = to_host(mk.mvn_logpdf(to_device(pts, device)[:, ::2], *dev(device, mu, sigma)))
    np.testing.assert_allclose(got, stats.multivariate_normal(mu, sigma).logpdf(pts[:, ::2]))
    for a, b in zip((sigma, mu, pts), kept, strict=True):
        np.testing.assert_array_equal(a, b)
