"""The NumPy formulas, as written in the specification: the baseline mlkernels is checked
and timed against (``python -m mlkernels``, the asv suite and the tests).

These are deliberately the plain, unfused formulas, temporaries and numerical flaws
included; mlkernels' docstrings say where its results differ on purpose.
"""

# ruff: noqa: E731
import numpy as np


def mse(y, y_hat):
    return np.mean((y - y_hat) ** 2)


def rmse(y, y_hat):
    return np.sqrt(mse(y, y_hat))


def mae(y, y_hat):
    return np.mean(np.abs(y - y_hat))


def huber(y, y_hat, delta=1.0):
    r = np.abs(y - y_hat)
    return np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).mean()


def log_cosh(y, y_hat):
    return np.mean(np.log(np.cosh(y - y_hat)))


def bce(y, p, eps=1e-15):
    p = np.clip(p, eps, 1 - eps)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def cce(y_onehot, p, eps=1e-15):
    p = np.clip(p, eps, 1)
    return -np.mean(np.sum(y_onehot * np.log(p), axis=1))


def hinge(y, scores):
    return np.mean(np.maximum(0, 1 - y * scores))


def squared_hinge(y, scores):
    return np.mean(np.maximum(0, 1 - y * scores) ** 2)


def focal(y, p, alpha=0.25, gamma=2.0, eps=1e-15):
    p = np.clip(p, eps, 1 - eps)
    return -np.mean(
        alpha * (1 - p) ** gamma * y * np.log(p) + (1 - alpha) * p**gamma * (1 - y) * np.log(1 - p)
    )


def kl_divergence(p, q, eps=1e-15):
    p = np.clip(p, eps, 1)
    q = np.clip(q, eps, 1)
    return np.sum(p * np.log(p / q))


def js_divergence(p, q):
    m = 0.5 * (p + q)
    return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m)


def nll(log_probs, targets):
    n = len(targets)
    return -np.mean(log_probs[np.arange(n), targets])


def contrastive(d, y, margin=1.0):
    return np.mean(y * d**2 + (1 - y) * np.maximum(0, margin - d) ** 2)
