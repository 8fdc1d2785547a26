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


# --------------------------------------------------------------------------------------
# Optimisers and learning-rate schedules
# --------------------------------------------------------------------------------------


def sgd_update(theta, grad, lr=0.01):
    return theta - lr * grad


class SGDMomentum:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.beta = momentum
        self.v = None

    def update(self, theta, grad):
        if self.v is None:
            self.v = np.zeros_like(theta)
        self.v = self.beta * self.v - self.lr * grad
        return theta + self.v


class NAG:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.beta = momentum
        self.v = None

    def update(self, theta, grad_fn):
        if self.v is None:
            self.v = np.zeros_like(theta)
        theta_look = theta + self.beta * self.v
        grad = grad_fn(theta_look)
        self.v = self.beta * self.v - self.lr * grad
        return theta + self.v


class Adam:
    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr = lr
        self.b1 = beta1
        self.b2 = beta2
        self.eps = eps
        self.m = None
        self.v = None
        self.t = 0

    def update(self, theta, grad):
        if self.m is None:
            self.m = np.zeros_like(theta)
            self.v = np.zeros_like(theta)
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad**2
        m_hat = self.m / (1 - self.b1**self.t)
        v_hat = self.v / (1 - self.b2**self.t)
        return theta - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    def __init__(self, *args, weight_decay=0.01, **kwargs):
        super().__init__(*args, **kwargs)
        self.wd = weight_decay

    def update(self, theta, grad):
        theta_new = super().update(theta, grad)
        return theta_new - self.lr * self.wd * theta  # weight decay


def step_decay(epoch, lr0=0.1, drop=0.5, step=10):
    return lr0 * (drop ** (epoch // step))


def exp_decay(t, lr0=0.1, k=0.01):
    return lr0 * np.exp(-k * t)


def cosine_annealing(t, T, lr_min=1e-6, lr_max=0.1):
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + np.cos(np.pi * t / T))


def warmup_cosine(t, T_warmup, T_total, lr_max=1e-3, lr_min=1e-6):
    if t < T_warmup:
        return lr_max * t / T_warmup
    progress = (t - T_warmup) / (T_total - T_warmup)
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + np.cos(np.pi * progress))


def cyclical_lr(t, step_size, lr_min=1e-4, lr_max=1e-2):
    cycle = np.floor(1 + t / (2 * step_size))
    x = np.abs(t / step_size - 2 * cycle + 1)
    return lr_min + (lr_max - lr_min) * np.maximum(0, 1 - x)


# --------------------------------------------------------------------------------------
# Gradient tools
# --------------------------------------------------------------------------------------


def numerical_gradient(f, x, eps=1e-5):
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    while not it.finished:
        idx = it.multi_index
        orig = x[idx]
        x[idx] = orig + eps
        fp = f(x)
        x[idx] = orig - eps
        fm = f(x)
        grad[idx] = (fp - fm) / (2 * eps)
        x[idx] = orig
        it.iternext()
    return grad


def grad_check(f, grad_f, x, eps=1e-5, tol=1e-5):
    analytic = grad_f(x)
    numeric = numerical_gradient(f, x, eps)
    diff = np.abs(analytic - numeric)
    rel = diff / (np.abs(analytic) + np.abs(numeric) + 1e-10)
    ok = rel.max() < tol
    print(f"Max relative error: {rel.max():.2e} — {'PASS' if ok else 'FAIL'}")
    return ok


def clip_by_value(grad, min_val=-1.0, max_val=1.0):
    return np.clip(grad, min_val, max_val)


def clip_by_global_norm(grads, max_norm=1.0):
    global_norm = np.sqrt(sum(np.sum(g**2) for g in grads))
    scale = min(1.0, max_norm / (global_norm + 1e-6))
    return [g * scale for g in grads], global_norm


def gradient_stats(grads):
    for name, g in grads.items():
        print(f"{name:30s}  mean={g.mean():.2e}  std={g.std():.2e}  max={np.abs(g).max():.2e}")


def layer_grad_norms(grads):
    return {name: np.linalg.norm(g) for name, g in grads.items()}


# --------------------------------------------------------------------------------------
# Evaluation metrics
# --------------------------------------------------------------------------------------


def confusion(y_true, y_pred):
    TP = np.sum((y_pred == 1) & (y_true == 1))
    TN = np.sum((y_pred == 0) & (y_true == 0))
    FP = np.sum((y_pred == 1) & (y_true == 0))
    FN = np.sum((y_pred == 0) & (y_true == 1))
    return TP, TN, FP, FN


def accuracy(y_true, y_pred):
    return np.mean(y_true == y_pred)


def precision(y_true, y_pred):
    TP, _, FP, _ = confusion(y_true, y_pred)
    return TP / (TP + FP + 1e-9)


def recall(y_true, y_pred):
    TP, _, _, FN = confusion(y_true, y_pred)
    return TP / (TP + FN + 1e-9)


def f1(y_true, y_pred):
    P = precision(y_true, y_pred)
    R = recall(y_true, y_pred)
    return 2 * P * R / (P + R + 1e-9)


def f_beta(y_true, y_pred, beta=1.0):
    P = precision(y_true, y_pred)
    R = recall(y_true, y_pred)
    b2 = beta**2
    return (1 + b2) * P * R / (b2 * P + R + 1e-9)


def mcc(y_true, y_pred):
    """The formula, its product in float64 (in int64, as written, it overflows from about
    10^5 samples per class and gives NaN)."""
    TP, TN, FP, FN = (float(v) for v in confusion(y_true, y_pred))
    num = TP * TN - FP * FN
    den = np.sqrt((TP + FP) * (TP + FN) * (TN + FP) * (TN + FN))
    return num / (den + 1e-9)


def confusion_matrix(y_true, y_pred, num_classes=None):
    if num_classes is None:
        num_classes = int(max(y_true.max(), y_pred.max())) + 1
    cells = np.bincount(y_true.ravel() * num_classes + y_pred.ravel(), minlength=num_classes**2)
    return cells.reshape(num_classes, num_classes)


def r2(y, y_hat):
    ss_res = np.sum((y - y_hat) ** 2)
    ss_tot = np.sum((y - y.mean()) ** 2)
    return 1 - ss_res / (ss_tot + 1e-9)


def mape(y, y_hat):
    return np.mean(np.abs((y - y_hat) / (y + 1e-9))) * 100


def roc_auc(y_true, scores):
    """The formula's trapezoid of (FPR, TPR) over the distinct thresholds, in O(n log n)
    (the formula as written is O(n²) and calls ``np.trapz``, which NumPy 2.4 removed):
    one sort, cumulative counts at the last index of each tie group."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], (y_true[order] == 1)
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.r_[0, np.cumsum(y)[last]]
    fps = np.r_[0, np.cumsum(~y)[last]]
    tpr, fpr = tps / tps[-1], fps / fps[-1]
    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))


def _rows(f, relevance, k):
    r = np.asarray(relevance)
    if r.ndim == 1:
        return f(r, k)
    return np.array([f(row, k) for row in r])


def _dcg(relevance, k=None):
    r = np.array(relevance[:k], dtype=float)
    return np.sum(r / np.log2(np.arange(2, r.size + 2)))


def _ndcg(relevance, k=None):
    ideal = _dcg(sorted(relevance, reverse=True), k)
    return _dcg(relevance, k) / (ideal + 1e-9)


def dcg(relevance, k=None):
    """The formula; of each row of a 2-D batch."""
    return _rows(_dcg, relevance, k)


def ndcg(relevance, k=None):
    """The formula; of each row of a 2-D batch."""
    return _rows(_ndcg, relevance, k)


def ndcg_score(y_true, y_score, k=None):
    """scikit-learn's ``ndcg_score``: per row, the gains of each group of tied scores
    averaged over the group's positions; rows with ideal DCG 0 count 0; the mean."""
    n, m = y_true.shape
    disc = 1 / np.log2(np.arange(m) + 2)
    if k is not None:
        disc[k:] = 0
    scores = []
    for yt, ys in zip(y_true.astype(float), y_score, strict=True):
        values, inverse, counts = np.unique(-ys, return_inverse=True, return_counts=True)
        gains = np.zeros(values.size)
        np.add.at(gains, inverse, yt)
        bounds = np.r_[0, np.cumsum(counts)]
        disc_sums = np.add.reduceat(np.r_[disc, 0], bounds[:-1])[: values.size]
        got = np.sum(gains / counts * disc_sums)
        best = np.sum(np.sort(yt)[::-1] * disc)
        scores.append(got / best if best else 0.0)
    return float(np.mean(scores))


# --------------------------------------------------------------------------------------
# Probability and information
# --------------------------------------------------------------------------------------


def gaussian_pdf(x, mu=0, sigma=1):
    return (1 / (sigma * np.sqrt(2 * np.pi))) * np.exp(-0.5 * ((x - mu) / sigma) ** 2)


def gaussian_logpdf(x, mu=0, sigma=1):
    return -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))


def mvn_pdf(x, mu, Sigma):  # noqa: N803
    """The formula; of each row of x (n, d) too."""
    d = len(mu)
    diff = x - mu
    maha = np.einsum("...i,ij,...j->...", diff, np.linalg.inv(Sigma), diff)
    return np.exp(-0.5 * maha) / np.sqrt((2 * np.pi) ** d * np.linalg.det(Sigma))


def mvn_logpdf(x, mu, Sigma):  # noqa: N803
    d = len(mu)
    diff = x - mu
    maha = np.einsum("...i,ij,...j->...", diff, np.linalg.inv(Sigma), diff)
    return -0.5 * maha - 0.5 * (d * np.log(2 * np.pi) + np.log(np.linalg.det(Sigma)))


def gaussian_mle(x):
    return x.mean(), x.var()


def entropy(p):
    """The formula; of each row of a batch (along the last axis)."""
    p = np.array(p)
    if p.ndim == 1:
        p = p[p > 0]  # ignore zero probabilities
        return -np.sum(p * np.log(p))
    safe = np.where(p > 0, p, 1)
    return -np.sum(np.where(p > 0, p * np.log(safe), 0), axis=-1)


def cross_entropy(p, q, eps=1e-15):
    """The formula; of each row of a batch (along the last axis)."""
    q = np.clip(q, eps, 1)
    return -np.sum(p * np.log(q), axis=-1)


def perplexity(log_probs):
    return np.exp(-np.mean(log_probs))


def mutual_information(joint):
    """I(X; Y) = KL(P(X, Y) || P(X) P(Y)) of a joint table (normalised by its sum)."""
    p = joint / joint.sum()
    outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] / outer[nz])))


def mutual_information_labels(x, y):
    a, b = x.max() + 1, y.max() + 1
    table = np.bincount(x.ravel() * b + y.ravel(), minlength=a * b).reshape(a, b)
    return mutual_information(table.astype(float))
