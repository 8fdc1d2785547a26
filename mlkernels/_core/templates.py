"""The templates a formula is declared with: what it reads and writes, its shapes, its
launch, on either device (the kernels are in ``cpu.py`` and ``gpu.py``, one per pattern
and device, with the same arguments).

A template's ``run(job)`` is the "shape, allocate, launch" part of the pipeline
(``pipeline.call`` binds, validates and places first, and returns what ``run`` gives
through ``job.give``). ``inputs`` is how many array arguments it reads, ``returns`` what
a call gives ("array", "scalar", "tuple", "loss") and ``alias_safe`` whether its kernel
may write ``out=`` while reading an input that IS that array (an elementwise pass that
reads element i before it writes it); any other overlap is computed in a scratch array.

Op records (:class:`RowOp`, :class:`ColOp`) hold a row or column operation's scalar code,
written once for both devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numba.extending import register_jitable

from mlkernels._core import cpu
from mlkernels._core import threads as _threads
from mlkernels._core.pipeline import Job, same_shape
from mlkernels._core.scalar import identity

REDUCTIONS = ("mean", "sum", "none")


class RowOp(NamedTuple):
    """A row operation for :class:`Rows` (see ``cpu.rows``): ``part`` reduces (part of) a
    row to a state of ``k`` float64, ``merge`` merges two parts' states (on the GPU a row
    is split over a block), ``emit`` writes the row's results and returns ``stats``
    per-row statistics."""

    k: int
    part: Callable
    merge: Callable
    emit: Callable
    stats: int = 0


class ColOp(NamedTuple):
    """A column operation for :class:`Cols` (see ``cpu.cols_reduce``): ``k`` float64
    statistics per column, built by ``push``, ``merge`` and ``final``; ``emit`` returns the
    ``outputs`` elementwise results from them."""

    k: int
    push: Callable
    merge: Callable
    final: Callable
    emit: Callable
    outputs: int = 1


def _features(named: dict[str, Any], shape: tuple, what: str) -> None:
    for name, a in named.items():
        if tuple(a.shape) != shape:
            raise ValueError(
                f"{name} has shape {tuple(a.shape)}; it must have shape {shape} ({what})"
            )


def _quick_out(out: Any, shape: tuple, dt: np.dtype, inputs: tuple, same_ok: bool) -> bool:
    """Whether a quick call may write the caller's ``out=`` directly: a writeable
    C-contiguous NumPy array of the result's shape and dtype that overlaps no input (or
    only IS one, for a template that may alias, ``same_ok``). Anything else goes to the
    general path, which checks it, gives the error or works in a scratch array."""
    if type(out) is not np.ndarray or out.dtype is not dt or out.shape != shape:
        return False
    if not out.flags.c_contiguous or not out.flags.writeable:
        return False
    for a in inputs:
        if (a is not out or not same_ok) and np.may_share_memory(out, a):
            return False
    return True


def _flat(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 1 else x.reshape(-1)


def _positions(spec: Any) -> tuple[list[int], list[int]]:
    """Where a formula's data arrays and its per-feature arrays are among its arguments."""
    data, feats = [], []
    for k, role in enumerate(spec.arrays.values()):
        (feats if role == "feature" else data).append(k)
    return data, feats


def _quick_arrays(args: tuple, data: list, feats: list, c: int) -> tuple | None:
    """A quick call's data arrays (each of the first's shape) and per-feature arrays (each
    (c,)), or None when a shape does not fit (the general path names it)."""
    ins = [args[k] for k in data]
    ws = [args[k] for k in feats]
    shape = ins[0].shape
    for a in ins[1:]:
        if a.shape != shape:
            return None
    for w in ws:
        if w.shape != (c,):
            return None
    return ins, ws


def _split(job: Job) -> tuple[list[str], list[str]]:
    """The data arguments (read like the first) and the per-feature ones, in order."""
    data = [n for n, r in job.spec.arrays.items() if r != "feature" and n in job.arrays]
    feats = [n for n, r in job.spec.arrays.items() if r == "feature" and n in job.arrays]
    return data, feats


# --------------------------------------------------------------------------------------
# Elementwise: map, sum
# --------------------------------------------------------------------------------------


def _one_output(o: Any) -> tuple:
    return (o,)


def _first_of_two(o: Any) -> tuple:
    return (o, None)


def _second_of_two(o: Any) -> tuple:
    return (None, o)


class Map:
    """``out = f(x, ...)[output]`` elementwise over arrays of one shape, any shape.

    ``f(x0, ..., params)`` returns ``results`` values (a function and its derivative:
    ``output`` 0 or 1 picks one, the other is pruned from the kernel); ``counter`` passes
    the element's C-order index before ``params`` (dropout's generator); ``widen``
    computes in float64 whatever the dtype (else in the data's own precision).
    """

    returns = "array"
    alias_safe = True

    def __init__(
        self,
        f: Callable,
        output: int = 0,
        *,
        inputs: int = 1,
        results: int = 2,
        counter: bool = False,
        widen: bool = False,
    ) -> None:
        self.f, self.output, self.inputs, self.results = f, output, inputs, results
        self.counter, self.widen = counter, widen

    def quick(self, spec: Any, parse: Callable) -> Callable:
        """The host call in few steps: one allocation (or the caller's ``out=``), one
        kernel dispatch (a small call's time is mostly Python's). ``f(x)`` alone, the
        activations' usual call, takes the fewest: no keyword, nothing to parse."""
        kernel = cpu.map(self.f, self.inputs, self.results, self.widen, self.counter)
        n, threads = self.inputs, _threads
        if self.results == 1:
            put = _one_output
        else:
            put = _first_of_two if self.output == 0 else _second_of_two
        fixed = parse.fixed if n == 1 and spec.shortcut is None else None
        f64, f32 = np.dtype(np.float64), np.dtype(np.float32)

        def quick(args: tuple, kwargs: dict) -> Any:
            if fixed is not None and len(args) == 1 and not kwargs:  # f(x)
                x = args[0]
                if type(x) is np.ndarray and x.flags.c_contiguous:
                    dt = x.dtype
                    if dt is f64 or dt is f32:
                        res = np.empty(x.shape, dt)
                        small = x.size < threads.PARALLEL_MIN
                        run = kernel.serial if small else kernel.parallel
                        if x.ndim == 1:
                            run(x, fixed, *put(res))
                        else:
                            run(x.reshape(-1), fixed, *put(res.reshape(-1)))
                        return res
                return None
            parsed = parse(args, kwargs)
            if parsed is None:
                return None
            params, out, _ = parsed
            x = args[0]
            shape, dt = x.shape, x.dtype
            ins = args[:n]
            for a in ins[1:]:
                if a.shape != shape:
                    return None
            if out is None:
                res = np.empty(shape, dt)
            elif _quick_out(out, shape, dt, ins, True):
                res = out
            else:
                return None
            run = kernel.serial if x.size < threads.PARALLEL_MIN else kernel.parallel
            if x.ndim != 1:
                ins = tuple(a.reshape(-1) for a in ins)
            run(*ins, params, *put(_flat(res)))
            return res

        return quick

    def run(self, job: Job) -> Any:
        backend, dtype = job.backend, job.dtype
        names = list(job.arrays)
        first = job.arrays[names[0]]
        for n in names[1:]:
            same_shape(names[0], first, n, job.arrays[n])
        ins = [backend.flat(job.arrays[n], dtype) for n in names]
        res, work = job.result(tuple(first.shape), ins)
        outs = [None] * self.results
        outs[self.output] = work.reshape(work.size)
        backend.run_map(self.f, ins, job.params, outs, self.widen, self.counter)
        return job.give(res)


class Steps(Map):
    """A :class:`Map` over step counts (the learning-rate schedules): ``f(t, params)`` in
    float64, whatever the steps' dtype (integer steps give float64, float32 steps
    float32). A negative step is a ``ValueError`` before the kernel; device steps are
    checked on a host copy (a synchronisation)."""

    quick = None  # every call goes through run(), which checks the steps

    def __init__(self, f: Callable) -> None:
        super().__init__(f, 0, results=1, widen=True)

    def run(self, job: Job) -> Any:
        name = next(iter(job.arrays))
        t = job.arrays[name]
        host = t if job.backend.is_host else t.copy_to_host()
        if host.size and bool((host < 0).any()):
            raise ValueError(f"{name} must be >= 0 (a step count), got {host.min()}")
        return super().run(job)


class Sum:
    """``Σ f(w)[0]`` over every element (float64 accumulation), in the dtype of ``w``: the
    penalties. An empty sum is 0, as ``numpy.sum``."""

    returns = "scalar"
    alias_safe = True
    inputs = 1

    def __init__(self, f: Callable) -> None:
        self.f = f

    def quick(self, spec: Any, parse: Callable) -> Callable:
        """The host call in few steps: one kernel dispatch."""
        kernel, threads = cpu.reduce(self.f, 1, 1, 2, "float64", True), _threads

        def quick(args: tuple, kwargs: dict) -> Any:
            parsed = parse(args, kwargs)
            if parsed is None or not args[0].size:
                return None
            w = args[0]
            total = np.zeros(1)
            run = kernel.serial if w.size < threads.PARALLEL_MIN else kernel.parallel
            run(_flat(w), parsed[0], w.dtype.type(1), None, None, total)
            return w.dtype.type(total[0])

        return quick

    def run(self, job: Job) -> Any:
        backend, dtype = job.backend, job.dtype
        (w,) = job.arrays.values()
        if w.size == 0:
            return dtype.type(0) if backend.is_host else job.give(backend.zeros((), dtype))
        flat = backend.flat(w, dtype)
        one = dtype.type(1)
        total = backend.run_reduce(self.f, [flat], job.params, one, [None, None], 1, True)
        if backend.is_host:
            return dtype.type(total[0])
        return job.give(backend.finish(total, 1.0, identity, dtype)[0])


# --------------------------------------------------------------------------------------
# Losses: a term per element (or per sample, classes along axis 1), reduced
# --------------------------------------------------------------------------------------


class Loss:
    """A loss term ``term(a, b, params) -> (value, d value / d prediction)`` reduced by
    ``reduction`` ("mean" | "sum" | "none"), its gradient written in the same pass.

    ``pattern``: "elementwise" (two arrays of one shape), "classes_dense" (cce: classes
    along axis 1, the label one-hot) or "classes_index" (nll: the label a class index);
    ``kernel`` the two array arguments in the kernel's order, ``pred`` the one the
    gradient is taken for. ``final`` finalises a reduced sum (rmse's square root, with its
    derivative); ``none_term`` is the term for ``reduction="none"`` when not ``term`` (rmse:
    ``|e|``). ``constants`` are fixed parameters after the user's (js_divergence's eps).

    ``widen``: the term receives its two elements as float64 (float32 data computed in
    float64, rounded once on store), else in the data's own type (the transcendental
    terms: float32 data computed in float32, 8 SIMD lanes). The sums are float64 either way.
    """

    returns = "loss"
    alias_safe = False
    inputs = 2

    def __init__(
        self,
        term: Callable,
        *,
        kernel: tuple[str, str],
        pred: str,
        pattern: str = "elementwise",
        final: Callable = identity,
        none_term: Callable | None = None,
        constants: tuple[float, ...] = (),
        widen: bool = True,
    ) -> None:
        self.term, self.kernel, self.pred, self.pattern = term, kernel, pred, pattern
        self.final, self.none_term, self.constants = final, none_term, constants
        self.widen = widen

    def params(self, reduction: str, **hyper: float) -> tuple:
        return (*hyper.values(), *self.constants)

    def quick(self, spec: Any, parse: Callable) -> Callable:
        """A reduced loss (its value, gradient or both) in few steps: one kernel dispatch,
        the gradient into a new array or the caller's ``out=``. Classes along axis 1 are
        read from (n, C) arrays; ``reduction="none"`` takes the general path."""
        names = list(spec.signature.parameters)
        ia, ib = (names.index(n) for n in self.kernel)  # the gradient has b's shape
        kernel = cpu.reduce(self.term, 2, 1, 2, "float64", self.widen)
        final, want = self.final, spec.want
        plain, threads, pattern = final is identity, _threads, self.pattern
        if pattern == "classes_index":
            kernel = cpu.classes_index(self.term)

        def quick(args: tuple, kwargs: dict) -> Any:
            parsed = parse(args, kwargs)
            if parsed is None:
                return None
            params, out, arguments = parsed
            reduction = arguments["reduction"]
            a, b = args[ia], args[ib]
            size = b.size
            if not size or (reduction != "mean" and reduction != "sum"):
                return None
            dt = b.dtype
            if pattern != "classes_index" and a.dtype is not dt:
                return None  # labels of another dtype: the general path converts them
            if pattern == "elementwise":
                if a.shape != b.shape:
                    return None
                n = size
            elif b.ndim != 2 or a.shape != (b.shape if pattern == "classes_dense" else b.shape[:1]):
                return None
            else:
                n = b.shape[0]  # samples: classes along axis 1 are summed
            if want == "value":
                if out is not None:
                    return None
                g = None
            elif out is None:
                g = np.empty(b.shape, dt)
            elif pattern != "classes_index" and _quick_out(out, b.shape, dt, (a, b), False):
                g = out  # (an index loss checks its targets after the kernel: not in out=)
            else:
                return None
            run = kernel.serial if size < threads.PARALLEL_MIN else kernel.parallel
            scale = 1.0 / n if reduction == "mean" else 1.0
            total = np.zeros(1)
            if pattern == "classes_index":
                c = b.shape[1]
                run(
                    a.reshape(n, 1),
                    b.reshape(n, c, 1),
                    params,
                    dt.type(scale),
                    None,
                    None if g is None else g.reshape(n, c, 1),
                    total,
                )
                if total[0] != total[0] and (a.min() < -c or a.max() >= c):
                    return None  # a target out of range: the general path says so
            else:
                if a.ndim != 1:
                    a, b = a.reshape(-1), b.reshape(-1)
                gf = None if g is None else _flat(g)
                if want == "grad" and plain:
                    run(a, b, params, dt.type(scale), None, gf, None)
                    return g
                run(a, b, params, dt.type(scale), None, gf, total)
            value, d = final(total[0] * scale)
            if g is not None and not plain:
                cpu.rescale(g, d)
            value = dt.type(value)
            return value if want == "value" else g if want == "grad" else (value, g)

        return quick

    def prepare(self, job: Job) -> tuple:
        """The kernel's two arrays (flat, or (n, C, R) and the label), the shape of the
        per-term values and of the gradient."""
        backend, dtype = job.backend, job.dtype
        a_name, b_name = self.kernel
        a, b = job.arrays[a_name], job.arrays[b_name]
        grad_shape = tuple(job.arrays[self.pred].shape)
        if self.pattern == "elementwise":
            same_shape(a_name, a, b_name, b)
            return backend.flat(a, dtype), backend.flat(b, dtype), tuple(b.shape), grad_shape
        index = self.pattern == "classes_index"
        if b.ndim < 2:
            raise ValueError(f"{b_name} must be (n, C) or (n, C, d1, ...); got shape {b.shape}")
        n, c = b.shape[:2]
        rest = tuple(b.shape[2:])
        if c == 0:
            raise ValueError(f"{b_name} has shape {tuple(b.shape)}: no classes along axis 1")
        want = (n, *rest) if index else tuple(b.shape)
        if tuple(a.shape) != want:
            raise ValueError(
                f"{a_name} has shape {tuple(a.shape)} but {b_name} has shape "
                f"{tuple(b.shape)}; {a_name} must have shape {want}"
            )
        r = math.prod(rest)
        x3 = backend.flat(b, dtype).reshape(n, c, r)
        y3 = backend.flat(a, np.dtype(np.int64) if index else dtype)
        y3 = y3.reshape((n, r) if index else (n, c, r))
        if index and backend.is_host and y3.size:
            lo, hi = int(y3.min()), int(y3.max())
            if lo < -c or hi >= c:
                raise ValueError(f"{a_name} must lie in [-{c}, {c}); got values in [{lo}, {hi}]")
        return y3, x3, (n, *rest), grad_shape

    def run(self, job: Job) -> Any:
        want = job.spec.want
        reduction = job.arguments["reduction"]
        a, b, value_shape, grad_shape = self.prepare(job)
        if job.out is not None and want == "value" and reduction != "none":
            raise ValueError("out= needs reduction='none' (a reduction returns a scalar)")
        return job.give(self.launch(job, a, b, value_shape, grad_shape, reduction, want))

    def launch(
        self,
        job: Job,
        a: Any,
        b: Any,
        value_shape: tuple,
        grad_shape: tuple,
        reduction: str,
        want: str,
    ) -> Any:
        """Run the term kernel and reduce it. Reduced values are ``final(sum * scale)``
        (scale 1/n for a mean); the gradient is written in the same pass, times
        ``scale``, and rescaled by ``final``'s derivative when ``final`` is not the identity."""
        backend, dtype, params = job.backend, job.dtype, job.params
        pattern, term, final, widen = self.pattern, self.term, self.final, self.widen
        if pattern == "classes_dense" and reduction != "none":
            # Every term is summed: one flat pass over all of them, which vectorises even
            # for a few classes per sample (only reduction="none" needs per-sample sums).
            pattern, a, b = "elementwise", a.reshape(-1), b.reshape(-1)
        if reduction == "none" and self.none_term is not None:
            term, final = self.none_term, identity
        flat = pattern == "elementwise"
        gout = gwork = None
        if want != "grad" and reduction == "none":
            vout, vwork = job.result(value_shape, (a, b), use_out=want == "value")
        else:
            vout = vwork = None
        if want != "value":
            gout, gwork = job.result(grad_shape, (a, b), use_out=True)
        k_value = (
            None if vwork is None else vwork.reshape(b.shape if flat else (b.shape[0], b.shape[2]))
        )
        k_grad = None if gwork is None else gwork.reshape(b.shape)

        def kernel(grad_scale, values, want_total):
            if flat:
                return backend.run_reduce(
                    term, [a, b], params, grad_scale, [values, k_grad], 1, want_total, widen=widen
                )
            return backend.run_classes(
                pattern, term, a, b, params, grad_scale, values, k_grad, want_total, widen
            )

        if reduction == "none":
            kernel(dtype.type(1), k_value, False)
            return _wanted(want, vout, gout)
        n = math.prod(value_shape)
        if n == 0:
            raise ValueError(f"reduction={reduction!r} of an empty input")
        scale = 1.0 / n if reduction == "mean" else 1.0
        grad_scale = dtype.type(scale)
        if want == "grad" and final is identity:
            kernel(grad_scale, None, False)
            return gout
        total = kernel(grad_scale, None, True)
        value, d = backend.finish(total, scale, final, dtype)
        if gout is not None and final is not identity:
            backend.rescale(gwork, d)
        return _wanted(want, value, gout)

    # A reduction as partial -> combine -> finalize, for data that comes in chunks: the
    # partial of a chunk is the float64 sum of its terms and their count; partials add.

    def partial(self, spec: Any, args: tuple, kwargs: dict) -> tuple[float, int]:
        arguments = spec.bind(args, {**kwargs, "reduction": "sum"})
        job = Job(spec, arguments, spec.validate(arguments))
        if not job.backend.is_host:
            raise NotImplementedError("partial() takes host (NumPy) chunks")
        a, b, value_shape, _ = self.prepare(job)
        one = job.dtype.type(1)
        if self.pattern == "elementwise":
            total = job.backend.run_reduce(
                self.term, [a, b], job.params, one, [None, None], 1, True, widen=self.widen
            )
        else:
            total = job.backend.run_classes(
                self.pattern, self.term, a, b, job.params, one, None, None, True, self.widen
            )
        return float(total[0]), math.prod(value_shape)

    def finalize(self, partial: tuple[float, int], reduction: str = "mean") -> float:
        total, n = partial
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
        if n == 0:
            raise ValueError(f"reduction={reduction!r} of an empty input")
        return self.final(total / n if reduction == "mean" else total)[0]


def reduction(name: str, value: Any) -> str:
    """The validator of ``reduction=``."""
    if value not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, not {value!r}")
    return value


def _wanted(want: str, value: Any, grad: Any) -> Any:
    if want == "value":
        return value
    return grad if want == "grad" else (value, grad)


# --------------------------------------------------------------------------------------
# Rows (the last axis) and columns (axis 0)
# --------------------------------------------------------------------------------------


def _as_2d(job: Job, axis: int) -> tuple:
    """The data arguments as (n, c) (rows along the last axis, ``axis=-1``, or columns
    along axis 0) and the per-feature ones as (c,), checked; ``(shape, data, feats)``."""
    backend, dtype = job.backend, job.dtype
    data, feats = _split(job)
    x_name = data[0]
    x = job.arrays[x_name]
    if x.ndim == 0:
        raise ValueError(f"{x_name} must have at least one dimension (the one reduced)")
    shape = tuple(x.shape)
    fshape = shape[-1:] if axis == -1 else shape[1:]
    c = math.prod(fshape)
    n = math.prod(shape[:-1]) if axis == -1 else shape[0]
    for name in data[1:]:
        same_shape(x_name, x, name, job.arrays[name])
    what = f"the last axis of {x_name}" if axis == -1 else f"the shape of {x_name} without axis 0"
    _features({f: job.arrays[f] for f in feats}, fshape, what)
    ins = [backend.flat(job.arrays[d], dtype).reshape(n, c) for d in data]
    ws = [backend.flat(job.arrays[f], dtype) for f in feats]
    return shape, ins, ws


class Rows:
    """A row operation along the last axis (:class:`RowOp`): a result of the shape of the
    first input; the other data inputs have its shape, the per-feature ones the shape of
    its last axis."""

    returns = "array"
    alias_safe = False  # softmax keeps its exponentials in out= and reads the inputs after

    def __init__(self, op: RowOp, *, inputs: int = 1) -> None:
        self.op, self.inputs = op, inputs

    def quick(self, spec: Any, parse: Callable) -> Callable:
        """The host call in few steps: one allocation (or ``out=``), one kernel dispatch."""
        data, feats = _positions(spec)
        kernel, threads = cpu.rows(self.op, len(data), len(feats)), _threads

        def quick(args: tuple, kwargs: dict) -> Any:
            parsed = parse(args, kwargs)
            if parsed is None:
                return None
            params, out, _ = parsed
            x = args[0]
            shape, dt = x.shape, x.dtype
            if not x.ndim or not x.size:
                return None
            c = shape[-1]
            arrays = _quick_arrays(args, data, feats, c)
            if arrays is None:
                return None
            ins, ws = arrays
            if out is None:
                res = np.empty(shape, dt)
            elif _quick_out(out, shape, dt, (*ins, *ws), False):
                res = out
            else:
                return None
            run = kernel.serial if x.size < threads.PARALLEL_MIN else kernel.parallel
            if x.ndim != 2:
                ins = [a.reshape(-1, c) for a in ins]
            run(*ins, *ws, params, res.reshape(-1, c), None)
            return res

        return quick

    def launch(self, job: Job, stats: bool = False) -> tuple:
        backend = job.backend
        shape, ins, ws = _as_2d(job, -1)
        res, work = job.result(shape, (*ins, *ws))
        st = (
            backend.empty((ins[0].shape[0], self.op.stats), np.dtype(np.float64)) if stats else None
        )
        backend.run_rows(self.op, ins, ws, job.params, work.reshape(ins[0].shape), st)
        return res, st, ins

    def run(self, job: Job) -> Any:
        return job.give(self.launch(job)[0])


class Cols:
    """A column operation along axis 0 (:class:`ColOp`): per-column statistics of the
    data inputs (each of the first's shape), then the op's elementwise outputs.

    ``gives`` lists what a call returns, in order: ``("out", q)`` the q-th elementwise
    output (the first one into ``out=``), ``("stat", q)`` row q of the statistics, shaped
    like the features in the data's dtype. An empty batch is an error when ``batch``.
    """

    alias_safe = False

    def __init__(self, op: ColOp, gives: tuple, *, inputs: int = 1, batch: bool = False) -> None:
        self.op, self.gives, self.inputs, self.batch = op, gives, inputs, batch
        self.returns = "array" if len(gives) == 1 else "tuple"

    def quick(self, spec: Any, parse: Callable) -> Callable:
        """The host call on a 2-D array in few steps: the statistics' and the outputs'
        kernels straight away."""
        data, feats = _positions(spec)
        op, gives, threads = self.op, self.gives, _threads
        reduce = cpu.cols_reduce(op, len(data))
        emit = cpu.cols_emit(op, len(data), len(feats))
        asked = [any(g == ("out", q) for g in gives) for q in range(op.outputs)]

        def quick(args: tuple, kwargs: dict) -> Any:
            parsed = parse(args, kwargs)
            if parsed is None:
                return None
            params, out, _ = parsed
            x = args[0]
            shape, dt = x.shape, x.dtype
            if x.ndim != 2 or not shape[0]:
                return None
            n, c = shape
            arrays = _quick_arrays(args, data, feats, c)
            if arrays is None:
                return None
            ins, ws = arrays
            outs = [np.empty(shape, dt) if a else None for a in asked]
            if out is not None:
                if not _quick_out(out, shape, dt, (*ins, *ws), False):
                    return None
                outs[0] = out
            chunks = cpu.col_chunks(n, c, op.k)
            parts, acc = np.empty((chunks, op.k, c)), np.empty((op.k, c))
            small = x.size < threads.PARALLEL_MIN
            (reduce.serial if small else reduce.parallel)(*ins, params, parts, acc)
            (emit.serial if small else emit.parallel)(*ins, *ws, acc, params, *outs)
            given = tuple(
                outs[q] if kind == "out" else acc[q].astype(dt, copy=False) for kind, q in gives
            )
            return given[0] if len(given) == 1 else given

        return quick

    def run(self, job: Job) -> Any:
        backend, dtype = job.backend, job.dtype
        data, _ = _split(job)
        x = job.arrays[data[0]]
        if self.batch and x.ndim and x.shape[0] == 0:
            raise ValueError("x has no rows: the batch statistics of an empty batch are undefined")
        shape, ins, ws = _as_2d(job, 0)
        asked = {q for kind, q in self.gives if kind == "out"}
        outs, res = [], {}
        for q in range(self.op.outputs):
            if q in asked:
                r, w = job.result(shape, (*ins, *ws), use_out=q == 0)
                res[q] = r
                outs.append(w.reshape(ins[0].shape))
            else:
                outs.append(None)
        acc = backend.run_cols(self.op, ins, ws, job.params, outs)
        feats = shape[1:]
        given = tuple(
            res[q] if kind == "out" else backend.flat(acc[q], dtype).reshape(feats)
            for kind, q in self.gives
        )
        return job.give(given[0] if len(given) == 1 else given)


class RowsThenCols:
    """A row operation whose per-row statistics feed a column reduction: layer_norm's
    backward pass (dx by rows; dgamma, dbeta by a column sum that reuses the rows'
    (mean, rstd)). Returns ``(rows result, *column statistics)``."""

    returns = "tuple"
    alias_safe = False

    def __init__(self, rows: RowOp, cols: ColOp, *, inputs: int) -> None:
        self.rows, self.cols, self.inputs = Rows(rows, inputs=inputs), cols, inputs

    def run(self, job: Job) -> Any:
        backend, dtype = job.backend, job.dtype
        dx, stats, ins = self.rows.launch(job, stats=True)
        acc = backend.run_cols(self.cols, [*ins, stats], [], job.params, [None])
        c = ins[0].shape[1]
        return job.give((dx, *(backend.flat(acc[q], dtype).reshape(c) for q in range(self.cols.k))))


# --------------------------------------------------------------------------------------
# The patterns of the next families: lists of arrays, pairs of rows, sums by label
# --------------------------------------------------------------------------------------


class PairOp(NamedTuple):
    """A pairwise operation for :class:`Pairwise`: ``acc = step(acc, a, b)`` from ``init``
    over the coordinates of a pair of rows, then ``end(acc, params)``."""

    init: float
    step: Callable
    end: Callable


#: Every :class:`Foreach` declared (what the PTX compilation check compiles).
FOREACH: list = []


class Foreach:
    """``f(a0[i], ..., s, params)`` over every element of LISTS of arrays, in ONE launch over
    a chunk table (see ``cpu.foreach``): optimisers, clip_by_global_norm, layer_grad_norms,
    gradient_stats.

    ``reads`` names the list arguments ``f`` reads, zipped into groups (parameter i, its
    gradient i, its moments i); ``stores`` the lists its results go into, in order: a list
    it reads (an update in place) or a further one (new arrays, ``update``); ``kinds`` the
    reductions of the results after those ("sum" or "max"), per array. Every array of a
    group has one size; every array is C-contiguous, those written writeable; the arrays of
    one list share one float dtype (lists may differ: float64 moments of float32
    parameters). ``run(lists, params, coef=None)`` returns the per-array totals
    (len, len(kinds)) float64 on the arrays' device, or None without ``kinds``; ``coef`` is
    None or a (1,) float64 array on that device, ``f``'s ``s``; ``params``: how many
    floats ``f``'s ``params`` holds."""

    returns = "scalar"
    alias_safe = True
    inputs = 0

    def __init__(
        self,
        f: Callable,
        reads: tuple[str, ...],
        stores: tuple[str, ...] = (),
        kinds: tuple[str, ...] = (),
        *,
        params: int = 1,
    ) -> None:
        self.f, self.reads, self.kinds, self.n_params = f, tuple(reads), tuple(kinds), params
        self.columns = self.reads + tuple(n for n in stores if n not in self.reads)
        self.stores = tuple(self.columns.index(n) for n in stores)
        self.written = frozenset(stores)
        FOREACH.append(self)

    def place(self, lists: dict[str, list]) -> tuple[Any, list[list]]:
        """Check the lists and place them on their device (``DeviceMismatchError``,
        ``TypeError``, ``ValueError`` naming the array; nothing runs): ``(backend,
        columns)``, the arrays as the backend's, one list per column."""
        from mlkernels._core.pipeline import place

        columns = [list(lists[n]) for n in self.columns]
        if len({len(c) for c in columns}) > 1:
            lengths = {n: len(c) for n, c in zip(self.columns, columns, strict=True)}
            raise ValueError(f"the lists must have one length, got {lengths}")
        host = all(type(a) is np.ndarray for c in columns for a in c)
        backend = cpu
        if not host:  # the general case: anything on either device, viewed as its arrays
            named = dict(zip(self.columns, columns, strict=True))
            flat = {f"{n}[{i}]": a for n, c in named.items() for i, a in enumerate(c)}
            backend, placed = place(flat)
            columns = [[placed[f"{n}[{i}]"] for i in range(len(c))] for n, c in named.items()]
        sizes = [a.size for a in columns[0]]
        for name, col in zip(self.columns, columns, strict=True):
            if not col:
                continue
            dt = np.dtype(col[0].dtype)
            if dt not in (np.float32, np.float64):
                raise TypeError(f"the arrays of {name} must all be float32 or all float64")
            written = name in self.written
            for g, a in enumerate(col):
                if a.dtype != dt:
                    raise TypeError(f"the arrays of {name} must all be float32 or all float64")
                if a.size != sizes[g]:
                    raise ValueError(
                        f"{name}[{g}] has {a.size} elements but {self.columns[0]}[{g}] has "
                        f"{sizes[g]}"
                    )
                if host:
                    flags = a.flags
                    if not flags.c_contiguous or (written and not flags.writeable):
                        self._layout_error(name, g, written)
                elif not backend.is_c_contiguous(a):
                    self._layout_error(name, g, written)
        return backend, columns

    @staticmethod
    def _layout_error(name: str, g: int, written: bool) -> None:
        what = "a writeable" if written else "a"
        raise ValueError(f"{name}[{g}] must be {what} C-contiguous array")

    def launch(self, backend: Any, columns: list[list], params: tuple, coef: Any = None) -> Any:
        """The launch on arrays :meth:`place` checked."""
        if not columns[0]:
            return np.zeros((0, len(self.kinds))) if self.kinds else None
        return backend.run_foreach(
            self.f, columns, len(self.reads), self.stores, self.kinds, params or (0.0,), coef
        )

    def run(self, lists: dict[str, list], params: tuple, coef: Any = None) -> Any:
        backend, columns = self.place(lists)
        return self.launch(backend, columns, params, coef)


class Pairwise:
    """``out[i, j] = op(A[i], B[j])`` for A (n, d) and B (m, d) (:class:`PairOp`, tiled
    on both devices): distances and kernel matrices. ``run(a, b, params, out=None)``."""

    returns = "array"
    alias_safe = False
    inputs = 2

    def __init__(self, op: PairOp) -> None:
        self.op = op

    def run(self, a: Any, b: Any, params: tuple, out: Any = None) -> Any:
        from mlkernels._core.pipeline import check_out, place, real_dtype

        backend, arrs = place({"A": a, "B": b})
        dtype = real_dtype(arrs)
        a2, b2 = arrs["A"], arrs["B"]
        if a2.ndim != 2 or b2.ndim != 2 or a2.shape[1] != b2.shape[1]:
            raise ValueError(
                f"A has shape {tuple(a2.shape)} and B {tuple(b2.shape)}: they must be (n, d) "
                "and (m, d)"
            )
        shape = (a2.shape[0], b2.shape[0])
        res = backend.empty(shape, dtype) if out is None else check_out(backend, out, shape, dtype)
        d = a2.shape[1]
        a2 = backend.flat(a2, dtype).reshape(a2.shape[0], d)
        b2 = backend.flat(b2, dtype).reshape(b2.shape[0], d)
        backend.run_pairwise(self.op, a2, b2, params or (0.0,), res)
        return res


class ByLabel:
    """Per-label sums of the rows of x (n, d) and their counts: ``(sums (L, d) float64,
    counts (L,) int64)``, for labels (n,) integers in [0, L), deterministic on both
    devices (chunk partials added in order): k-means' centroids. ``run(x, labels, L)``."""

    returns = "tuple"
    alias_safe = False
    inputs = 2

    def run(self, x: Any, labels: Any, n_labels: int) -> tuple:
        from mlkernels._core.pipeline import check_labels, place, real_dtype

        backend, arrs = place({"x": x, "labels": labels})
        x2, lab = arrs["x"], arrs["labels"]
        dtype = real_dtype({"x": x2})
        check_labels({"labels": lab}, "iu")
        if x2.ndim != 2 or tuple(lab.shape) != x2.shape[:1]:
            raise ValueError(
                f"x has shape {tuple(x2.shape)} and labels {tuple(lab.shape)}: they must be "
                "(n, d) and (n,)"
            )
        lab = backend.flat(lab, np.dtype(np.int64))
        if backend.is_host and lab.size and (lab.min() < 0 or lab.max() >= n_labels):
            raise ValueError(f"labels must lie in [0, {n_labels}); got [{lab.min()}, {lab.max()}]")
        x2 = backend.flat(x2, dtype).reshape(x2.shape)
        return backend.run_by_label(x2, lab, n_labels)


# --------------------------------------------------------------------------------------
# Metrics: one pass of sums (exact int64 counts, float64 sums or moments), then a
# finaliser written once for both devices and run on the arrays' device
# --------------------------------------------------------------------------------------


def _metric_arrays(job: Job, empty_ok: bool = False) -> tuple[list, int]:
    """The arrays of a metric, flat (labels in their own dtype, data in the computed
    one), checked to have one shape; and their size (an empty input refused unless
    ``empty_ok``)."""
    backend, roles = job.backend, job.spec.arrays
    names = list(job.arrays)
    first = job.arrays[names[0]]
    for name in names[1:]:
        same_shape(names[0], first, name, job.arrays[name])
    if first.size == 0 and not empty_ok:
        raise ValueError(f"{names[0]} is empty: the {job.spec.name} of no samples is undefined")
    ins = []
    for name in names:
        a = job.arrays[name]
        own = roles[name] in ("label", "index")
        ins.append(backend.flat(a, np.dtype(a.dtype) if own else job.dtype))
    return ins, first.size


class Metric:
    """``final(totals, n, params)`` of ``totals = Σ f(x0[i], ..., params)[0:k]`` over n
    elements of arrays of one shape (any shape): accuracy, the confusion counts, the
    binary precision/recall/f-scores/mcc, mape, perplexity (``cpu.reduce`` and
    ``gpu.reduce``). ``acc="int64"`` counts exactly; ``moments``: ``f`` returns ``(v, e)``
    and ``totals`` is (count, mean, M2 of v, Σ e), Welford/Chan in float64 (r2,
    gaussian_mle). ``final`` returns ``results`` values, given in ``dtype`` (default: the
    data's): NumPy scalars, or 0-d device arrays that the GPU's one-thread finaliser
    writes (no synchronisation). Elements reach ``f`` as float64 (the CPU's counts: in
    their own type, so that integer labels compare as integers)."""

    returns = "scalar"
    alias_safe = True

    def __init__(
        self,
        f: Callable,
        final: Callable,
        *,
        k: int = 1,
        inputs: int = 2,
        acc: str = "float64",
        moments: bool = False,
        results: int = 1,
        dtype: str | None = None,
        empty_ok: bool = False,
    ) -> None:
        self.f, self.final, self.k, self.inputs, self.acc = f, final, k, inputs, acc
        self.moments, self.results, self.empty_ok = moments, results, empty_ok
        self.dtype = None if dtype is None else np.dtype(dtype)
        if results > 1:
            self.returns = "tuple"

    #: Whether the last kernel parameter may ask for a class average (:class:`ClassMetric`:
    #: the quick call takes the binary metric only).
    averages = False

    def quick(self, spec: Any, parse: Callable) -> Callable:
        """The host call in few steps: the sums' kernel (one dispatch), the finaliser."""
        n_in, k, final, results, threads = self.inputs, self.k, self.final, self.results, _threads
        if self.moments:
            kernel = cpu.moments(self.f, n_in)
        elif self.acc == "int64":
            kernel = cpu.count(self.f, n_in, k)
        else:
            kernel = cpu.reduce(self.f, n_in, k, 0, self.acc, True)
        labels = [r in ("label", "index") for r in spec.arrays.values()]
        fixed, empty_ok, averages, moments = self.dtype, self.empty_ok, self.averages, self.moments
        counting = self.acc == "int64"

        def quick(args: tuple, kwargs: dict) -> Any:
            parsed = parse(args, kwargs)
            if parsed is None:
                return None
            params = parsed[0]
            if averages and params[-1] != 0:
                return None
            ins = args[:n_in]
            shape = ins[0].shape
            for a in ins[1:]:
                if a.shape != shape:
                    return None
            size = ins[0].size
            if not size and not empty_ok:
                return None
            if fixed is not None:
                dt = fixed
            else:
                dt = next(a.dtype for a, lab in zip(ins, labels, strict=True) if not lab)
            if ins[0].ndim != 1:
                ins = tuple(a.reshape(-1) for a in ins)
            run = kernel.serial if size < threads.PARALLEL_MIN else kernel.parallel
            if moments:
                total = np.empty(4)
                run(*ins, params, total)
            elif counting:
                total = np.empty(k, np.int64)
                run(*ins, params, total)
            else:
                total = np.zeros(k)
                run(*ins, params, 1.0, total)
            values = final(total, float(size), params)
            if results == 1:
                return dt.type(values[0])
            return tuple(dt.type(v) for v in values)

        return quick

    def totals(self, job: Job, ins: list) -> Any:
        backend = job.backend
        if self.moments:
            return backend.run_moments(self.f, ins, job.params)
        return backend.run_reduce(self.f, ins, job.params, 1.0, [], self.k, True, self.acc, True)

    def run(self, job: Job) -> Any:
        ins, n = _metric_arrays(job, self.empty_ok)
        dtype = self.dtype or job.dtype
        total = self.totals(job, ins)
        return job.give(
            job.backend.run_final(self.final, total, n, job.params, dtype, self.results)
        )


class ClassMetric(Metric):
    """A :class:`Metric` of the confusion counts (binary: the formula) that also averages
    over classes: with ``average`` (the last kernel parameter: 1 micro, 2 macro, 3
    weighted) the labels (non-negative integers) are counted into a confusion matrix in
    one pass (:class:`PairCounts`), and ``average_final(table, params)`` averages the
    per-class values on the device (scikit-learn's ``average=``; the classes are those
    present in either array)."""

    averages = True

    def __init__(self, f: Callable, final: Callable, average_final: Callable, **kw: Any) -> None:
        super().__init__(f, final, **kw)
        self.average_final = average_final

    def run(self, job: Job) -> Any:
        if job.params[-1] == 0:
            return super().run(job)
        backend = job.backend
        ins, _ = _metric_arrays(job)
        classes = _classes(backend, list(job.arrays), ins)
        table, _ = backend.run_pair_counts(*ins, classes, classes)
        value = backend.run_table_final(self.average_final, table, job.params, np.dtype("float64"))
        return job.give(value)


def _classes(backend: Any, names: list, ins: list) -> int:
    """1 + the largest label of several label arrays (the classes of a confusion matrix)."""
    return 1 + max(_label_max(backend, n, a) for n, a in zip(names, ins, strict=True))


def _label_max(backend: Any, name: str, a: Any) -> int:
    """The largest label of an integer (or bool) label array, checked to be >= 0 (on the
    GPU: one 16-byte copy to the host, a synchronisation)."""
    if np.dtype(a.dtype).kind not in "iub":
        raise TypeError(f"{name} has dtype {a.dtype}: class labels must be integers or bool")
    lo, hi = backend.label_range(a)
    if lo < 0:
        raise ValueError(f"{name} has a negative label ({lo}): classes are 0, 1, 2, ...")
    return hi


class PairCounts:
    """The table of pair counts ``T[a[i], b[i]]`` of two integer label arrays of one shape
    (exact int64; per-chunk tables added in order on the CPU, integer atomics on the
    GPU): confusion_matrix (classes from ``params[0]``, 0: from the labels) and, through
    ``final``, a metric of the table (mutual_information_labels: classes from the
    labels). A label outside its range is a ``ValueError`` naming the array (on the GPU
    after a 16-byte copy)."""

    alias_safe = False
    inputs = 2

    def __init__(self, final: Callable | None = None) -> None:
        self.final = final
        self.returns = "array" if final is None else "scalar"

    def quick(self, spec: Any, parse: Callable) -> Callable:
        """A small host call (labels below ``PARALLEL_MIN``) in one serial kernel: the label
        ranges and the table at once, then the final (if any); a bad label or a larger
        call takes the general path (three parallel passes: two ranges, the counts)."""
        kernel, final, threads = cpu.pair_table(), self.final, _threads
        square = final is None  # a confusion matrix: C x C

        def quick(args: tuple, kwargs: dict) -> Any:
            parsed = parse(args, kwargs)
            if parsed is None:
                return None
            params = parsed[0]
            a, b = args[0], args[1]
            n = a.size
            if a.shape != b.shape or n >= threads.PARALLEL_MIN or (not n and not square):
                return None
            c = int(params[0]) if square else 0
            table, ok = kernel(a.reshape(-1), b.reshape(-1), c, c, square)
            if not ok:
                return None
            if square:
                return table
            return cpu.run_table_final(final, table, params, np.dtype(np.float64))

        return quick

    def run(self, job: Job) -> Any:
        backend = job.backend
        names = list(job.arrays)
        ins, _ = _metric_arrays(job, empty_ok=self.final is None)
        if self.final is None:  # a confusion matrix: C x C, C given or from the labels
            c = int(job.params[0]) or _classes(backend, names, ins)
            sizes = (c, c)
        else:
            sizes = tuple(1 + _label_max(backend, n, a) for n, a in zip(names, ins, strict=True))
        table, bad = backend.run_pair_counts(*ins, *sizes)
        bad = bad if backend.is_host else bad.copy_to_host()
        for name, count, size in zip(names, bad.tolist(), sizes, strict=True):
            if count:
                raise ValueError(f"{name} has {count} labels outside [0, {size})")
        if self.final is None:
            return job.give(table)
        return job.give(backend.run_table_final(self.final, table, job.params, job.dtype))


class Table:
    """``final(table, params)`` of a 2-D table (mutual_information of a joint table)."""

    returns = "scalar"
    alias_safe = False
    inputs = 1

    def __init__(self, final: Callable) -> None:
        self.final = final

    def run(self, job: Job) -> Any:
        (name,) = job.arrays
        t = job.arrays[name]
        if t.ndim != 2 or t.size == 0:
            raise ValueError(f"{name} must be a non-empty 2-D table, got shape {tuple(t.shape)}")
        table = job.backend.flat(t, job.dtype).reshape(t.shape)
        return job.give(job.backend.run_table_final(self.final, table, job.params, job.dtype))


class RowSums:
    """``Σ term(a, b, params)[0]`` along the last axis (float64 sums): a scalar for 1-D
    input (the formulas' sums), one value per row for a batch (shape ``a.shape[:-1]``):
    entropy and cross_entropy. An array given once is both ``a`` and ``b``."""

    returns = "scalar"
    alias_safe = False

    def __init__(self, term: Callable, *, inputs: int = 2) -> None:
        self.term, self.inputs = term, inputs

    def quick(self, spec: Any, parse: Callable) -> Callable:
        """The host call in one kernel dispatch: one 1-D distribution (the formulas') or a
        batch of rows; empty and 0-d arrays take the general path (and its errors)."""
        term, ib = self.term, self.inputs - 1  # entropy's one array is both

        def quick(args: tuple, kwargs: dict) -> Any:
            parsed = parse(args, kwargs)
            if parsed is None:
                return None
            a, b = args[0], args[ib]
            if b.shape != a.shape or not a.size or not a.ndim:
                return None
            one, params = a.dtype.type(1), parsed[0]
            if a.ndim == 1:
                total = cpu.run_reduce(term, [a, b], params, one, [None, None], 1, True)
                return a.dtype.type(total[0])
            *shape, c = a.shape
            rows = a.size // c
            out = np.empty(shape, a.dtype)
            a3, b3 = a.reshape(rows, c, 1), b.reshape(rows, c, 1)
            cpu.run_classes(
                "classes_dense", term, a3, b3, params, one, out.reshape(rows, 1), None, False
            )
            return out

        return quick

    def run(self, job: Job) -> Any:
        backend, dtype, params = job.backend, job.dtype, job.params
        names = list(job.arrays)
        a, b = job.arrays[names[0]], job.arrays[names[-1]]
        same_shape(names[0], a, names[-1], b)
        if a.ndim == 0:
            raise ValueError(f"{names[0]} must have at least one dimension (the one summed)")
        fa, fb = backend.flat(a, dtype), backend.flat(b, dtype)
        one = dtype.type(1)
        if a.ndim == 1:
            total = backend.run_reduce(self.term, [fa, fb], params, one, [None, None], 1, True)
            if backend.is_host:
                return dtype.type(total[0])
            return job.give(backend.finish(total, 1.0, identity, dtype)[0])
        *shape, c = tuple(a.shape)
        shape = tuple(shape)
        rows = math.prod(shape)
        out = backend.zeros(shape, dtype) if c == 0 else backend.empty(shape, dtype)
        if rows and c:
            a3, b3 = fa.reshape(rows, c, 1), fb.reshape(rows, c, 1)
            backend.run_classes(
                "classes_dense", self.term, a3, b3, params, one, out.reshape(rows, 1), None, False
            )
        return job.give(out)


# --------------------------------------------------------------------------------------
# Ranks, ranked gains and Gaussian densities: the sort- and factor-based metrics
# --------------------------------------------------------------------------------------


class Ranks:
    """The exact ROC-AUC of labels and scores (and optional weights), 1-D of one length:
    ``cpu.run_roc_auc`` (a split by class, two sorts at once, a parallel merge walk) or
    ``gpu.run_roc_auc`` (a device sort, a scan and a binary search per negative)."""

    returns = "scalar"
    alias_safe = False
    inputs = 2

    def run(self, job: Job) -> Any:
        backend = job.backend
        names = list(job.arrays)
        y, s = job.arrays[names[0]], job.arrays[names[1]]
        w = job.arguments.get("sample_weight")
        for name, a in ((names[0], y), (names[1], s)):
            if a.ndim != 1:
                raise ValueError(f"{name} must be 1-D, got shape {tuple(a.shape)}")
        same_shape(names[0], y, names[1], s)
        if y.size == 0:
            raise ValueError(f"{names[0]} is empty: ROC AUC is undefined")
        if w is not None:
            from mlkernels._core.pipeline import DeviceMismatchError, on_gpu, real_dtype

            if on_gpu(w) == backend.is_host:
                raise DeviceMismatchError("sample_weight must live on the device of y_true")
            w = backend.as_device_array(w if not backend.is_host else np.asarray(w))
            real_dtype({"sample_weight": w})
            if tuple(w.shape) != tuple(y.shape):
                raise ValueError(
                    f"sample_weight has shape {tuple(w.shape)} but y_true has {tuple(y.shape)}"
                )
            w = backend.flat(w, np.dtype(np.float64))
            if backend.is_host and w.size and not (w.min() >= 0):
                raise ValueError("sample_weight must be >= 0 (and not NaN)")
        yf = backend.flat(y, np.dtype(y.dtype))
        sf = backend.flat(s, job.dtype)
        if backend.is_host:
            return backend.run_roc_auc(yf, sf, w)
        return job.give(backend.run_roc_auc(yf, sf, w, job.like))


def top_k(name: str, k: Any) -> float:
    """The validator of a rank cut-off ``k``: None (every rank) or an int >= 1."""
    if k is None:
        return float(1 << 62)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be None or an int >= 1, not {k!r}")
    if k < 1:
        raise ValueError(f"{name} must be >= 1, got {k}")
    return float(k)


class Gains:
    """DCG (``ideal``: NDCG) of the first k entries of a relevance list, or of each row of
    a 2-D batch (one value per row). ``params``: (k,)."""

    returns = "scalar"
    alias_safe = False
    inputs = 1

    def __init__(self, ideal: bool) -> None:
        self.ideal = ideal

    def run(self, job: Job) -> Any:
        backend, dtype = job.backend, job.dtype
        (name,) = job.arrays
        r = job.arrays[name]
        if r.ndim not in (1, 2):
            raise ValueError(f"{name} must be 1-D (a ranked list) or 2-D (one per row)")
        rows = r.reshape(1, r.size) if r.ndim == 1 else r
        r2 = backend.flat(rows, dtype).reshape(rows.shape)
        out = backend.empty((r2.shape[0],), dtype)
        backend.run_ranked_gains(r2, int(job.params[0]), self.ideal, out)
        if r.ndim == 2:
            return job.give(out)
        if backend.is_host:
            return out[0]
        return job.give(out.reshape(()))


class TiedGains:
    """scikit-learn's ``ndcg_score``: the mean over rows of the tie-averaged NDCG of
    y_true ranked by y_score (both (n, m)). ``params``: (k,)."""

    returns = "scalar"
    alias_safe = False
    inputs = 2

    def run(self, job: Job) -> Any:
        backend, dtype = job.backend, np.dtype(np.float64)
        names = list(job.arrays)
        y, s = job.arrays[names[0]], job.arrays[names[1]]
        same_shape(names[0], y, names[1], s)
        if y.ndim != 2 or y.shape[0] == 0 or y.shape[1] < 2:
            raise ValueError(
                f"{names[0]} and {names[1]} must be (n, m) with n >= 1 and m >= 2 (one "
                f"ranking per row), got shape {tuple(y.shape)}"
            )
        yf = backend.flat(y, dtype).reshape(y.shape)
        sf = backend.flat(s, dtype).reshape(s.shape)
        per_row = backend.empty((y.shape[0],), dtype)
        backend.run_tied_ndcg(yf, sf, int(job.params[0]), per_row)
        total = backend.run_reduce(_value, [per_row], (0.0,), 1.0, [], 1, True, "float64", True)
        return job.give(backend.run_final(_mean, total, y.shape[0], (0.0,), dtype, 1))


@register_jitable
def _value(v, params):
    return (v,)


@register_jitable
def _mean(t, n, params):
    return (t[0] / n,)


class Gaussian:
    """The multivariate normal (log-)density of one point x (d,) (a scalar) or of each row
    of x (n, d), from the Cholesky factor of Sigma (``primitives.cholesky``, float64, on
    the host: Sigma is d x d, and for device input one copy of it is a synchronisation):
    ``log p = -d/2 log 2π - Σ log L_ii - ||L^{-1}(x - mu)||² / 2``, a forward substitution
    per point in the kernel; never an inverse or a determinant. Not symmetric or not
    positive definite (singular): ``ValueError``."""

    alias_safe = False
    inputs = 3
    returns = "scalar"

    def __init__(self, density: bool) -> None:
        self.density = density

    def run(self, job: Job) -> Any:
        from mlkernels._core import primitives

        backend, dtype = job.backend, job.dtype
        x, mu, sigma = (job.arrays[n] for n in job.arrays)
        if mu.ndim != 1 or tuple(sigma.shape) != (mu.size, mu.size):
            raise ValueError(
                f"mu must be (d,) and Sigma (d, d), got {tuple(mu.shape)} and {tuple(sigma.shape)}"
            )
        d = mu.size
        if x.ndim not in (1, 2) or tuple(x.shape)[-1] != d:
            raise ValueError(f"x must be (d,) or (n, d) with d = {d}, got {tuple(x.shape)}")
        host = sigma if backend.is_host else sigma.copy_to_host()
        s = np.asarray(host, np.float64)
        scale = float(np.max(np.abs(s))) if s.size else 0.0
        if not np.all(np.isfinite(s)) or np.max(np.abs(s - s.T), initial=0.0) > 1e-10 * scale:
            raise ValueError("Sigma must be a finite symmetric matrix")
        try:
            low = primitives.cholesky(s)
        except np.linalg.LinAlgError:
            raise ValueError("Sigma is not positive definite (singular or indefinite)") from None
        c = -0.5 * d * math.log(2.0 * math.pi) - float(np.sum(np.log(np.diag(low))))
        if not backend.is_host:
            low = backend.to_device(low)
        points = x.reshape(1, d) if x.ndim == 1 else x
        x2 = backend.flat(points, dtype).reshape(points.shape)
        m = backend.flat(mu, dtype)
        out = backend.empty((x2.shape[0],), dtype)
        backend.run_mvn(x2, m, low, c, self.density, out)
        if x.ndim == 2:
            return job.give(out)
        if backend.is_host:
            return out[0]
        return job.give(out.reshape(()))
