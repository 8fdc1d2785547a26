"""Losses and their gradients: each one a scalar term, declared once for both devices.

Every loss ``L`` is a *scalar term* ``fg(a, b, params) -> (value, d value / d prediction)``
(below, prefixed ``_``) and a public function that reads like the formula. The decorator
:func:`loss` turns the declaration into three functions that share one kernel template
(``_cpu`` / ``_gpu``):

* ``L(...)``                 the loss, with ``reduction="mean" | "sum" | "none"``;
* ``L_grad(...)``            dL/d(prediction), the prediction's shape (``out=`` allowed);
* ``L_value_and_grad(...)``  both, from ONE pass over the data.

Positional parameters and defaults are those of the NumPy formulas; no broadcasting: the
two arrays must have the same shape (the formulas would silently broadcast (n,) against
(n, 1) into (n, n)).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba.extending import register_jitable

from mlkernels import _dispatch
from mlkernels import _vmath as vm
from mlkernels._math import clip, identity, inside, pos, sign, sqrt_fin

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
# The templates hand every element over as float64 and parameters arrive as a float64
# tuple, so float32 data is computed in float64 and rounded once on store (more accurate
# than the formula's float32 arithmetic, and the same on both devices).
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


# The terms below call the vectorisable exp/log of mlkernels._vmath, which make them too
# big for LLVM's inliner: a term the kernel loop calls instead of inlining stops the loop
# from vectorising (log_cosh, focal, js_divergence ran 5-10x slower), hence forceinline.

_LOG2 = 0.6931471805599453


@register_jitable(forceinline=True)
def _pow(log_x, g):
    """x**g from log(x): exp(g log x), with x**0 = 1 for every x (0**0, inf**0, nan**0)."""
    return vm.exp(0.0 if g == 0.0 else g * log_x)


@register_jitable(forceinline=True)
def _log_cosh(y, y_hat, params):
    e = y_hat - y
    a = abs(e)
    small = a < 1.0
    # One exponential for both ranges, u = e^a - 1 (small) or e^(-2a) - 1 (large):
    # small: cosh(a) - 1 = u^2 / (2 (1 + u)), no cancellation for tiny a;
    # large: log cosh(a) = a + log1p(e^(-2a)) - log 2, no overflow for huge a.
    u = vm.expm1(a if small else -2.0 * a)
    ea = u + 1.0  # e^a (small) or e^(-2a) (large)
    w = vm.log1p(u * u / (2.0 * ea) if small else ea)
    v = w if small else a + w - _LOG2
    n = u * (u + 2.0)  # e^(2a) - 1 (small)
    t = n / (n + 2.0) if small else (1.0 - ea) / (1.0 + ea)
    return v, math.copysign(t, e)


@register_jitable(forceinline=True)
def _bce(y, p, params):
    eps = params[0]
    pc = clip(p, eps, 1.0 - eps)
    qc = 1.0 - pc
    v = -(y * vm.log(pc) + (1.0 - y) * vm.log(qc))
    return v, inside(p, eps, 1.0 - eps) * ((1.0 - y) / qc - y / pc)


@register_jitable(forceinline=True)
def _cce(y, p, params):
    eps = params[0]
    pc = clip(p, eps, 1.0)
    return -y * vm.log(pc), -y / pc * inside(p, eps, 1.0)


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
    pc = clip(p, eps, 1.0 - eps)
    qc = 1.0 - pc
    lp, lq = vm.log(pc), vm.log(qc)
    qg, pg = _pow(lq, gamma), _pow(lp, gamma)
    pos_term = alpha * y * qg * lp
    neg_term = (1.0 - alpha) * (1.0 - y) * pg * lq
    d_pos = alpha * y * (qg / pc - gamma * _pow(lq, gamma - 1.0) * lp)
    d_neg = (1.0 - alpha) * (1.0 - y) * (gamma * _pow(lp, gamma - 1.0) * lq - pg / qc)
    return -(pos_term + neg_term), -(d_pos + d_neg) * inside(p, eps, 1.0 - eps)


@register_jitable(forceinline=True)
def _kl(p, q, params):
    eps = params[0]
    pc = clip(p, eps, 1.0)
    qc = clip(q, eps, 1.0)
    return pc * vm.log(pc / qc), -pc / qc * inside(q, eps, 1.0)


@register_jitable(forceinline=True)
def _js(p, q, params):
    eps = params[0]
    m = 0.5 * (p + q)
    pc, qc, mc = clip(p, eps, 1.0), clip(q, eps, 1.0), clip(m, eps, 1.0)
    lq = vm.log(qc / mc)
    v = 0.5 * (pc * vm.log(pc / mc) + qc * lq)
    g = 0.5 * inside(q, eps, 1.0) * (lq + 1.0) - 0.25 * inside(m, eps, 1.0) * (pc + qc) / mc
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
# The declaration: one decorator builds value, gradient and value-and-gradient functions.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loss:
    """A loss as the kernels see it (see :func:`loss`)."""

    name: str
    fg: Callable
    pattern: str  # "elementwise", "rows_dense" (cce) or "rows_index" (nll)
    arrays: tuple[str, str]  # the two array arguments, in the kernel's order
    pred: str  # the argument the gradient is taken with respect to
    first: str  # the first array argument of the signature
    labels: tuple[str, ...]  # arguments that do not decide the result's dtype
    hyper: tuple[str, ...]  # the hyper-parameters, passed to fg as a float64 tuple
    check: Callable[..., None]
    fin: Callable = identity
    none_fg: Callable | None = None  # term for reduction="none", if not fg (rmse)
    constants: tuple[float, ...] = ()  # fixed parameters after the user's (js: eps)
    signature: inspect.Signature | None = None  # the public functions' signature

    def prepare(self, arguments: dict[str, Any]):
        """Place, type-check and convert the arrays; return what the kernels need."""
        named = {k: arguments[k] for k in self.arrays}
        backend, arrs = _dispatch.place(named)
        reals = {k: v for k, v in arrs.items() if k not in self.labels}
        dtype = _dispatch.real_dtype(reals)
        lab = {k: v for k, v in arrs.items() if k in self.labels}
        index = self.pattern == "rows_index"
        _dispatch.check_labels(lab, "iub" if index else "fiub")
        a_name, b_name = self.arrays
        a, b = arrs[a_name], arrs[b_name]
        if self.pattern == "elementwise":
            _dispatch.same_shape(a_name, a, b_name, b)
            value_shape = tuple(b.shape)
            a = backend.flat(a, dtype)
            b = backend.flat(b, dtype)
        else:
            a, b, value_shape = self._rows(backend, a_name, a, b_name, b, dtype, index)
        grad_shape = tuple(arrs[self.pred].shape)
        like = named[self.first]  # results come back as the first array argument's kind
        return backend, a, b, dtype, value_shape, grad_shape, like

    def _rows(self, backend, y_name, y, x_name, x, dtype, index):
        if x.ndim < 2:
            raise ValueError(f"{x_name} must be (n, C) or (n, C, d1, ...); got shape {x.shape}")
        n, c = x.shape[:2]
        rest = tuple(x.shape[2:])
        if c == 0:
            raise ValueError(f"{x_name} has shape {tuple(x.shape)}: no classes along axis 1")
        want = (n, *rest) if index else tuple(x.shape)
        if tuple(y.shape) != want:
            raise ValueError(
                f"{y_name} has shape {tuple(y.shape)} but {x_name} has shape "
                f"{tuple(x.shape)}; {y_name} must have shape {want}"
            )
        r = math.prod(rest)
        x3 = backend.flat(x, dtype).reshape(n, c, r)
        y_dtype = np.dtype(np.int64) if index else dtype
        y3 = backend.flat(y, y_dtype).reshape((n, r) if index else (n, c, r))
        if index and backend.is_host and y3.size:
            lo, hi = int(y3.min()), int(y3.max())
            if lo < -c or hi >= c:
                raise ValueError(f"{y_name} must lie in [-{c}, {c}); got values in [{lo}, {hi}]")
        return y3, x3, (n, *rest)

    @functools.cached_property
    def _parameters(self) -> tuple[tuple[str, ...], dict[str, Any]]:
        params = self.signature.parameters
        positional = tuple(n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD)
        defaults = {n: p.default for n, p in params.items() if p.default is not p.empty}
        return positional, defaults

    def _arguments(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        """The call's arguments by name, defaults filled in: ``Signature.bind`` without
        its cost (a third of a small call's time), which stays for the error messages."""
        positional, defaults = self._parameters
        if len(args) <= len(positional) and kwargs.keys().isdisjoint(positional[: len(args)]):
            arguments = {**defaults, **dict(zip(positional, args, strict=False)), **kwargs}
            if arguments.keys() == self.signature.parameters.keys():
                return arguments
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def _bind(self, args: tuple, kwargs: dict):
        """Bind a call's arguments; validate the hyper-parameters, place the arrays."""
        arguments = self._arguments(args, kwargs)
        reduction = arguments.pop("reduction")
        out = arguments.pop("out", None)
        if reduction not in _dispatch.REDUCTIONS:
            raise ValueError(f"reduction must be one of {_dispatch.REDUCTIONS}, not {reduction!r}")
        hyper = _dispatch.real_numbers({k: arguments[k] for k in self.hyper})
        self.check(**hyper)
        params = tuple(hyper.values()) + self.constants or (0.0,)
        return reduction, out, params, self.prepare(arguments)

    def run(self, args: tuple, kwargs: dict, want: str):
        """A call of the loss (want "value"), its gradient ("grad") or both ("both")."""
        reduction, out, params, prepared = self._bind(args, kwargs)
        backend, a, b, dtype, value_shape, grad_shape, like = prepared
        pattern, fg, fin = self.pattern, self.fg, self.fin
        if pattern == "rows_dense" and reduction != "none":
            # Every term is summed: one flat pass over all of them, which vectorises even
            # for a few classes per row (only reduction="none" needs the sums per row).
            pattern, a, b = "elementwise", a.reshape(-1), b.reshape(-1)
        if reduction == "none" and self.none_fg is not None:
            fg, fin = self.none_fg, identity
        vbuf = gbuf = None
        if out is not None:  # the gradient's buffer, or the values' for reduction="none"
            if want == "value" and reduction != "none":
                raise ValueError("out= needs reduction='none' (a reduction returns a scalar)")
            shape = value_shape if want == "value" else grad_shape
            buf = _dispatch.check_out(backend, out, shape, dtype)
            vbuf, gbuf = (buf, None) if want == "value" else (None, buf)
        result = _dispatch.run_terms(
            backend,
            pattern,
            fg,
            fin,
            a,
            b,
            params,
            reduction,
            want,
            dtype,
            value_shape,
            grad_shape,
            vbuf,
            gbuf,
        )
        if backend.is_host:
            return result
        if want == "both":
            return tuple(_dispatch.wrap(r, like) for r in result)
        return _dispatch.wrap(result, like)

    # A reduction as partial -> combine -> finalize, for data that comes in chunks: the
    # partial of a chunk is the float64 sum of its terms and their count; partials add.

    def partial(self, *args, **kwargs) -> tuple[float, int]:
        """``(sum of the terms, number of terms)`` of one chunk, in float64 (CPU data).

        The arguments are the loss's own; ``reduction`` is ignored.
        """
        _, _, params, prepared = self._bind(args, {**kwargs, "reduction": "sum"})
        backend, a, b, dtype, value_shape, _, _ = prepared
        if not backend.is_host:
            raise NotImplementedError("partial() takes host (NumPy) chunks")
        total = backend.launch(self.pattern, self.fg, a, b, params, dtype.type(1), None, None, True)
        return float(total[0]), math.prod(value_shape)

    @staticmethod
    def combine(*partials: tuple[float, int]) -> tuple[float, int]:
        """The partial of the chunks together."""
        return math.fsum(t for t, _ in partials), sum(n for _, n in partials)

    def finalize(self, partial: tuple[float, int], reduction: str = "mean") -> float:
        """The loss from the partial of all the data (float64)."""
        total, n = partial
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
        if n == 0:
            raise ValueError(f"reduction={reduction!r} of an empty input")
        return self.fin(total / n if reduction == "mean" else total)[0]


LOSSES: dict[str, Loss] = {}


def _no_check(**params: float) -> None:
    pass


def loss(
    fg: Callable,
    *,
    arrays: tuple[str, str],
    pred: str,
    labels: tuple[str, ...] = (),
    pattern: str = "elementwise",
    check: Callable[..., None] = _no_check,
    fin: Callable = identity,
    none_fg: Callable | None = None,
    constants: tuple[float, ...] = (),
):
    """Declare a loss: the decorated function's signature and docstring are the API.

    Returns the loss itself; its gradient and value-and-gradient functions are attributes
    ``.grad`` and ``.value_and_grad`` (exported as ``<name>_grad`` and
    ``<name>_value_and_grad``).
    """

    def decorate(declaration: Callable) -> Callable:
        sig = inspect.signature(declaration)
        hyper = tuple(
            name
            for name, p in sig.parameters.items()
            if p.kind is p.POSITIONAL_OR_KEYWORD and name not in arrays
        )
        api_sig = sig.replace(
            parameters=[
                *sig.parameters.values(),
                inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None),
            ]
        )
        spec = Loss(
            declaration.__name__,
            fg,
            pattern,
            arrays,
            pred,
            next(name for name in sig.parameters if name in arrays),
            labels,
            hyper,
            check,
            fin,
            none_fg,
            constants,
            api_sig,
        )
        LOSSES[spec.name] = spec

        def make(want: str, suffix: str, doc: str) -> Callable:
            def api(*args, **kwargs):
                return spec.run(args, kwargs, want)

            functools.update_wrapper(api, declaration)
            api.__name__ = api.__qualname__ = spec.name + suffix
            api.__signature__ = api_sig
            if doc:
                api.__doc__ = doc
            return api

        value = make("value", "", "")
        value.grad = make(
            "grad",
            "_grad",
            f"Gradient of :func:`{spec.name}` with respect to ``{pred}``, for the same "
            f"``reduction``; the shape of ``{pred}``. ``out=`` receives it in place.",
        )
        value.value_and_grad = make(
            "both",
            "_value_and_grad",
            f"``({spec.name}(...), {spec.name}_grad(...))`` computed in ONE pass over the "
            "data; ``out=`` receives the gradient in place.",
        )
        value.spec = spec
        return value

    return decorate


def _nonnegative(name: str) -> Callable[..., None]:
    def check(**params: float) -> None:
        if params[name] < 0:
            raise ValueError(f"{name} must be >= 0, got {params[name]}")

    return check


def _eps_below_half(eps: float, **_: float) -> None:
    if not 0 <= eps < 0.5:
        raise ValueError(f"eps must be in [0, 0.5), got {eps}")


def _eps_unit(eps: float) -> None:
    if not 0 <= eps <= 1:
        raise ValueError(f"eps must be in [0, 1], got {eps}")


def _focal_check(alpha: float, gamma: float, eps: float) -> None:
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    _eps_below_half(eps)


# --------------------------------------------------------------------------------------
# The public losses.
# --------------------------------------------------------------------------------------

_REG = {"arrays": ("y", "y_hat"), "pred": "y_hat"}


@loss(_mse, **_REG)
def mse(y, y_hat, *, reduction="mean"):
    """Mean squared error, ``L = (1/n) Σ (y - ŷ)²``. Gradient ``2 (ŷ - y) / n``."""


@loss(_mse, **_REG, fin=sqrt_fin, none_fg=_mae)
def rmse(y, y_hat, *, reduction="mean"):
    """Root mean squared error, ``L = sqrt((1/n) Σ (y - ŷ)²)``.

    ``reduction="sum"`` gives ``sqrt(Σ (y - ŷ)²)`` and ``"none"`` the per-element root
    ``|y - ŷ|``. Gradient ``(ŷ - y) / (n L)``, defined as 0 where ``L = 0`` (a
    subgradient; autograd would give NaN). The gradient needs ``L`` first, so
    ``rmse_grad`` reads the inputs once and rescales the gradient it wrote.
    """


@loss(_mae, **_REG)
def mae(y, y_hat, *, reduction="mean"):
    """Mean absolute error, ``L = (1/n) Σ |y - ŷ|``. Gradient ``sign(ŷ - y) / n`` (0 at 0)."""


@loss(_huber, **_REG, check=_nonnegative("delta"))
def huber(y, y_hat, delta=1.0, *, reduction="mean"):
    """Huber loss: ``0.5 r²`` if ``r = |y - ŷ| <= δ``, else ``δ (r - δ/2)``; δ >= 0.

    Gradient ``ŷ - y`` in the quadratic zone, ``δ sign(ŷ - y)`` outside.
    """


@loss(_log_cosh, **_REG)
def log_cosh(y, y_hat, *, reduction="mean"):
    """Log-cosh loss, ``L = (1/n) Σ log(cosh(y - ŷ))``. Gradient ``tanh(ŷ - y) / n``.

    Differs from the NumPy formula where that one is wrong: ``cosh`` overflows for
    ``|e| > 710`` (the formula returns inf) and ``log(cosh(e))`` rounds to 0 for
    ``|e| < 1e-8``. mlkernels uses ``|e| + log1p(exp(-2|e|)) - log 2`` for ``|e| >= 1``
    and ``log1p(u² / (2 (1 + u)))`` with ``u = expm1(|e|)`` below: finite and accurate to
    rounding for every finite ``e``.
    """


_CLS = {"arrays": ("y", "p"), "pred": "p", "labels": ("y",)}


@loss(_bce, **_CLS, check=_eps_below_half)
def bce(y, p, eps=1e-15, *, reduction="mean"):
    """Binary cross-entropy, ``L = -(1/n) Σ [y log p + (1 - y) log(1 - p)]``.

    ``p`` is clipped to ``[eps, 1 - eps]`` as in the formula; the gradient
    ``(p - y) / (p (1 - p))`` is zero where the clip is active (as ``torch.clamp``). The
    clip is evaluated in float64 even for float32 data, where ``1 - 1e-15`` would round to
    1 and the formula return inf for ``p = 1, y = 0``.
    """


@loss(
    _cce,
    arrays=("y_onehot", "p"),
    pred="p",
    labels=("y_onehot",),
    pattern="rows_dense",
    check=_eps_unit,
)
def cce(y_onehot, p, eps=1e-15, *, reduction="mean"):
    """Categorical cross-entropy, ``L = -(1/n) Σ_i Σ_k y_ik log p_ik``, ``p`` clipped to [eps, 1].

    Classes along axis 1: ``p`` is (n, C) or (n, C, d1, ...); ``reduction="none"``
    returns one value per sample, shape (n, d1, ...). Gradient ``-y / p`` (zero where
    clipped), divided by the number of samples for the mean.
    """


@loss(_hinge, arrays=("y", "scores"), pred="scores", labels=("y",))
def hinge(y, scores, *, reduction="mean"):
    """Hinge loss, ``L = (1/n) Σ max(0, 1 - y s)``, ``y`` in {-1, +1}.

    Gradient ``-y`` where the margin is violated, 0 elsewhere.
    """


@loss(_squared_hinge, arrays=("y", "scores"), pred="scores", labels=("y",))
def squared_hinge(y, scores, *, reduction="mean"):
    """Squared hinge loss, ``L = (1/n) Σ max(0, 1 - y s)²``. Gradient ``-2 y max(0, 1 - y s)``."""


@loss(_focal, **_CLS, check=_focal_check)
def focal(y, p, alpha=0.25, gamma=2.0, eps=1e-15, *, reduction="mean"):
    """Focal loss, ``L = -(1/n) Σ [α (1-p)^γ y log p + (1-α) p^γ (1-y) log(1-p)]``.

    ``p`` clipped to ``[eps, 1 - eps]`` (in float64, see :func:`bce`); gradient zero where
    clipped. ``0 <= alpha <= 1``, ``gamma >= 0``.
    """


_DIV = {"arrays": ("p", "q"), "pred": "q"}


@loss(_kl, **_DIV, check=_eps_unit)
def kl_divergence(p, q, eps=1e-15, *, reduction="sum"):
    """Kullback-Leibler divergence, ``KL(P || Q) = Σ p log(p / q)``, both clipped to [eps, 1].

    The default reduction is the formula's sum. Gradient ``-p / q`` (zero where ``q`` is
    clipped).
    """


@loss(_js, **_DIV, constants=(1e-15,))
def js_divergence(p, q, *, reduction="sum"):
    """Jensen-Shannon divergence, ``0.5 KL(p || m) + 0.5 KL(q || m)``, ``m = (p + q) / 2``.

    KL's clipping to [1e-15, 1] applies to ``p``, ``q`` and ``m``. Gradient
    ``0.5 (log(q / m) + 1) - 0.25 (p + q) / m``.
    """


@loss(
    _nll,
    arrays=("targets", "log_probs"),
    pred="log_probs",
    labels=("targets",),
    pattern="rows_index",
)
def nll(log_probs, targets, *, reduction="mean"):
    """Negative log-likelihood, ``L = -(1/n) Σ_i log_probs[i, targets[i]]``.

    ``log_probs`` is (n, C) or (n, C, d1, ...), ``targets`` integer class indices of
    shape (n, d1, ...) in ``[-C, C)`` (negative ones count from the end, as in NumPy
    indexing); out of range, the CPU raises ``ValueError`` and the GPU, which checks
    without synchronising, gives NaN for that sample. Only the target entries are read.
    Gradient: ``-1/n`` at each target, 0 elsewhere.
    """


@loss(_contrastive, arrays=("d", "y"), pred="d", labels=("y",), check=_nonnegative("margin"))
def contrastive(d, y, margin=1.0, *, reduction="mean"):
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
