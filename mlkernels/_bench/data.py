"""Benchmark and test data for each formula: ``maker(n, dtype, rng)`` for flat formulas,
``maker((rows, cols), dtype, rng)`` for row-laid ones, returning the positional array
arguments. Named in each formula's declaration (``data=``)."""

from __future__ import annotations

import numpy as np

#: Columns of the (n / CLASSES, CLASSES) inputs of cce and nll.
CLASSES = 10


# --------------------------------------------------------------------------------------


def normal2(n, dtype, rng):
    return rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)


def binary_prob(n, dtype, rng):
    return (rng.random(n) < 0.5).astype(dtype), rng.uniform(0.001, 0.999, n).astype(dtype)


def signs_scores(n, dtype, rng):
    return np.where(rng.random(n) < 0.5, -1, 1).astype(dtype), rng.standard_normal(n).astype(dtype)


def distributions(n, dtype, rng):
    p, q = rng.random(n) + 0.01, rng.random(n) + 0.01
    return (p / p.sum()).astype(dtype), (q / q.sum()).astype(dtype)


def _class_rows(n, dtype, rng):
    rows = max(n // CLASSES, 1)
    p = rng.random((rows, CLASSES)) + 0.01
    p /= p.sum(axis=1, keepdims=True)
    labels = rng.integers(0, CLASSES, rows)
    return labels, p.astype(dtype)


def onehot_prob(n, dtype, rng):
    labels, p = _class_rows(n, dtype, rng)
    return np.eye(CLASSES, dtype=dtype)[labels], p


def logprob_targets(n, dtype, rng):
    labels, p = _class_rows(n, dtype, rng)
    return np.log(p), labels


def distance_pairs(n, dtype, rng):
    return np.abs(rng.standard_normal(n)).astype(dtype), (rng.random(n) < 0.5).astype(dtype)


def normal(shape, dtype, rng):
    """N(0, 2^2): both sides of every kink, and the saturated tails of sigmoid/tanh/gelu."""
    return ((2 * rng.standard_normal(shape)).astype(dtype),)


def normal_and_upstream(shape, dtype, rng):
    """Logits and an upstream gradient dy, for the vector-Jacobian products."""
    return normal(shape, dtype, rng)[0], rng.standard_normal(shape).astype(dtype)


def affine(shape, dtype, rng):
    """x, and gamma and beta of the normalised axis (last for layer_norm, 1 for batch_norm)."""
    x = (1.5 + 2 * rng.standard_normal(shape)).astype(dtype)
    gamma = (1 + 0.1 * rng.standard_normal(shape[-1])).astype(dtype)
    beta = (0.1 * rng.standard_normal(shape[-1])).astype(dtype)
    return x, gamma, beta


def affine_upstream(shape, dtype, rng):
    """x, gamma and the upstream gradient dy (the normalisations' backward passes)."""
    x, gamma, _ = affine(shape, dtype, rng)
    return x, gamma, rng.standard_normal(shape).astype(dtype)


def columns(shape, dtype, rng):
    """A weight matrix whose column norms spread over (0, 6): about half exceed c = 3."""
    scale = rng.uniform(0, 6 / np.sqrt(shape[0]), shape[1])
    return ((rng.standard_normal(shape) * scale).astype(dtype),)


def dropout_error(got, expected, host_args, p: float = 0.5) -> float:
    """Dropout draws its own mask: check the kept values (x / (1 - p)) and that the kept
    fraction is 1 - p within 6 standard deviations."""
    (x,) = host_args
    got = np.asarray(got)
    kept = got != 0
    n = max(got.size, 1)
    if abs(kept.mean() - (1 - p)) > 6 * np.sqrt(p * (1 - p) / n) + 1e-12:
        return np.inf
    return _rel_error(got[kept], x[kept] / (1 - p)) if kept.any() else 0.0


def _rel_error(got, expected) -> float:
    from mlkernels._bench.registry import rel_error

    return rel_error(got, expected)


def steps(n, dtype, rng):
    """Step counts 0..9999 (whole numbers in ``dtype``): the schedules' ``t``."""
    return (rng.integers(0, 10_000, n).astype(dtype),)
