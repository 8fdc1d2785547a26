"""Train the MLP of ``train_mlp.py`` with AdamW and a warm-up + cosine learning rate, twice:
with the NumPy formulas, then with mlkernels, whose optimiser updates every parameter in
ONE call per mini-batch.

The model, the data and the loss are ``train_mlp.py``'s (imported from it): one hidden
ReLU layer, a softmax output, categorical cross-entropy plus an L2 penalty on the
weights, on scikit-learn's digits shifted 8 ways (synthetic data of that shape without
scikit-learn). Only the update changes, from SGD to AdamW:

* NumPy: the formulas as a user's script has them, ``mlkernels.reference``: one
  ``reference.AdamW`` per parameter, its ``lr`` set before each step from the NumPy
  ``reference.warmup_cosine(t, ...)`` (``t``: the steps taken before), and
  ``params[k] = opt.update(params[k], grads[k])`` for each of W1, b1, W2, b2 (with
  ``--max-grad-norm``, ``reference.clip_by_global_norm`` of the four gradients first);
* mlkernels: ``opt = mk.AdamW(lr=mk.schedule("warmup_cosine", ...), weight_decay=...)``
  made once and ``opt.step([W1, b1, W2, b2], grads)`` per mini-batch: the four arrays
  updated in place, in one fused kernel launch (``max_grad_norm=`` clips by the global
  norm inside the same call). The formulas between the matrix products (relu, softmax,
  cce, ...) come from ``mlkernels`` too, as in ``train_mlp.py``.

It prints both epoch times and the optimiser's share of them, both loss curves and the
final accuracy (on the training samples and on a held-out part of the data).

    python examples/train_mlp_adamw.py                           # 5 epochs, float64
    python examples/train_mlp_adamw.py --max-grad-norm 1.0       # clipping inside step
    python examples/train_mlp_adamw.py --epochs 2 --samples 2048 --check   # CI's small run

``--check`` exits non-zero when the two loss curves differ beyond rounding (relative
1e-6 in float64, 1e-3 in float32).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

# The script's own folder is on sys.path when it runs: the model and data of train_mlp.py.
import train_mlp
from train_mlp import NUMPY, init_params, load_data

import mlkernels as mk
from mlkernels import reference

NAMES = ("W1", "b1", "W2", "b2")


def loss_and_grads(f, params: list, xb: np.ndarray, yb: np.ndarray, lam: float):
    """The loss of a mini-batch and the gradients of ``params`` (W1, b1, W2, b2), with
    the formulas of namespace ``f``: ``train_mlp.loss_and_grads``, each gradient in its
    parameter's dtype, as the optimisers need (the NumPy ``relu_grad`` is float64,
    ``astype(float)``; a no-op in float64)."""
    loss, grads = train_mlp.loss_and_grads(f, *params, xb, yb, lam)
    return float(loss), [g.astype(w.dtype, copy=False) for g, w in zip(grads, params, strict=True)]


class FormulaAdamW:
    """The NumPy loop: one ``reference.AdamW`` per parameter, the learning rate of every
    step set from the NumPy ``warmup_cosine`` formula at the number of steps taken."""

    def __init__(self, schedule: dict, weight_decay: float, max_grad_norm: float | None):
        self.schedule, self.max_grad_norm = schedule, max_grad_norm
        self.opts = [reference.AdamW(lr=0.0, weight_decay=weight_decay) for _ in NAMES]
        self.t = 0
        self.last_lr = None

    def step(self, params: list, grads: list) -> None:
        """``params[k] = opt_k.update(params[k], grads[k])`` (the list's arrays rebound)."""
        if self.max_grad_norm is not None:
            grads, _ = reference.clip_by_global_norm(grads, self.max_grad_norm)
        lr = float(reference.warmup_cosine(self.t, **self.schedule))
        for k, (opt, g) in enumerate(zip(self.opts, grads, strict=True)):
            opt.lr = lr
            params[k] = opt.update(params[k], g)
        self.t += 1
        self.last_lr = lr


def formula_adamw(schedule: dict, weight_decay: float, max_grad_norm: float | None):
    return FormulaAdamW(schedule, weight_decay, max_grad_norm)


def mlkernels_adamw(schedule: dict, weight_decay: float, max_grad_norm: float | None):
    """One optimiser for the four arrays; ``step(params, grads)`` updates them in place."""
    return mk.AdamW(
        lr=mk.schedule("warmup_cosine", **schedule),
        weight_decay=weight_decay,
        max_grad_norm=max_grad_norm,
    )


def accuracy(params: list, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of the samples whose largest logit is their label."""
    if len(x) == 0:
        return float("nan")
    W1, b1, W2, b2 = params
    logits = np.maximum(x @ W1 + b1, 0) @ W2 + b2
    return float(np.mean(logits.argmax(axis=1) == y.argmax(axis=1)))


def train(
    f,
    make_optimiser,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 5,
    batch: int = 256,
    hidden: int = 512,
    lr_max: float = 1e-2,
    lr_min: float = 1e-5,
    warmup: float = 0.1,
    weight_decay: float = 1e-2,
    max_grad_norm: float | None = None,
    lam: float = 1e-4,
    dtype=np.float64,
    seed: int = 0,
) -> dict:
    """Train from ``train_mlp``'s initial weights with AdamW and a warm-up + cosine rate
    (``warmup``: the fraction of the ``epochs x batches`` steps spent warming up).
    Returns the epoch seconds, the optimiser's seconds per epoch, the mean loss per epoch,
    the learning rate at each epoch's end and the final parameters (W1, b1, W2, b2)."""
    x, y = x.astype(dtype), y.astype(dtype)
    steps = epochs * -(-len(x) // batch)
    schedule = {
        "T_warmup": int(warmup * steps),
        "T_total": steps,
        "lr_max": lr_max,
        "lr_min": lr_min,
    }
    hyper = (schedule, weight_decay, max_grad_norm)
    # untimed: the first calls (mlkernels compiles or loads its kernels; two steps: an
    # optimiser's first step, from zero state, has a kernel of its own)
    warm = list(init_params(x.shape[1], hidden, y.shape[1], dtype).values())
    warm_opt = make_optimiser(*hyper)
    for _ in range(2):
        warm_opt.step(warm, loss_and_grads(f, warm, x[:batch], y[:batch], lam)[1])

    params = list(init_params(x.shape[1], hidden, y.shape[1], dtype, seed).values())
    opt = make_optimiser(*hyper)
    out: dict = {"times": [], "opt_times": [], "losses": [], "lrs": []}
    for _ in range(epochs):
        start = time.perf_counter()
        total, in_opt = 0.0, 0.0
        for i in range(0, len(x), batch):
            loss, grads = loss_and_grads(f, params, x[i : i + batch], y[i : i + batch], lam)
            t0 = time.perf_counter()
            opt.step(params, grads)  # mlkernels: in place; the formulas: list entries rebound
            in_opt += time.perf_counter() - t0
            total += loss
        out["times"].append(time.perf_counter() - start)
        out["opt_times"].append(in_opt)
        out["losses"].append(total / -(-len(x) // batch))
        out["lrs"].append(opt.last_lr)
    out["params"], out["steps"], out["schedule"] = params, steps, schedule
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=None, help="default: all (14,376)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--lr", type=float, default=1e-2, help="the schedule's peak rate")
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument(
        "--max-grad-norm", type=float, default=None, help="clip the gradients' global norm"
    )
    parser.add_argument(
        "--holdout", type=float, default=0.2, help="fraction of the samples held out"
    )
    parser.add_argument("--check", action="store_true", help="fail on differing loss curves")
    args = parser.parse_args(argv)
    if args.epochs < 1 or not 0 <= args.holdout < 1:
        parser.error("--epochs must be >= 1 and --holdout in [0, 1)")

    x, y, source = load_data(args.samples)
    n_train = len(x) - int(args.holdout * len(x))
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    kw = dict(
        epochs=args.epochs,
        batch=args.batch,
        hidden=args.hidden,
        lr_max=args.lr,
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        dtype=args.dtype,
    )
    print(
        f"data: {source}, {len(x)} samples x {x.shape[1]} features, {y.shape[1]} classes "
        f"({n_train} trained on, {len(x) - n_train} held out)"
    )

    ref = train(NUMPY, formula_adamw, x_train, y_train, **kw)
    mlk = train(mk, mlkernels_adamw, x_train, y_train, **kw)

    s = ref["schedule"]
    clip = "" if args.max_grad_norm is None else f", gradients clipped to norm {args.max_grad_norm}"
    print(
        f"MLP {x.shape[1]}-{args.hidden}-{y.shape[1]}, batch {args.batch}, {args.dtype}, "
        f"AdamW (weight_decay {args.weight_decay}{clip}), warmup_cosine: up to {s['lr_max']:g} "
        f"at step {s['T_warmup']}, down to {s['lr_min']:g} at step {s['T_total']}"
    )
    print(
        f"\n{'epoch':>5}  {'numpy s':>8}  {'mlkernels s':>11}  {'numpy opt s':>11}  "
        f"{'mlk opt s':>9}  {'numpy loss':>12}  {'mlkernels loss':>14}  {'lr':>9}"
    )
    rows = zip(
        ref["times"],
        mlk["times"],
        ref["opt_times"],
        mlk["opt_times"],
        ref["losses"],
        mlk["losses"],
        mlk["lrs"],
        strict=True,
    )
    for i, r in enumerate(rows, 1):
        print(
            f"{i:>5}  {r[0]:>8.4f}  {r[1]:>11.4f}  {r[2]:>11.4f}  {r[3]:>9.4f}  "
            f"{r[4]:>12.6f}  {r[5]:>14.6f}  {r[6]:>9.2e}"
        )
    med_np, med_mk = float(np.median(ref["times"])), float(np.median(mlk["times"]))
    per_step = ref["steps"] / args.epochs
    opt_np = float(np.median(ref["opt_times"])) / per_step
    opt_mk = float(np.median(mlk["opt_times"])) / per_step
    print(
        f"median epoch: numpy {med_np * 1e3:.1f} ms, mlkernels {med_mk * 1e3:.1f} ms "
        f"-> mlkernels {med_np / med_mk:.2f}x the NumPy formulas' speed"
    )
    print(
        f"optimiser step (4 arrays, {sum(p.size for p in mlk['params']):,} elements): "
        f"numpy {opt_np * 1e6:.0f} us (4 update calls), mlkernels {opt_mk * 1e6:.0f} us "
        f"(one step call) -> {opt_np / opt_mk:.2f}x"
    )
    for name, data in (("train", (x_train, y_train)), ("held-out", (x_test, y_test))):
        acc_np, acc_mk = accuracy(ref["params"], *data), accuracy(mlk["params"], *data)
        print(f"final {name} accuracy: numpy {acc_np:.4f}, mlkernels {acc_mk:.4f}")
    diff = max(
        float(np.max(np.abs(a - b), initial=0.0))
        for a, b in zip(ref["params"], mlk["params"], strict=True)
    )
    print(f"largest difference of the final parameters: {diff:.2e}")

    if args.check:
        rtol = 1e-3 if args.dtype == "float32" else 1e-6
        if not np.allclose(ref["losses"], mlk["losses"], rtol=rtol, atol=0):
            print("FAIL: the loss curves differ", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
