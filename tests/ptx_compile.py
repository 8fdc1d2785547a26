"""Compile every GPU kernel to sm_90 PTX without a GPU (run by test_ptx.py in a subprocess).

The CUDA simulator does no type checking, so a kernel that passes there can still fail to
compile for a real GPU. ``cuda.compile_ptx`` type-checks and compiles through NVVM (the
``numba-cuda[cu13]`` extra). Kernels that call device functions need a current device for
that call; with no GPU, ``get_current_device`` is replaced by a stub of compute
capability 9.0 (an H100/H200).

Prints one line per kernel and "compiled N kernels" at the end; exits 1 on any failure.
"""

import os
import sys

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"

import numba.cuda.dispatcher  # noqa: E402
from numba import cuda, types  # noqa: E402

CC = (9, 0)


class _Device:
    compute_capability = CC


numba.cuda.dispatcher.get_current_device = lambda: _Device()

import mlkernels  # noqa: E402, F401 - declares every formula
from mlkernels._core import gpu as _gpu  # noqa: E402
from mlkernels._core import templates as T  # noqa: E402
from mlkernels._core.spec import FORMULAS  # noqa: E402

f64, none = types.float64, types.none


def arr(dtype, ndim):
    return types.Array(dtype, ndim, "C")


def params_of(spec):
    """The kernels' parameter tuple type: a float64 per parameter (at least one)."""
    example = {n: p.default for n, p in spec.signature.parameters.items()}
    example.update({n: 0 for n in spec.arrays})
    n = len(spec.validate({**example, "seed": 1} if "seed" in example else example))
    return types.UniTuple(f64, n)


# One function per template: the argument types the pipeline launches its kernels with.


def map_kernels(spec, t, dt):
    flat = arr(dt, 1)
    kernel = _gpu.map(t.f, t.inputs, t.results, t.widen, t.counter)
    outs = [none] * t.results
    outs[t.output] = flat
    yield "map", kernel, (*[flat] * t.inputs, params_of(spec), *outs)


def sum_kernels(spec, t, dt):
    kernel = _gpu.reduce(t.f, 1, 1, 2, "float64")
    yield "reduce", kernel, (arr(dt, 1), params_of(spec), dt, none, none, arr(f64, 2))


def loss_kernels(spec, t, dt):
    p = params_of(spec)
    flat, grad = arr(dt, 1), arr(dt, 1)
    reduce = _gpu.reduce(t.term, 2, 1, 2, "float64")
    yield "reduce", reduce, (flat, flat, p, dt, flat, grad, arr(f64, 2))
    yield "reduce value", reduce, (flat, flat, p, dt, none, none, arr(f64, 2))
    yield "reduce grad", reduce, (flat, flat, p, dt, none, grad, none)
    if t.none_term is not None:
        yield (
            "none",
            _gpu.reduce(t.none_term, 2, 1, 2, "float64"),
            (flat, flat, p, dt, flat, none, none),
        )
    if t.pattern != "elementwise":
        kernel = (_gpu.classes_dense if t.pattern == "classes_dense" else _gpu.classes_index)(
            t.term
        )
        label = arr(types.int64, 2) if t.pattern == "classes_index" else arr(dt, 3)
        yield t.pattern, kernel, (label, arr(dt, 3), p, dt, arr(dt, 2), arr(dt, 3), arr(f64, 2))
        yield t.pattern + " none", kernel, (label, arr(dt, 3), p, dt, arr(dt, 2), none, none)
    yield "finish", _gpu.combine(t.final), (arr(f64, 2), f64, arr(f64, 1), arr(dt, 0), arr(f64, 1))


def _feats(spec, dt):
    return [arr(dt, 1) for r in spec.arrays.values() if r == "feature"]


def rows_kernels(spec, t, dt, stats=False):
    rows = arr(dt, 2)
    st = arr(f64, 2) if stats else none
    kernel = _gpu.rows(t.op, t.inputs, len(_feats(spec, dt)))
    yield "rows", kernel, (*[rows] * t.inputs, *_feats(spec, dt), params_of(spec), rows, st)


def cols_kernels(spec, op, ins, feats, outs):
    p = params_of(spec)
    yield "cols_push", _gpu.cols_push(op, len(ins)), (*ins, p, arr(f64, 3))
    yield "cols_merge", _gpu.cols_merge(op), (types.int64, p, arr(f64, 3), arr(f64, 2))
    if outs:
        sig = (*ins, *feats, arr(f64, 2), p, *outs)
        yield "cols_emit", _gpu.cols_emit(op, len(ins), len(feats)), sig


def col_template_kernels(spec, t, dt):
    asked = {q for kind, q in t.gives if kind == "out"}
    outs = [arr(dt, 2) if q in asked else none for q in range(t.op.outputs)]
    yield from cols_kernels(spec, t.op, [arr(dt, 2)] * t.inputs, _feats(spec, dt), outs)


def rows_then_cols_kernels(spec, t, dt):
    yield from rows_kernels(spec, t.rows, dt, stats=True)
    ins = [arr(dt, 2), arr(dt, 2), arr(f64, 2)]  # x, dy and the rows' (mean, rstd)
    yield from cols_kernels(spec, t.cols, ins, [], [])


SIGNATURES = {
    T.Map: map_kernels,
    T.Sum: sum_kernels,
    T.Loss: loss_kernels,
    T.Rows: rows_kernels,
    T.Cols: col_template_kernels,
    T.RowsThenCols: rows_then_cols_kernels,
}


def kernels():
    for dt in (types.float32, types.float64):
        for spec in FORMULAS.values():
            for label, kernel, sig in SIGNATURES[type(spec.template)](spec, spec.template, dt):
                yield f"{spec.name} {label}[{dt}]", kernel, sig
        yield f"rescale[{dt}]", _gpu._rescale, (arr(dt, 1), arr(f64, 1))
        for nd, copy in _gpu._COPY.items():
            for src in (types.int64, types.float32, dt):
                sig = (types.Array(src, nd, "A"), arr(dt, nd))
                yield f"copy{nd}[{src} -> {dt}]", copy, sig
    yield "reduce combine", _gpu.combine(None), (arr(f64, 2), f64, arr(f64, 1), none, none)


def main() -> int:
    failures = 0
    count = 0
    for name, kernel, sig in kernels():
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=CC)
            assert ".entry" in ptx
            count += 1
            print(f"ok   {name}")
        except Exception as exc:
            failures += 1
            print(f"FAIL {name}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    print(f"compiled {count} kernels, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
