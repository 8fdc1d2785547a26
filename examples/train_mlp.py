"""Train a small NumPy MLP twice: with its own NumPy formulas, then with mlkernels.

The network is what a NumPy user writes by hand: one hidden ReLU layer, a softmax output,
categorical cross-entropy and an L2 penalty on the weights, trained by mini-batch SGD. The
matrix products go through NumPy's BLAS; the formulas between them (``relu``,
``relu_grad``, ``softmax``, ``cce``, ``l2_loss``, ``l2_grad``) come either from the
``NUMPY`` namespace below or from ``import mlkernels as mk`` -- the loop itself is the
same code, only the namespace changes. It prints both epoch times and both loss curves.

Data: scikit-learn's bundled 8x8 digits, each image also shifted by one pixel in 7
directions (1797 x 8 = 14,376 samples), when scikit-learn is installed; otherwise
synthetic data of the same shape made here (64 features, 10 classes).

    python examples/train_mlp.py                        # 5 epochs, float64
    python examples/train_mlp.py --with-torch           # PyTorch imported and used in between
    python examples/train_mlp.py --with-sklearn         # a scikit-learn estimator in between
    python examples/train_mlp.py --epochs 2 --samples 2000 --check   # CI's small run

``--check`` exits non-zero when the two loss curves differ (beyond rounding) or the
threading layer is not the one mlkernels documents (``MLKERNELS_EXPECT_LAYER``, default
``tbb``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from types import SimpleNamespace

import numpy as np


# The NumPy formulas, as a user's training script has them (ml_formulas.txt).
def _relu(x):
    return np.maximum(0, x)


def _relu_grad(x):
    return (x > 0).astype(float)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _cce(y_onehot, p, eps=1e-15):
    p = np.clip(p, eps, 1)
    return -np.mean(np.sum(y_onehot * np.log(p), axis=1))


def _l2_loss(weights, lam=1e-4):
    return lam * np.sum(weights**2)


def _l2_grad(weights, lam=1e-4):
    return 2 * lam * weights


NUMPY = SimpleNamespace(
    relu=_relu,
    relu_grad=_relu_grad,
    softmax=_softmax,
    cce=_cce,
    l2_loss=_l2_loss,
    l2_grad=_l2_grad,
)


def load_data(samples: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(X, one-hot Y, description): digits shifted 8 ways, or synthetic data of that shape."""
    rng = np.random.default_rng(seed)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        centres = rng.normal(0.0, 1.0, (10, 64))
        labels = rng.integers(0, 10, 14376)
        x = centres[labels] + rng.normal(0.0, 1.5, (labels.size, 64))
        source = "synthetic (scikit-learn not installed)"
    else:
        digits = load_digits()
        images = digits.images / 16.0
        shifts = [(0, 0), (0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, -1), (1, -1)]
        x = np.concatenate(
            [np.roll(images, s, axis=(1, 2)).reshape(len(images), 64) for s in shifts]
        )
        labels = np.tile(digits.target, len(shifts))
        x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)
        source = "scikit-learn digits, shifted 8 ways"
    order = rng.permutation(len(labels))
    if samples is not None:
        order = order[:samples]
    return x[order], np.eye(10)[labels[order]], source


def init_params(n_in: int, hidden: int, n_out: int, dtype, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "W1": (rng.standard_normal((n_in, hidden)) * np.sqrt(2.0 / n_in)).astype(dtype),
        "b1": np.zeros(hidden, dtype),
        "W2": (rng.standard_normal((hidden, n_out)) * np.sqrt(1.0 / hidden)).astype(dtype),
        "b2": np.zeros(n_out, dtype),
    }


def loss_and_grads(f, W1, b1, W2, b2, xb: np.ndarray, yb: np.ndarray, lam: float):
    """The loss of a mini-batch and the gradients of W1, b1, W2, b2, with the formulas of
    namespace ``f``: the forward and backward pass, without an update."""
    z1 = xb @ W1 + b1
    h = f.relu(z1)
    p = f.softmax(h @ W2 + b2)
    loss = f.cce(yb, p) + f.l2_loss(W1, lam) + f.l2_loss(W2, lam)

    dlogits = (p - yb) / len(xb)  # d cce / d logits, through the softmax
    dW2 = h.T @ dlogits + f.l2_grad(W2, lam)
    dz1 = (dlogits @ W2.T) * f.relu_grad(z1)
    dW1 = xb.T @ dz1 + f.l2_grad(W1, lam)
    return loss, [dW1, dz1.sum(axis=0), dW2, dlogits.sum(axis=0)]


def train_step(f, params: dict, xb: np.ndarray, yb: np.ndarray, lr: float, lam: float) -> float:
    """One SGD step of the MLP with the formulas of namespace ``f``; returns the loss."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    loss, (dW1, db1, dW2, db2) = loss_and_grads(f, W1, b1, W2, b2, xb, yb, lam)
    W1 -= lr * dW1
    b1 -= lr * db1
    W2 -= lr * dW2
    b2 -= lr * db2
    return float(loss)


def between_epochs(extra: str, params: dict, x: np.ndarray, y: np.ndarray) -> None:
    """What other libraries a real program runs between epochs, each with its thread pool."""
    h = np.maximum(x[:1024] @ params["W1"] + params["b1"], 0)
    if extra == "torch":  # a validation pass in PyTorch (its own OpenMP pool)
        import torch

        logits = torch.from_numpy(h) @ torch.from_numpy(params["W2"])
        torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[:1024].argmax(1)))
    elif extra == "sklearn":  # a scikit-learn estimator (OpenMP in Cython, and BLAS)
        from sklearn.cluster import KMeans

        KMeans(n_clusters=10, n_init=1, max_iter=10, random_state=0).fit(h)


def train(
    f,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 5,
    batch: int = 256,
    hidden: int = 512,
    lr: float = 0.1,
    lam: float = 1e-4,
    dtype=np.float64,
    extra: str = "none",
    seed: int = 0,
) -> tuple[list[float], list[float]]:
    """Train from the same initial weights; returns (epoch seconds, mean loss per epoch)."""
    params = init_params(x.shape[1], hidden, y.shape[1], dtype, seed)
    x, y = x.astype(dtype), y.astype(dtype)
    # untimed: the first calls (mlkernels compiles or loads its kernels; PyTorch and
    # scikit-learn set up their pools)
    warm = init_params(x.shape[1], hidden, y.shape[1], dtype)
    train_step(f, warm, x[:batch], y[:batch], lr, lam)
    if extra != "none":
        between_epochs(extra, warm, x, y)
    times, losses = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        total = 0.0
        for i in range(0, len(x), batch):
            total += train_step(f, params, x[i : i + batch], y[i : i + batch], lr, lam)
        if extra != "none":
            between_epochs(extra, params, x, y)
        times.append(time.perf_counter() - start)
        losses.append(total / -(-len(x) // batch))
    return times, losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=None, help="default: all (14,376)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--with-torch", action="store_true", help="PyTorch used between epochs")
    parser.add_argument(
        "--with-sklearn", action="store_true", help="a scikit-learn estimator between epochs"
    )
    parser.add_argument("--check", action="store_true", help="fail on differing loss curves")
    args = parser.parse_args(argv)
    extra = "torch" if args.with_torch else "sklearn" if args.with_sklearn else "none"
    if extra == "torch":
        import torch  # noqa: F401  (imported before mlkernels runs anything, as in a real program)

    x, y, source = load_data(args.samples)
    kw = dict(
        epochs=args.epochs, batch=args.batch, hidden=args.hidden, dtype=args.dtype, extra=extra
    )
    print(f"data: {source}, {x.shape[0]} samples x {x.shape[1]} features, {y.shape[1]} classes")
    print(
        f"MLP {x.shape[1]}-{args.hidden}-{y.shape[1]}, batch {args.batch}, {args.dtype}, "
        f"between epochs: {extra}"
    )

    t_np, loss_np = train(NUMPY, x, y, **kw)

    import mlkernels as mk  # the only change: the formulas come from mlkernels

    t_mk, loss_mk = train(mk, x, y, **kw)
    layer = threading_layer()

    print(
        f"\n{'epoch':>5}  {'numpy s':>8}  {'mlkernels s':>11}  {'numpy loss':>12}  "
        f"{'mlkernels loss':>14}"
    )
    for i, row in enumerate(zip(t_np, t_mk, loss_np, loss_mk, strict=True), 1):
        print(f"{i:>5}  {row[0]:>8.4f}  {row[1]:>11.4f}  {row[2]:>12.6f}  {row[3]:>14.6f}")
    med_np, med_mk = float(np.median(t_np)), float(np.median(t_mk))
    print(
        f"median epoch: numpy {med_np * 1e3:.1f} ms, mlkernels {med_mk * 1e3:.1f} ms "
        f"-> mlkernels {med_np / med_mk:.2f}x the NumPy formulas' speed "
        f"(threading layer: {layer})"
    )

    if args.check:
        rtol = 1e-3 if args.dtype == "float32" else 1e-6
        if not np.allclose(loss_np, loss_mk, rtol=rtol, atol=0):
            print("FAIL: the loss curves differ", file=sys.stderr)
            return 1
        expected = os.environ.get("MLKERNELS_EXPECT_LAYER", "tbb")
        if layer != expected:
            print(f"FAIL: threading layer {layer!r}, expected {expected!r}", file=sys.stderr)
            return 1
    return 0


def threading_layer() -> str:
    """The layer numba runs parallel kernels on. The loop's calls are small enough to run
    on the calling thread, so one large call starts the layer if nothing did."""
    import numba

    import mlkernels as mk

    mk.relu(np.zeros(1 << 20))
    return numba.threading_layer()


if __name__ == "__main__":
    sys.exit(main())
