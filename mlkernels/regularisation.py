"""Regularisation: weight penalties and their gradients, max-norm, dropout.

* Penalties are sums of a scalar term (the ``Sum`` template, float64 accumulation, one
  pass); their gradients map the term's derivative (``Map``).
* ``dropout`` maps a counter-based generator (:mod:`mlkernels._core.random`): element
  ``i`` is kept when a hash of ``(seed, i)`` says so, so the mask depends on the seed and
  the position only, the same on every run and on both devices; no mask is ever stored.
* ``max_norm`` is a column operation along axis 0 (per-column norms, then a rescale).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import float64
from numba.extending import register_jitable

from mlkernels._bench import data
from mlkernels._core.random import MASK32, uniform
from mlkernels._core.scalar import sign
from mlkernels._core.spec import NONNEGATIVE, Real, formula
from mlkernels._core.stats import sum_merge
from mlkernels._core.templates import ColOp, Cols, Map, Sum
from mlkernels._core.vmath import like

__all__ = [
    "dropout",
    "elastic_net",
    "elastic_net_grad",
    "l1_grad",
    "l1_loss",
    "l2_grad",
    "l2_loss",
    "max_norm",
]


# --------------------------------------------------------------------------------------
# Weight penalties: one term per weight, summed (the ``Sum`` template, float64) or mapped
# (its derivative). Separate terms, so that an unused 0 * w² cannot turn an infinite or
# huge weight into NaN.
# --------------------------------------------------------------------------------------


@register_jitable
def _l1(w, params):
    lam = params[0]
    return lam * abs(w), lam * sign(w)


@register_jitable
def _l2(w, params):
    lam = params[0]
    return lam * (w * w), 2.0 * lam * w


@register_jitable
def _elastic(w, params):
    v1, g1 = _l1(w, params[:1])
    v2, g2 = _l2(w, params[1:])
    return v1 + v2, g1 + g2


_LAMS = {"lam": NONNEGATIVE, "lam1": NONNEGATIVE, "lam2": NONNEGATIVE}
_PENALTY = {"family": "regularisation", "data": data.normal, "hyper": _LAMS}


@formula(Sum(_l2), **_PENALTY, derivative="l2_grad")
def l2_loss(weights, lam=1e-4):
    """L2 penalty, ``λ Σ w²`` (float64 accumulation); ``lam >= 0``."""


@formula(Map(_l2, 1, widen=True), **_PENALTY)
def l2_grad(weights, lam=1e-4, *, out=None):
    """Gradient of :func:`l2_loss`, ``2 λ w``."""


@formula(Sum(_l1), **_PENALTY, derivative="l1_grad")
def l1_loss(weights, lam=1e-4):
    """L1 penalty, ``λ Σ |w|`` (float64 accumulation); ``lam >= 0``."""


@formula(Map(_l1, 1, widen=True), **_PENALTY)
def l1_grad(weights, lam=1e-4, *, out=None):
    """Gradient of :func:`l1_loss`, ``λ sign(w)`` (0 at 0)."""


@formula(Sum(_elastic), **_PENALTY, derivative="elastic_net_grad")
def elastic_net(weights, lam1=1e-4, lam2=1e-4):
    """Elastic net penalty, ``λ1 Σ |w| + λ2 Σ w²``, in one pass."""


@formula(Map(_elastic, 1, widen=True), **_PENALTY)
def elastic_net_grad(weights, lam1=1e-4, lam2=1e-4, *, out=None):
    """Gradient of :func:`elastic_net`, ``λ1 sign(w) + 2 λ2 w``."""


# --------------------------------------------------------------------------------------
# Dropout: the counter-based generator of mlkernels._core.random (no state, no stored mask).
# --------------------------------------------------------------------------------------


@register_jitable
def _dropout(x, i, params):
    p, scale, key0, key1 = params
    keep = uniform(i, int(key0), int(key1)) >= p
    m = like(x, scale if keep else 0.0)
    return x * m, m


def _seed(name: str, seed: Any) -> int:
    if seed is None:
        # the global generator, as the formula's np.random.rand: np.random.seed applies
        return int(np.random.randint(0, 2**63 - 1, dtype=np.int64))  # noqa: NPY002
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int >= 0, a numpy Generator or None, not {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed) & (2**64 - 1)


_seed.draws = True  # seed=None draws at every call: the quick path never keeps its value


def _dropout_params(p: float, training: bool, seed: int) -> tuple[float, ...]:
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    return (p, scale, float(seed & MASK32), float(seed >> 32))


def _not_training(arguments: dict) -> object:
    """``dropout(x, training=False)`` is ``x`` itself: no kernel, no check."""
    return None if arguments["training"] else arguments["x"]


@formula(
    Map(_dropout, 0, counter=True),
    family="regularisation",
    data=data.normal,
    hyper={"p": Real(0, 1), "training": lambda name, v: bool(v), "seed": _seed},
    params=_dropout_params,
    shortcut=_not_training,
    check=data.dropout_error,
)
def dropout(x, p=0.5, training=True, *, seed=None, out=None):
    """Inverted dropout: ``x * (u >= p) / (1 - p)``, ``u`` uniform in [0, 1) (kept with
    probability ``1 - p``, as the formula's ``rand > p``; ``p = 0`` keeps everything).

    ``training=False`` returns ``x`` itself. ``u`` for element ``i`` (C order) is a hash of
    ``(seed, i)`` (32 bits): the same ``seed`` gives the same mask on every run, on the CPU
    and on the GPU. ``seed`` is an int, a ``numpy.random.Generator`` (one draw), or None:
    a draw from NumPy's global generator, so ``np.random.seed`` makes it reproducible, as
    the formula's ``np.random.rand``. ``0 <= p <= 1``; ``p = 1`` gives zeros.
    """


# --------------------------------------------------------------------------------------
# max_norm: per-column norms (axis 0), then a rescale.
# --------------------------------------------------------------------------------------


@register_jitable
def _sq_push(acc, ins, r, k, lo, hi, params):
    xr, ss = ins[0][r], acc[0]
    for j in range(lo, hi):
        v = float64(xr[j])
        ss[j] += v * v


@register_jitable
def _max_norm_final(acc, n, params, j):
    f = params[0] / (math.sqrt(acc[0, j]) + 1e-8)
    acc[0, j] = 1.0 if f >= 1.0 else f  # min(1, f), NaN stays NaN


@register_jitable
def _scale_emit(acc, ins, feats, params, i, j):
    return (float64(ins[0][i, j]) * acc[0, j],)


MAX_NORM = ColOp(1, _sq_push, sum_merge, _max_norm_final, _scale_emit)


@formula(
    Cols(MAX_NORM, (("out", 0),)),
    family="regularisation",
    data=data.columns,
    layout="rows",
    hyper={"c": NONNEGATIVE},
)
def max_norm(W, c=3.0, *, out=None):
    """Max-norm constraint: ``W * min(1, c / (‖W[:, j]‖₂ + 1e-8))``, norms along axis 0
    (``np.linalg.norm(W, axis=0)``), accumulated in float64; ``c >= 0``."""
