"""Vectorisable transcendental functions for the CPU kernels.

llvmlite from PyPI has no SVML: ``math.exp`` in a numba loop is a scalar libm call and
stops SIMD. Each function ``f`` below (``exp, expm1, log, log1p, tanh, erf``) is, at once:

* plain Python (NumPy, errors ignored): what runs in the CUDA simulator and on the host;
* on the CPU target (``@njit``): a branch-free implementation (range reduction +
  minimax polynomial, exponent handling by integer operations on the bits), in the
  argument's own precision (float32 in float32, float64 in float64; integers as
  float64), that LLVM inlines and vectorises;
* on the CUDA target: CUDA's own ``math`` function.

``like(x, v)`` is the constant ``v`` in ``x``'s float type, so that scalar code written
once computes float32 data in float32 and float64 data in float64.

Branch-free: every range (tiny, normal, huge, special values) is computed and the answer
chosen by ternaries that LLVM turns into blends. NaN in gives NaN out; the special values
(+-0, +-inf, subnormals, overflow and underflow thresholds) are those of NumPy, and no
function warns or raises.

Floating-point flags: the CPU implementations are compiled with ``fastmath={"contract"}``
(FMA allowed) and ``error_model="numpy"``, whatever the calling kernel uses (explicit
overload ``jit_options`` are not inherited from the caller; its instructions keep their
flags after inlining). The kernels' ``reassoc`` could let LLVM fold the two-constant
(Cody-Waite) reductions and the Fast2Sum compensations below into the naive sums; LLVM 22
happened not to, but nothing guarantees it. ``ln2`` is split so that ``k * ln2_hi`` is
exact; ``llvm.rint`` rounds, ``llvm.fma`` gives exact products where one is needed.
numba inlines the implementations: nothing is called per element, and the loop
vectorises (4 float64 / 8 float32 lanes on AVX2, twice that with AVX-512).

Measured maximum error, in ulp of the exact result (float32 against float64 NumPy and
SciPy, float64 against the x86 80-bit long double; the samples of tests/test_vmath.py
plus 4e7 float32 and 8e6 float64 more, every binade and the thresholds, compiled with the
kernels' own flags; znver4, AVX-512). The tests assert <= 1 ulp (expm1 float64: 1.5).

========  =======  =======  ============================================================
function  float32  float64  method
========  =======  =======  ============================================================
exp       0.77     0.78     x = k ln2 + r, |r| <= ln2/2 (Cody-Waite, r's rounding error
                            kept); e^r = 1 + r + r^2 q(r), 1 + r by Fast2Sum; 2^k by
                            two exact multiplications (one rounding into subnormals:
                            0.65 ulp for normal results)
expm1     0.85     0.95     same reduction; (2^k - 1) + 2^k r by Fast2Sum (both exact),
                            plus 2^k (r^2 q(r) + error of r); e^x for large k
log       0.83     0.82     x = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)) by integer
                            operations (subnormals scaled first); log(1 + f) =
                            2 atanh(f / (2 + f)) (fdlibm), k ln2_hi + f by Fast2Sum
log1p     0.83     0.84     log of u = 1 + x, plus the exact rounding error of u over u
tanh      0.81     0.81     |x| < 0.625: x + x^3 P(x^2); above: 1 - 2 / (e^2|x| + 1),
                            e + 1 and 1 - w by Fast2Sum, the division corrected by fma
erf       0.85     0.91     |x| < 0.75: x + x P(x^2); < 1.35: erf(1) + s M(s), s = x - 1;
                            above: 1 - e^-x^2 N(s) / D(s), x^2 split exactly by fma
========  =======  =======  ============================================================

Coefficients: Remez (minimax, relative error) fits made with mpmath for this module;
the erfc rational by iteratively reweighted linearised least squares.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload, register_jitable

__all__ = ["erf", "exp", "expm1", "like", "log", "log1p", "single", "tanh"]


def like(x, v):
    """``v`` as a float of ``x``'s type (float32 for float32 ``x``, else float64)."""
    return x.dtype.type(v) if isinstance(x, np.floating) else float(v)


@overload(like)
def _like(x, v):
    if x == types.float32:
        return lambda x, v: np.float32(v)
    return lambda x, v: np.float64(v)


def single(x):
    """True for a float32 ``x`` (a constant in compiled code: the other branch is removed)."""
    return isinstance(x, np.float32)


@overload(single)
def _single(x):
    if x == types.float32:
        return lambda x: True
    return lambda x: False


def _numpy(ufunc):
    def f(x):
        with np.errstate(all="ignore"):
            return ufunc(x)

    return f


# --------------------------------------------------------------------------------------
# Building blocks: constants per precision, bit casts, fma/rint, Horner, 2^k scaling.
# --------------------------------------------------------------------------------------

# The CPU implementations' own flags (see the module docstring).
_CPU = {"fastmath": {"contract"}, "error_model": "numpy"}


def _pair(v):
    """A constant as (float32, float64): ``_k(x, pair)`` picks the one of x's type."""
    return (np.float32(v), float(v))


def _pairs(c32, c64):
    """Coefficient tuples, float32 and float64."""
    return (tuple(np.float32(v) for v in c32), tuple(float(v) for v in c64))


def _k(x, pair):
    """``pair[0]`` for float32 ``x``, ``pair[1]`` otherwise (in Python: by x's type)."""
    return pair[0] if isinstance(x, np.float32) else pair[1]


@overload(_k)
def _k_ol(x, pair):
    if x == types.float32:
        return lambda x, pair: pair[0]
    return lambda x, pair: pair[1]


_INT = {types.float32: types.int32, types.float64: types.int64}


@intrinsic
def _bits(typingctx, x):
    """The bits of a float as a signed integer of its width (bitcast)."""
    if x not in _INT:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(sig.return_type))

    return _INT[x](x), codegen


def _to_width(builder, v, ity):
    if v.type.width > ity.width:
        return builder.trunc(v, ity)
    if v.type.width < ity.width:
        return builder.sext(v, ity)
    return v


@intrinsic
def _from_bits(typingctx, i, ref):
    """The float of ``ref``'s type whose bits are ``i`` (truncated to the float's width)."""
    if ref not in _INT or not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = _to_width(builder, args[0], context.get_value_type(_INT[ref]))
        return builder.bitcast(v, context.get_value_type(ref))

    return ref(i, ref), codegen


@intrinsic
def _shr(typingctx, i, n, ref):
    """i >> n (arithmetic), at the integer width of ``ref``'s float. numba computes on
    int64; LLVM narrows +, -, &, << back to int32 for float32 data, but not >>."""
    if ref not in _INT or not isinstance(i, types.Integer) or not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ity = context.get_value_type(_INT[ref])
        v = _to_width(builder, args[0], ity)
        return builder.ashr(v, _to_width(builder, args[1], ity))

    return _INT[ref](i, n, ref), codegen


def _call_llvm(builder, name, args):
    """``llvm.<name>`` on floats of one type, with no fast-math flags: LLVM may not
    reassociate through it; it vectorises (vfmadd, vroundps)."""
    fty = args[0].type
    fnty = cgutils.ir.FunctionType(fty, [fty] * len(args))
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.{name}.{fty}")
    return builder.call(fn, args)


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c with one rounding."""
    if a not in _INT or b != a or c != a:
        return None
    return a(a, b, c), lambda context, builder, sig, args: _call_llvm(builder, "fma", args)


@intrinsic
def _rint(typingctx, x):
    """x rounded to the nearest integer (ties to even), as a float."""
    if x not in _INT:
        return None
    return x(x), lambda context, builder, sig, args: _call_llvm(builder, "rint", args)


def _for_floats(x, impl):
    """The CPU overload's implementation for x: ``impl`` in x's precision (float32 or
    float64), integers and booleans as float64; None (a typing error) otherwise."""
    if x in (types.float32, types.float64):
        return lambda x: impl(x)
    if isinstance(x, (types.Integer, types.Boolean)):
        return lambda x: impl(np.float64(x))
    return None


@register_jitable
def _poly(x, c):
    """``c[0] + c[1] x + c[2] x^2 + ...`` by Horner's rule."""
    n = len(c)
    p = c[n - 1]
    for i in range(n - 2, -1, -1):
        p = p * x + c[i]
    return p


_MAGIC = (np.float32(1.5 * 2.0**23), 1.5 * 2.0**52)  # x + M: x's integer part in the low bits
_BIAS = (127, 1023)
_MANT = (23, 52)


@register_jitable
def _int(kf):
    """An integral float (|kf| < 2^22) as an integer, with no float->int conversion (which
    AVX2 lacks for int64): the bits of kf + 1.5 * 2^mant minus those of 1.5 * 2^mant."""
    m = _k(kf, _MAGIC)
    return _bits(kf + m) - _bits(m)


@register_jitable
def _float(k, x):
    """An integer (|k| < 2^22) as a float of x's type, the other way round."""
    m = _k(x, _MAGIC)
    return _from_bits(k + _bits(m), x) - m


@register_jitable
def _pow2(k, x):
    """2^k as a float of x's type, for k within the normal exponents."""
    return _from_bits((k + _k(x, _BIAS)) << _k(x, _MANT), x)


@register_jitable
def _scale(p, kf):
    """p * 2^kf for an integral float kf up to twice the exponent range: two exact
    multiplications by normal powers of two, so one rounding (to a subnormal, or inf)."""
    k = _int(kf)
    k1 = _shr(k, 1, p)
    return p * _pow2(k1, p) * _pow2(k - k1, p)


# --------------------------------------------------------------------------------------
# exp
# --------------------------------------------------------------------------------------

exp = _numpy(np.exp)

_LOG2E = _pair(1.4426950408889634)
# ln 2 = _LN2_HI + _LN2_LO, _LN2_HI with trailing zero bits: k * _LN2_HI is exact
_LN2_HI = (np.float32(0.693145751953125), 0.6931471803691238)
_LN2_LO = (np.float32(1.4286068e-06), 1.9082149292705877e-10)
# e^r = 1 + r + r^2 q(r) on |r| <= 0.35 (fit relative to q)
_EXP_Q = _pairs(
    (0.5, 0.1666666716337204, 0.041666459292173386, 0.008333361707627773,
     0.0013934486778452992, 0.00019858127052430063),
    (0.5, 0.1666666666666667, 0.041666666666666616, 0.00833333333332558,
     0.0013888888888920338, 0.00019841269876754144, 2.480158724234785e-05,
     2.755725295723228e-06, 2.755735083925166e-07, 2.510622848868641e-08,
     2.088962472062017e-09),
)  # fmt: skip


@register_jitable
def _exp_reduce(x):
    """(kf, r, tail): x = kf ln2 + r', kf integral, e^r' - 1 = r + tail to far below
    r's ulp, |r| <= ln2/2 (+ rounding).

    Cody-Waite: x - kf ln2_hi is exact (exact product, Sterbenz); the rounding error of
    r = hi + lo is recovered by Fast2Sum and carried in the tail."""
    kf = _rint(x * _k(x, _LOG2E))
    hi = x - kf * _k(x, _LN2_HI)
    lo = -kf * _k(x, _LN2_LO)
    r = hi + lo
    c = (hi - r) + lo
    return kf, r, c + r * r * _poly(r, _k(x, _EXP_Q))


@register_jitable
def _exp(x):
    one = like(x, 1.0)
    hi = _k(x, (np.float32(89.0), 710.0))  # e^hi overflows
    lo = _k(x, (np.float32(-110.0), -750.0))  # e^lo underflows to 0
    x = hi if x > hi else x  # NaN stays NaN
    x = lo if x < lo else x
    kf, r, tail = _exp_reduce(x)
    s = one + r  # e^r = 1 + r + tail, with the rounding error of 1 + r kept (Fast2Sum)
    return _scale(s + (((one - s) + r) + tail), kf)


@overload(exp, target="cpu", jit_options=_CPU)
def _exp_cpu(x):
    return _for_floats(x, _exp)


@overload(exp, target="cuda")
def _exp_cuda(x):
    return lambda x: math.exp(x)


# --------------------------------------------------------------------------------------
# expm1
# --------------------------------------------------------------------------------------

expm1 = _numpy(np.expm1)


@register_jitable
def _expm1(x):
    one = like(x, 1.0)
    hi = _k(x, (np.float32(89.0), 710.0))
    lo = _k(x, (np.float32(-20.0), -40.0))  # e^x - 1 rounds to -1 below
    big = _k(x, (23, 52))  # 2^k - 1 is exact up to 2^(mantissa + 1)
    xc = hi if x > hi else x  # NaN stays NaN
    xc = lo if xc < lo else xc
    kf, r, tail = _exp_reduce(xc)
    k = _int(kf)
    # 2^k (1 + r + tail) - 1 = (t - 1) + t r + t tail, t = 2^k: t - 1 and t r are exact
    # and |t - 1| >= |t r|, so Fast2Sum keeps the error of their sum
    t = _pow2(k if k < big else big, x)
    a = t - one
    b = t * r
    s = a + b
    small = s + (((a - s) + b) + t * tail)
    # large k: 2^k (1 + r + tail - 2^-k), 2^-k (clamped, negligible there) in the tail
    p = one + r
    m = _pow2(-(k if k < big + big else big + big), x)
    large = _scale(p + ((((one - p) + r) + tail) - m), kf)
    y = small if k <= big else large
    tiny = _k(x, (np.float32(2.0**-25), 2.0**-54))  # e^x - 1 rounds to x (and -0.0 stays)
    return x if abs(x) < tiny else y


@overload(expm1, target="cpu", jit_options=_CPU)
def _expm1_cpu(x):
    return _for_floats(x, _expm1)


@overload(expm1, target="cuda")
def _expm1_cuda(x):
    return lambda x: math.expm1(x)


# --------------------------------------------------------------------------------------
# log
# --------------------------------------------------------------------------------------

log = _numpy(np.log)

_SQRT_HALF_BITS = (0x3F3504F3, 0x3FE6A09E667F3BCD)
_MIN_NORMAL = (np.float32(2.0**-126), 2.0**-1022)
# log(1 + f) = 2 atanh(s) = 2s + s z T(z), s = f / (2 + f), z = s^2 <= 0.0295
_LOG_T = _pairs(
    (0.6666666865348816, 0.4000012278556824, 0.28550708293914795, 0.23333440721035004),
    (0.666666666666667, 0.39999999999897856, 0.2857142862670241, 0.22222211018666313,
     0.18182897436920709, 0.15331449431530422, 0.14619770955464487),
)  # fmt: skip


@register_jitable
def _log_split(x):
    """(kf, f): x = 2^kf (1 + f), 1 + f in [sqrt(1/2), sqrt(2)), for positive normal x."""
    mant = _k(x, _MANT)
    ix = _bits(x)
    tmp = ix - _k(x, _SQRT_HALF_BITS)
    k = _shr(tmp, mant, x)
    z = _from_bits(ix - (k << mant), x)
    return _float(k, x), z - like(x, 1.0)


@register_jitable
def _log_core(kf, f, c):
    """kf ln2 + log(1 + f) + c, for |f| <= 0.42 and a small correction c.

    log(1 + f) = 2 atanh(s) = f - hfsq + s (hfsq + R), hfsq = f^2/2 (fdlibm); the big
    terms kf ln2_hi + f are added by Fast2Sum (exact product), the rest as a correction."""
    half = like(f, 0.5)
    s = f / (like(f, 2.0) + f)
    z = s * s
    R = z * _poly(z, _k(f, _LOG_T))
    hfsq = half * f * f
    lo = hfsq - (s * (hfsq + R) + (kf * _k(f, _LN2_LO) + c))
    big = kf * _k(f, _LN2_HI)
    hi = big + f
    return hi + (((big - hi) + f) - lo)


@register_jitable
def _log(x):
    zero = like(x, 0.0)
    inf = like(x, np.inf)
    sub = x < _k(x, _MIN_NORMAL)  # subnormal: scale into the normal range first
    xs = x * (_k(x, (np.float32(2.0**23), 2.0**52)) if sub else like(x, 1.0))
    kf, f = _log_split(xs)
    kf = kf - (_k(x, (np.float32(23.0), 52.0)) if sub else zero)
    y = _log_core(kf, f, zero)
    y = y if x < inf else inf
    y = y if x > zero else (-inf if x == zero else like(x, np.nan))  # NaN: NaN
    return y


@overload(log, target="cpu", jit_options=_CPU)
def _log_cpu(x):
    return _for_floats(x, _log)


@overload(log, target="cuda")
def _log_cuda(x):
    return lambda x: math.log(x)


# --------------------------------------------------------------------------------------
# log1p
# --------------------------------------------------------------------------------------

log1p = _numpy(np.log1p)


@register_jitable
def _log1p(x):
    one = like(x, 1.0)
    inf = like(x, np.inf)
    u = one + x
    # the rounding error of u, exactly (Fast2Sum), relative to u: log(1 + x) = log u + c
    err = ((one - u) + x) if x < one else ((x - u) + one)
    kf, f = _log_split(u)
    y = _log_core(kf, f, err / u)
    y = y if x < inf else inf
    y = y if x > -one else (-inf if x == -one else like(x, np.nan))  # NaN: NaN
    tiny = _k(x, (np.float32(2.0**-25), 2.0**-54))  # log1p(x) rounds to x (and -0.0 stays)
    return x if abs(x) < tiny else y


@overload(log1p, target="cpu", jit_options=_CPU)
def _log1p_cpu(x):
    return _for_floats(x, _log1p)


@overload(log1p, target="cuda")
def _log1p_cuda(x):
    return lambda x: math.log1p(x)


# --------------------------------------------------------------------------------------
# tanh
# --------------------------------------------------------------------------------------

tanh = _numpy(np.tanh)

# tanh(a) = a + a z P(z), z = a^2 <= 0.625^2
_TANH_P = _pairs(
    (-0.3333333432674408, 0.13333304226398468, -0.05395926535129547, 0.021768948063254356,
     -0.008344029076397419, 0.0022928304970264435),
    (-0.3333333333333333, 0.13333333333333042, -0.053968253967897235, 0.021869488519017957,
     -0.008863235103437709, 0.003592121753498202, -0.00145577542944432,
     0.0005896607407424848, -0.00023759090384681855, 9.257164516594964e-05,
     -3.120162193639799e-05, 6.485405314562026e-06),
)  # fmt: skip


@register_jitable
def _tanh(x):
    one = like(x, 1.0)
    a = abs(x)
    z = a * a
    small = a + a * z * _poly(z, _k(x, _TANH_P))
    # 1 - w, w = 2 / (e + 1), e = e^2a; e + 1 and 1 - w by Fast2Sum, the division's
    # residual by fma: only the rounding of e and the final one remain
    cap = _k(x, (np.float32(10.0), 20.0))  # tanh rounds to 1 above
    b = cap if a > cap else a  # NaN stays NaN
    e = _exp(b + b)
    d = e + one
    dl = (e - d) + one
    w = like(x, 2.0) / d
    dw = (_fma(-w, d, like(x, 2.0)) - w * dl) * (w * like(x, 0.5))  # 2/(d + dl) - w
    t = one - w
    large = t + (((one - t) - w) - dw)
    y = small if a < like(x, 0.625) else large  # NaN: large, NaN
    return math.copysign(y, x)  # odd; -0.0 stays


@overload(tanh, target="cpu", jit_options=_CPU)
def _tanh_cpu(x):
    return _for_floats(x, _tanh)


@overload(tanh, target="cuda")
def _tanh_cuda(x):
    return lambda x: math.tanh(x)


# --------------------------------------------------------------------------------------
# erf
# --------------------------------------------------------------------------------------


def erf(x):
    return math.erf(x)


# erf(a) = a + a P(a^2) for a < 0.75 (P(0) = 2/sqrt(pi) - 1: erf(a) rounds once)
_ERF_P = _pairs(
    (0.12837916612625122, -0.3761261999607086, 0.11283376812934875, -0.026834623888134956,
     0.00511434581130743, -0.0006749514141120017),
    (0.1283791670955126, -0.37612638903183715, 0.11283791670952481, -0.026866170644402474,
     0.005223977615122227, -0.0008548326169086416, 0.00012055288777023641,
     -1.4924176632563386e-05, 1.6430388154080116e-06, -1.593759958127879e-07,
     1.1463756548022862e-08),
)  # fmt: skip
# erf(1 + s) = erf(1) + s M(s) for -0.25 <= s < 0.35; erf(1) = _ERF1_HI + _ERF1_LO
_ERF_M = _pairs(
    (0.41510751843452454, -0.41510751843452454, 0.13836395740509033, 0.06919292360544205,
     -0.06897138059139252, 0.004212793428450823, 0.012860707938671112),
    (0.4151074974205947, -0.41510749742059466, 0.13836916580686404, 0.06918458290341072,
     -0.06918458290322485, 0.004612305529341318, 0.015154718140340471,
     -0.004777030835418802, -0.0018851874837339507, 0.0012262896774292242,
     8.550314579794182e-05, -0.00020006238431461156, 1.8956993716162897e-05,
     2.3473398330485943e-05, -6.493602301021071e-06),
)  # fmt: skip
_ERF1_HI = (np.float32(0.8427007794380188), 0.8427007929497149)
_ERF1_LO = (np.float32(1.35116957622472e-08), -2.4801011789118602e-17)
# erfc(a) e^(a^2) = N(s) / D(s), s = a - 1, 1 <= a <= 4 (float32) or 6 (float64)
_ERFC_N = _pairs(
    (0.42758357524871826, 0.38794589042663574, 0.1369580328464508, 0.018284233286976814),
    (0.427583576155807, 0.7201300333339721, 0.5580292012209875, 0.2551623820461556,
     0.07405587926653719, 0.013631451652730567, 0.001475941297183242,
     7.281757282415124e-05),
)  # fmt: skip
_ERFC_D = _pairs(
    (1.0, 1.5462658405303955, 0.9472887516021729, 0.2750834822654724, 0.032411906868219376),
    (1.0, 2.3231529542096045, 2.428463105284207, 1.4950197706621455, 0.5942970837964513,
     0.15666520397161507, 0.02684169142708635, 0.0027451035577033037,
     0.0001290657885801273),
)  # fmt: skip


@register_jitable
def _erf(x):
    one = like(x, 1.0)
    a = abs(x)
    small = a + a * _poly(a * a, _k(x, _ERF_P))
    s = a - one
    mid = _k(x, _ERF1_HI) + (_k(x, _ERF1_LO) + s * _poly(s, _k(x, _ERF_M)))
    top = _k(x, (np.float32(4.0), 6.0))  # erf rounds to 1 above
    b = top if a > top else a  # NaN stays NaN
    h = b * b
    e = _exp(-h) * (one - _fma(b, b, -h))  # e^-(b^2), b^2 = h + (rounding error of h)
    s = b - one
    large = one - e * (_poly(s, _k(x, _ERFC_N)) / _poly(s, _k(x, _ERFC_D)))
    y = mid if a < like(x, 1.35) else large  # NaN: large, NaN
    y = small if a < like(x, 0.75) else y
    return math.copysign(y, x)  # odd; -0.0 stays


@overload(erf, target="cpu", jit_options=_CPU)
def _erf_cpu(x):
    return _for_floats(x, _erf)


@overload(erf, target="cuda")
def _erf_cuda(x):
    return lambda x: math.erf(x)
