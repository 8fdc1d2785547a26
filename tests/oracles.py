"""Reference implementations of the losses, written for the tests.

Three independent oracles, all in float64 (float32 test data is cast to float64 first, so
a float32 result is compared with the exact-ish answer for the float32 data):

* :func:`np_terms` / :func:`np_value`: per-element NumPy versions of every loss (what
  ``reduction="none"`` returns), reduced with ``math.fsum`` for "sum" / "mean". Where the
  NumPy formula of the specification is numerically broken (``log(cosh(e))`` overflows for
  ``|e| > 710`` and rounds to 0 for tiny ``e``) the oracle uses an exact formulation.
* :func:`torch_value_and_grad`: every loss built from PyTorch CPU ops in float64, with the
  formula's clipping done by ``torch.clamp``, differentiated by autograd with respect to
  the prediction. Written so that no branch of a ``torch.where`` can leak a spurious NaN
  into the gradient at ±inf.
* :func:`torch_builtin`: PyTorch's own losses where they compute the same thing
  (``mse_loss``, ``l1_loss``, ``huber_loss``, ``binary_cross_entropy``, ``kl_div``,
  ``nll_loss``), an oracle that shares no code with the other two.

Plus the data generators used by the tests (:func:`make_inputs`) and a comparison helper
(:func:`assert_close`) that understands NaN, ±inf, float32 and cancellation-prone terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from mlkernels._core.spec import FORMULAS
from mlkernels.losses import LOSSES

__all__ = [
    "NAMES",
    "SPECS",
    "LossSpec",
    "assert_close",
    "make_inputs",
    "np_scale",
    "np_terms",
    "np_value",
    "rtol_for",
    "torch_builtin",
    "torch_value_and_grad",
    "value_shape",
]

LOG2 = math.log(2.0)
CLASSES = 5  # default number of classes of the cce / nll test data
JS_EPS = 1e-15  # kl_divergence's default eps, used inside js_divergence


@dataclass(frozen=True)
class LossSpec:
    """How a loss is called: the positional array arguments and hyper-parameters."""

    args: tuple[str, str]  # positional array parameters, in call order
    pred: int  # index (in args) of the prediction, the argument the gradient is for
    label: int | None  # index of a label argument (does not decide the dtype), if any
    hyper: dict = field(default_factory=dict)  # positional hyper-parameters and defaults
    default_reduction: str = "mean"
    rows: bool = False  # classes along axis 1 (cce, nll)


def _declared(name: str) -> LossSpec:
    """How the loss is called, read off its declaration (the one table): the tests call
    what is declared, and check it against their own references."""
    f = FORMULAS[name]
    args = tuple(f.arrays)
    params = f.signature.parameters
    labels = [i for i, a in enumerate(args) if f.arrays[a] in ("label", "index")]
    return LossSpec(
        args,
        args.index(f.template.pred),
        labels[0] if labels else None,
        {n: p.default for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD
         and n not in f.arrays},
        params["reduction"].default,
        f.template.pattern != "elementwise",
    )  # fmt: skip


SPECS: dict[str, LossSpec] = {name: _declared(name) for name in LOSSES}
NAMES = tuple(SPECS)
ELEMENTWISE = tuple(n for n in NAMES if not SPECS[n].rows)
REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------------------
# Test data
# --------------------------------------------------------------------------------------


def _softmax_axis1(shape, rng):
    p = rng.random(shape) + 0.01
    return p / p.sum(axis=1, keepdims=True)


def make_inputs(
    name: str,
    n: int,
    dtype=np.float64,
    rng: np.random.Generator | None = None,
    *,
    shape: tuple | None = None,
    classes: int = CLASSES,
    label_dtype=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Positional array arguments of ``name`` with typical values.

    Elementwise losses get arrays of ``shape`` (default ``(n,)``); cce and nll get
    (n, classes) arrays, or (n, classes, *shape[2:]) if ``shape`` is given (then
    ``shape[0]`` and ``shape[1]`` replace ``n`` and ``classes``). Real arrays are in
    ``dtype``, labels in ``label_dtype`` (default: ``dtype``; int64 for nll targets).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    dtype = np.dtype(dtype)
    spec = SPECS[name]
    if spec.rows:
        full = tuple(shape) if shape is not None else (n, classes)
        n, classes = full[0], full[1]
    else:
        full = tuple(shape) if shape is not None else (n,)
    lab = np.dtype(label_dtype) if label_dtype is not None else None

    def label(x):
        return x.astype(lab if lab is not None else dtype)

    if name in ("mse", "rmse", "mae", "huber", "log_cosh"):
        y = rng.standard_normal(full)
        y_hat = y + 1.5 * rng.standard_normal(full)  # |e| on both sides of delta = 1
        return y.astype(dtype), y_hat.astype(dtype)
    if name in ("bce", "focal"):
        y = (rng.random(full) < 0.5).astype(np.int64)
        p = rng.uniform(0.001, 0.999, full)
        return label(y), p.astype(dtype)
    if name in ("hinge", "squared_hinge"):
        y = np.where(rng.random(full) < 0.5, -1, 1)
        return label(y), (1.5 * rng.standard_normal(full)).astype(dtype)
    if name in ("kl_divergence", "js_divergence"):
        p, q = rng.random(full) + 0.01, rng.random(full) + 0.01
        return (p / p.sum()).astype(dtype), (q / q.sum()).astype(dtype)
    if name == "contrastive":
        d = np.abs(1.2 * rng.standard_normal(full))
        return d.astype(dtype), label((rng.random(full) < 0.5).astype(np.int64))
    if name == "cce":
        p = _softmax_axis1(full, rng)
        k = rng.integers(0, classes, (n, *full[2:]))
        y = (
            np.arange(classes).reshape((1, classes) + (1,) * (len(full) - 2)) == k[:, None]
        ).astype(np.int64)
        return label(y), p.astype(dtype)
    if name == "nll":
        lp = np.log(_softmax_axis1(full, rng))
        t = rng.integers(0, classes, (n, *full[2:]))
        return lp.astype(dtype), t.astype(lab if lab is not None else np.int64)
    raise KeyError(name)


def value_shape(name: str, args) -> tuple:
    """Shape of ``reduction="none"``: the inputs' for elementwise losses, (n, d...) for rows."""
    spec = SPECS[name]
    pred = np.shape(args[spec.pred])
    if spec.rows:
        return (pred[0], *pred[2:])
    return tuple(pred)


def _hyper(name: str, hyper: dict) -> dict:
    unknown = set(hyper) - set(SPECS[name].hyper)
    if unknown:
        raise TypeError(f"{name} has no hyper-parameters {sorted(unknown)}")
    return {**SPECS[name].hyper, **hyper}


def _f64(x) -> np.ndarray:
    return np.array(x, dtype=np.float64)  # a copy: the oracles never alias test data


def _targets(log_probs, targets) -> np.ndarray:
    c = np.shape(log_probs)[1]
    return np.asarray(targets).astype(np.int64) % c if c else np.asarray(targets, np.int64)


# --------------------------------------------------------------------------------------
# NumPy oracle: per-element terms, then the reduction
# --------------------------------------------------------------------------------------


def log_cosh_exact(e) -> np.ndarray:
    """log(cosh(e)) to rounding for every e: log1p(2 sinh²(e/2)) below 1, else the
    overflow-free |e| - log 2 + log1p(exp(-2|e|)). (cosh e - 1 = 2 sinh²(e/2) exactly.)"""
    a = np.abs(_f64(e))
    out = np.empty_like(a)
    small = a < 1.0
    s = np.sinh(0.5 * a[small])
    out[small] = np.log1p(2.0 * s * s)
    big = a[~small]  # NaN lands here and stays NaN
    with np.errstate(all="ignore"):
        out[~small] = big - LOG2 + np.log1p(np.exp(-2.0 * big))
    return out


def np_terms(name: str, args, **hyper) -> np.ndarray:
    """The per-element (per-sample for cce / nll) loss values, float64."""
    h = _hyper(name, hyper)
    a, b = args
    with np.errstate(all="ignore"):
        if name == "nll":
            lp = _f64(a)
            t = _targets(lp, b)
            return -np.take_along_axis(lp, t[:, None], axis=1)[:, 0]
        a, b = _f64(a), _f64(b)
        if name == "mse":
            return (a - b) ** 2
        if name in ("rmse", "mae"):
            return np.abs(a - b)
        if name == "huber":
            r, d = np.abs(a - b), h["delta"]
            return np.where(r <= d, 0.5 * r * r, d * (r - 0.5 * d))
        if name == "log_cosh":
            return log_cosh_exact(a - b)
        if name == "bce":
            eps = h["eps"]
            p = np.clip(b, eps, 1.0 - eps)
            return -(a * np.log(p) + (1.0 - a) * np.log(1.0 - p))
        if name == "cce":
            p = np.clip(b, h["eps"], 1.0)
            return -np.sum(a * np.log(p), axis=1)
        if name == "hinge":
            return np.maximum(0.0, 1.0 - a * b)
        if name == "squared_hinge":
            return np.maximum(0.0, 1.0 - a * b) ** 2
        if name == "focal":
            al, g, eps = h["alpha"], h["gamma"], h["eps"]
            p = np.clip(b, eps, 1.0 - eps)
            pos = al * (1.0 - p) ** g * a * np.log(p)
            neg = (1.0 - al) * p**g * (1.0 - a) * np.log(1.0 - p)
            return -(pos + neg)
        if name == "kl_divergence":
            eps = h["eps"]
            p, q = np.clip(a, eps, 1.0), np.clip(b, eps, 1.0)
            return p * np.log(p / q)
        if name == "js_divergence":
            m = 0.5 * (a + b)
            p, q, mc = (np.clip(x, JS_EPS, 1.0) for x in (a, b, m))
            return 0.5 * (p * np.log(p / mc) + q * np.log(q / mc))
        if name == "contrastive":
            d, y = a, b
            return y * d**2 + (1.0 - y) * np.maximum(0.0, h["margin"] - d) ** 2
    raise KeyError(name)


def _sum(t: np.ndarray) -> float:
    flat = t.ravel()
    if np.all(np.isfinite(flat)):
        return math.fsum(flat.tolist())  # exactly rounded: the best float64 reference
    with np.errstate(all="ignore"):
        return float(np.sum(flat))


def np_value(name: str, args, reduction: str | None = None, **hyper):
    """The loss for ``reduction`` (float for mean / sum, float64 array for none)."""
    reduction = reduction or SPECS[name].default_reduction
    if name == "rmse" and reduction != "none":
        sq = np_terms("mse", args)
        s = _sum(sq) / (sq.size if reduction == "mean" else 1)
        return math.sqrt(s) if not math.isnan(s) else math.nan
    t = np_terms(name, args, **hyper)
    if reduction == "none":
        return t
    s = _sum(t)
    return s / t.size if reduction == "mean" else s


def np_scale(name: str, args, reduction: str | None = None, **hyper):
    """The size of the rounding error to expect, in units of the dtype's epsilon.

    ``|terms|`` reduced like the value, plus, for kl / js, the magnitude of the logs'
    arguments (``p log(p / q)`` loses ``p * eps`` absolutely however small it is; js
    subtracts two such terms), so that a relative tolerance is applied to the size of what
    was computed rather than to a result that cancelled to nearly 0.
    """
    reduction = reduction or SPECS[name].default_reduction
    if name == "rmse" and reduction != "none":
        return abs(np_value(name, args, reduction))
    h = _hyper(name, hyper)
    with np.errstate(all="ignore"):
        s = np.abs(np_terms(name, args, **hyper))
        if name == "kl_divergence":
            s = s + np.clip(_f64(args[0]), h["eps"], 1.0)
        elif name == "js_divergence":
            s = s + np.clip(_f64(args[0]), JS_EPS, 1.0) + np.clip(_f64(args[1]), JS_EPS, 1.0)
    s = np.where(np.isfinite(s), s, 0.0)
    if reduction == "none":
        return s
    return float(np.sum(s)) / (s.size if reduction == "mean" else 1)


# --------------------------------------------------------------------------------------
# PyTorch autograd oracle
# --------------------------------------------------------------------------------------


def _torch_terms(name: str, a: torch.Tensor, b: torch.Tensor, h: dict) -> torch.Tensor:
    if name == "nll":
        return -torch.gather(a, 1, b.unsqueeze(1)).squeeze(1)
    if name == "mse":
        e = b - a
        return e * e
    if name in ("rmse", "mae"):
        return torch.abs(b - a)
    if name == "huber":
        # 0.5 c² + δ (r - c) with c = min(r, δ): the Huber loss, and no where() whose dead
        # branch would turn an infinite residual into a NaN gradient.
        r = torch.abs(b - a)
        c = torch.clamp(r, max=h["delta"])
        return 0.5 * c * c + h["delta"] * (r - c)
    if name == "log_cosh":
        e = b - a
        small = torch.abs(e) < 1.0
        es = torch.where(small, e, torch.zeros_like(e))
        el = torch.where(small, torch.ones_like(e), e)
        s = torch.sinh(0.5 * es)
        v_small = torch.log1p(2.0 * s * s)
        al = torch.abs(el)
        v_big = al - LOG2 + torch.log1p(torch.exp(-2.0 * al))
        return torch.where(small, v_small, v_big)
    if name == "bce":
        eps = h["eps"]
        p = torch.clamp(b, eps, 1.0 - eps)
        return -(a * torch.log(p) + (1.0 - a) * torch.log(1.0 - p))
    if name == "cce":
        p = torch.clamp(b, h["eps"], 1.0)
        return -(a * torch.log(p)).sum(dim=1)
    if name == "hinge":
        return torch.relu(1.0 - a * b)
    if name == "squared_hinge":
        m = torch.relu(1.0 - a * b)
        return m * m
    if name == "focal":
        al, g, eps = h["alpha"], h["gamma"], h["eps"]
        p = torch.clamp(b, eps, 1.0 - eps)
        q = 1.0 - p
        return -(al * q**g * a * torch.log(p) + (1.0 - al) * p**g * (1.0 - a) * torch.log(q))
    if name == "kl_divergence":
        eps = h["eps"]
        p, q = torch.clamp(a, eps, 1.0), torch.clamp(b, eps, 1.0)
        return p * torch.log(p / q)
    if name == "js_divergence":
        m = 0.5 * (a + b)
        p, q, mc = (torch.clamp(x, JS_EPS, 1.0) for x in (a, b, m))
        return 0.5 * (p * torch.log(p / mc) + q * torch.log(q / mc))
    if name == "contrastive":
        d, y = a, b
        hm = torch.relu(h["margin"] - d)
        return y * d * d + (1.0 - y) * hm * hm
    raise KeyError(name)


def _tensors(name: str, args):
    spec = SPECS[name]
    if name == "nll":
        lp = torch.tensor(_f64(args[0]))
        t = torch.tensor(_targets(args[0], args[1]))
        ts = [lp, t]
    else:
        ts = [torch.tensor(_f64(x)) for x in args]
    ts[spec.pred].requires_grad_(True)
    return ts


def torch_value_and_grad(name: str, args, reduction: str | None = None, **hyper):
    """(loss, dloss/dprediction) from autograd, as float / float64 NumPy arrays.

    For ``reduction="none"`` the gradient is that of the sum of the terms, i.e. each
    term's derivative with respect to its own prediction. For rmse the gradient where the
    loss is 0 is taken as 0 (mlkernels' documented subgradient; autograd gives NaN).
    """
    spec = SPECS[name]
    reduction = reduction or spec.default_reduction
    h = _hyper(name, hyper)
    ts = _tensors(name, args)
    x = ts[spec.pred]
    if name == "rmse" and reduction != "none":
        e = ts[1] - ts[0]
        s = (e * e).sum()
        if reduction == "mean":
            s = s / max(e.numel(), 1)
        loss = torch.sqrt(s)
    else:
        t = _torch_terms(name, ts[0], ts[1], h)
        loss = t if reduction == "none" else (t.mean() if reduction == "mean" else t.sum())
    (grad,) = torch.autograd.grad(loss.sum(), x, allow_unused=True)
    grad = np.zeros(x.shape) if grad is None else grad.numpy().copy()
    value = loss.detach().numpy().copy()
    if name == "rmse" and reduction != "none" and float(value) == 0.0:
        grad = np.zeros(x.shape)
    return (value if reduction == "none" else float(value)), grad


BUILTIN = ("mse", "rmse", "mae", "huber", "bce", "cce", "kl_divergence", "js_divergence", "nll")


def torch_builtin(name: str, args, reduction: str | None = None, **hyper):
    """(loss, grad) from PyTorch's own loss functions; only for the names in BUILTIN.

    Valid for data in the formula's domain (bce: p inside [eps, 1 - eps] away from 0 and
    1, as torch clamps its log at -100 and its gradient's denominator at 1e-12; cce: y
    one-hot).
    """
    spec = SPECS[name]
    reduction = reduction or spec.default_reduction
    h = _hyper(name, hyper)
    ts = _tensors(name, args)
    x = ts[spec.pred]
    a, b = ts
    if name == "mse":
        loss = F.mse_loss(b, a, reduction=reduction)
    elif name == "rmse":
        loss = torch.sqrt(F.mse_loss(b, a, reduction=reduction))
    elif name == "mae":
        loss = F.l1_loss(b, a, reduction=reduction)
    elif name == "huber":
        loss = F.huber_loss(b, a, reduction=reduction, delta=h["delta"])
    elif name == "bce":
        p = torch.clamp(b, h["eps"], 1.0 - h["eps"])
        loss = F.binary_cross_entropy(p, a, reduction=reduction)
    elif name == "cce":
        logp = torch.log(torch.clamp(b, h["eps"], 1.0))
        loss = F.nll_loss(logp, torch.argmax(a, dim=1), reduction=reduction)
    elif name == "nll":
        loss = F.nll_loss(a, b, reduction=reduction)
    elif name in ("kl_divergence", "js_divergence"):
        if name == "kl_divergence":
            eps = h["eps"]
            p, q = torch.clamp(a, eps, 1.0), torch.clamp(b, eps, 1.0)
            t = F.kl_div(torch.log(q), p, reduction="none")
        else:
            m = torch.clamp(0.5 * (a + b), JS_EPS, 1.0)
            p, q = torch.clamp(a, JS_EPS, 1.0), torch.clamp(b, JS_EPS, 1.0)
            t = 0.5 * (
                F.kl_div(torch.log(m), p, reduction="none")
                + F.kl_div(torch.log(m), q, reduction="none")
            )
        loss = t if reduction == "none" else (t.sum() if reduction == "sum" else t.mean())
    else:
        raise KeyError(f"PyTorch has no built-in {name}")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    value = loss.detach().numpy().copy()
    return (value if reduction == "none" else float(value)), grad.numpy().copy()


# --------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------


def rtol_for(dtype) -> float:
    """The contract's tolerance: float64 1e-10, float32 1e-5 (against a float64 reference)."""
    return 1e-10 if np.dtype(dtype) == np.float64 else 1e-5


def assert_close(got, ref, *, rtol: float, scale=0.0, atol: float = 0.0, what: str = ""):
    """``got`` equals ``ref`` elementwise: the same NaNs, the same infinities, and finite
    values within ``rtol * (|ref| + scale) + atol`` (``scale``: the magnitude of what was
    computed, for results that cancel to nearly 0)."""
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
    bad = inf_r & (got != ref)
    assert not bad.any(), (
        f"{what}: expected {ref[bad][:5]} at {np.argwhere(bad)[:5].tolist()}, got {got[bad][:5]}"
    )
    fin = ~nan_r & ~inf_r
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), ref.shape)
    with np.errstate(all="ignore"):
        err = np.abs(got - ref)
        tol = rtol * (np.abs(ref) + scale) + atol
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
