"""One table of every formula mlkernels implements: how to make data for it and its NumPy
formula. It drives ``precompile``, the main job (``python -m mlkernels``), the asv suite
and the tests, so that they all agree on what is measured and against what.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from mlkernels import reference

CLASSES = 10  # columns of the (n / CLASSES, CLASSES) inputs of cce and nll


def _normal2(n, dtype, rng):
    return rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)


def _binary_prob(n, dtype, rng):
    return (rng.random(n) < 0.5).astype(dtype), rng.uniform(0.001, 0.999, n).astype(dtype)


def _signs_scores(n, dtype, rng):
    return np.where(rng.random(n) < 0.5, -1, 1).astype(dtype), rng.standard_normal(n).astype(dtype)


def _distributions(n, dtype, rng):
    p, q = rng.random(n) + 0.01, rng.random(n) + 0.01
    return (p / p.sum()).astype(dtype), (q / q.sum()).astype(dtype)


def _rows(n, dtype, rng):
    rows = max(n // CLASSES, 1)
    p = rng.random((rows, CLASSES)) + 0.01
    p /= p.sum(axis=1, keepdims=True)
    labels = rng.integers(0, CLASSES, rows)
    return labels, p.astype(dtype)


def _onehot_prob(n, dtype, rng):
    labels, p = _rows(n, dtype, rng)
    return np.eye(CLASSES, dtype=dtype)[labels], p


def _logprob_targets(n, dtype, rng):
    labels, p = _rows(n, dtype, rng)
    return np.log(p), labels


def _distance_pairs(n, dtype, rng):
    return np.abs(rng.standard_normal(n)).astype(dtype), (rng.random(n) < 0.5).astype(dtype)


@dataclass(frozen=True)
class Entry:
    name: str
    family: str
    make: Callable  # (n, dtype, rng) -> positional array arguments, about n elements each
    reference: Callable  # the NumPy formula
    transcendental: bool  # calls log/exp/tanh (libm-bound on the CPU for now)

    @property
    def function(self) -> Callable:
        import mlkernels

        return getattr(mlkernels, self.name)

    def args(self, n: int, dtype, seed: int = 0) -> tuple:
        return self.make(n, np.dtype(dtype), np.random.default_rng(seed))

    def warm(self, dtype, device: str = "cpu") -> None:
        """Run every kernel of the entry once on tiny data (compiles or loads them)."""
        args = self.args(2 * CLASSES, dtype)
        if device == "cuda":
            from numba import cuda

            args = tuple(cuda.to_device(a) for a in args)
        f = self.function
        for reduction in ("mean", "sum", "none"):
            for fn in (f, f.grad, f.value_and_grad):
                fn(*args, reduction=reduction)


_E = Entry
ENTRIES = {
    e.name: e
    for e in [
        _E("mse", "losses", _normal2, reference.mse, False),
        _E("rmse", "losses", _normal2, reference.rmse, False),
        _E("mae", "losses", _normal2, reference.mae, False),
        _E("huber", "losses", _normal2, reference.huber, False),
        _E("log_cosh", "losses", _normal2, reference.log_cosh, True),
        _E("bce", "losses", _binary_prob, reference.bce, True),
        _E("cce", "losses", _onehot_prob, reference.cce, True),
        _E("hinge", "losses", _signs_scores, reference.hinge, False),
        _E("squared_hinge", "losses", _signs_scores, reference.squared_hinge, False),
        _E("focal", "losses", _binary_prob, reference.focal, True),
        _E("kl_divergence", "losses", _distributions, reference.kl_divergence, True),
        _E("js_divergence", "losses", _distributions, reference.js_divergence, True),
        _E("nll", "losses", _logprob_targets, reference.nll, False),
        _E("contrastive", "losses", _distance_pairs, reference.contrastive, False),
    ]
}


def entries(names: Iterable[str] | None = None) -> list[Entry]:
    if names is None:
        return list(ENTRIES.values())
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        raise ValueError(f"unknown formulas: {', '.join(unknown)}")
    return [ENTRIES[n] for n in names]
