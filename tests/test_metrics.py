"""The evaluation metrics (mlkernels.metrics) against scikit-learn and against the NumPy
formulas of the specification (``mlkernels.reference``; the +1e-9 guards included: ours
must match the formulas WITH them; mcc's int64 product as written, below).

Every device test takes the ``device`` fixture (conftest.py): the same body runs on the
CPU kernel and on the GPU kernel (Numba's CUDA simulator, 2 blocks of 32 threads, so the
GPU data stay tiny: n <= 200). Real-valued data run in float32 and float64; label functions
run over int8, int32, int64, uint8 and bool labels. Degenerate inputs (ties, one class, zero
division, a constant target, NaN), argument errors, untouched and non-contiguous inputs,
mcc at 10^7 labels and r2 for data far from zero are covered at the end.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from sklearn import metrics as skm

import mlkernels as mk
from conftest import array_result, scalar_result, to_device, to_host
from mlkernels import reference

DTYPES = ("float32", "float64")
LABEL_DTYPES = ("int8", "int32", "int64", "uint8", "bool")
AVERAGES = ("micro", "macro", "weighted")


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def size(device, n_cpu=1009) -> int:
    return n_cpu if device == "cpu" else 131


def dev(device, *arrays):
    return [to_device(a, device) for a in arrays]


# --------------------------------------------------------------------------------------
# The NumPy formulas are mlkernels.reference's; mcc's as written (its int64 product), here
# --------------------------------------------------------------------------------------


def ref_mcc(y_true, y_pred):
    TP, TN, FP, FN = reference.confusion(y_true, y_pred)
    num = TP * TN - FP * FN
    den = np.sqrt((TP + FP) * (TP + FN) * (TN + FP) * (TN + FN))
    return num / (den + 1e-9)


def binary_labels(n, dtype, *key, p=0.4):
    rng = rng_for("binary", n, dtype, *key)
    t = rng.random(n) < p
    flip = rng.random(n) < 0.3
    return t.astype(dtype), (t ^ flip).astype(dtype)


# --------------------------------------------------------------------------------------
# Binary classification: the formulas and scikit-learn
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_confusion_counts_are_the_formula(device, label_dtype):
    """(TP, TN, FP, FN) as int64 scalars equal the formula's counts for every label dtype;
    with integer labels, a third value (2) is counted in none of the four."""
    t, p = binary_labels(size(device), label_dtype)
    if label_dtype != "bool":
        t[::7], p[3::11] = 2, 2
    got = mk.confusion(*dev(device, t, p))
    assert isinstance(got, tuple) and len(got) == 4
    want = reference.confusion(t, p)
    assert [scalar_result(g, "int64", device) for g in got] == [int(w) for w in want]


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_binary_scores_are_the_formula_and_sklearn(device, label_dtype):
    """accuracy, precision, recall, f1, f_beta and mcc are the formulas (to 1e-12) and
    scikit-learn's binary scores (to 1e-8, the guards)."""
    t, p = binary_labels(size(device), label_dtype, "scores")
    d = dev(device, t, p)
    pairs = [
        (mk.accuracy(*d), reference.accuracy(t, p), skm.accuracy_score(t, p)),
        (mk.precision(*d), reference.precision(t, p), skm.precision_score(t, p)),
        (mk.recall(*d), reference.recall(t, p), skm.recall_score(t, p)),
        (mk.f1(*d), reference.f1(t, p), skm.f1_score(t, p)),
        (mk.f_beta(*d, 0.5), reference.f_beta(t, p, 0.5), skm.fbeta_score(t, p, beta=0.5)),
        (mk.f_beta(*d, beta=2.0), reference.f_beta(t, p, 2.0), skm.fbeta_score(t, p, beta=2.0)),
        (mk.mcc(*d), ref_mcc(t, p), skm.matthews_corrcoef(t, p)),
    ]
    for got, formula, sk in pairs:
        v = scalar_result(got, "float64", device)
        assert v == pytest.approx(float(formula), rel=1e-12, abs=1e-15)
        assert v == pytest.approx(sk, abs=1e-8)


def test_accuracy_counts_any_labels(device):
    """accuracy is mean(y_true == y_pred) for any labels, float labels included."""
    rng = rng_for("acc-any")
    t = rng.integers(-3, 4, 150).astype("float64")
    p = np.where(rng.random(150) < 0.5, t, t + 1)
    got = scalar_result(mk.accuracy(*dev(device, t, p)), "float64", device)
    assert got == pytest.approx(float(np.mean(t == p)), rel=1e-15)


def test_zero_division_and_all_positive(device):
    """No predicted positive: precision 0.0 (0 / 1e-9), f1 0.0; all predicted positive:
    precision TP/(N + 1e-9), recall TP/(TP + 1e-9), as the formulas say."""
    t = (np.arange(100) % 3 == 0).astype("int32")
    none, every = np.zeros(100, "int32"), np.ones(100, "int32")
    for p in (none, every):
        d = dev(device, t, p)
        for f, r in (
            (mk.precision, reference.precision),
            (mk.recall, reference.recall),
            (mk.f1, reference.f1),
        ):
            v = scalar_result(f(*d), "float64", device)
            assert v == pytest.approx(float(r(t, p)), rel=1e-12, abs=0.0)
    assert scalar_result(mk.precision(*dev(device, t, none)), "float64", device) == 0.0


@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("n_classes", [3, 5])
def test_multiclass_averages_match_sklearn(device, average, n_classes):
    """average="micro"/"macro"/"weighted" equal scikit-learn's precision, recall, f1 and
    fbeta scores (to 1e-8); with 5 classes, class 3 is absent (not averaged) and class 4
    appears only among the predictions."""
    rng = rng_for("multi", average, n_classes)
    n = size(device, 600)
    t = rng.integers(0, n_classes, n)
    p = np.where(rng.random(n) < 0.6, t, rng.integers(0, n_classes, n))
    if n_classes == 5:
        t[t >= 3] = 0
        p[p == 3] = 1
    d = dev(device, t.astype("int32"), p.astype("int32"))
    kw = {"average": average, "zero_division": 0}
    pairs = [
        (mk.precision(*d, average=average), skm.precision_score(t, p, **kw)),
        (mk.recall(*d, average=average), skm.recall_score(t, p, **kw)),
        (mk.f1(*d, average=average), skm.f1_score(t, p, **kw)),
        (mk.f_beta(*d, 0.5, average=average), skm.fbeta_score(t, p, beta=0.5, **kw)),
    ]
    for got, want in pairs:
        assert scalar_result(got, "float64", device) == pytest.approx(want, abs=1e-8)


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_confusion_matrix_matches_sklearn(device, label_dtype):
    """confusion_matrix(y_true, y_pred, C) is sklearn's confusion_matrix(labels=range(C)),
    an int64 (C, C) array, for every label dtype (C = 2 for bool, 4 otherwise, one class
    never seen)."""
    rng = rng_for("cm", label_dtype)
    c = 2 if label_dtype == "bool" else 4
    n = size(device, 500)
    t = rng.integers(0, min(c, 3), n).astype(label_dtype)
    p = rng.integers(0, min(c, 3), n).astype(label_dtype)
    got = array_result(mk.confusion_matrix(*dev(device, t, p), c), "int64", (c, c), device)
    want = skm.confusion_matrix(t.astype(int), p.astype(int), labels=range(c))
    np.testing.assert_array_equal(got, want)


def test_confusion_matrix_rejects_bad_labels_and_classes(device):
    """Labels outside [0, C) raise ValueError naming the argument (on the GPU too);
    num_classes < 1 is a ValueError, a non-integer num_classes a TypeError."""
    t = np.array([0, 1, 2, 1, 0], "int64")
    for bad in (np.array([0, 1, 3, 1, 0]), np.array([0, -1, 2, 1, 0])):
        with pytest.raises(ValueError, match="y_pred"):
            mk.confusion_matrix(*dev(device, t, bad), 3)
        with pytest.raises(ValueError, match="y_true"):
            mk.confusion_matrix(*dev(device, bad, t), 3)
    with pytest.raises(ValueError):
        mk.confusion_matrix(*dev(device, t, t), 0)
    with pytest.raises(TypeError):
        mk.confusion_matrix(*dev(device, t, t), 2.5)


# --------------------------------------------------------------------------------------
# Regression: r2 and mape
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_r2_and_mape_are_the_formula_and_sklearn(device, dtype):
    """r2 and mape keep the data dtype and equal the formulas (float64 reference on
    float64 copies); r2 equals sklearn's r2_score and mape/100 sklearn's
    mean_absolute_percentage_error (a fraction) for y away from 0."""
    rng = rng_for("reg", dtype)
    n = size(device)
    y = rng.uniform(1.0, 3.0, n).astype(dtype)
    y_hat = (y + 0.3 * rng.standard_normal(n)).astype(dtype)
    y64, h64 = y.astype("float64"), y_hat.astype("float64")
    rtol = 1e-5 if dtype == "float32" else 1e-10
    d = dev(device, y, y_hat)
    r2 = scalar_result(mk.r2(*d), dtype, device)
    mape = scalar_result(mk.mape(*d), dtype, device)
    assert r2 == pytest.approx(reference.r2(y64, h64), rel=rtol)
    assert mape == pytest.approx(reference.mape(y64, h64), rel=rtol)
    assert r2 == pytest.approx(skm.r2_score(y64, h64), rel=max(rtol, 1e-8))
    sk = skm.mean_absolute_percentage_error(y64, h64)
    assert mape / 100 == pytest.approx(sk, rel=max(rtol, 1e-6))


def test_r2_of_integers_is_float64(device):
    """Integer data give a float64 r2 and mape, the formulas' values."""
    rng = rng_for("reg-int")
    y = rng.integers(1, 50, 120)
    y_hat = y + rng.integers(-3, 4, 120)
    d = dev(device, y, y_hat)
    assert scalar_result(mk.r2(*d), "float64", device) == pytest.approx(
        reference.r2(y, y_hat), rel=1e-12
    )
    assert scalar_result(mk.mape(*d), "float64", device) == pytest.approx(
        reference.mape(y, y_hat), rel=1e-12
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_r2_constant_target_is_the_formulas_value(device, dtype):
    """A constant y: SS_tot = 0, r2 = 1 - SS_res / 1e-9 (huge negative), and exactly 1.0
    when the prediction is perfect."""
    y = np.full(100, 3.0, dtype)
    y_hat = (y + 0.5).astype(dtype)
    want = reference.r2(y.astype("float64"), y_hat.astype("float64"))
    got = scalar_result(mk.r2(*dev(device, y, y_hat)), dtype, device)
    assert got == pytest.approx(want, rel=1e-6) and want < -1e9
    assert scalar_result(mk.r2(*dev(device, y, y)), dtype, device) == 1.0


def test_r2_far_from_zero_float32(device):
    """1e6 + N(0, 1) in float32: r2 equals the float64 formula on float64 copies to 1e-5
    (a float32 sum of squares about the mean would lose every digit)."""
    rng = rng_for("far")
    n = size(device, 100_000)
    y = (1e6 + rng.standard_normal(n)).astype("float32")
    y_hat = (y + 0.25 * rng.standard_normal(n)).astype("float32")
    want = reference.r2(y.astype("float64"), y_hat.astype("float64"))
    got = scalar_result(mk.r2(*dev(device, y, y_hat)), "float32", device)
    assert got == pytest.approx(want, rel=1e-5)


# --------------------------------------------------------------------------------------
# Ranking: roc_auc, dcg, ndcg, ndcg_score
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_dtype", ["int8", "int64", "bool", "float32"])
def test_roc_auc_with_ties_matches_sklearn(device, dtype, label_dtype):
    """roc_auc equals sklearn's roc_auc_score to 1e-12 with heavy ties (scores rounded to
    one decimal), with and without sample_weight; the result is float64 (float32 labels
    beside float64 scores decide nothing)."""
    rng = rng_for("auc", dtype, label_dtype)
    n = size(device, 2000)
    t = rng.random(n) < 0.35
    s = np.round(rng.random(n) * 0.6 + 0.4 * t, 1).astype(dtype)
    w = rng.uniform(0.0, 2.0, n)
    tl = t.astype(label_dtype)
    got = scalar_result(mk.roc_auc(*dev(device, tl, s)), "float64", device)
    assert got == pytest.approx(skm.roc_auc_score(t, s), rel=1e-12)
    yd, sd, wd = dev(device, tl, s, w)
    got = scalar_result(mk.roc_auc(yd, sd, sample_weight=wd), "float64", device)
    assert got == pytest.approx(skm.roc_auc_score(t, s, sample_weight=w), rel=1e-12)


def test_roc_auc_other_labels_are_negative(device):
    """Only y_true == 1 is positive: labels 0 and 2 are both negatives."""
    rng = rng_for("auc-neg")
    t = rng.integers(0, 3, 150)
    s = rng.random(150)
    got = scalar_result(mk.roc_auc(*dev(device, t, s)), "float64", device)
    assert got == pytest.approx(skm.roc_auc_score(t == 1, s), rel=1e-12)


def test_roc_auc_degenerate(device):
    """All-equal scores give 0.5; one class only, or a NaN score: ValueError naming the
    argument on the CPU, NaN on the GPU (no host round-trip)."""
    t = (np.arange(60) % 2).astype("int32")
    assert scalar_result(mk.roc_auc(*dev(device, t, np.full(60, 0.7))), "float64", device) == 0.5
    s = np.linspace(0.0, 1.0, 60)
    s_nan = s.copy()
    s_nan[5] = np.nan
    for y, sc, name in ((np.ones(60, "int32"), s, "y_true"), (np.zeros(60, "int32"), s, "y_true")):
        if device == "cpu":
            with pytest.raises(ValueError, match=name):
                mk.roc_auc(y, sc)
        else:
            assert np.isnan(scalar_result(mk.roc_auc(*dev(device, y, sc)), "float64", device))
    if device == "cpu":
        with pytest.raises(ValueError, match="scores"):
            mk.roc_auc(t, s_nan)
    else:
        assert np.isnan(scalar_result(mk.roc_auc(*dev(device, t, s_nan)), "float64", device))


@pytest.mark.parametrize("dtype", ["int64", "float32", "float64"])
@pytest.mark.parametrize("k", [None, 1, 3, 50])
def test_dcg_ndcg_are_the_formula(device, dtype, k):
    """dcg and ndcg of one list are the formulas (k > m takes all); a 2-D batch gives one
    value per row; int relevance gives float64, floats keep their dtype."""
    rng = rng_for("dcg", dtype, k)
    rel = rng.integers(0, 4, (5, 12)).astype(dtype)
    out = "float64" if dtype == "int64" else dtype
    rtol = 1e-5 if dtype == "float32" else 1e-12
    r0 = rel[0]
    got = scalar_result(mk.dcg(to_device(r0, device), k), out, device)
    assert got == pytest.approx(reference.dcg(r0.astype(float), k), rel=rtol)
    got = scalar_result(mk.ndcg(to_device(r0, device), k=k), out, device)
    assert got == pytest.approx(reference.ndcg(list(r0.astype(float)), k), rel=rtol)
    rows = [reference.ndcg(list(r.astype(float)), k) for r in rel]
    got = array_result(mk.ndcg(to_device(rel, device), k), out, (5,), device)
    np.testing.assert_allclose(got, rows, rtol=rtol)
    rows = [reference.dcg(r.astype(float), k) for r in rel]
    got = array_result(mk.dcg(to_device(rel, device), k=k), out, (5,), device)
    np.testing.assert_allclose(got, rows, rtol=rtol)


@pytest.mark.parametrize("k", [None, 1, 3])
def test_ndcg_score_with_ties_matches_sklearn(device, k):
    """ndcg_score equals sklearn's ndcg_score (ties in y_score averaged, an all-zero row
    scoring 0) to 1e-12."""
    rng = rng_for("ndcg-score", k)
    y_true = rng.integers(0, 4, (6, 9)).astype("float64")
    y_true[2] = 0.0
    y_score = np.round(rng.random((6, 9)), 1)
    y_score[4] = 0.5  # one row all tied
    got = scalar_result(mk.ndcg_score(*dev(device, y_true, y_score), k), "float64", device)
    assert got == pytest.approx(skm.ndcg_score(y_true, y_score, k=k), rel=1e-12)


# --------------------------------------------------------------------------------------
# Arguments: errors, untouched and non-contiguous inputs, large counts, accuracy far out
# --------------------------------------------------------------------------------------

PAIRED = ["accuracy", "precision", "recall", "f1", "mcc", "confusion", "r2", "mape", "roc_auc"]
MEAN_TYPE = ["accuracy", "precision", "recall", "f1", "f_beta", "r2", "mape", "roc_auc"]


@pytest.mark.parametrize("name", PAIRED)
def test_argument_errors(device, name):
    """Mismatched lengths: ValueError naming both arguments; complex input: TypeError
    naming the argument."""
    f = getattr(mk, name)
    second = "scores" if name == "roc_auc" else ("y_hat" if name in ("r2", "mape") else "y_pred")
    first = "y" if name in ("r2", "mape") else "y_true"
    a, b = np.array([0, 1, 1, 0, 1], "float64"), np.array([0, 1, 0, 1], "float64")
    with pytest.raises(ValueError, match=f"(?s)(?=.*{first}).*{second}"):
        f(*dev(device, a, b))
    with pytest.raises(TypeError, match=first):
        f(a.astype("complex128"), a)
    with pytest.raises(TypeError, match=second):
        f(a, a.astype("complex128"))


@pytest.mark.parametrize("name", MEAN_TYPE)
def test_empty_input_is_an_error(name):
    """An empty input to a mean-type metric is a ValueError."""
    with pytest.raises(ValueError):
        getattr(mk, name)(np.zeros(0), np.zeros(0))


def test_bad_average_beta_and_negative_classes():
    """A bad average= or beta <= 0 is a ValueError; multi-class averages need
    non-negative integer labels (ValueError for -1)."""
    t, p = np.array([0, 1, 2, 1]), np.array([0, 2, 2, 1])
    with pytest.raises(ValueError, match="average"):
        mk.precision(t, p, average="samples")
    for beta in (0.0, -1.0):
        with pytest.raises(ValueError, match="beta"):
            mk.f_beta(t, p, beta)
    with pytest.raises(ValueError):
        mk.recall(np.array([0, -1, 2, 1]), p, average="macro")


def test_inputs_untouched_and_strided(device):
    """No metric modifies its inputs; step-2 slices (non-contiguous) give the values of
    their contiguous copies."""
    rng = rng_for("strided")
    t = (rng.random(240) < 0.5).astype("int64")
    p = (rng.random(240) < 0.5).astype("int64")
    s = rng.random(240)
    y = rng.uniform(1.0, 2.0, 240)
    saved = [a.copy() for a in (t, p, s, y)]
    calls = [
        ("accuracy", (t, p)),
        ("f1", (t, p)),
        ("mcc", (t, p)),
        ("roc_auc", (t, s)),
        ("r2", (y, s)),
        ("mape", (y, s)),
    ]
    for name, args in calls:
        f = getattr(mk, name)
        whole = [to_device(a, device) for a in args]
        strided = [w[::2] for w in whole]
        packed = [to_device(np.ascontiguousarray(a[::2]), device) for a in args]
        assert float(to_host(f(*strided))) == float(to_host(f(*packed))), name
        for w, a in zip(whole, args, strict=True):
            np.testing.assert_array_equal(to_host(w), a)
    for a, b in zip((t, p, s, y), saved, strict=True):
        np.testing.assert_array_equal(a, b)


def test_mcc_at_ten_million_labels():
    """mcc at 10^7 labels is finite and equals a float64 computation from the exact
    counts, where the formula's int64 product of the four sums overflows."""
    n = 10_000_000
    rng = np.random.default_rng(11)
    t = (rng.random(n) < 0.5).astype("int64")
    p = t ^ (rng.random(n) < 0.2).astype("int64")
    codes = np.bincount(2 * t + p, minlength=4)  # (t, p): 00, 01, 10, 11
    tn, fp, fn, tp = (int(c) for c in codes)
    product = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)  # exact Python ints
    assert product > np.iinfo(np.int64).max
    want = (float(tp) * tn - float(fp) * fn) / (np.sqrt(float(product)) + 1e-9)
    with np.errstate(all="ignore"):  # the formula's int64 product wraps around
        assert not abs(float(ref_mcc(t, p)) - want) < 1e-6
    got = mk.mcc(t, p)
    assert type(got) is np.float64 and np.isfinite(got)
    assert float(got) == pytest.approx(want, rel=1e-12)
    assert [int(c) for c in mk.confusion(t, p)] == [tp, tn, fp, fn]
