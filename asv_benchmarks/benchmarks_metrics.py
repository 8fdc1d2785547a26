"""Evaluation metrics and probability: mlkernels beside the NumPy formula and scikit-learn
or SciPy, the libraries one ``library`` parameter apart in each suite, on the same data.

* ``MetricClassification.time_call``: accuracy, precision, recall, f1, f_beta, mcc and
  confusion of n = 1e7 int64 binary labels (30% positive, predictions agreeing 80% of the
  time: ``mlkernels._bench.data.binary_labels``) by ``mlkernels``, ``numpy`` (the formula,
  ``mlkernels.reference``) and ``sklearn`` (``accuracy_score``, ``precision_score``,
  ``recall_score``, ``f1_score``, ``fbeta_score(beta=1)``, ``matthews_corrcoef`` and
  ``confusion_matrix(y_true, y_pred).ravel()``).
* ``MetricClassificationSpeedup``: mlkernels' speedup over scikit-learn, the two
  interleaved in one process, and its GB/s (a label pair is 16 bytes read, two int64;
  relate it to ``benchmarks_losses.MemoryBandwidth``), as the other suites' ``*Speedup``
  classes.
* ``MetricRocAuc.time_call``: roc_auc of 1e6 scores with ties (3 decimals:
  ``labels_scores``): mlkernels (exact, O(n log n)), the formula (``reference.roc_auc``,
  one sort) and ``sklearn.metrics.roc_auc_score``; ``MetricRocAucSpeedup``: the speedup
  over scikit-learn, interleaved.
* ``MetricMvnLogpdf.time_call``: mvn_logpdf and mvn_pdf of 1e6 points in 16 dimensions
  (``gaussian_points``): mlkernels, the formula (``inv`` and ``det``) and
  ``scipy.stats.multivariate_normal(mu, Sigma).logpdf(x)`` (``.pdf``), the frozen
  distribution made inside the timed call (both libraries factorise Sigma at each call);
  ``MetricMvnLogpdfSpeedup``: the speedup over SciPy, interleaved.
* ``MetricGaussian.time_call``: gaussian_pdf, gaussian_logpdf and gaussian_mle of 1e7
  float64 (``normal``): mlkernels, the formula and ``scipy.stats.norm.pdf`` /
  ``logpdf`` / ``fit`` (the same maximum-likelihood mean, and the standard deviation).
* ``MetricRegression.time_call``: r2 and mape of 1e7 float64 (``regression``): mlkernels,
  the formula and ``r2_score`` / ``mean_absolute_percentage_error``.
* ``MetricNdcgScore.time_call``: ndcg_score of 1e4 ranked lists of 100 (graded relevance,
  tied scores: ``relevance_scores``): mlkernels, the formula (a loop over the rows) and
  ``sklearn.metrics.ndcg_score``.
* ``MetricEntropy.time_call``: entropy and cross_entropy of each of 1e4 rows of 1000
  probabilities (``probability_rows``, ``probability_pairs``): mlkernels, the formula and
  ``scipy.stats.entropy(p, axis=-1)`` (cross_entropy: ``entropy(p) + entropy(p, q)``,
  H(p) plus the KL divergence).
* ``MetricMutualInformation.time_call``: mutual_information_labels of 1e7 labels of 10
  classes (half of the pairs equal): mlkernels, the formula (a ``bincount``) and
  ``sklearn.metrics.mutual_info_score``; ``MetricJointInformation``: mutual_information
  of a 1e4 x 1000 joint table of counts and ``mutual_info_score(contingency=)``.
* ``MetricFormulaOnly`` (perplexity of 1e7 log-probabilities) and ``MetricDcg`` (dcg and
  ndcg of 1e4 lists of 100 as ranked): mlkernels and the formula (scikit-learn and SciPy
  have no function of the same semantics: ``dcg_score`` ranks by a score, ties averaged).

The smoke run (``MLKERNELS_ASV_SMOKE=1``) takes n = 1e3 (lists and rows: 10 of them).
asv re-runs ``setup`` before every timed call: the data are made once per process, and
each call once. The kernels are compiled (or loaded) in ``setup`` on tiny data: the
serial ones and, where the real call runs them, the parallel ones (a parallel call may
finish with a serial kernel: ndcg_score's mean of its 1e4 row values). The baselines'
first calls run there too, on the same tiny data. scikit-learn and SciPy are imported
once, with the suite, in asv's forkserver; without them their ``library`` is n/a (and a
speedup NaN). Nothing runs at import.

Parameters with ``device="cuda"`` are n/a without a real GPU (mlkernels on Numba device
arrays; the results stay on the device, synchronised); ``numpy``, ``sklearn`` and
``scipy`` on "cuda" are always n/a. A speedup on "cuda" is mlkernels on the GPU over the
baseline on the host arrays (neither has a GPU path).

    asv run --quick -b Metric
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import mlkernels as mk
from asv_benchmarks import _common
from asv_benchmarks._common import DEVICES, SMOKE, median_seconds, require
from mlkernels import reference
from mlkernels._bench import data
from mlkernels._bench.measure import _noop, synchronizer
from mlkernels._core import threads as _threads

try:  # the baselines: imported once in the server (asv's forkserver), start no thread
    import scipy.stats as _scipy_stats
    from sklearn import metrics as _sk_metrics
except ImportError:  # pragma: no cover - scikit-learn and SciPy are the tests' extras
    _scipy_stats = _sk_metrics = None

N_LABELS = 1_000 if SMOKE else 10_000_000
N_SCORES = 1_000 if SMOKE else 1_000_000
N_POINTS = 1_000 if SMOKE else 1_000_000
N_VALUES = 1_000 if SMOKE else 10_000_000
#: ndcg_score: LISTS ranked lists of LIST_LEN; entropy: ROWS distributions of ROW_LEN.
LISTS, LIST_LEN = (10, 100) if SMOKE else (10_000, 100)
ROWS, ROW_LEN = (10, 1_000) if SMOKE else (10_000, 1_000)
MI_CLASSES = 10
#: A label pair read by a classification metric: two int64.
LABEL_PAIR_BYTES = 16
#: Elements (or rows) of the tiny data the kernels and the baselines are warmed on.
TINY = 64

CLASSIFICATION = ["accuracy", "precision", "recall", "f1", "f_beta", "mcc", "confusion"]
REGRESSION = ["r2", "mape"]
SKLEARN_LIBRARIES = ["mlkernels", "numpy", "sklearn"]
SCIPY_LIBRARIES = ["mlkernels", "numpy", "scipy"]
FORMULA_LIBRARIES = ["mlkernels", "numpy"]


# --------------------------------------------------------------------------------------
# Data: host arrays made once per process
# --------------------------------------------------------------------------------------


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _binary(shape: tuple) -> tuple:
    return data.binary_labels(shape[0], np.int64, _rng())


def _scores(shape: tuple) -> tuple:
    return data.labels_scores(shape[0], np.float64, _rng())


def _points(shape: tuple) -> tuple:
    return data.gaussian_points((shape[0], data.MVN_D), np.float64, _rng())


def _regression(shape: tuple) -> tuple:
    return data.regression(shape[0], np.float64, _rng())


def _ranked(shape: tuple) -> tuple:
    return data.relevance_scores(shape, np.float64, _rng())


def _distributions(shape: tuple) -> tuple:
    return data.probability_rows(shape, np.float64, _rng())


def _distribution_pairs(shape: tuple) -> tuple:
    return data.probability_pairs(shape, np.float64, _rng())


def _normal(shape: tuple) -> tuple:
    return data.normal(shape, np.float64, _rng())


def _log_probs(shape: tuple) -> tuple:
    return data.log_probs(shape[0], np.float64, _rng())


def _relevance(shape: tuple) -> tuple:
    return data.relevance_rows(shape, np.float64, _rng())


def _joint(shape: tuple) -> tuple:
    """A joint table of counts (0..99, float64): mutual_information normalises it by its
    sum, and scikit-learn's ``contingency=`` takes counts, not probabilities."""
    return (_rng().integers(0, 100, shape).astype(np.float64),)


def _classes(shape: tuple) -> tuple:
    """Labels of MI_CLASSES classes and labels equal to them half of the time (int64)."""
    rng, n = _rng(), shape[0]
    x = rng.integers(0, MI_CLASSES, n)
    return x, np.where(rng.random(n) < 0.5, x, rng.integers(0, MI_CLASSES, n))


# --------------------------------------------------------------------------------------
# The functions: mlkernels', the formula, the baseline
# --------------------------------------------------------------------------------------


def _sklearn(name: str) -> Callable:
    def call(*args: Any) -> object:
        return getattr(_sk_metrics, name)(*args)

    return call


def _sk_confusion(y_true: np.ndarray, y_pred: np.ndarray) -> object:
    return _sk_metrics.confusion_matrix(y_true, y_pred).ravel()


def _scipy_mvn_logpdf(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> object:
    return _scipy_stats.multivariate_normal(mu, sigma).logpdf(x)


def _scipy_entropy(p: np.ndarray) -> object:
    return _scipy_stats.entropy(p, axis=-1)


def _scipy_cross_entropy(p: np.ndarray, q: np.ndarray) -> object:
    return _scipy_stats.entropy(p, axis=-1) + _scipy_stats.entropy(p, q, axis=-1)


def _scipy_mvn_pdf(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> object:
    return _scipy_stats.multivariate_normal(mu, sigma).pdf(x)


def _scipy_norm(name: str) -> Callable:
    def call(x: np.ndarray) -> object:
        return getattr(_scipy_stats.norm, name)(x)

    return call


def _sk_fbeta(y_true: np.ndarray, y_pred: np.ndarray) -> object:
    return _sk_metrics.fbeta_score(y_true, y_pred, beta=1.0)  # f_beta's default beta


def _sk_joint_information(joint: np.ndarray) -> object:
    return _sk_metrics.mutual_info_score(None, None, contingency=joint)


@dataclass(frozen=True)
class _Function:
    """A function timed here: its data (``make(shape)``, host arrays) and its calls, by
    mlkernels, by the NumPy formula and by ``baseline`` ("sklearn" or "scipy")."""

    make: Callable[[tuple], tuple]
    tiny: tuple
    mlkernels: Callable
    numpy: Callable
    baseline: str = ""  # none: timed beside the formula only
    base: Callable | None = None


FUNCTIONS = {
    "accuracy": _Function(
        _binary, (TINY,), mk.accuracy, reference.accuracy, "sklearn", _sklearn("accuracy_score")
    ),
    "precision": _Function(
        _binary, (TINY,), mk.precision, reference.precision, "sklearn", _sklearn("precision_score")
    ),
    "recall": _Function(
        _binary, (TINY,), mk.recall, reference.recall, "sklearn", _sklearn("recall_score")
    ),
    "f1": _Function(_binary, (TINY,), mk.f1, reference.f1, "sklearn", _sklearn("f1_score")),
    "f_beta": _Function(_binary, (TINY,), mk.f_beta, reference.f_beta, "sklearn", _sk_fbeta),
    "mcc": _Function(
        _binary, (TINY,), mk.mcc, reference.mcc, "sklearn", _sklearn("matthews_corrcoef")
    ),
    "confusion": _Function(
        _binary, (TINY,), mk.confusion, reference.confusion, "sklearn", _sk_confusion
    ),
    "roc_auc": _Function(
        _scores, (TINY,), mk.roc_auc, reference.roc_auc, "sklearn", _sklearn("roc_auc_score")
    ),
    "mvn_logpdf": _Function(
        _points, (TINY,), mk.mvn_logpdf, reference.mvn_logpdf, "scipy", _scipy_mvn_logpdf
    ),
    "mvn_pdf": _Function(_points, (TINY,), mk.mvn_pdf, reference.mvn_pdf, "scipy", _scipy_mvn_pdf),
    "gaussian_pdf": _Function(
        _normal, (TINY,), mk.gaussian_pdf, reference.gaussian_pdf, "scipy", _scipy_norm("pdf")
    ),
    "gaussian_logpdf": _Function(
        _normal,
        (TINY,),
        mk.gaussian_logpdf,
        reference.gaussian_logpdf,
        "scipy",
        _scipy_norm("logpdf"),
    ),
    "gaussian_mle": _Function(
        _normal, (TINY,), mk.gaussian_mle, reference.gaussian_mle, "scipy", _scipy_norm("fit")
    ),
    "r2": _Function(_regression, (TINY,), mk.r2, reference.r2, "sklearn", _sklearn("r2_score")),
    "mape": _Function(
        _regression,
        (TINY,),
        mk.mape,
        reference.mape,
        "sklearn",
        _sklearn("mean_absolute_percentage_error"),
    ),
    "ndcg_score": _Function(
        _ranked,
        (4, LIST_LEN),
        mk.ndcg_score,
        reference.ndcg_score,
        "sklearn",
        _sklearn("ndcg_score"),
    ),
    "entropy": _Function(
        _distributions, (4, ROW_LEN), mk.entropy, reference.entropy, "scipy", _scipy_entropy
    ),
    "cross_entropy": _Function(
        _distribution_pairs,
        (4, ROW_LEN),
        mk.cross_entropy,
        reference.cross_entropy,
        "scipy",
        _scipy_cross_entropy,
    ),
    "mutual_information": _Function(
        _joint,
        (4, ROW_LEN),
        mk.mutual_information,
        reference.mutual_information,
        "sklearn",
        _sk_joint_information,
    ),
    "perplexity": _Function(_log_probs, (TINY,), mk.perplexity, reference.perplexity),
    "dcg": _Function(_relevance, (4, LIST_LEN), mk.dcg, reference.dcg),
    "ndcg": _Function(_relevance, (4, LIST_LEN), mk.ndcg, reference.ndcg),
    "mutual_information_labels": _Function(
        _classes,
        (TINY,),
        mk.mutual_information_labels,
        reference.mutual_information_labels,
        "sklearn",
        _sklearn("mutual_info_score"),
    ),
}

_DATA: dict[tuple, tuple] = {}  # the latest data made (asv runs one parameter set per process)
_CALLS: dict[tuple, Any] = {}  # the latest calls made (a speedup keeps two)


def _host(function: str, shape: tuple) -> tuple:
    """The host arrays of ``function`` at ``shape``, made once per process."""
    key = (FUNCTIONS[function].make, shape)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = FUNCTIONS[function].make(shape)
    return _DATA[key]


def _check(function: str, library: str, device: str) -> None:
    """n/a (NotImplementedError) for a combination that does not exist here."""
    f = FUNCTIONS[function]
    if library not in ("mlkernels", "numpy", f.baseline):
        raise ValueError(f"unknown library {library!r} for {function}")
    if device != "cpu" and library != "mlkernels":
        raise NotImplementedError(f"{library} runs on the CPU only")
    require(device)
    if library == "sklearn" and _sk_metrics is None:
        raise NotImplementedError("scikit-learn is not importable")
    if library == "scipy" and _scipy_stats is None:
        raise NotImplementedError("SciPy is not importable")


class _Call:
    """A call to time, ``fn()``, and what waits for it, ``sync()``."""

    def __init__(self, fn: Callable[[], object], sync: Callable[[], None]):
        self.fn, self.sync = fn, sync

    def __call__(self) -> None:
        self.fn()
        self.sync()


def _make_call(function: str, shape: tuple, library: str, device: str) -> _Call:
    """``function`` by ``library`` on its data at ``shape``, its first call made: on the
    CPU on tiny data (mlkernels: the serial kernels, and the parallel ones too when the
    real call runs them), on the GPU on the real data."""
    f = FUNCTIONS[function]
    host = _host(function, shape)
    if library == "mlkernels":
        if device == "cuda":
            cuda = _common.cuda
            args = tuple(cuda.to_device(a) for a in host)
            call = _Call(lambda: f.mlkernels(*args), synchronizer(device))
            call()
            return call
        # the serial kernels always: a parallel call may reduce its small partial results
        # with a serial kernel (ndcg_score's mean of 1e4 row values)
        tiny = f.make(f.tiny)
        with _threads.parallel_min(1 << 62):
            f.mlkernels(*tiny)
        if host[0].size >= _threads.PARALLEL_MIN:
            with _threads.parallel_min(0):
                f.mlkernels(*tiny)
        return _Call(lambda: f.mlkernels(*host), _noop)
    fn = f.numpy if library == "numpy" else f.base
    fn(*f.make(f.tiny))
    return _Call(lambda: fn(*host), _noop)


def _call(function: str, shape: tuple, library: str, device: str) -> _Call:
    """The :func:`_make_call`, made once per process; the two latest are kept."""
    _check(function, library, device)
    key = (function, shape, library, device)
    if key not in _CALLS:
        while len(_CALLS) >= 2:
            del _CALLS[next(iter(_CALLS))]
        _CALLS[key] = _make_call(function, shape, library, device)
    return _CALLS[key]


def _shape(rows: int | None, size: int) -> tuple:
    return (size,) if rows is None else (rows, size)


# --------------------------------------------------------------------------------------
# The suites
# --------------------------------------------------------------------------------------


class _Times:
    """Base of a timing suite: ``time_call``, one call of ``function`` by ``library``.

    A subclass sets ``params = (functions, sizes, libraries, DEVICES)``; a size is ``n``
    when ``rows`` is None, else the row length of ``rows`` rows."""

    param_names = ("function", "n", "library", "device")
    rows: int | None = None
    timeout = 300.0

    def setup(self, function: str, size: int, library: str, device: str) -> None:
        self.run = _call(function, _shape(self.rows, size), library, device)

    def time_call(self, function: str, size: int, library: str, device: str) -> None:
        self.run()


class _Speedup:
    """Base of a speedup suite: mlkernels against ``baseline`` (on the host arrays), the
    two interleaved in one process (the ratio holds on a noisy machine where absolute
    times do not); the baseline is timed at least once, then until about a second is
    spent. A subclass sets ``params = (functions, sizes, DEVICES)`` and a ``track_``."""

    param_names = ("function", "n", "device")
    rows: int | None = None
    baseline = "sklearn"
    timeout = 300.0

    def setup(self, function: str, size: int, device: str) -> None:
        require(device)
        self.shape = _shape(self.rows, size)
        self.mlk = _call(function, self.shape, "mlkernels", device)

    def _speedup(self, function: str) -> float:
        """Baseline time / mlkernels time, medians; NaN (asv: n/a) without the baseline."""
        try:
            base = _call(function, self.shape, self.baseline, "cpu")
        except NotImplementedError:
            return math.nan
        base_s, mlk_s = median_seconds(
            (base.fn, base.sync), (self.mlk.fn, self.mlk.sync), min_reps=1
        )
        return base_s / mlk_s


class MetricClassification(_Times):
    """accuracy, f1, mcc, confusion of 1e7 binary labels: mlkernels, NumPy, scikit-learn."""

    params = (CLASSIFICATION, [N_LABELS], SKLEARN_LIBRARIES, DEVICES)


class MetricClassificationSpeedup(_Speedup):
    """mlkernels' speedup over scikit-learn on 1e7 binary labels, interleaved, and its
    GB/s (16 bytes per label pair)."""

    params = (CLASSIFICATION, [N_LABELS], DEVICES)

    def track_speedup_over_sklearn(self, function: str, n: int, device: str) -> float:
        return self._speedup(function)

    track_speedup_over_sklearn.unit = "x"

    def track_gbps(self, function: str, n: int, device: str) -> float:
        (seconds,) = median_seconds((self.mlk.fn, self.mlk.sync))
        return LABEL_PAIR_BYTES * n / seconds / 1e9

    track_gbps.unit = "GB/s"


class MetricRocAuc(_Times):
    """roc_auc of 1e6 tied scores: mlkernels, the NumPy formula, scikit-learn."""

    params = (["roc_auc"], [N_SCORES], SKLEARN_LIBRARIES, DEVICES)


class MetricRocAucSpeedup(_Speedup):
    """mlkernels' roc_auc speedup over ``roc_auc_score`` on 1e6 tied scores, interleaved."""

    params = (["roc_auc"], [N_SCORES], DEVICES)

    def track_speedup_over_sklearn(self, function: str, n: int, device: str) -> float:
        return self._speedup(function)

    track_speedup_over_sklearn.unit = "x"


class MetricMvnLogpdf(_Times):
    """mvn_logpdf and mvn_pdf of 1e6 points in 16 dimensions: mlkernels, the NumPy formula,
    SciPy."""

    params = (["mvn_logpdf", "mvn_pdf"], [N_POINTS], SCIPY_LIBRARIES, DEVICES)


class MetricMvnLogpdfSpeedup(_Speedup):
    """mlkernels' mvn_logpdf (mvn_pdf) speedup over ``scipy.stats.multivariate_normal``,
    interleaved."""

    params = (["mvn_logpdf", "mvn_pdf"], [N_POINTS], DEVICES)
    baseline = "scipy"

    def track_speedup_over_scipy(self, function: str, n: int, device: str) -> float:
        return self._speedup(function)

    track_speedup_over_scipy.unit = "x"


class MetricRegression(_Times):
    """r2 and mape of 1e7 float64: mlkernels, the NumPy formula, scikit-learn."""

    params = (REGRESSION, [N_VALUES], SKLEARN_LIBRARIES, DEVICES)


class MetricNdcgScore(_Times):
    """ndcg_score of 1e4 lists of 100 (tied scores): mlkernels, the formula, scikit-learn."""

    params = (["ndcg_score"], [LIST_LEN], SKLEARN_LIBRARIES, DEVICES)
    param_names = ("function", "cols", "library", "device")
    rows = LISTS


class MetricGaussian(_Times):
    """gaussian_pdf, gaussian_logpdf, gaussian_mle of 1e7 float64: mlkernels, the NumPy
    formula, ``scipy.stats.norm``."""

    params = (
        ["gaussian_pdf", "gaussian_logpdf", "gaussian_mle"],
        [N_VALUES],
        SCIPY_LIBRARIES,
        DEVICES,
    )


class MetricEntropy(_Times):
    """entropy and cross_entropy of each of 1e4 rows of 1000: mlkernels, the NumPy formula,
    SciPy."""

    params = (["entropy", "cross_entropy"], [ROW_LEN], SCIPY_LIBRARIES, DEVICES)
    param_names = ("function", "cols", "library", "device")
    rows = ROWS


class MetricMutualInformation(_Times):
    """mutual_information_labels of 1e7 labels of 10 classes: mlkernels, the formula,
    scikit-learn's mutual_info_score."""

    params = (["mutual_information_labels"], [N_LABELS], SKLEARN_LIBRARIES, DEVICES)


class MetricJointInformation(_Times):
    """mutual_information of a 1e4 x 1000 joint table: mlkernels, the formula,
    scikit-learn's mutual_info_score(contingency=)."""

    params = (["mutual_information"], [ROW_LEN], SKLEARN_LIBRARIES, DEVICES)
    param_names = ("function", "cols", "library", "device")
    rows = ROWS


class MetricFormulaOnly(_Times):
    """perplexity of 1e7 log-probabilities: mlkernels and the NumPy formula."""

    params = (["perplexity"], [N_VALUES], FORMULA_LIBRARIES, DEVICES)


class MetricDcg(_Times):
    """dcg and ndcg of 1e4 lists of 100, as ranked: mlkernels and the NumPy formula."""

    params = (["dcg", "ndcg"], [LIST_LEN], FORMULA_LIBRARIES, DEVICES)
    param_names = ("function", "cols", "library", "device")
    rows = LISTS
