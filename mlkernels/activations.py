"""Activations and their derivatives, elementwise and along the last axis (softmax).

Each elementwise activation is ONE scalar function ``f(x, i, params) -> (value,
derivative)`` written once for both devices (``i``, the element's index, is unused here;
dropout needs it) and computed in the data's own precision: float32 data in float32 (the
CPU kernels then run 8 lanes wide on AVX2 with :mod:`mlkernels._core.vmath`), float64 in
float64. Constants go through ``like(x, c)`` so that they take ``x``'s type. The public
functions are declarations: ``sigmoid(x)`` returns the values, ``sigmoid_grad(x)`` the
derivatives, both through the ``map`` template (the unused half is removed at compile
time).

Where the NumPy formula overflows, the function is rewritten with ``e = exp(-|x|)``, which
lies in (0, 1]: sigmoid, swish, gelu, mish and the derivatives are then finite and exact
to rounding for every input, and NaN stays NaN.

softmax and log_softmax (and their vector-Jacobian products) are row operations: one pass
for the row's max, one for the exponentials and their sums (kept in the output), one to
rescale them (the row is then in cache); see :class:`mlkernels._core.templates.RowOp`.
"""

from __future__ import annotations

from numba import float64
from numba.extending import register_jitable

from mlkernels._bench import data
from mlkernels._core.scalar import as_elem
from mlkernels._core.spec import formula
from mlkernels._core.stats import exp_merge, exp_stats, kept_scale
from mlkernels._core.templates import Map, RowOp, Rows
from mlkernels._core.vmath import exp, expm1, like, log
from mlkernels._core.vmath import tanh as _tanh

__all__ = [
    "elu",
    "elu_grad",
    "gelu",
    "gelu_grad",
    "leaky_relu",
    "leaky_relu_grad",
    "log_softmax",
    "log_softmax_grad",
    "mish",
    "mish_grad",
    "relu",
    "relu_grad",
    "selu",
    "selu_grad",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "softmax_grad",
    "swish",
    "swish_grad",
    "tanh",
    "tanh_grad",
]

SELU_ALPHA = 1.6732632423543772
SELU_LAMBDA = 1.0507009873554805
GELU_C = 0.7978845608028654  # sqrt(2 / pi)
GELU_A = 0.044715


# --------------------------------------------------------------------------------------
# Scalar functions: (value, derivative), in x's precision.
# --------------------------------------------------------------------------------------


@register_jitable(forceinline=True)
def _logistic(x):
    """(σ(x), σ'(x)) from e = exp(-|x|) in (0, 1]: σ = 1/(1+e) or e/(1+e), σ' = e/(1+e)²."""
    one = like(x, 1.0)
    e = exp(-abs(x))
    r = one / (one + e)
    s = r if x >= 0 else e * r
    return s, e * r * r


@register_jitable(forceinline=True)
def _sigmoid(x, params):
    return _logistic(x)


@register_jitable(forceinline=True)
def _tanh_fg(x, params):
    # 1 - tanh² = 4e / (1 + e)² with e = exp(-2|x|): no cancellation where tanh is near ±1
    one = like(x, 1.0)
    e = exp(like(x, -2.0) * abs(x))
    d = one + e
    return _tanh(x), like(x, 4.0) * e / (d * d)


@register_jitable(forceinline=True)
def _relu(x, params):
    zero = like(x, 0.0)
    one = like(x, 1.0)
    return (zero if x <= 0 else x), (zero if x <= 0 else (one if x > 0 else x))


@register_jitable(forceinline=True)
def _leaky_relu(x, params):
    alpha = like(x, params[0])
    one = like(x, 1.0)
    return (x if x > 0 else alpha * x), (one if x > 0 else (alpha if x <= 0 else x))


@register_jitable(forceinline=True)
def _elu(x, params):
    alpha = like(x, params[0])
    one = like(x, 1.0)
    return (x if x > 0 else alpha * expm1(x)), (one if x > 0 else alpha * exp(x))


@register_jitable(forceinline=True)
def _selu(x, params):
    lam = like(x, SELU_LAMBDA)
    la = like(x, SELU_LAMBDA * SELU_ALPHA)
    return (lam * x if x > 0 else la * expm1(x)), (lam if x > 0 else la * exp(x))


@register_jitable(forceinline=True)
def _gelu(x, params):
    # 0.5 x (1 + tanh(u)) = x σ(2u): no cancellation of 1 + tanh(u) for x << 0
    c = like(x, GELU_C)
    a3 = like(x, 3.0 * GELU_A)
    x2 = x * x
    u2 = like(x, 2.0) * c * x * (like(x, 1.0) + like(x, GELU_A) * x2)
    s, ds = _logistic(u2)
    du2 = like(x, 2.0) * c * (like(x, 1.0) + a3 * x2)
    d = s + (x * ds) * du2
    return x * s, (s if ds == 0 else d)  # ds underflows first: the limit is s (0 or 1)


@register_jitable(forceinline=True)
def _swish(x, params):
    s, ds = _logistic(x)
    return x * s, s + x * ds


@register_jitable(forceinline=True)
def _mish(x, params):
    # tanh(softplus(x)) = n / (n + 2), n = eˣ (eˣ + 2); written with q = exp(-|x|) so that
    # nothing overflows, and with 1 - t given directly (no cancellation where t is near 1)
    one = like(x, 1.0)
    two = like(x, 2.0)
    q = exp(-abs(x))
    big = one + two * q
    den_pos = big + two * q * q
    n = q * (q + two)
    t = big / den_pos if x > 0 else n / (n + two)
    om = two * q * q / den_pos if x > 0 else two / (n + two)
    sig = one / (one + q) if x > 0 else q / (one + q)
    return x * t, t + x * (om * (two - om)) * sig


# --------------------------------------------------------------------------------------
# Elementwise activations.
# --------------------------------------------------------------------------------------

_ELEMENTWISE = {"family": "activations", "data": data.normal}


@formula(Map(_sigmoid, 0), **_ELEMENTWISE, transcendental=True, derivative="sigmoid_grad")
def sigmoid(x, *, out=None):
    """Sigmoid, ``σ(x) = 1 / (1 + e^{-x})``; exact 0 and 1 at ±1000, no overflow."""


@formula(Map(_sigmoid, 1), **_ELEMENTWISE, transcendental=True)
def sigmoid_grad(x, *, out=None):
    """``σ'(x) = σ(x) (1 - σ(x))``, computed as ``e / (1 + e)²``, ``e = exp(-|x|)``."""


@formula(Map(_tanh_fg, 0), **_ELEMENTWISE, transcendental=True, derivative="tanh_grad")
def tanh(x, *, out=None):
    """Hyperbolic tangent, ``tanh(x)``."""


@formula(Map(_tanh_fg, 1), **_ELEMENTWISE, transcendental=True)
def tanh_grad(x, *, out=None):
    """``1 - tanh²(x)``, computed as ``4e / (1 + e)²``, ``e = exp(-2|x|)``: accurate
    where ``tanh(x)`` rounds to ±1."""


@formula(Map(_relu, 0), **_ELEMENTWISE, derivative="relu_grad")
def relu(x, *, out=None):
    """ReLU, ``max(0, x)`` (NaN stays NaN, as ``numpy.maximum``)."""


@formula(Map(_relu, 1), **_ELEMENTWISE)
def relu_grad(x, *, out=None):
    """1 where ``x > 0``, else 0 (0 at 0, as PyTorch); NaN for NaN. In ``x``'s float
    dtype (the formula's ``astype(float)`` gives float64 even for float32 data)."""


@formula(Map(_leaky_relu, 0), **_ELEMENTWISE, derivative="leaky_relu_grad")
def leaky_relu(x, alpha=0.01, *, out=None):
    """Leaky ReLU, ``x`` if ``x > 0`` else ``αx``."""


@formula(Map(_leaky_relu, 1), **_ELEMENTWISE)
def leaky_relu_grad(x, alpha=0.01, *, out=None):
    """1 where ``x > 0``, else ``α`` (``α`` at 0, as PyTorch); NaN for NaN."""


@formula(Map(_elu, 0), **_ELEMENTWISE, transcendental=True, derivative="elu_grad")
def elu(x, alpha=1.0, *, out=None):
    """ELU, ``x`` if ``x > 0`` else ``α (eˣ - 1)``, with ``expm1`` (accurate near 0)."""


@formula(Map(_elu, 1), **_ELEMENTWISE, transcendental=True)
def elu_grad(x, alpha=1.0, *, out=None):
    """1 where ``x > 0``, else ``α eˣ`` (``α`` at 0, as PyTorch)."""


@formula(Map(_selu, 0), **_ELEMENTWISE, transcendental=True, derivative="selu_grad")
def selu(x, *, out=None):
    """SELU, ``λ x`` if ``x > 0`` else ``λ α (eˣ - 1)`` (λ, α: ``SELU_LAMBDA``, ``SELU_ALPHA``)."""


@formula(Map(_selu, 1), **_ELEMENTWISE, transcendental=True)
def selu_grad(x, *, out=None):
    """``λ`` where ``x > 0``, else ``λ α eˣ``."""


@formula(Map(_gelu, 0), **_ELEMENTWISE, transcendental=True, derivative="gelu_grad")
def gelu(x, *, out=None):
    """GELU, tanh approximation: ``0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))``.

    Computed as ``x σ(2u)`` (the same function), which neither cancels for ``x << 0``
    nor overflows: ``gelu(1e4) = 1e4``, ``gelu(-1e4) = -0``.
    """


@formula(Map(_gelu, 1), **_ELEMENTWISE, transcendental=True)
def gelu_grad(x, *, out=None):
    """Derivative of :func:`gelu`: ``σ(2u) + 2 x σ'(2u) u'``, ``u' = √(2/π)(1 + 3·0.044715 x²)``."""


@formula(Map(_swish, 0), **_ELEMENTWISE, transcendental=True, derivative="swish_grad")
def swish(x, *, out=None):
    """Swish (SiLU), ``x σ(x)``; finite for every input."""


@formula(Map(_swish, 1), **_ELEMENTWISE, transcendental=True)
def swish_grad(x, *, out=None):
    """``σ(x) + x σ(x)(1 - σ(x))``."""


@formula(Map(_mish, 0), **_ELEMENTWISE, transcendental=True, derivative="mish_grad")
def mish(x, *, out=None):
    """Mish, ``x tanh(softplus(x))``, as ``x n / (n + 2)``, ``n = eˣ (eˣ + 2)`` written with
    ``exp(-|x|)``: ``mish(1000) == 1000`` where the formula gives NaN."""


@formula(Map(_mish, 1), **_ELEMENTWISE, transcendental=True)
def mish_grad(x, *, out=None):
    """``t + x (1 - t²) σ(x)``, ``t = tanh(softplus(x))``, with ``1 - t`` computed directly."""


# --------------------------------------------------------------------------------------
# softmax and log_softmax: row operations along the last axis.
# --------------------------------------------------------------------------------------


@register_jitable
def _softmax_part(row, feats, params, out):
    return exp_stats(row[0], None, out, True)


@register_jitable
def _softmax_emit(row, feats, params, own, state, out):
    x = row[0]
    f = as_elem(x, kept_scale(own, state))
    for k in range(x.size):
        out[k] *= f
    return ()


@register_jitable
def _log_softmax_part(row, feats, params, out):
    return exp_stats(row[0], None, out, False)


@register_jitable
def _log_softmax_emit(row, feats, params, own, state, out):
    x = row[0]
    m, log_s = state[0], log(state[1])
    for k in range(x.size):
        out[k] = (float64(x[k]) - m) - log_s  # in this order: exact where x - m is 0
    return ()


@register_jitable
def _vjp_part(row, feats, params, out):
    return exp_stats(row[0], row[1], out, True)


@register_jitable
def _softmax_vjp(row, feats, params, own, state, out):
    """s (dy - Σ s dy), s = kept e times the part's factor."""
    x, y = row
    f = kept_scale(own, state)
    dot = state[2] / state[1]  # Σ softmax(x) dy
    for k in range(x.size):
        out[k] = float64(out[k]) * f * (float64(y[k]) - dot)
    return ()


@register_jitable
def _log_softmax_vjp(row, feats, params, own, state, out):
    """dy - s Σ dy."""
    x, y = row
    f = kept_scale(own, state) * state[3]
    for k in range(x.size):
        out[k] = float64(y[k]) - float64(out[k]) * f
    return ()


_ROWS = {"family": "activations", "layout": "rows", "transcendental": True}
SOFTMAX = RowOp(4, _softmax_part, exp_merge, _softmax_emit)
LOG_SOFTMAX = RowOp(4, _log_softmax_part, exp_merge, _log_softmax_emit)
SOFTMAX_VJP = RowOp(4, _vjp_part, exp_merge, _softmax_vjp)
LOG_SOFTMAX_VJP = RowOp(4, _vjp_part, exp_merge, _log_softmax_vjp)


@formula(Rows(SOFTMAX), data=data.normal, **_ROWS, derivative="softmax_grad")
def softmax(x, *, out=None):
    """Softmax along the last axis, ``e^{x_k - max} / Σ_j e^{x_j - max}``.

    A row with NaN or +inf gives NaN (as PyTorch); ``softmax([1000, 1000]) = [.5, .5]``.
    """


@formula(Rows(LOG_SOFTMAX), data=data.normal, **_ROWS, derivative="log_softmax_grad")
def log_softmax(x, *, out=None):
    """Log-softmax along the last axis, ``(x - max) - log Σ e^{x - max}``, in float64
    (float32 results are exact to rounding; nothing is lost for huge ``x``)."""


@formula(Rows(SOFTMAX_VJP, inputs=2), data=data.normal_and_upstream, **_ROWS)
def softmax_grad(x, dy, *, out=None):
    """Vector-Jacobian product of :func:`softmax` along the last axis:
    ``s (dy - Σ s dy)``, ``s = softmax(x)``."""


@formula(Rows(LOG_SOFTMAX_VJP, inputs=2), data=data.normal_and_upstream, **_ROWS)
def log_softmax_grad(x, dy, *, out=None):
    """Vector-Jacobian product of :func:`log_softmax` along the last axis:
    ``dy - softmax(x) Σ dy``."""
