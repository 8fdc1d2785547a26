"""The formulas as the benchmarks, the main job and ``precompile`` use them: a view of the
declarations (``mlkernels._core.spec.FORMULAS``, one per public function), with how to
make data for each, check a result against its NumPy formula, call it in every way it is
called, and its PyTorch CPU equivalent where there is one.

Each :class:`Entry` is one public function. Its ``kind`` says what a call returns and so
how it is called, checked and counted:

* ``"loss"``: a reduced value, with ``reduction=``; the derivative is the function's
  ``.grad`` and ``.value_and_grad`` (one pass, ``out=`` receives the gradient);
* ``"map"``: an array like the first argument (activations, their ``_grad``\\ s, softmax
  and its VJP, ``max_norm``, ``dropout``, ``layer_norm``); ``out=`` is accepted;
* ``"scalar"``: a reduced value without ``reduction=`` (``l1_loss``, ``l2_loss``,
  ``elastic_net``);
* ``"tuple"``: several arrays (``batch_norm``, ``batch_norm_grad``, ``layer_norm_grad``).

Data layout: ``"flat"`` entries take ``n`` elements per array; ``"rows"`` entries take
``(n // cols, cols)`` arrays, ``cols`` defaulting to :data:`ROW_COLS`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from mlkernels import reference
from mlkernels._bench.data import CLASSES
from mlkernels._core import threads as _threads
from mlkernels._core.spec import FORMULAS, Formula

ROW_COLS = 1024  # default row length of the "rows" entries
FAMILIES = (
    "losses",
    "activations",
    "regularisation",
    "normalisation",
    "optimisers",
    "gradients",
    "metrics",
    "probability",
)
#: Declared formulas that are not timed one by one at n elements: the schedules (a
#: function of the step; an array of steps is a map of a few transcendental operations).
UNTIMED = ("schedules",)


# --------------------------------------------------------------------------------------
# Checks against the NumPy formula
# --------------------------------------------------------------------------------------


def rel_error(got, expected) -> float:
    """Normwise relative error: max |got - expected| / max |expected| (1 if that is 0).

    Tuples compare element by element (the largest error); non-finite values must be
    non-finite in both. For a scalar it is the usual relative error.
    """
    if isinstance(expected, tuple):
        if not isinstance(got, tuple) or len(got) != len(expected):
            return np.inf
        return max((rel_error(g, e) for g, e in zip(got, expected, strict=True)), default=0.0)
    g = np.asarray(got, np.float64)
    e = np.asarray(expected, np.float64)
    if g.shape != e.shape:
        return np.inf
    finite = np.isfinite(e)
    if not np.array_equal(np.isfinite(g), finite):
        return np.inf
    if not finite.any():
        return 0.0
    scale = float(np.max(np.abs(e[finite]))) or 1.0
    return float(np.max(np.abs(g[finite] - e[finite]))) / scale


# --------------------------------------------------------------------------------------
# PyTorch CPU baselines
# --------------------------------------------------------------------------------------


@functools.cache
def torch_baselines() -> dict[str, Callable]:
    """``name -> factory(*tensors) -> call()``: each formula's PyTorch equivalent.

    A factory receives the entry's arguments as tensors, prepares what is not part of the
    computation (the all-ones upstream gradient of a backward op) and returns the call to
    time. Derivatives are PyTorch's own backward kernels given an all-ones upstream
    gradient (what ``x.grad`` of ``f(x).sum()`` runs), from the input where the backward
    op takes the input (relu, leaky_relu, elu, selu, gelu, silu, mish), from a forward call
    inside the timed call where it takes the output (sigmoid, tanh, softmax, log_softmax,
    layer_norm, batch_norm: mlkernels too starts from x). Empty when torch is missing.
    """
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return {}
    aten = torch.ops.aten
    eps = 1e-5
    alpha, lam = reference.SELU_ALPHA, reference.SELU_LAMBDA

    def grad_at(op: Callable) -> Callable:
        def factory(x):
            ones = torch.ones_like(x)
            return lambda: op(ones, x)

        return factory

    def layer_norm_grad(x, gamma, dy):
        shape = [x.shape[-1]]
        beta = torch.zeros_like(gamma)  # its backward wants a bias to return dbeta

        def call():
            _, mean, rstd = aten.native_layer_norm(x, shape, gamma, None, eps)
            return aten.native_layer_norm_backward(
                dy, x, shape, mean, rstd, gamma, beta, [True, True, True]
            )

        return call

    def batch_norm_grad(x, gamma, dy):
        def call():
            _, mean, invstd = aten.native_batch_norm(x, gamma, None, None, None, True, 0.0, eps)
            return aten.native_batch_norm_backward(
                dy, x, gamma, None, None, mean, invstd, True, eps, [True, True, True]
            )

        return call

    def norm1(w):
        return torch.linalg.vector_norm(w, 1)

    return {
        "sigmoid": lambda x: lambda: torch.sigmoid(x),
        "sigmoid_grad": grad_at(lambda g, x: aten.sigmoid_backward(g, torch.sigmoid(x))),
        "tanh": lambda x: lambda: torch.tanh(x),
        "tanh_grad": grad_at(lambda g, x: aten.tanh_backward(g, torch.tanh(x))),
        "relu": lambda x: lambda: F.relu(x),
        "relu_grad": grad_at(lambda g, x: aten.threshold_backward(g, x, 0)),
        "leaky_relu": lambda x: lambda: F.leaky_relu(x, 0.01),
        "leaky_relu_grad": grad_at(lambda g, x: aten.leaky_relu_backward(g, x, 0.01, False)),
        "elu": lambda x: lambda: F.elu(x, 1.0),
        "elu_grad": grad_at(lambda g, x: aten.elu_backward(g, 1.0, 1.0, 1.0, False, x)),
        "selu": lambda x: lambda: F.selu(x),
        "selu_grad": grad_at(lambda g, x: aten.elu_backward(g, alpha, lam, 1.0, False, x)),
        "gelu": lambda x: lambda: F.gelu(x, approximate="tanh"),
        "gelu_grad": grad_at(lambda g, x: aten.gelu_backward(g, x, approximate="tanh")),
        "swish": lambda x: lambda: F.silu(x),
        "swish_grad": grad_at(aten.silu_backward),
        "mish": lambda x: lambda: F.mish(x),
        "mish_grad": grad_at(aten.mish_backward),
        "softmax": lambda x: lambda: torch.softmax(x, -1),
        "log_softmax": lambda x: lambda: torch.log_softmax(x, -1),
        "softmax_grad": lambda x, dy: (
            lambda: aten._softmax_backward_data(dy, torch.softmax(x, -1), -1, x.dtype)
        ),
        "log_softmax_grad": lambda x, dy: (
            lambda: aten._log_softmax_backward_data(dy, torch.log_softmax(x, -1), -1, x.dtype)
        ),
        "l2_loss": lambda w: lambda: 1e-4 * torch.dot(w, w),
        "l2_grad": lambda w: lambda: torch.mul(w, 2e-4),
        "l1_loss": lambda w: lambda: 1e-4 * norm1(w),
        "l1_grad": lambda w: lambda: torch.sign(w).mul_(1e-4),
        "elastic_net": lambda w: lambda: 1e-4 * norm1(w) + 1e-4 * torch.dot(w, w),
        "elastic_net_grad": lambda w: lambda: torch.sign(w).mul_(1e-4).add_(w, alpha=2e-4),
        "max_norm": lambda w: lambda: torch.renorm(w, 2, 1, 3.0),
        "dropout": lambda x: lambda: F.dropout(x, 0.5, training=True),
        "batch_norm": lambda x, gamma, beta: (
            lambda: F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
        ),
        "batch_norm_grad": batch_norm_grad,
        "layer_norm": lambda x, gamma, beta: lambda: F.layer_norm(x, gamma.shape, gamma, beta, eps),
        "layer_norm_grad": layer_norm_grad,
    }


def torch_device_usable(device: str) -> bool:
    """Whether PyTorch can run on ``device`` here ("cpu", or "cuda" with a CUDA build)."""
    try:
        import torch
    except ImportError:
        return False
    return device == "cpu" or bool(torch.cuda.is_available())


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------


def _device_array(like: object, shape: tuple, dtype) -> object:
    """An uninitialised array on ``like``'s device (for ``out=``)."""
    if hasattr(like, "copy_to_host"):
        from mlkernels._core.cuda import cuda

        return cuda.device_array(shape, dtype)
    return np.empty(shape, dtype)


@dataclass(frozen=True)
class Entry:
    """A formula's declaration (``mlkernels._core.spec.Formula``) as the benchmarks, the
    main job and ``precompile`` use it."""

    spec: Formula
    override: Callable | None = None  # a reference to check against instead (tests)

    def __getattr__(self, name: str):
        return getattr(self.spec, name)

    @property
    def reference(self) -> Callable:
        return self.override or self.spec.reference

    @property
    def make(self) -> Callable:
        return self.spec.data

    @property
    def kind(self) -> str:
        """ "loss", "map" (an array like the first argument, ``out=``), "scalar" (or a
        small array: confusion_matrix) or "tuple"."""
        if self.spec.returns == "array":
            return "map" if self.spec.has_out else "scalar"
        return self.spec.returns

    @property
    def function(self) -> Callable:
        import mlkernels

        return getattr(mlkernels, self.name)

    @property
    def writes_arrays(self) -> bool:
        """Whether a call writes arrays as large as its input (else it reduces)."""
        return self.kind in ("map", "tuple")

    def shape(self, n: int, cols: int | None = None) -> tuple[int, ...]:
        """The shape of the main argument for ``n`` elements."""
        if self.layout == "rows":
            cols = cols or ROW_COLS
            return (max(n // cols, 1), cols)
        return (n,)

    def args(self, n: int, dtype, seed: int = 0, cols: int | None = None) -> tuple:
        """The positional arguments: about ``n`` elements per array (rows: ``n // cols``
        rows of ``cols``)."""
        rng = np.random.default_rng(seed)
        if self.layout == "rows":
            return self.make(self.shape(n, cols), np.dtype(dtype), rng)
        return self.make(n, np.dtype(dtype), rng)

    def calls(self, args: tuple) -> dict[str, Callable[[], object]]:
        """The ways the function is called on ``args`` (host or device arrays), by name.

        ``"value"`` always: the function itself. Losses: ``"grad"``, ``"value_and_grad"``
        and, where the gradient has an argument to be shaped like, ``"value_and_grad_out"``
        (its ``out=`` reused). Maps: ``"out"``, the result written into a reused ``out=``.
        """
        f = self.function
        calls = {"value": lambda: f(*args)}
        if self.kind == "loss":
            calls["grad"] = lambda: f.grad(*args)
            calls["value_and_grad"] = lambda: f.value_and_grad(*args)
            gbuf = self._grad_buffer(f, args)
            if gbuf is not None:
                calls["value_and_grad_out"] = lambda: f.value_and_grad(*args, out=gbuf)
        elif self.kind == "map":
            out = _device_array(args[0], args[0].shape, args[0].dtype)
            calls["out"] = lambda: f(*args, out=out)
        return calls

    @staticmethod
    def _grad_buffer(f: Callable, args: tuple) -> object:
        """An array for a loss gradient's ``out=`` (shaped like the argument the gradient
        is taken against), or None when the loss declares no such argument."""
        import inspect

        pred = getattr(f.spec.template, "pred", None)
        params = list(inspect.signature(f).parameters)
        if pred not in params:
            return None
        x = args[params.index(pred)]
        return _device_array(x, x.shape, x.dtype)

    def error(self, got: object, expected: object, host_args: tuple) -> float:
        """The error of a result (on the host) against the NumPy formula's."""
        if self.check is not None:
            return self.check(got, expected, host_args)
        return rel_error(got, expected)

    def torch_call(
        self, host_args: tuple, device: str = "cpu"
    ) -> tuple[Callable[[], object], Callable[[], None]] | None:
        """PyTorch's equivalent on ``device`` as ``(call, sync)``, or None (no torch, no
        equivalent, or no CUDA build for "cuda"). Tensors share the NumPy arrays' memory."""
        factory = torch_baselines().get(self.name)
        if factory is None or not torch_device_usable(device):
            return None
        import torch

        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in host_args]
        sync: Callable[[], None] = _noop
        if device == "cuda":
            tensors = [t.cuda() for t in tensors]
            sync = torch.cuda.synchronize
        return factory(*tensors), sync

    def warm(self, dtype, device: str = "cpu", kinds=("serial", "parallel"), calls=None) -> None:
        """Run every call of the entry on tiny data (compiles or loads its kernels): on the
        CPU once with each of ``kinds``, the serial and the parallel kernels. ``calls``:
        only these of :meth:`calls` (default: every call, a loss's for every reduction)."""
        if device == "cpu":
            for kind in kinds:
                with _threads.parallel_min(1 << 62 if kind == "serial" else 0):
                    self._warm(dtype, device, calls)
        else:
            self._warm(dtype, device, calls)

    def _warm(self, dtype, device: str, calls=None) -> None:
        args = self.args(2 * CLASSES, dtype, cols=5)
        if device == "cuda":
            from mlkernels._core.cuda import cuda

            args = tuple(cuda.to_device(a) for a in args)
        if calls is not None:
            for name, call in self.calls(args).items():
                if name in calls:
                    call()
            return
        if self.kind == "loss":
            f = self.function
            for reduction in ("mean", "sum", "none"):
                for fn in (f, f.grad, f.value_and_grad):
                    fn(*args, reduction=reduction)
            return
        for call in self.calls(args).values():
            call()


def _noop() -> None:
    pass


def _table() -> dict[str, Entry]:
    import mlkernels  # noqa: F401 - declares every formula

    table = {f.name: Entry(f) for f in FORMULAS.values()}
    return {name: table[name] for f in FAMILIES for name in table if table[name].family == f}


ENTRIES: dict[str, Entry] = _table()


def entries(
    names: Iterable[str] | None = None, families: Iterable[str] | None = None
) -> list[Entry]:
    """The entries of ``names`` (default all), in table order, then only those of
    ``families`` if given."""
    if names is None:
        chosen = list(ENTRIES.values())
    else:
        if isinstance(names, str):
            names = [names]
        names = list(names)
        unknown = [n for n in names if n not in ENTRIES]
        if unknown:
            raise ValueError(f"unknown formulas: {', '.join(unknown)}")
        chosen = [ENTRIES[n] for n in names]
    if families is not None:
        families = [families] if isinstance(families, str) else list(families)
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown families: {', '.join(unknown)}")
        chosen = [e for e in chosen if e.family in families]
    return chosen
