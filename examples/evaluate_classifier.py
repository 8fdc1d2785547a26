"""Evaluate a classifier's predictions with mlkernels' metrics, scikit-learn's beside them:
the values, the times and the speedup, metric by metric.

The data are a synthetic logistic model's (made here, seeded): a true logit z ~ N(0, 2²),
the true probability p = sigmoid(z) and a binary label y ~ Bernoulli(p); the classifier
sees the logit through noise and a miscalibration, p̂ = sigmoid(0.8 z + 0.1 + N(0, 0.7²)),
and predicts ŷ = [p̂ >= 0.5]. The same latent score cut at four thresholds gives a
5-class label (z) and its prediction (0.8 z + noise). Then, with mlkernels and with
scikit-learn:

* binary: accuracy, precision, recall, f1, f_beta (β = 2), mcc, the confusion counts
  (TP, TN, FP, FN; scikit-learn's ``confusion_matrix(...).ravel()`` reordered) and
  roc_auc of p̂ (exact with ties: p̂ rounded to 3 decimals);
* regression of the probabilities: r2 and mape of p̂ against the true p (scikit-learn's
  ``mean_absolute_percentage_error`` is a fraction: times 100);
* 5 classes: accuracy, precision / recall / f1 / f_beta with ``average="macro"``, f1
  ``"weighted"`` and ``"micro"``, the 5 x 5 confusion matrix and the mutual information
  of the true and predicted classes (``mutual_info_score``).

Each call's first run is timed apart (mlkernels compiles its kernels there, or loads
them from the disk cache, ``$MLKERNELS_CACHE_DIR``); the steady-state time is the best
of ``--repeat`` further runs, the two libraries interleaved.

    python examples/evaluate_classifier.py                    # 10^7 samples
    python examples/evaluate_classifier.py --n 100000 --check # CI's small run

``--check`` exits non-zero when a value differs from scikit-learn's beyond the formulas'
guards (relative 1e-6: mlkernels keeps the +1e-9 of each denominator; the counts and the
confusion matrix must be equal).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import mlkernels as mk

try:
    from sklearn import metrics as skm
except ImportError:  # pragma: no cover - the comparison needs it
    skm = None

#: 5-class labels: the latent score cut here.
CLASS_EDGES = np.array([-2.0, -0.7, 0.7, 2.0])
RTOL = 1e-6


def make_data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The synthetic logistic model's labels, probabilities and predictions (see above)."""
    rng = np.random.default_rng(seed)
    z = 2.0 * rng.standard_normal(n)
    p = 1.0 / (1.0 + np.exp(-z))
    y = (rng.random(n) < p).astype(np.int64)
    seen = 0.8 * z + 0.1 + 0.7 * rng.standard_normal(n)
    p_hat = np.round(1.0 / (1.0 + np.exp(-seen)), 3)  # ties, as a model's rounded outputs
    return {
        "y": y,
        "y_pred": (p_hat >= 0.5).astype(np.int64),
        "p": p,
        "p_hat": p_hat,
        "y5": np.digitize(z, CLASS_EDGES).astype(np.int64),
        "y5_pred": np.digitize(0.8 * z + 0.7 * rng.standard_normal(n), CLASS_EDGES * 0.8),
    }


@dataclass
class Metric:
    """A metric by both libraries: ``mlk()`` and ``sk()`` on the data, and ``exact``:
    integers that must be equal (else a relative tolerance)."""

    name: str
    mlk: Callable[[], object]
    sk: Callable[[], object]
    exact: bool = False


def metrics(d: dict[str, np.ndarray]) -> list[Metric]:
    y, yp, p, ph, y5, y5p = d["y"], d["y_pred"], d["p"], d["p_hat"], d["y5"], d["y5_pred"]

    def sk_counts() -> tuple:
        tn, fp, fn, tp = skm.confusion_matrix(y, yp, labels=[0, 1]).ravel()
        return tp, tn, fp, fn

    rows = [
        Metric("accuracy", lambda: mk.accuracy(y, yp), lambda: skm.accuracy_score(y, yp)),
        Metric("precision", lambda: mk.precision(y, yp), lambda: skm.precision_score(y, yp)),
        Metric("recall", lambda: mk.recall(y, yp), lambda: skm.recall_score(y, yp)),
        Metric("f1", lambda: mk.f1(y, yp), lambda: skm.f1_score(y, yp)),
        Metric(
            "f_beta (beta=2)",
            lambda: mk.f_beta(y, yp, 2.0),
            lambda: skm.fbeta_score(y, yp, beta=2.0),
        ),
        Metric("mcc", lambda: mk.mcc(y, yp), lambda: skm.matthews_corrcoef(y, yp)),
        Metric("confusion (TP TN FP FN)", lambda: mk.confusion(y, yp), sk_counts, exact=True),
        Metric("roc_auc", lambda: mk.roc_auc(y, ph), lambda: skm.roc_auc_score(y, ph)),
        Metric("r2 (p_hat vs p)", lambda: mk.r2(p, ph), lambda: skm.r2_score(p, ph)),
        Metric(
            "mape (p_hat vs p)",
            lambda: mk.mape(p, ph),
            lambda: 100.0 * skm.mean_absolute_percentage_error(p, ph),
        ),
        Metric(
            "accuracy, 5 classes",
            lambda: mk.accuracy(y5, y5p),
            lambda: skm.accuracy_score(y5, y5p),
        ),
    ]
    for name, mk_f, sk_f in (
        ("precision", mk.precision, skm.precision_score),
        ("recall", mk.recall, skm.recall_score),
        ("f1", mk.f1, skm.f1_score),
    ):
        rows.append(
            Metric(
                f"{name}, macro",
                lambda f=mk_f: f(y5, y5p, average="macro"),
                lambda f=sk_f: f(y5, y5p, average="macro"),
            )
        )
    rows += [
        Metric(
            "f_beta (beta=2), macro",
            lambda: mk.f_beta(y5, y5p, 2.0, average="macro"),
            lambda: skm.fbeta_score(y5, y5p, beta=2.0, average="macro"),
        ),
        Metric(
            "f1, weighted",
            lambda: mk.f1(y5, y5p, average="weighted"),
            lambda: skm.f1_score(y5, y5p, average="weighted"),
        ),
        Metric(
            "f1, micro",
            lambda: mk.f1(y5, y5p, average="micro"),
            lambda: skm.f1_score(y5, y5p, average="micro"),
        ),
        Metric(
            "confusion_matrix, 5 classes",
            lambda: mk.confusion_matrix(y5, y5p),
            lambda: skm.confusion_matrix(y5, y5p),
            exact=True,
        ),
        Metric(
            "mutual information, 5 classes",
            lambda: mk.mutual_information_labels(y5, y5p),
            lambda: skm.mutual_info_score(y5, y5p),
        ),
    ]
    return rows


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def agree(a: object, b: object, exact: bool) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if exact:
        return bool(np.array_equal(a, b))
    return bool(np.allclose(a, b, rtol=RTOL, atol=1e-12))


def show(value: object) -> str:
    v = np.asarray(value)
    if v.ndim == 2:  # a confusion matrix: its trace (the samples classified right)
        return f"{v.shape[0]}x{v.shape[1]}, trace {int(np.trace(v))}"
    if v.ndim == 1 or np.issubdtype(v.dtype, np.integer):
        return " ".join(str(int(x)) for x in v.ravel())
    return f"{float(v):.10f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="samples (default 10^7)")
    parser.add_argument("--repeat", type=int, default=3, help="steady-state runs (best of)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="fail on values unlike sklearn's")
    args = parser.parse_args(argv)
    if args.n < 10 or args.repeat < 1:
        parser.error("--n must be >= 10 and --repeat >= 1")
    if skm is None:
        print("this example compares with scikit-learn: pip install scikit-learn", file=sys.stderr)
        return 1

    start = time.perf_counter()
    d = make_data(args.n, args.seed)
    y, yp = d["y"], d["y_pred"]
    print(
        f"data: {args.n:,} samples of a synthetic logistic model ({y.mean():.1%} positive, "
        f"{yp.mean():.1%} predicted positive; 5 classes: "
        f"{' '.join(f'{c:.0%}' for c in np.bincount(d['y5'], minlength=5) / args.n)}), "
        f"made in {time.perf_counter() - start:.2f} s"
    )

    results = []
    for m in metrics(d):
        mk_value, mk_first = timed(m.mlk)
        sk_value, sk_first = timed(m.sk)
        mk_best = sk_best = math.inf
        for _ in range(args.repeat):
            mk_best = min(mk_best, timed(m.mlk)[1])
            sk_best = min(sk_best, timed(m.sk)[1])
        results.append((m, mk_value, sk_value, mk_first, sk_first, mk_best, sk_best))

    print(
        f"\n{'metric':<30} {'mlkernels':>31} {'scikit-learn':>31} {'mk ms':>9} {'sk ms':>9} "
        f"{'speedup':>8}   {'1st call ms: mk':>15} {'sk':>8}"
    )
    failed = []
    for m, mk_value, sk_value, mk_first, sk_first, mk_best, sk_best in results:
        ok = agree(mk_value, sk_value, m.exact)
        if not ok:
            failed.append(m.name)
        print(
            f"{m.name:<30} {show(mk_value):>31} {show(sk_value):>31} {mk_best * 1e3:>9.3f} "
            f"{sk_best * 1e3:>9.2f} {sk_best / mk_best:>7.1f}x   {mk_first * 1e3:>15.1f} "
            f"{sk_first * 1e3:>8.1f}{'' if ok else '  <- differs'}"
        )
    mk_total = sum(r[5] for r in results)
    sk_total = sum(r[6] for r in results)
    first_total = sum(r[3] for r in results)
    print(
        f"all {len(results)} metrics, steady state: mlkernels {mk_total * 1e3:.1f} ms, "
        f"scikit-learn {sk_total * 1e3:.1f} ms -> {sk_total / mk_total:.1f}x; "
        f"mlkernels' first calls {first_total * 1e3:.0f} ms in all (compiling or loading)"
    )
    print(f"in all {time.perf_counter() - start:.1f} s")

    if failed:
        print(f"values unlike scikit-learn's: {', '.join(failed)}", file=sys.stderr)
        if args.check:
            print("FAIL", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
