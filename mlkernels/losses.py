"""Losses and their gradients: each one a scalar term, declared once for both devices.

Every loss ``L`` is a *scalar term* ``term(a, b, params) -> (value, d value / d prediction)``
(below, prefixed ``_``) and a declaration that reads like the formula. The decorator
:func:`loss` (``spec.formula`` for the ``Loss`` template) turns it into three functions
that share one kernel per device (``_core/cpu.py`` / ``gpu.py``: ``reduce``, and
``classes_dense`` / ``classes_index`` for classes along axis 1):

* ``L(...)``                 the loss, with ``reduction="mean" | "sum" | "none"``;
* ``L_grad(...)``            dL/d(prediction), the prediction's shape (``out=`` allowed);
* ``L_value_and_grad(...)``  both, from ONE pass over the data.

Positional parameters and defaults are those of the NumPy formulas; no broadcasting: the
two arrays must have the same shape (the formulas would silently broadcast (n,) against
(n, 1) into (n, n)).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from numba.extending import register_jitable

from mlkernels._bench import data
from mlkernels._core import vmath as vm
from mlkernels._core.scalar import clip, identity, inside, pos, sign, sqrt_final
from mlkernels._core.spec import NONNEGATIVE, Formula, Real, declare, public
from mlkernels._core.templates import Loss, reduction
from mlkernels._core.vmath import like

__all__ = [
    "LOSSES",
    "bce",
    "cce",
    "contrastive",
    "focal",
    "hinge",
    "huber",
    "js_divergence",
    "kl_divergence",
    "log_cosh",
    "mae",
    "mse",
    "nll",
    "rmse",
    "squared_hinge",
]


# --------------------------------------------------------------------------------------
# Scalar terms: (value, d value / d prediction). Written once, inlined into every kernel.
# Parameters arrive as a float64 tuple. The templates hand the elements of the terms that
# call no exp or log (mse, mae, huber, hinge, squared_hinge, nll, contrastive) over as
# float64, so float32 data is computed in float64 and rounded once on store (more accurate
# than the formula's float32 arithmetic, and as fast: a few operations per element read).
# --------------------------------------------------------------------------------------


@register_jitable
def _mse(y, y_hat, params):
    e = y_hat - y
    return e * e, e + e


@register_jitable
def _mae(y, y_hat, params):
    e = y_hat - y
    return abs(e), sign(e)


@register_jitable
def _huber(y, y_hat, params):
    delta = params[0]
    e = y_hat - y
    r = abs(e)
    if r <= delta:
        return 0.5 * r * r, e
    return delta * (r - 0.5 * delta), delta * sign(e)


# The transcendental terms below receive their elements in the data's own type
# (``Loss(widen=False)``) and compute float32 data in float32: the vectorisable exp/log of
# mlkernels._core.vmath then run 8 lanes wide instead of 4, and the kernels keep the terms
# in float32 before they sum them in float64. Constants go through ``like(x, c)`` (a bare
# ``1.0`` is float64 and would widen the expression again). Clipped values, their
# complements and logarithms are the float64 ones rounded (``_clip``, ``_clipped_logs``):
# 1 - (1 - 1e-15) is 9.99e-16 (a float32 number), not 0, and its log finite. Where the clip
# is active is decided in float64 (``_d_clip``), so the gradient is zero exactly where the
# float64 formula clips (p = 1 included). The terms call the vmath functions, which make
# them too big for LLVM's inliner: a term the kernel loop calls instead of inlining stops
# the loop from vectorising (log_cosh, focal, js_divergence ran 5-10x slower), hence
# forceinline.

_LOG2 = 0.6931471805599453


@register_jitable(forceinline=True)
def _pow(log_x, g):
    """x**g from log(x) (g in log_x's type): exp(g log x), with x**0 = 1 for every x
    (0**0, inf**0, nan**0)."""
    return vm.exp(like(log_x, 0.0) if g == 0 else g * log_x)


@register_jitable(forceinline=True)
def _clip(p, lo, hi):
    """clip(p, lo, hi) for float64 bounds, in p's type: the float64 clip rounded (rounding
    is monotone, so clipping to the rounded bounds gives it)."""
    return clip(p, like(p, lo), like(p, hi))


@register_jitable(forceinline=True)
def _clipped_logs(p, lo, hi):
    """``(c, q, log c, log q)`` for ``c = clip(p, lo, hi)`` (float64 bounds) and
    ``q = 1 - c``, in p's type, as the float64 formula has them.

    float64 data: the formula itself. float32 data: ``c`` is the float64 clip rounded
    (what :func:`_clip` gives), ``q = 1 - c`` is taken in float32 (exact for c >= 1/2)
    and never below the float64 ``1 - hi`` (``1 - (1 - 1e-15)`` is 9.99e-16, a float32
    number, not 0). The logarithms are corrected for what the rounding lost where they
    are near 0: ``c`` rounds up to 1 where the float64 clip is ``hi``, whose log is
    ``-(1 - hi) = -q``; ``q`` rounds where ``c < 1/2``: by ``(q - 1) + c`` (Fast2Sum,
    exact), with ``c`` there taken as the formula's own ``1 - q``, its ``1 - c`` rounded
    in float64 (which loses the last bits of a tiny ``c``).
    """
    one = like(p, 1.0)
    if not vm.single(p):
        c = clip(p, lo, hi)
        q = one - c
        return c, q, vm.log(c), vm.log(q)
    c64 = clip(like(lo, p), lo, hi)  # the formula's clip
    c = like(p, c64)
    q = one - c
    q_min = like(p, 1.0 - hi)
    q = q_min if q < q_min else q
    c_q = like(p, 1.0 - (1.0 - c64))  # 1 - (the formula's q)
    return c, q, vm.log(c) - (q - (one - c)), vm.log(q) - ((q - one) + c_q)


@register_jitable(forceinline=True)
def _d_clip(p, lo, hi):
    """The derivative of the clip, in p's type: 1 where ``lo <= p <= hi`` in float64 (the
    float64 formula clips p = 1 to 1 - 1e-15), else 0 (NaN included)."""
    return like(p, inside(like(lo, p), lo, hi))


@register_jitable(forceinline=True)
def _log_cosh(y, y_hat, params):
    e = y_hat - y
    a = abs(e)
    one, two = like(e, 1.0), like(e, 2.0)
    small = a < one
    # One exponential for both ranges, u = e^a - 1 (small) or e^(-2a) - 1 (large):
    # small: cosh(a) - 1 = u^2 / (2 (1 + u)), no cancellation for tiny a;
    # large: log cosh(a) = a + log1p(e^(-2a)) - log 2, no overflow for huge a.
    u = vm.expm1(a if small else -two * a)
    ea = u + one  # e^a (small) or e^(-2a) (large)
    w = vm.log1p(u * u / (two * ea) if small else ea)
    v = w if small else a + w - like(e, _LOG2)
    n = u * (u + two)  # e^(2a) - 1 (small)
    t = n / (n + two) if small else (one - ea) / (one + ea)
    return v, math.copysign(t, e)


@register_jitable(forceinline=True)
def _bce(y, p, params):
    eps = params[0]
    pc, qc, lp, lq = _clipped_logs(p, eps, 1.0 - eps)
    one = like(p, 1.0)
    v = -(y * lp + (one - y) * lq)
    return v, _d_clip(p, eps, 1.0 - eps) * ((one - y) / qc - y / pc)


@register_jitable(forceinline=True)
def _cce(y, p, params):
    eps = params[0]
    pc = _clip(p, eps, 1.0)
    return -y * vm.log(pc), -y / pc * _d_clip(p, eps, 1.0)


@register_jitable
def _hinge(y, scores, params):
    m = 1.0 - y * scores
    return pos(m), (-y if m > 0 else (0.0 if m <= 0 else m))


@register_jitable
def _squared_hinge(y, scores, params):
    h = pos(1.0 - y * scores)
    return h * h, -2.0 * y * h


@register_jitable(forceinline=True)
def _focal(y, p, params):
    alpha, gamma, eps = params
    pc, qc, lp, lq = _clipped_logs(p, eps, 1.0 - eps)
    one, a, g = like(p, 1.0), like(p, alpha), like(p, gamma)
    qg, pg = _pow(lq, g), _pow(lp, g)
    pos_term = a * y * qg * lp
    neg_term = (one - a) * (one - y) * pg * lq
    d_pos = a * y * (qg / pc - g * _pow(lq, g - one) * lp)
    d_neg = (one - a) * (one - y) * (g * _pow(lp, g - one) * lq - pg / qc)
    return -(pos_term + neg_term), -(d_pos + d_neg) * _d_clip(p, eps, 1.0 - eps)


@register_jitable(forceinline=True)
def _kl(p, q, params):
    eps = params[0]
    pc, qc = _clip(p, eps, 1.0), _clip(q, eps, 1.0)
    return pc * vm.log(pc / qc), -pc / qc * _d_clip(q, eps, 1.0)


@register_jitable(forceinline=True)
def _js(p, q, params):
    eps = params[0]
    half = like(p, 0.5)
    m = half * (p + q)
    pc, qc, mc = _clip(p, eps, 1.0), _clip(q, eps, 1.0), _clip(m, eps, 1.0)
    lq = vm.log(qc / mc)
    v = half * (pc * vm.log(pc / mc) + qc * lq)
    dq = half * _d_clip(q, eps, 1.0) * (lq + like(q, 1.0))
    g = dq - like(q, 0.25) * _d_clip(m, eps, 1.0) * (pc + qc) / mc
    return v, g


@register_jitable
def _nll(y, log_prob, params):
    return -y * log_prob, -y


@register_jitable
def _contrastive(d, y, params):
    margin = params[0]
    h = pos(margin - d)
    return y * d * d + (1.0 - y) * h * h, 2.0 * (y * d - (1.0 - y) * h)


# --------------------------------------------------------------------------------------
# The declaration: one decorator declares a loss and its two derived functions.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunked:
    """A loss as partial -> combine -> finalize, for data that comes in chunks: the
    partial of a chunk is the float64 sum of its terms and their count; partials add."""

    spec: Formula

    @property
    def signature(self) -> inspect.Signature:
        return self.spec.signature

    def partial(self, *args, **kwargs) -> tuple[float, int]:
        """``(sum of the terms, number of terms)`` of one chunk, in float64 (CPU data).
        The arguments are the loss's own; ``reduction`` is ignored."""
        return self.spec.template.partial(self.spec, args, kwargs)

    @staticmethod
    def combine(*partials: tuple[float, int]) -> tuple[float, int]:
        """The partial of the chunks together."""
        return math.fsum(t for t, _ in partials), sum(n for _, n in partials)

    def finalize(self, partial: tuple[float, int], reduction: str = "mean") -> float:
        """The loss from the partial of all the data (float64)."""
        return self.spec.template.finalize(partial, reduction)


#: Every loss as partial -> combine -> finalize, by name.
LOSSES: dict[str, Chunked] = {}


def loss(
    term: Callable,
    *,
    data: Callable,
    kernel: tuple[str, str],
    pred: str,
    labels: tuple[str, ...] = (),
    pattern: str = "elementwise",
    hyper: dict[str, Callable] | None = None,
    final: Callable = identity,
    none_term: Callable | None = None,
    constants: tuple[float, ...] = (),
    transcendental: bool = False,
):
    """Declare a loss (``spec.formula`` for the ``Loss`` template): the decorated stub's
    signature and docstring are the API. Returns the loss itself; its gradient and
    value-and-gradient functions are attributes ``.grad`` and ``.value_and_grad``
    (exported as ``<name>_grad`` and ``<name>_value_and_grad``). A ``transcendental``
    term (exp, log) is handed its elements in the data's own type and computes float32
    data in float32; the others are handed float64 elements."""

    def decorate(stub: Callable) -> Callable:
        template = Loss(
            term,
            kernel=kernel,
            pred=pred,
            pattern=pattern,
            final=final,
            none_term=none_term,
            constants=constants,
            widen=not transcendental,
        )
        role = "index" if pattern == "classes_index" else "label"
        arrays = {name: role if name in labels else "data" for name in kernel}
        spec = declare(
            stub,
            template,
            family="losses",
            data=data,
            arrays=arrays,
            hyper={**(hyper or {}), "reduction": reduction},
            params=template.params,
            transcendental=transcendental,
        )
        LOSSES[spec.name] = Chunked(spec)
        value = public(spec, stub)
        derived = {
            "grad": f"Gradient of :func:`{spec.name}` with respect to ``{pred}``, for the "
            f"same ``reduction``; the shape of ``{pred}``. ``out=`` receives it in place.",
            "value_and_grad": f"``({spec.name}(...), {spec.name}_grad(...))`` computed in ONE "
            "pass over the data; ``out=`` receives the gradient in place.",
        }
        for want, doc in derived.items():
            name = f"{spec.name}_{want}"
            fn = public(replace(spec, name=name, want="both" if want != "grad" else "grad"), stub)
            fn.__name__ = fn.__qualname__ = name
            fn.__doc__ = doc
            setattr(value, want, fn)
        return value

    return decorate


_EPS_BELOW_HALF = Real(0, 0.5, hi_open=True)
_UNIT = Real(0, 1)


# --------------------------------------------------------------------------------------
# The public losses.
# --------------------------------------------------------------------------------------

_REGRESSION = {"kernel": ("y", "y_hat"), "pred": "y_hat", "data": data.normal2}


@loss(_mse, **_REGRESSION)
def mse(y, y_hat, *, reduction="mean", out=None):
    """Mean squared error, ``L = (1/n) Σ (y - ŷ)²``. Gradient ``2 (ŷ - y) / n``."""


@loss(_mse, **_REGRESSION, final=sqrt_final, none_term=_mae)
def rmse(y, y_hat, *, reduction="mean", out=None):
    """Root mean squared error, ``L = sqrt((1/n) Σ (y - ŷ)²)``.

    ``reduction="sum"`` gives ``sqrt(Σ (y - ŷ)²)`` and ``"none"`` the per-element root
    ``|y - ŷ|``. Gradient ``(ŷ - y) / (n L)``, defined as 0 where ``L = 0`` (a
    subgradient; autograd would give NaN). The gradient needs ``L`` first, so
    ``rmse_grad`` reads the inputs once and rescales the gradient it wrote.
    """


@loss(_mae, **_REGRESSION)
def mae(y, y_hat, *, reduction="mean", out=None):
    """Mean absolute error, ``L = (1/n) Σ |y - ŷ|``. Gradient ``sign(ŷ - y) / n`` (0 at 0)."""


@loss(_huber, **_REGRESSION, hyper={"delta": NONNEGATIVE})
def huber(y, y_hat, delta=1.0, *, reduction="mean", out=None):
    """Huber loss: ``0.5 r²`` if ``r = |y - ŷ| <= δ``, else ``δ (r - δ/2)``; δ >= 0.

    Gradient ``ŷ - y`` in the quadratic zone, ``δ sign(ŷ - y)`` outside.
    """


@loss(_log_cosh, **_REGRESSION, transcendental=True)
def log_cosh(y, y_hat, *, reduction="mean", out=None):
    """Log-cosh loss, ``L = (1/n) Σ log(cosh(y - ŷ))``. Gradient ``tanh(ŷ - y) / n``.

    Differs from the NumPy formula where that one is wrong: ``cosh`` overflows for
    ``|e| > 710`` (the formula returns inf) and ``log(cosh(e))`` rounds to 0 for
    ``|e| < 1e-8``. mlkernels uses ``|e| + log1p(exp(-2|e|)) - log 2`` for ``|e| >= 1``
    and ``log1p(u² / (2 (1 + u)))`` with ``u = expm1(|e|)`` below: finite and accurate to
    rounding for every finite ``e``.
    """


_BINARY = {"kernel": ("y", "p"), "pred": "p", "labels": ("y",), "transcendental": True}


@loss(_bce, **_BINARY, data=data.binary_prob, hyper={"eps": _EPS_BELOW_HALF})
def bce(y, p, eps=1e-15, *, reduction="mean", out=None):
    """Binary cross-entropy, ``L = -(1/n) Σ [y log p + (1 - y) log(1 - p)]``.

    ``p`` is clipped to ``[eps, 1 - eps]`` as in the formula; the gradient
    ``(p - y) / (p (1 - p))`` is zero where the clip is active (as ``torch.clamp``).
    float32 data is computed in float32 and clipped as the float64 formula clips it: in
    float32 ``1 - 1e-15`` rounds to 1 and the formula returns inf for ``p = 1, y = 0``;
    mlkernels keeps the float64 ``1 - p`` (9.99e-16) and corrects both logarithms to their
    float64 values where the rounding loses them (``_clipped_logs``).
    """


@loss(
    _cce,
    kernel=("y_onehot", "p"),
    pred="p",
    labels=("y_onehot",),
    pattern="classes_dense",
    hyper={"eps": _UNIT},
    data=data.onehot_prob,
    transcendental=True,
)
def cce(y_onehot, p, eps=1e-15, *, reduction="mean", out=None):
    """Categorical cross-entropy, ``L = -(1/n) Σ_i Σ_k y_ik log p_ik``, ``p`` clipped to [eps, 1].

    Classes along axis 1: ``p`` is (n, C) or (n, C, d1, ...); ``reduction="none"``
    returns one value per sample, shape (n, d1, ...). Gradient ``-y / p`` (zero where
    clipped), divided by the number of samples for the mean.
    """


@loss(_hinge, kernel=("y", "scores"), pred="scores", labels=("y",), data=data.signs_scores)
def hinge(y, scores, *, reduction="mean", out=None):
    """Hinge loss, ``L = (1/n) Σ max(0, 1 - y s)``, ``y`` in {-1, +1}.

    Gradient ``-y`` where the margin is violated, 0 elsewhere.
    """


@loss(_squared_hinge, kernel=("y", "scores"), pred="scores", labels=("y",), data=data.signs_scores)
def squared_hinge(y, scores, *, reduction="mean", out=None):
    """Squared hinge loss, ``L = (1/n) Σ max(0, 1 - y s)²``. Gradient ``-2 y max(0, 1 - y s)``."""


@loss(
    _focal,
    **_BINARY,
    data=data.binary_prob,
    hyper={"alpha": _UNIT, "gamma": NONNEGATIVE, "eps": _EPS_BELOW_HALF},
)
def focal(y, p, alpha=0.25, gamma=2.0, eps=1e-15, *, reduction="mean", out=None):
    """Focal loss, ``L = -(1/n) Σ [α (1-p)^γ y log p + (1-α) p^γ (1-y) log(1-p)]``.

    ``p`` clipped to ``[eps, 1 - eps]`` as the float64 formula clips it, float32 data too
    (see :func:`bce`); gradient zero where clipped. ``0 <= alpha <= 1``, ``gamma >= 0``.
    """


_DIVERGENCE = {
    "kernel": ("p", "q"),
    "pred": "q",
    "data": data.distributions,
    "transcendental": True,
}


@loss(_kl, **_DIVERGENCE, hyper={"eps": _UNIT})
def kl_divergence(p, q, eps=1e-15, *, reduction="sum", out=None):
    """Kullback-Leibler divergence, ``KL(P || Q) = Σ p log(p / q)``, both clipped to [eps, 1].

    The default reduction is the formula's sum. Gradient ``-p / q`` (zero where ``q`` is
    clipped).
    """


@loss(_js, **_DIVERGENCE, constants=(1e-15,))
def js_divergence(p, q, *, reduction="sum", out=None):
    """Jensen-Shannon divergence, ``0.5 KL(p || m) + 0.5 KL(q || m)``, ``m = (p + q) / 2``.

    KL's clipping to [1e-15, 1] applies to ``p``, ``q`` and ``m``. Gradient
    ``0.5 (log(q / m) + 1) - 0.25 (p + q) / m``.
    """


@loss(
    _nll,
    kernel=("targets", "log_probs"),
    pred="log_probs",
    labels=("targets",),
    pattern="classes_index",
    data=data.logprob_targets,
)
def nll(log_probs, targets, *, reduction="mean", out=None):
    """Negative log-likelihood, ``L = -(1/n) Σ_i log_probs[i, targets[i]]``.

    ``log_probs`` is (n, C) or (n, C, d1, ...), ``targets`` integer class indices of
    shape (n, d1, ...) in ``[-C, C)`` (negative ones count from the end, as in NumPy
    indexing); out of range, the CPU raises ``ValueError`` and the GPU, which checks
    without synchronising, gives NaN for that sample. Only the target entries are read.
    Gradient: ``-1/n`` at each target, 0 elsewhere.
    """


@loss(
    _contrastive,
    kernel=("d", "y"),
    pred="d",
    labels=("y",),
    hyper={"margin": NONNEGATIVE},
    data=data.distance_pairs,
)
def contrastive(d, y, margin=1.0, *, reduction="mean", out=None):
    """Contrastive loss, ``L = (1/n) Σ [y d² + (1 - y) max(0, margin - d)²]``; margin >= 0.

    Gradient ``2 y d - 2 (1 - y) max(0, margin - d)``.
    """


mse_grad, mse_value_and_grad = mse.grad, mse.value_and_grad
rmse_grad, rmse_value_and_grad = rmse.grad, rmse.value_and_grad
mae_grad, mae_value_and_grad = mae.grad, mae.value_and_grad
huber_grad, huber_value_and_grad = huber.grad, huber.value_and_grad
log_cosh_grad, log_cosh_value_and_grad = log_cosh.grad, log_cosh.value_and_grad
bce_grad, bce_value_and_grad = bce.grad, bce.value_and_grad
cce_grad, cce_value_and_grad = cce.grad, cce.value_and_grad
hinge_grad, hinge_value_and_grad = hinge.grad, hinge.value_and_grad
squared_hinge_grad, squared_hinge_value_and_grad = squared_hinge.grad, squared_hinge.value_and_grad
focal_grad, focal_value_and_grad = focal.grad, focal.value_and_grad
kl_divergence_grad, kl_divergence_value_and_grad = kl_divergence.grad, kl_divergence.value_and_grad
js_divergence_grad, js_divergence_value_and_grad = js_divergence.grad, js_divergence.value_and_grad
nll_grad, nll_value_and_grad = nll.grad, nll.value_and_grad
contrastive_grad, contrastive_value_and_grad = contrastive.grad, contrastive.value_and_grad
