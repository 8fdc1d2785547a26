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
from mlkernels.losses import LOSSES  # noqa: E402


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
        for nd, copy in _gpu._COPY.items():
            for src in (types.int64, types.float32, dt):
                sig = (types.Array(src, nd, "A"), arr(dt, nd))
                yield f"copy{nd}[{src} -> {dt}]", copy, sig


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
