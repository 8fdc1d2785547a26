"""Independent references for issue 3's functions (activations, regularisation,
normalisation), written for the tests; nothing here calls mlkernels (the names of the
functions checked come from its declarations).

Four kinds of oracle, all computed in float64 (float32 test data is cast to float64
first, so a float32 result is compared with the exact-ish answer for the float32 data):

* ``np_*``: the NumPy formulas of ml_formulas.txt, verbatim ("Activation Functions" and
  "Regularisation"), evaluated with floating-point warnings silenced. Numerically broken
  at the extremes (``sigmoid(-1000)`` overflows, ``mish(1000)`` is NaN...), so only used
  on ordinary data.
* ``torch_*``: PyTorch CPU functions in float64 (torch.sigmoid, torch.tanh, F.relu,
  F.leaky_relu, F.elu, F.selu, F.gelu(approximate="tanh"), F.silu, F.mish,
  torch.softmax / log_softmax, F.batch_norm(training=True), F.layer_norm) and their
  autograd derivatives (elementwise derivatives, vector-Jacobian products along the last
  axis for the softmaxes, (dx, dgamma, dbeta) for the norms).
* ``mp_*``: elementwise functions and derivatives evaluated with mpmath at 40 significant
  digits, in forms without cancellation, then rounded to float64: exact references at the
  extremes (±1000, ±1e4) where both NumPy and torch lose accuracy or overflow.
* ``an_*``: analytic NumPy derivatives that the formula file does not give (the softmax
  VJPs, the norms' backward pass), written from the math for a second opinion.

Plus the test data generators and a comparison helper that understands NaN, ±inf and the
float32 / float64 tolerances of the contract.
"""

from __future__ import annotations

import math
from functools import wraps

import mpmath
import numpy as np
import torch
import torch.nn.functional as F

from mlkernels._core.spec import FORMULAS

SELU_ALPHA = 1.6732632423543772
SELU_LAMBDA = 1.0507009873554805
GELU_K = 0.044715

# the activations with a derivative, elementwise and along the last axis, as declared
_DECLARED = [f for f in FORMULAS.values() if f.family == "activations" and f.derivative]
ELEMENTWISE = tuple(f.name for f in _DECLARED if f.layout == "flat")
ROWWISE = tuple(f.name for f in _DECLARED if f.layout == "rows")
# hyper-parameters of the elementwise activations, with the formulas' defaults (a fact of
# ml_formulas.txt, kept here independently of the declarations it checks)
HYPER = {"leaky_relu": {"alpha": 0.01}, "elu": {"alpha": 1.0}}

EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}


def _quiet(f):
    @wraps(f)
    def g(*args, **kwargs):
        with np.errstate(all="ignore"):
            return f(*args, **kwargs)

    return g


def f64(x) -> np.ndarray:
    """A float64 copy (the oracles never alias test data)."""
    return np.array(x, dtype=np.float64)


# --------------------------------------------------------------------------------------
# The NumPy formulas, verbatim (ml_formulas.txt)
# --------------------------------------------------------------------------------------


@_quiet
def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


@_quiet
def np_sigmoid_grad(x):
    s = np_sigmoid(x)
    return s * (1 - s)


@_quiet
def np_tanh(x):
    return np.tanh(x)


@_quiet
def np_tanh_grad(x):
    return 1 - np.tanh(x) ** 2


@_quiet
def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@_quiet
def np_log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@_quiet
def np_relu(x):
    return np.maximum(0, x)


@_quiet
def np_relu_grad(x):
    return (x > 0).astype(float)


@_quiet
def np_leaky_relu(x, alpha=0.01):
    return np.where(x > 0, x, alpha * x)


@_quiet
def np_elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * (np.exp(x) - 1))


@_quiet
def np_selu(x):
    return SELU_LAMBDA * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1))


@_quiet
def np_gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


@_quiet
def np_swish(x):
    return x * np_sigmoid(x)


@_quiet
def np_mish(x):
    return x * np.tanh(np.log1p(np.exp(x)))


@_quiet
def np_l2_loss(weights, lam=1e-4):
    return lam * np.sum(weights**2)


@_quiet
def np_l2_grad(weights, lam=1e-4):
    return 2 * lam * weights


@_quiet
def np_l1_loss(weights, lam=1e-4):
    return lam * np.sum(np.abs(weights))


@_quiet
def np_l1_grad(weights, lam=1e-4):
    return lam * np.sign(weights)


@_quiet
def np_elastic_net(weights, lam1=1e-4, lam2=1e-4):
    return lam1 * np.sum(np.abs(weights)) + lam2 * np.sum(weights**2)


@_quiet
def np_max_norm(W, c=3.0):
    norms = np.linalg.norm(W, axis=0, keepdims=True)
    return W * np.minimum(1, c / (norms + 1e-8))


@_quiet
def np_batch_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, mu, var, x_hat


@_quiet
def np_layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta


NP_VALUE = {
    "sigmoid": np_sigmoid,
    "tanh": np_tanh,
    "relu": np_relu,
    "leaky_relu": np_leaky_relu,
    "elu": np_elu,
    "selu": np_selu,
    "gelu": np_gelu,
    "swish": np_swish,
    "mish": np_mish,
    "softmax": np_softmax,
    "log_softmax": np_log_softmax,
}
# the derivatives the formula file writes out
NP_GRAD = {"sigmoid": np_sigmoid_grad, "tanh": np_tanh_grad, "relu": np_relu_grad}


def np_value(name, x, **hyper):
    return NP_VALUE[name](f64(x), **hyper)


# --------------------------------------------------------------------------------------
# PyTorch (float64, autograd)
# --------------------------------------------------------------------------------------


def _torch_fn(name, hyper):
    if name == "sigmoid":
        return torch.sigmoid
    if name == "tanh":
        return torch.tanh
    if name == "relu":
        return F.relu
    if name == "leaky_relu":
        return lambda t: F.leaky_relu(t, negative_slope=hyper.get("alpha", 0.01))
    if name == "elu":
        return lambda t: F.elu(t, alpha=hyper.get("alpha", 1.0))
    if name == "selu":
        return F.selu
    if name == "gelu":
        return lambda t: F.gelu(t, approximate="tanh")
    if name == "swish":
        return F.silu
    if name == "mish":
        return F.mish
    if name == "softmax":
        return lambda t: torch.softmax(t, dim=-1)
    if name == "log_softmax":
        return lambda t: torch.log_softmax(t, dim=-1)
    raise KeyError(name)


def torch_value_and_grad(name, x, **hyper):
    """Elementwise activation: (f(x), f'(x)) from torch in float64 (the derivative is
    autograd's, NaN where x is NaN: torch's relu-like masks turn NaN into 0 / alpha, the
    contract says NaN in, NaN out)."""
    t = torch.tensor(f64(x), requires_grad=True)
    y = _torch_fn(name, hyper)(t)
    (g,) = torch.autograd.grad(y.sum(), t)
    g = g.numpy().copy()
    g[np.isnan(f64(x))] = np.nan
    return y.detach().numpy().copy(), g


def torch_softmax_vjp(name, x, dy):
    """(softmax(x) or log_softmax(x), the VJP dy^T J) along the last axis, from autograd."""
    t = torch.tensor(f64(x), requires_grad=True)
    y = _torch_fn(name, {})(t)
    (g,) = torch.autograd.grad(y, t, grad_outputs=torch.tensor(f64(dy)))
    return y.detach().numpy().copy(), g.numpy().copy()


def torch_batch_norm(x, gamma, beta, dy, eps=1e-5):
    """(y, dx, dgamma, dbeta) of F.batch_norm(training=True), statistics over axis 0 of x
    (x flattened to (n, features) so that every trailing position is its own feature, as
    the formula's x.mean(axis=0))."""
    x = f64(x)
    n, fshape = x.shape[0], x.shape[1:]
    nf = int(np.prod(fshape))
    tx = torch.tensor(x.reshape(n, nf), requires_grad=True)
    tg = torch.tensor(f64(gamma).reshape(nf), requires_grad=True)
    tb = torch.tensor(f64(beta).reshape(nf), requires_grad=True)
    y = F.batch_norm(tx, None, None, weight=tg, bias=tb, training=True, eps=eps)
    dx, dg, db = torch.autograd.grad(
        y, (tx, tg, tb), grad_outputs=torch.tensor(f64(dy)).reshape(n, nf)
    )
    return (
        y.detach().numpy().reshape(x.shape).copy(),
        dx.numpy().reshape(x.shape).copy(),
        dg.numpy().reshape(fshape).copy(),
        db.numpy().reshape(fshape).copy(),
    )


def torch_layer_norm(x, gamma, beta, dy, eps=1e-5):
    """(y, dx, dgamma, dbeta) of F.layer_norm over the last axis, from autograd."""
    x = f64(x)
    tx = torch.tensor(x, requires_grad=True)
    tg = torch.tensor(f64(gamma), requires_grad=True)
    tb = torch.tensor(f64(beta), requires_grad=True)
    y = F.layer_norm(tx, (x.shape[-1],), tg, tb, eps)
    dx, dg, db = torch.autograd.grad(y, (tx, tg, tb), grad_outputs=torch.tensor(f64(dy)))
    return (y.detach().numpy().copy(), dx.numpy().copy(), dg.numpy().copy(), db.numpy().copy())


def torch_penalty(name, w, *hyper):
    """(value, gradient) of the weight penalties by autograd, float64."""
    t = torch.tensor(f64(w), requires_grad=True)
    if name == "l2":
        (lam,) = hyper
        v = lam * (t * t).sum()
    elif name == "l1":
        (lam,) = hyper
        v = lam * t.abs().sum()
    elif name == "elastic_net":
        lam1, lam2 = hyper
        v = lam1 * t.abs().sum() + lam2 * (t * t).sum()
    else:
        raise KeyError(name)
    (g,) = torch.autograd.grad(v, t)
    return float(v.detach()), g.numpy().copy()


def torch_max_norm(W, c=3.0):
    t = torch.tensor(f64(W))
    norms = torch.linalg.vector_norm(t, dim=0, keepdim=True)
    return (t * torch.clamp(c / (norms + 1e-8), max=1.0)).numpy().copy()


# --------------------------------------------------------------------------------------
# mpmath: exact elementwise references
# --------------------------------------------------------------------------------------

mpmath.mp.dps = 40
_mp = mpmath.mp


def _mp_sig(z):
    return 1 / (1 + _mp.exp(-z))


def _mp_value(name, x, h):
    if name == "sigmoid":
        return _mp_sig(x)
    if name == "tanh":
        return _mp.tanh(x)
    if name == "relu":
        return x if x > 0 else _mp.mpf(0)
    if name == "leaky_relu":
        return x if x > 0 else h["alpha"] * x
    if name == "elu":
        return x if x > 0 else h["alpha"] * _mp.expm1(x)
    if name == "selu":
        return SELU_LAMBDA * (x if x > 0 else SELU_ALPHA * _mp.expm1(x))
    if name == "gelu":  # 0.5 x (1 + tanh u) = x * sigmoid(2u), no cancellation
        u = _mp.sqrt(2 / _mp.pi) * (x + GELU_K * x**3)
        return x * _mp_sig(2 * u)
    if name == "swish":
        return x * _mp_sig(x)
    if name == "mish":
        return x * _mp.tanh(_mp.log1p(_mp.exp(x)))
    raise KeyError(name)


def _mp_grad(name, x, h):
    if name == "sigmoid":  # s (1 - s) = 1 / ((1 + e^-x)(1 + e^x))
        return 1 / ((1 + _mp.exp(-x)) * (1 + _mp.exp(x)))
    if name == "tanh":
        return _mp.sech(x) ** 2
    if name == "relu":
        return _mp.mpf(1) if x > 0 else _mp.mpf(0)
    if name == "leaky_relu":
        return _mp.mpf(1) if x > 0 else _mp.mpf(h["alpha"])
    if name == "elu":
        return _mp.mpf(1) if x > 0 else h["alpha"] * _mp.exp(x)
    if name == "selu":
        return SELU_LAMBDA * (_mp.mpf(1) if x > 0 else SELU_ALPHA * _mp.exp(x))
    if name == "gelu":
        c = _mp.sqrt(2 / _mp.pi)
        u = c * (x + GELU_K * x**3)
        du = c * (1 + 3 * GELU_K * x**2)
        return _mp_sig(2 * u) + 0.5 * x * _mp.sech(u) ** 2 * du
    if name == "swish":
        return _mp_sig(x) + x / ((1 + _mp.exp(-x)) * (1 + _mp.exp(x)))
    if name == "mish":
        sp = _mp.log1p(_mp.exp(x))
        return _mp.tanh(sp) + x * _mp.sech(sp) ** 2 * _mp_sig(x)
    raise KeyError(name)


def _mp_map(f, name, x, hyper):
    h = {**HYPER.get(name, {}), **hyper}
    flat = f64(x).ravel()
    out = np.empty_like(flat)
    for i, v in enumerate(flat.tolist()):
        out[i] = math.nan if math.isnan(v) else float(f(name, _mp.mpf(v), h))
    return out.reshape(np.shape(x))


def mp_value(name, x, **hyper):
    """The activation, exact to rounding (float64), NaN for NaN."""
    return _mp_map(_mp_value, name, x, hyper)


def mp_grad(name, x, **hyper):
    """The activation's derivative (at 0: torch's one-sided conventions: relu 0, leaky_relu
    alpha, elu alpha, selu lambda * alpha), exact to rounding, NaN for NaN."""
    return _mp_map(_mp_grad, name, x, hyper)


# --------------------------------------------------------------------------------------
# Analytic NumPy derivatives (second opinion)
# --------------------------------------------------------------------------------------


@_quiet
def an_softmax_grad(x, dy):
    s = np_softmax(f64(x))
    dy = f64(dy)
    return s * (dy - np.sum(s * dy, axis=-1, keepdims=True))


@_quiet
def an_log_softmax_grad(x, dy):
    s = np_softmax(f64(x))
    dy = f64(dy)
    return dy - s * np.sum(dy, axis=-1, keepdims=True)


@_quiet
def an_batch_norm_grad(x, gamma, dy, eps=1e-5):
    """(dx, dgamma, dbeta) of y = gamma * x_hat + beta, batch statistics over axis 0."""
    x, gamma, dy = f64(x), f64(gamma), f64(dy)
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    inv = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv
    dbeta = dy.sum(axis=0)
    dgamma = (dy * x_hat).sum(axis=0)
    dx = gamma * inv * (dy - dbeta / x.shape[0] - x_hat * dgamma / x.shape[0])
    return dx, dgamma, dbeta


@_quiet
def an_layer_norm_grad(x, gamma, dy, eps=1e-5):
    """(dx, dgamma, dbeta) of y = gamma * x_hat + beta, statistics over the last axis."""
    x, gamma, dy = f64(x), f64(gamma), f64(dy)
    d = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv
    g = dy * gamma
    dx = inv * (
        g - g.sum(axis=-1, keepdims=True) / d - x_hat * (g * x_hat).sum(axis=-1, keepdims=True) / d
    )
    lead = tuple(range(x.ndim - 1))
    return dx, (dy * x_hat).sum(axis=lead), dy.sum(axis=lead)


def exact_sum(t) -> float:
    t = f64(t).ravel()
    if np.all(np.isfinite(t)):
        return math.fsum(t.tolist())
    with np.errstate(all="ignore"):
        return float(np.sum(t))


# --------------------------------------------------------------------------------------
# Test data
# --------------------------------------------------------------------------------------


def activation_data(shape, dtype, rng, *, zeros=True, scale=3.0) -> np.ndarray:
    """Values on both sides of 0 (|x| up to ~12), with exact zeros and ±tiny values so
    that every branch and the conventions at 0 are exercised."""
    x = scale * rng.standard_normal(shape)
    flat = x.reshape(-1)
    if zeros and flat.size >= 4:
        k = flat.size
        flat[rng.integers(0, k, max(1, k // 10))] = 0.0
        flat[rng.integers(0, k, max(1, k // 30))] = -0.0
        flat[rng.integers(0, k, max(1, k // 30))] = 1e-30
    return x.astype(dtype)


def norm_data(shape, fshape, dtype, rng):
    """(x, gamma, beta, dy): x with per-feature offsets and spreads, gamma around 1."""
    x = rng.standard_normal(shape) * (0.5 + rng.random(shape[-1:])) + rng.standard_normal(
        shape[-1:]
    )
    gamma = 1.0 + 0.5 * rng.standard_normal(fshape)
    beta = rng.standard_normal(fshape)
    dy = rng.standard_normal(shape)
    return tuple(a.astype(dtype) for a in (x, gamma, beta, dy))


# --------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------


def rtol_for(dtype) -> float:
    """The contract's tolerance: float64 1e-10, float32 1e-5 (against a float64 reference)."""
    return 1e-10 if np.dtype(dtype) == np.float64 else 1e-5


def ulps(dtype, k=16) -> float:
    return k * EPS[np.dtype(dtype).name]


def assert_close(got, ref, dtype, *, scale=0.0, what="", rtol=None, k=16):
    """``got`` equals ``ref`` elementwise: the same NaNs, the same infinities, and finite
    values within ``rtol * |ref| + k * eps(dtype) * scale``. ``scale`` is the magnitude of
    the intermediate quantities of the computation (1 + |x| for an activation), so that a
    result cancelling to nearly 0 in a correct formula (1 - tanh², 1 - s) is allowed the
    rounding error of those quantities, and nothing more."""
    rtol = rtol_for(dtype) if rtol is None else rtol
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    nan_g, nan_r = np.isnan(got), np.isnan(ref)
    bad = nan_g != nan_r
    assert not bad.any(), (
        f"{what}: NaN mismatch at {np.argwhere(bad)[:5].tolist()}: "
        f"got {got[bad][:5]}, expected {ref[bad][:5]}"
    )
    inf_r = np.isinf(ref)
    bad = (inf_r | np.isinf(got)) & (got != ref)
    assert not bad.any(), (
        f"{what}: expected {ref[bad][:5]} at {np.argwhere(bad)[:5].tolist()}, got {got[bad][:5]}"
    )
    fin = ~nan_r & ~inf_r
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), ref.shape)
    with np.errstate(all="ignore"):
        err = np.abs(got - ref)
        # plus the dtype's smallest subnormal: a result stored in dtype cannot come closer
        # to a reference below it (float32 -3.5e-46 is stored as -0.0)
        tol = rtol * np.abs(ref) + ulps(dtype, k) * scale + np.finfo(dtype).smallest_subnormal
    bad = fin & ~(err <= tol)
    if bad.any():
        worst = np.unravel_index(
            np.argmax(np.where(bad, err / np.maximum(tol, 1e-300), 0)), ref.shape
        )
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {ref.size} values differ beyond rtol={rtol}; worst "
            f"at {tuple(int(i) for i in worst)}: got {got[worst]!r}, expected {ref[worst]!r} "
            f"(tolerance {tol[worst]:.3g})"
        )
