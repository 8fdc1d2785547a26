"""Evaluation metrics: classification counts, regression and ranking scores.

* The confusion counts come from ONE pass with exact int64 counters (``Metric`` over
  ``_counts``); accuracy, precision, recall, the f-scores and mcc are each a finaliser of
  those sums, run on the arrays' device (a reduction's result stays there).
* ``average=`` ("micro", "macro", "weighted") counts a confusion matrix in one pass and
  averages the classes present (``ClassMetric``); "binary" (the default) is the formula.
* r2 keeps the target's mean and M2 (Welford within a block, Chan between) and Σ(y - ŷ)²
  in float64, in one pass; mape is the formula's mean with its +1e-9.
* roc_auc is exact with ties in O(n log n) (``Ranks``); dcg/ndcg rank one list or a
  batch of lists (``Gains``); ndcg_score is scikit-learn's tie-averaged NDCG.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba.extending import register_jitable

from mlkernels._bench import data
from mlkernels._core.spec import POSITIVE, formula
from mlkernels._core.templates import ClassMetric, Gains, Metric, PairCounts, Ranks, TiedGains
from mlkernels._core.templates import top_k as _top_k

__all__ = [
    "accuracy",
    "confusion",
    "confusion_matrix",
    "dcg",
    "f1",
    "f_beta",
    "mape",
    "mcc",
    "ndcg",
    "ndcg_score",
    "precision",
    "r2",
    "recall",
    "roc_auc",
]

_LABELS = {"y_true": "label", "y_pred": "label"}
_CLASSES = {"y_true": "index", "y_pred": "index"}


# --------------------------------------------------------------------------------------
# The confusion counts, exact, in one pass; the metrics as finalisers of them
# --------------------------------------------------------------------------------------


@register_jitable
def _counts(t, p, params):
    """(TP, TN, FP, FN) of one (true, predicted) pair, as the formula counts them: labels
    other than 0 and 1 are in none of the four."""
    pos_t, pos_p, neg_t, neg_p = t == 1, p == 1, t == 0, p == 0
    return (
        1 if pos_p and pos_t else 0,
        1 if neg_p and neg_t else 0,
        1 if pos_p and neg_t else 0,
        1 if neg_p and pos_t else 0,
    )


@register_jitable
def _equal(t, p, params):
    return (1 if t == p else 0,)


@register_jitable
def _rates(tp, fp, fn):
    """Precision and recall with the formulas' guards."""
    return tp / (tp + fp + 1e-9), tp / (tp + fn + 1e-9)


@register_jitable
def _score(tp, fp, fn, which, b2):
    """Precision (which 0), recall (1) or the F-beta score (2, β² = b2), from counts."""
    p, r = _rates(tp, fp, fn)
    if which == 0:
        return p
    if which == 1:
        return r
    return (1 + b2) * p * r / (b2 * p + r + 1e-9)


@register_jitable
def _binary(t, n, params):
    return (_score(t[0] * 1.0, t[2] * 1.0, t[3] * 1.0, params[0], params[1]),)


@register_jitable
def _class_average(table, rows, cols, params):
    """scikit-learn's ``average=`` over the classes present in either array (rows: true
    counts, the support; cols: predicted counts): 1 micro (from the summed counts), 2
    macro (the plain mean), 3 weighted (by support)."""
    which, b2, average = params[0], params[1], params[2]
    s_tp = 0.0
    s_fp = 0.0
    s_fn = 0.0
    total = 0.0
    weight = 0.0
    for k in range(table.shape[0]):
        if rows[k] + cols[k] == 0:
            continue
        tp = table[k, k] * 1.0
        fp, fn = cols[k] - tp, rows[k] - tp
        s_tp += tp
        s_fp += fp
        s_fn += fn
        w = 1.0 if average == 2 else rows[k]
        total += w * _score(tp, fp, fn, which, b2)
        weight += w
    if average == 1:
        return (_score(s_tp, s_fp, s_fn, which, b2),)
    return (total / weight,)


@register_jitable
def _confusion_final(t, n, params):
    return t[0], t[1], t[2], t[3]


@register_jitable
def _accuracy_final(t, n, params):
    return (t[0] / n,)


@register_jitable
def _mcc_final(t, n, params):
    tp, tn, fp, fn = t[0] * 1.0, t[1] * 1.0, t[2] * 1.0, t[3] * 1.0
    den = ((tp + fp) * (tp + fn)) * ((tn + fp) * (tn + fn))  # float64: no int64 overflow
    return ((tp * tn - fp * fn) / (den**0.5 + 1e-9),)


_AVERAGES = ("binary", "micro", "macro", "weighted")


def _average(name: str, value: Any) -> float:
    if value not in _AVERAGES:
        raise ValueError(f"{name} must be one of {_AVERAGES}, not {value!r}")
    return float(_AVERAGES.index(value))


def _class_metric() -> ClassMetric:
    return ClassMetric(_counts, _binary, _class_average, k=4, acc="int64", dtype="float64")


_COUNTS = {"family": "metrics", "data": data.binary_labels, "arrays": _LABELS}
_AVERAGED = {**_COUNTS, "hyper": {"average": _average}}


@formula(
    Metric(_counts, _confusion_final, k=4, acc="int64", results=4, dtype="int64", empty_ok=True),
    **_COUNTS,
)
def confusion(y_true, y_pred):
    """The formula's ``(TP, TN, FP, FN)``: pairs (1, 1), (0, 0), (0 true, 1 predicted),
    (1 true, 0 predicted), counted in ONE pass with exact int64 counters; NumPy int64
    scalars (0-d int64 device arrays on the GPU)."""


@formula(Metric(_equal, _accuracy_final, acc="int64", dtype="float64"), **_COUNTS)
def accuracy(y_true, y_pred):
    """``mean(y_true == y_pred)``: the fraction of equal labels (any labels), counted
    exactly."""


@formula(_class_metric(), **_AVERAGED, params=lambda average: (0.0, 1.0, average))
def precision(y_true, y_pred, *, average="binary"):
    """``TP / (TP + FP + 1e-9)`` (the formula: 0 when nothing is predicted positive).

    ``average="micro" | "macro" | "weighted"``: scikit-learn's ``precision_score`` on
    multi-class labels (non-negative integers), over the classes present in either
    array, each with the formula's guard."""


@formula(_class_metric(), **_AVERAGED, params=lambda average: (1.0, 1.0, average))
def recall(y_true, y_pred, *, average="binary"):
    """``TP / (TP + FN + 1e-9)``; ``average=`` as :func:`precision`."""


@formula(_class_metric(), **_AVERAGED, params=lambda average: (2.0, 1.0, average))
def f1(y_true, y_pred, *, average="binary"):
    """``2 P R / (P + R + 1e-9)`` from one pass of counts; ``average=`` as :func:`precision`."""


@formula(
    _class_metric(),
    **{**_AVERAGED, "hyper": {"beta": POSITIVE, "average": _average}},
    params=lambda beta, average: (2.0, beta * beta, average),
)
def f_beta(y_true, y_pred, beta=1.0, *, average="binary"):
    """``(1 + β²) P R / (β² P + R + 1e-9)``, ``beta > 0``; ``average=`` as :func:`precision`."""


@formula(Metric(_counts, _mcc_final, k=4, acc="int64", dtype="float64"), **_COUNTS)
def mcc(y_true, y_pred):
    """Matthews correlation, ``(TP TN - FP FN) / (sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) +
    1e-9)``. The product is taken in float64: the formula's int64 product overflows from
    about 10^5 samples per class (it returns NaN on 10^7 labels)."""


def _num_classes(name: str, v: Any) -> float:
    """None (from the labels: 1 + the largest) or an int >= 1; 0.0 stands for None."""
    if v is None:
        return 0.0
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be None or an int >= 1, not {v!r}")
    if v < 1:
        raise ValueError(f"{name} must be >= 1, got {v}")
    return float(v)


@formula(
    PairCounts(),
    family="metrics",
    data=data.class_labels,
    arrays=_CLASSES,
    hyper={"num_classes": _num_classes},
)
def confusion_matrix(y_true, y_pred, num_classes=None):
    """``M[i, j] = #(y_true == i and y_pred == j)``, (C, C) int64, in one pass (exact:
    per-chunk tables added in order; integer atomics on the GPU). Labels must be integers
    in [0, num_classes): ``ValueError`` naming the array otherwise. ``num_classes=None``:
    1 + the largest label of either array (on the GPU a 16-byte copy, a synchronisation)."""


# --------------------------------------------------------------------------------------
# Regression: one pass in float64
# --------------------------------------------------------------------------------------


@register_jitable
def _r2_terms(y, y_hat, params):
    e = y - y_hat
    return y, e * e


@register_jitable
def _r2_final(t, n, params):
    return (1.0 - t[3] / (t[2] + 1e-9),)


@register_jitable
def _ape(y, y_hat, params):
    return (abs((y - y_hat) / (y + 1e-9)),)


@register_jitable
def _mape_final(t, n, params):
    return (t[0] / n * 100.0,)


_REGRESSION = {"family": "metrics", "data": data.regression}


@formula(Metric(_r2_terms, _r2_final, moments=True), **_REGRESSION)
def r2(y, y_hat):
    """``1 - SS_res / (SS_tot + 1e-9)`` in ONE pass: the target's mean and M2 (Welford
    within a block of the data, Chan's merge between) and Σ(y - ŷ)², all float64, so a
    target far from zero (1e6 + noise in float32) loses nothing. A constant target gives
    the formula's value (SS_tot = 0)."""


@formula(Metric(_ape, _mape_final), **_REGRESSION)
def mape(y, y_hat):
    """``mean(|(y - ŷ) / (y + 1e-9)|) * 100`` (the formula's guard kept), summed in float64."""


# --------------------------------------------------------------------------------------
# Ranking
# --------------------------------------------------------------------------------------


def _weights(name: str, w: Any) -> Any:
    return w  # checked with the arrays (device, shape, dtype) by the template


@formula(
    Ranks(),
    family="metrics",
    data=data.labels_scores,
    arrays={"y_true": "label", "scores": "data"},
    hyper={"sample_weight": _weights},
    params=lambda sample_weight: (),
)
def roc_auc(y_true, scores, *, sample_weight=None):
    """Area under the ROC curve, EXACT with tied scores (equal to scikit-learn's
    ``roc_auc_score``), in O(n log n): the probability that a positive (``y_true == 1``)
    scores above a negative (every other label), ties counting one half.

    CPU: the scores split by class in two parallel passes, both classes sorted at once on
    two threads, then a parallel merge walk counting, for each negative, the positives
    above and level with it (exact int64; weighted: float64). GPU: a device sort
    (``primitives.argsort``: CuPy's or PyTorch's for their arrays), a scan of the
    positives' weights and a binary search per negative; no host round trip, so one class
    only or NaN scores give NaN there, where the CPU raises ``ValueError``.
    ``sample_weight``: non-negative weights, one per sample. (The NumPy formula is O(n²)
    and calls ``np.trapz``, which NumPy 2.4 removed.)"""


_RANKED = {"family": "metrics", "layout": "rows", "hyper": {"k": _top_k}}


@formula(Gains(ideal=False), **_RANKED, data=data.relevance_rows)
def dcg(relevance, k=None):
    """``Σ_{i<k} r_i / log2(i + 2)`` of a ranked list; of each row of a 2-D batch (one
    value per row)."""


@formula(Gains(ideal=True), **_RANKED, data=data.relevance_rows)
def ndcg(relevance, k=None):
    """``dcg(r, k) / (dcg(sorted(r, descending), k) + 1e-9)``; of each row of a 2-D batch.
    On the GPU the ideal order is found by counting, O(m²) per row of m entries."""


@formula(
    TiedGains(),
    **_RANKED,
    data=data.relevance_scores,
    arrays={"y_true": "data", "y_score": "data"},
)
def ndcg_score(y_true, y_score, k=None):
    """scikit-learn's ``ndcg_score``: the mean over rows of (n, m) arrays of the NDCG of
    y_true ranked by y_score descending, tied scores sharing their positions' discounts
    (their gains averaged), 0 for a row whose ideal DCG is 0."""
