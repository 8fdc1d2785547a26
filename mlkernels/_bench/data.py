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


# --------------------------------------------------------------------------------------
# Metrics and probability
# --------------------------------------------------------------------------------------


def binary_labels(n, dtype, rng):
    """True labels (0/1, 30% positive) and predictions that agree 80% of the time, int64
    whatever ``dtype`` (labels are integers)."""
    y = (rng.random(n) < 0.3).astype(np.int64)
    flip = rng.random(n) < 0.2
    return y, np.where(flip, 1 - y, y)


def class_labels(n, dtype, rng):
    """Labels of 5 classes and predictions that agree 70% of the time (int64)."""
    y = rng.integers(0, 5, n)
    return y, np.where(rng.random(n) < 0.3, rng.integers(0, 5, n), y)


def labels_scores(n, dtype, rng):
    """Binary labels and scores that rank positives higher, with ties (3 decimals)."""
    y = (rng.random(n) < 0.3).astype(np.int64)
    s = np.round(rng.random(n) * 0.7 + 0.3 * y, 3)
    return y, s.astype(dtype)


def regression(n, dtype, rng):
    """Targets far from zero (5 + N(0, 1)) and predictions near them."""
    y = 5 + rng.standard_normal(n)
    return y.astype(dtype), (y + 0.3 * rng.standard_normal(n)).astype(dtype)


def log_probs(n, dtype, rng):
    return (np.log(rng.uniform(0.01, 1.0, n)).astype(dtype),)


def probability_rows(shape, dtype, rng):
    """Rows that sum to 1 (each a distribution over the last axis)."""
    p = rng.random(shape) + 0.01
    return ((p / p.sum(axis=-1, keepdims=True)).astype(dtype),)


def probability_pairs(shape, dtype, rng):
    return probability_rows(shape, dtype, rng)[0], probability_rows(shape, dtype, rng)[0]


def relevance_rows(shape, dtype, rng):
    """Graded relevance 0..4 of ranked lists, one per row."""
    return (rng.integers(0, 5, shape).astype(dtype),)


def relevance_scores(shape, dtype, rng):
    """Graded relevance and scores (with ties: 2 decimals), one list per row."""
    rel = rng.integers(0, 5, shape).astype(dtype)
    return rel, np.round(rel + rng.standard_normal(shape), 1).astype(dtype)


MVN_D = 16  # dimensions of the benchmarks' multivariate normal


def gaussian_points(shape, dtype, rng):
    """Points (n / d, d), d = MVN_D, a mean and an SPD covariance (A Aᵀ / d + I)."""
    d = MVN_D
    n = max(1, (shape[0] * shape[1]) // d)
    a = rng.standard_normal((d, d))
    sigma = a @ a.T / d + np.eye(d)
    mu = rng.standard_normal(d)
    x = mu + rng.standard_normal((n, d)) @ np.linalg.cholesky(sigma).T
    return x.astype(dtype), mu.astype(dtype), sigma.astype(dtype)


def joint_table(shape, dtype, rng):
    """A joint probability table (rows x cols) that sums to 1."""
    t = rng.random(shape) ** 3
    return ((t / t.sum()).astype(dtype),)
