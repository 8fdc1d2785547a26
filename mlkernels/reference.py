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


# --------------------------------------------------------------------------------------
# Activations (verbatim from the formula list, then the derivatives it does not write out)
# --------------------------------------------------------------------------------------


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_grad(x):
    s = sigmoid(x)
    return s * (1 - s)


def tanh(x):
    return np.tanh(x)


def tanh_grad(x):
    return 1 - np.tanh(x) ** 2


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def relu(x):
    return np.maximum(0, x)


def relu_grad(x):
    return (x > 0).astype(float)


def leaky_relu(x, alpha=0.01):
    return np.where(x > 0, x, alpha * x)


def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * (np.exp(x) - 1))


SELU_ALPHA = 1.6732632423543772
SELU_LAMBDA = 1.0507009873554805


def selu(x):
    return SELU_LAMBDA * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1))


def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def swish(x):
    return x * sigmoid(x)


def mish(x):
    return x * np.tanh(np.log1p(np.exp(x)))


# Derivatives and vector-Jacobian products the formula list does not write out: the
# plain NumPy expressions of the calculus (the ``_grad`` convention of the list).


def leaky_relu_grad(x, alpha=0.01):
    return np.where(x > 0, 1.0, alpha)


def elu_grad(x, alpha=1.0):
    return np.where(x > 0, 1.0, alpha * np.exp(x))


def selu_grad(x):
    return SELU_LAMBDA * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(x))


def gelu_grad(x):
    k = np.sqrt(2 / np.pi)
    t = np.tanh(k * (x + 0.044715 * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * k * (1 + 3 * 0.044715 * x**2)


def swish_grad(x):
    s = sigmoid(x)
    return s * (1 + x * (1 - s))


def mish_grad(x):
    t = np.tanh(np.log1p(np.exp(x)))
    return t + x * (1 - t**2) * sigmoid(x)


def softmax_grad(x, dy):
    s = softmax(x)
    return s * (dy - (s * dy).sum(axis=-1, keepdims=True))


def log_softmax_grad(x, dy):
    return dy - softmax(x) * dy.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------------------
# Regularisation and normalisation
# --------------------------------------------------------------------------------------


def l2_loss(weights, lam=1e-4):
    return lam * np.sum(weights**2)


def l2_grad(weights, lam=1e-4):
    return 2 * lam * weights


def l1_loss(weights, lam=1e-4):
    return lam * np.sum(np.abs(weights))


def l1_grad(weights, lam=1e-4):
    return lam * np.sign(weights)


def elastic_net(weights, lam1=1e-4, lam2=1e-4):
    return lam1 * np.sum(np.abs(weights)) + lam2 * np.sum(weights**2)


def elastic_net_grad(weights, lam1=1e-4, lam2=1e-4):
    return lam1 * np.sign(weights) + 2 * lam2 * weights


def max_norm(W, c=3.0):
    norms = np.linalg.norm(W, axis=0, keepdims=True)
    return W * np.minimum(1, c / (norms + 1e-8))


def dropout(x, p=0.5, training=True):
    if not training:
        return x
    mask = (np.random.rand(*x.shape) > p) / (1 - p)  # noqa: NPY002 (the formula's own)
    return x * mask


def batch_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, mu, var, x_hat


def layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta


def batch_norm_grad(x, gamma, dy, eps=1e-5):
    # training mode: the batch statistics depend on x too
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    inv = 1 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv
    dbeta = dy.sum(axis=0)
    dgamma = (dy * x_hat).sum(axis=0)
    dx = gamma * inv / n * (n * dy - dbeta - x_hat * dgamma)
    return dx, dgamma, dbeta


def layer_norm_grad(x, gamma, dy, eps=1e-5):
    d = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    inv = 1 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv
    g = dy * gamma
    dx = inv * (
        g - g.mean(axis=-1, keepdims=True) - x_hat * (g * x_hat).mean(axis=-1, keepdims=True)
    )
    dgamma = (dy * x_hat).reshape(-1, d).sum(axis=0)
    dbeta = dy.reshape(-1, d).sum(axis=0)
    return dx, dgamma, dbeta
