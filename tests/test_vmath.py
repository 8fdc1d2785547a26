"""The vectorised math module, ``mlkernels._core.vmath``, on the CPU: accuracy, special values,
precision and vectorisation.

Every function runs in a ``prange`` kernel compiled by ``mlkernels._core.jit.cpu_jit`` (the
kernels' own flags, ``reassoc`` and ``contract`` included; the on-disk cache is turned off
so that an edit of ``_vmath`` is always what is tested).

* float32: >= 1e7 points per function: random bit patterns over the function's domain
  (every binade, subnormals included), uniform samples over the range where the reduction
  changes, and the special values, thresholds and their neighbours. Reference: float64
  NumPy (SciPy for erf); the error is in float32 ulp of the reference.
* float64: >= 1e6 points per function, the same kinds, against the x86 80-bit long double
  (64-bit mantissa; erf by its everywhere-convergent series in long double); where
  ``np.longdouble`` is no wider than float64, 2e4 points per function against mpmath.
* The special values are asserted exactly (NaN, +-inf, +-0 and the sign of zero, tiny
  arguments, overflow and underflow), with warnings turned into errors.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
import zlib

import numpy as np
import pytest
from numba import njit, prange, types
from numba.core.caching import NullCache
from numba.np.numpy_support import from_dtype

from mlkernels._core import vmath as vm
from mlkernels._core.jit import FASTMATH, cpu_jit

NAMES = ("exp", "expm1", "log", "log1p", "tanh", "erf")

# Asserted bounds, in ulp (the measured maxima are in _vmath's docstring).
MAX_ULP = {
    "float32": {"exp": 1.0, "expm1": 1.0, "log": 1.0, "log1p": 1.0, "tanh": 1.0, "erf": 1.0},
    "float64": {"exp": 1.0, "expm1": 1.5, "log": 1.0, "log1p": 1.0, "tanh": 1.0, "erf": 1.0},
}

F32_POINTS = 10_000_000
F64_POINTS = 1_000_000
LONG_DOUBLE = np.finfo(np.longdouble).nmant >= 63


@functools.cache
def kernel(name):
    f = getattr(vm, name)

    def apply(x, out):
        for i in prange(x.size):
            out[i] = f(x[i])

    k = cpu_jit(apply)
    k._cache = NullCache()  # a cache keyed on this file would outlive an edit of _vmath
    return k


def run(name, x):
    out = np.empty_like(x)
    kernel(name)(x, out)
    return out


# --------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------

# (largest |x| of the bit-pattern samples, negative arguments too?, uniform range)
DOMAIN = {
    "float32": {
        "exp": (120.0, True, (-104.0, 89.0)),
        "expm1": (120.0, True, (-20.0, 89.0)),
        "log": (np.inf, False, (0.0, 4.0)),
        "log1p": (np.inf, True, (-1.0, 4.0)),
        "tanh": (30.0, True, (-10.0, 10.0)),
        "erf": (30.0, True, (-4.5, 4.5)),
    },
    "float64": {
        "exp": (800.0, True, (-746.0, 710.0)),
        "expm1": (800.0, True, (-40.0, 710.0)),
        "log": (np.inf, False, (0.0, 4.0)),
        "log1p": (np.inf, True, (-1.0, 4.0)),
        "tanh": (40.0, True, (-20.0, 20.0)),
        "erf": (30.0, True, (-6.5, 6.5)),
    },
}

# Thresholds whose neighbours are sampled: overflow, underflow, range switches.
EDGES = {
    "float32": {
        "exp": (88.72283, 88.72284, -87.33654, -103.27893, -103.97208, -104.0),
        "expm1": (88.72283, 88.72284, -17.32868, 2.0**-25, -(2.0**-25), 0.3465736),
        "log": (1.0, 2.0**-126, 2.0**-149, 3.4028235e38, 0.70710677, 1.4142135),
        "log1p": (-1.0, -0.5, 1.0, 2.0**-25, -(2.0**-25), 2.0**24),
        "tanh": (0.625, -0.625, 9.01, 2.0**-12),
        "erf": (1.0, -1.0, 3.92, 4.0, 2.0**-12),
    },
    "float64": {
        "exp": (709.782712893384, -708.3964185322641, -744.4400719213812, -745.1332191019412),
        "expm1": (709.782712893384, -38.0, 2.0**-54, -(2.0**-54), 0.34657359027997264),
        "log": (1.0, 2.0**-1022, 5e-324, 1.7976931348623157e308, 0.7071067811865476),
        "log1p": (-1.0, -0.5, 1.0, 2.0**-54, -(2.0**-54), 2.0**53),
        "tanh": (0.625, -0.625, 19.06, 2.0**-27),
        "erf": (1.0, -1.0, 5.92, 6.0, 2.0**-27),
    },
}

SPECIAL_X = (0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0, 0.5)


def neighbours(dtype, values, k=4):
    """Each value and its k nearest floats on either side."""
    out = []
    with np.errstate(over="ignore"):
        return _neighbours(dtype, values, k, out)


def _neighbours(dtype, values, k, out):
    dtype = np.dtype(dtype).type
    for v in np.asarray(values, dtype):
        w = v
        up = [w := np.nextafter(w, dtype(np.inf)) for _ in range(k)]
        w = v
        down = [w := np.nextafter(w, dtype(-np.inf)) for _ in range(k)]
        out += [v, *up, *down]
    return np.array(out, dtype)


def samples(name, dtype, n):
    dtype = np.dtype(dtype).type
    top, negative, (lo, hi) = DOMAIN[dtype.__name__][name]
    itype = np.int32 if dtype is np.float32 else np.int64
    rng = np.random.default_rng(zlib.crc32(f"{name} {dtype.__name__}".encode()))
    fi = np.finfo(dtype)
    top_bits = np.array(min(top, fi.max), dtype).view(itype)
    bits = rng.integers(1, int(top_bits) + 1, n // 2, dtype=itype)  # every binade
    x_bits = bits.view(dtype)
    if negative:
        sign = rng.integers(0, 2, x_bits.size).astype(bool)
        x_bits = np.where(sign, -x_bits, x_bits)
    x_lin = rng.uniform(lo, hi, n // 2).astype(dtype)
    special = np.concatenate(
        [
            neighbours(dtype, EDGES[dtype.__name__][name]),
            neighbours(dtype, [fi.max, fi.smallest_normal, fi.smallest_subnormal], 2),
            -neighbours(dtype, [fi.max, fi.smallest_normal, fi.smallest_subnormal], 2),
            np.array(SPECIAL_X, dtype),
        ]
    )
    return np.concatenate([x_bits, x_lin, special]).astype(dtype)


# --------------------------------------------------------------------------------------
# References and the error in ulp
# --------------------------------------------------------------------------------------


def erf_longdouble(x):
    """erf in long double: 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (1 3 5 ... (2n+1)),
    positive terms (no cancellation) for every x; 1 beyond |x| = 6.5."""
    ld = np.longdouble
    a = np.minimum(np.abs(x.astype(ld)), ld(6.5))
    a2 = a * a
    term = a.copy()
    total = a.copy()
    for n in range(400):
        term *= 2 * a2 / ld(2 * n + 3)
        total += term
        if not np.any(term > total * ld(1e-22)):
            break
    two_over_sqrt_pi = ld(2) / np.sqrt(ld(np.pi) + ld(np.pi - float(np.pi)))
    y = two_over_sqrt_pi * np.exp(-a2) * total
    y = np.where(np.abs(x) > 6.5, ld(1), y)
    return np.where(np.isnan(x), ld(np.nan), np.copysign(y, x.astype(ld)))


def reference(name, x):
    """The exact value, in a wider type: float64 for float32 x, long double for float64."""
    if x.dtype == np.float32:
        w = x.astype(np.float64)
        if name == "erf":
            from scipy import special

            return special.erf(w)
        with np.errstate(all="ignore"):
            return getattr(np, name)(w)
    w = x.astype(np.longdouble)
    if name == "erf":
        return erf_longdouble(x)
    with np.errstate(all="ignore"):
        return getattr(np, name)(w)


def ulp_error(y, ref, dtype):
    """|y - ref| in ulp of ref in ``dtype`` (subnormal ulp below the normal range); inf
    counts as 2^emax, so that overflow near the threshold is measured too. NaN: 0 where
    both are NaN, inf where only one is."""
    fi = np.finfo(dtype)
    wide = ref.dtype.type
    big = np.ldexp(wide(1), fi.maxexp)
    r = np.clip(ref, -big, big)
    yw = np.clip(y.astype(wide), -big, big)
    _, e = np.frexp(np.abs(r))
    ulp = np.ldexp(wide(1), np.maximum(e, fi.minexp + 1) - 1 - fi.nmant)
    with np.errstate(invalid="ignore"):
        err = np.abs(yw - r) / ulp
    both_nan = np.isnan(y) & np.isnan(ref)
    err = np.where(both_nan, 0, err)
    return np.where(np.isnan(err), np.inf, err).astype(np.float64)


def measure(name, dtype, n):
    x = samples(name, dtype, n)
    y = run(name, x)
    err = ulp_error(y, reference(name, x), dtype)
    i = int(np.argmax(err))
    return float(err[i]), x[i], y.size


@pytest.mark.parametrize("name", NAMES)
def test_float32_max_ulp(name):
    worst, at, count = measure(name, np.float32, F32_POINTS)
    assert count >= F32_POINTS
    assert worst <= MAX_ULP["float32"][name], f"{name}: {worst:.3f} ulp at x = {at!r}"


@pytest.mark.skipif(not LONG_DOUBLE, reason="np.longdouble is not the x86 80-bit format")
@pytest.mark.parametrize("name", NAMES)
def test_float64_max_ulp(name):
    worst, at, count = measure(name, np.float64, F64_POINTS)
    assert count >= F64_POINTS
    assert worst <= MAX_ULP["float64"][name], f"{name}: {worst:.3f} ulp at x = {at!r}"


@pytest.mark.skipif(LONG_DOUBLE, reason="the long double test above covers more points")
@pytest.mark.parametrize("name", NAMES)
def test_float64_max_ulp_mpmath(name):
    """Where there is no wider long double: fewer points, against mpmath."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 120
    x = samples(name, np.float64, 20_000)
    y = run(name, x)
    worst = 0.0
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
        if math.isnan(xi) or math.isinf(xi):
            continue
        if (name == "log" and xi < 0) or (name == "log1p" and xi < -1):
            assert math.isnan(yi)
            continue
        exact = getattr(mpmath, name)(mpmath.mpf(xi))  # log(0), log1p(-1): -inf
        if mpmath.isinf(exact) or math.isinf(yi):
            assert yi == exact or abs(exact) > 1.79e308, (name, xi, yi)
            continue
        e = max(mpmath.frexp(exact)[1], -1021)
        worst = max(worst, float(abs(mpmath.mpf(yi) - exact) / mpmath.ldexp(1, e - 53)))
    assert 0 < worst <= MAX_ULP["float64"][name], f"{name}: {worst:.3f} ulp"


@pytest.mark.skipif(not LONG_DOUBLE, reason="np.longdouble is not the x86 80-bit format")
def test_erf_reference_against_math_erf():
    """The long double erf series agrees with libm's float64 erf to within its rounding."""
    x = np.random.default_rng(1).uniform(-7, 7, 20_000)
    ref = erf_longdouble(x)
    libm = np.array([math.erf(v) for v in x])
    assert np.max(ulp_error(libm, ref, np.float64)) <= 1.0


# --------------------------------------------------------------------------------------
# Special values, exactly
# --------------------------------------------------------------------------------------

INF, NAN = np.inf, np.nan
TINY = {"float32": 2.0**-30, "float64": 2.0**-60}  # e^x - 1, log1p, tanh round to x
SUB = {"float32": 2.0**-140, "float64": 2.0**-1070}  # a subnormal

SPECIALS = {
    "exp": [(0.0, 1.0), (-0.0, 1.0), (INF, INF), (-INF, 0.0), (NAN, NAN),
            ("overflow", INF), ("underflow", 0.0)],
    "expm1": [(0.0, 0.0), (-0.0, -0.0), (INF, INF), (-INF, -1.0), (NAN, NAN),
              ("tiny", "x"), ("-tiny", "x"), ("sub", "x"), ("overflow", INF), (-1000.0, -1.0)],
    "log": [(0.0, -INF), (-0.0, -INF), (-1.0, NAN), (-INF, NAN), (INF, INF), (NAN, NAN),
            (1.0, 0.0), (2.0, math.log(2.0)), ("-sub", NAN)],
    "log1p": [(0.0, 0.0), (-0.0, -0.0), (-1.0, -INF), (-2.0, NAN), (-INF, NAN), (INF, INF),
              (NAN, NAN), ("tiny", "x"), ("-tiny", "x"), ("sub", "x")],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (NAN, NAN), (40.0, 1.0),
             (-40.0, -1.0), ("tiny", "x"), ("-tiny", "x"), ("sub", "x")],
    "erf": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (NAN, NAN), (10.0, 1.0),
            (-10.0, -1.0)],
}  # fmt: skip


def _special_x(v, dtype):
    named = {
        "tiny": TINY[dtype],
        "-tiny": -TINY[dtype],
        "sub": SUB[dtype],
        "-sub": -SUB[dtype],
        "overflow": 89.0 if dtype == "float32" else 710.0,
        "underflow": -104.0 if dtype == "float32" else -746.0,
    }
    return named.get(v, v)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_special_values(name, dtype):
    cases = SPECIALS[name]
    x = np.array([_special_x(v, dtype) for v, _ in cases], dtype)
    want = np.array([xi if w == "x" else w for xi, (_, w) in zip(x, cases, strict=True)], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = run(name, x)
    assert y.dtype == np.dtype(dtype)
    for xi, yi, wi in zip(x, y, want, strict=True):
        if np.isnan(wi):
            assert np.isnan(yi), f"{name}({xi!r}) = {yi!r}, want NaN"
        else:
            assert yi == wi and np.signbit(yi) == np.signbit(wi), (
                f"{name}({xi!r}) = {yi!r}, want {wi!r}"
            )


THRESHOLDS = {  # exp: the largest x with a finite result, the smallest with a nonzero one
    "float32": (88.72283, -103.97208),
    "float64": (709.782712893384, -745.1332191019411),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exp_overflow_and_gradual_underflow(dtype):
    """inf exactly past the overflow threshold, 0 exactly past the underflow one, and the
    subnormal range in between reached (not flushed to zero), monotonically."""
    fi = np.finfo(dtype)
    over, under = (np.dtype(dtype).type(v) for v in THRESHOLDS[dtype])
    x = np.sort(
        np.concatenate(
            [
                np.linspace(under - 5, over + 5, 100_001).astype(dtype),
                neighbours(dtype, [over, under], 16),
            ]
        )
    )
    y = run("exp", x)
    with np.errstate(over="ignore"):
        rounded = reference("exp", x).astype(dtype)
    assert np.array_equal(np.isinf(y), np.isinf(rounded)), "overflow threshold"
    assert np.array_equal(y == 0, rounded == 0), "underflow threshold"
    assert np.all(np.isfinite(y[x <= over])) and np.all(np.isinf(y[x > over]))
    assert np.all(y[x >= under] > 0) and np.all(y[x < under] == 0)
    assert np.count_nonzero((y > 0) & (y < fi.smallest_normal)) > 1000
    assert np.all(y[1:] >= y[:-1])


# --------------------------------------------------------------------------------------
# Precision, integers and vectorisation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32(name):
    f = getattr(vm, name)
    scalar = njit(fastmath=set(FASTMATH), error_model="numpy")(lambda x: f(x))
    assert scalar(np.float32(0.5)) == run(name, np.array([0.5], np.float32))[0]
    assert scalar.nopython_signatures[0].return_type == types.float32
    assert run(name, np.array([0.5], np.float32)).dtype == np.float32


@pytest.mark.parametrize("name", NAMES)
def test_integers_as_float64(name):
    f = getattr(vm, name)
    scalar = njit(lambda n: f(n))
    assert scalar(2) == run(name, np.array([2.0]))[0]
    assert scalar.nopython_signatures[0].return_type == types.float64


def _asm(lib, seen):
    """The assembly of a compiled library and of those it links (the prange body)."""
    if id(lib) in seen:
        return ""
    seen.add(id(lib))
    return lib.get_asm_str() + "".join(_asm(d, seen) for d in lib._linking_libraries)


LIBM = re.compile(r"\$(exp|expm1|log|log1p|tanh|erf)f?\b")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_vectorised(name, dtype):
    """The prange loop is SIMD (256- or 512-bit registers) and calls no libm function."""
    run(name, np.ones(64, dtype))
    k = kernel(name)
    sig = next(s for s in k.signatures if s[0].dtype == from_dtype(np.dtype(dtype)))
    asm = _asm(k.overloads[sig].library, set())
    assert re.search(r"%[yz]mm\d", asm), "no 256/512-bit vector instruction"
    assert re.search(r"\bv\w+p[sd]\s+.*%[yz]mm", asm), "no packed float operation"
    assert not LIBM.search(asm), LIBM.search(asm).group(0)
