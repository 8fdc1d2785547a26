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

from mlkernels import _gpu, _math  # noqa: E402
from mlkernels import activations as act  # noqa: E402
from mlkernels import regularisation as reg  # noqa: E402
from mlkernels.losses import LOSSES  # noqa: E402

#: The scalar functions of the unary template, with their number of parameters.
UNARY = {
    "sigmoid": (act._sigmoid, 1),
    "tanh": (act._tanh_fg, 1),
    "relu": (act._relu, 1),
    "leaky_relu": (act._leaky_relu, 1),
    "elu": (act._elu, 1),
    "selu": (act._selu, 1),
    "gelu": (act._gelu, 1),
    "swish": (act._swish, 1),
    "mish": (act._mish, 1),
    "dropout": (reg._dropout, 4),
}


def arr(dtype, ndim):
    return types.Array(dtype, ndim, "C")


def signatures(spec, dt):
    """The argument types the dispatcher launches ``spec``'s kernel with."""
    f64 = types.float64
    params = types.UniTuple(f64, max(len(spec.hyper) + len(spec.constants), 1))
    if spec.pattern == "elementwise":
        a = b = out = grad = arr(dt, 1)
    elif spec.pattern == "rows_dense":
        a = b = grad = arr(dt, 3)
        out = arr(dt, 2)
    else:
        a, b, grad, out = arr(types.int64, 2), arr(dt, 3), arr(dt, 3), arr(dt, 2)
    partials = arr(f64, 1)
    return [
        (a, b, params, dt, out, grad, partials),  # every output: value, grad and the sum
        (a, b, params, dt, types.none, types.none, partials),  # value only, reduced
        (a, b, params, dt, types.none, grad, types.none),  # gradient only
    ]


def kernels():
    for dt in (types.float32, types.float64):
        for spec in LOSSES.values():
            template = _gpu.TEMPLATES[spec.pattern](spec.fg)
            for i, sig in enumerate(signatures(spec, dt)):
                yield f"{spec.name}[{dt}, variant {i}]", template, sig
        f64 = types.float64
        for fin in (_math.identity, _math.sqrt_fin):
            sig = (arr(f64, 1), f64, arr(dt, 0), arr(f64, 1))
            yield f"final[{fin.__name__}, {dt}]", _gpu.final(fin), sig
        yield f"rescale[{dt}]", _gpu._rescale, (arr(dt, 1), arr(f64, 1))
        yield from family_kernels(dt)
        for nd, copy in _gpu._COPY.items():
            for src in (types.int64, types.float32, dt):
                sig = (types.Array(src, nd, "A"), arr(dt, nd))
                yield f"copy{nd}[{src} -> {dt}]", copy, sig


def family_kernels(dt):
    """The unary, row and column kernels of the activations and normalisations, launched
    as the dispatcher launches them."""
    f64, none = types.float64, types.none
    flat, rows, feats = arr(dt, 1), arr(dt, 2), arr(dt, 1)
    stats = arr(f64, 2)
    for name, (f, k) in UNARY.items():
        params = types.UniTuple(f64, k)
        yield f"unary {name}[{dt}]", _gpu.unary(f), (flat, params, flat, none)
        yield f"unary {name}_grad[{dt}]", _gpu.unary(f), (flat, params, none, flat)
    p1 = types.UniTuple(f64, 1)
    row_ops = {
        "softmax": (act.SOFTMAX, none, none, none, none),
        "log_softmax": (act.LOG_SOFTMAX, none, none, none, none),
        "softmax_grad": (act.SOFTMAX_VJP, rows, none, none, none),
        "log_softmax_grad": (act.LOG_SOFTMAX_VJP, rows, none, none, none),
        "layer_norm": (reg.LAYER_NORM, none, feats, feats, none),
        "layer_norm_grad": (reg.LAYER_NORM_GRAD, rows, feats, none, stats),
    }
    for name, (op, y, w, b, st) in row_ops.items():
        yield f"rows {name}[{dt}]", _gpu.rows(op), (rows, y, w, b, p1, rows, st)
    parts, acc = arr(f64, 3), arr(f64, 2)
    col_ops = {  # op, y, aux, w, b, out2
        "max_norm": (reg.MAX_NORM, none, none, none, none, none),
        "batch_norm": (reg.BATCH_NORM, none, none, feats, feats, rows),
        "batch_norm_grad": (reg.BATCH_NORM_GRAD, rows, none, feats, none, none),
        "layer_norm_params": (reg.LAYER_NORM_PARAMS, rows, stats, none, none, None),
    }
    for name, (op, y, aux, w, b, out2) in col_ops.items():
        yield f"cols_push {name}[{dt}]", _gpu.cols_push(op), (rows, y, aux, p1, parts)
        yield f"cols_merge {name}[{dt}]", _gpu.cols_merge(op), (types.int64, p1, parts, acc)
        if out2 is not None:  # layer_norm's parameter gradients have no elementwise pass
            sig = (rows, y, w, b, acc, p1, rows, out2)
            yield f"cols_emit {name}[{dt}]", _gpu.cols_emit(op), sig
    for term, k in ((reg._l1, 1), (reg._l2, 1), (reg._elastic, 2)):
        penalty = (flat, flat, types.UniTuple(f64, k), dt, none, flat, arr(f64, 1))
        yield f"penalty {term.__name__}[{dt}]", _gpu.elementwise(term), penalty


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
