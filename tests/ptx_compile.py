"""Compile every GPU kernel to sm_90 PTX without a GPU (run by test_ptx.py in a subprocess).

The CUDA simulator does no type checking, so a kernel that passes there can still fail to
compile for a real GPU. ``cuda.compile_ptx`` type-checks and compiles through NVVM (the
``numba-cuda[cu13]`` extra). Kernels that call device functions need a current device for
that call; with no GPU, ``get_current_device`` is replaced by a stub of compute
capability 9.0 (an H100/H200).

With ``--ptxas``, each kernel's PTX is also assembled for sm_90 by ``ptxas -v`` (from the
``nvidia-cuda-nvcc`` wheel of the test extra, which matches NVVM's PTX version, else the
one on PATH), and a line per kernel gives its registers, shared memory, stack frame and
spills: "asm  <kernel> | <registers> | <smem> | <stack> | <spill stores> | <spill loads>".
A kernel fails when it spills, uses a stack frame (local memory), or needs more
registers x threads than an SM has (65536) at the default launch shape.

Prints one line per kernel and "compiled N kernels" at the end; exits 1 on any failure.
"""

import inspect
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
from mlkernels._core.scalar import identity  # noqa: E402
from mlkernels._core.spec import FORMULAS  # noqa: E402

f64, none = types.float64, types.none


def arr(dtype, ndim):
    return types.Array(dtype, ndim, "C")


def params_of(spec):
    """The kernels' parameter tuple type: a float64 per parameter (at least one)."""
    example = {n: p.default for n, p in spec.signature.parameters.items()}
    required = [n for n, v in example.items() if v is inspect.Parameter.empty]
    example.update({n: k + 1 for k, n in enumerate(required)})  # T_warmup < T_total
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
    kernel = _gpu.reduce(t.f, 1, 1, 2, "float64", True)
    yield "reduce", kernel, (arr(dt, 1), params_of(spec), dt, none, none, arr(f64, 2))


def loss_kernels(spec, t, dt):
    p = params_of(spec)
    flat, grad = arr(dt, 1), arr(dt, 1)
    reduce = _gpu.reduce(t.term, 2, 1, 2, "float64", t.widen)
    yield "reduce", reduce, (flat, flat, p, dt, flat, grad, arr(f64, 2))
    yield "reduce value", reduce, (flat, flat, p, dt, none, none, arr(f64, 2))
    yield "reduce grad", reduce, (flat, flat, p, dt, none, grad, none)
    if t.none_term is not None:
        yield (
            "none",
            _gpu.reduce(t.none_term, 2, 1, 2, "float64", True),
            (flat, flat, p, dt, flat, none, none),
        )
    if t.pattern != "elementwise":
        if t.pattern == "classes_dense":
            kernel = _gpu.classes_dense(t.term, t.widen)
        else:
            kernel = _gpu.classes_index(t.term)
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


# The metrics' and probability's kernels; label arrays are compiled for int64 and bool.
i64, b1 = types.int64, types.boolean
LABELS = (i64, b1)


def _ins(spec, dt, label):
    return [arr(label if role in ("label", "index") else dt, 1) for role in spec.arrays.values()]


def _final(spec, t, dt, acc):
    out = arr(dt if t.dtype is None else numba.from_dtype(t.dtype), 1)
    p = params_of(spec)
    yield "final", _gpu.final_kernel(t.final, t.results), (arr(acc, 1), f64, p, out)


def metric_kernels(spec, t, dt):
    p = params_of(spec)
    for label in LABELS if "label" in spec.arrays.values() else (i64,):
        ins = _ins(spec, dt, label)
        tag = f" {label}" if "label" in spec.arrays.values() else ""
        if t.moments:
            yield "moments" + tag, _gpu.moments(t.f, t.inputs), (*ins, p, arr(f64, 2))
            continue
        acc = getattr(types, t.acc)
        kernel = _gpu.reduce(t.f, t.inputs, t.k, 0, t.acc, True)
        yield "reduce" + tag, kernel, (*ins, p, f64, arr(acc, 2))
    acc = getattr(types, t.acc)
    if t.moments:
        yield "merge moments", _gpu.merge_moments, (arr(f64, 2), arr(f64, 1))
    else:
        yield "combine", _gpu.combine(None, t.acc), (arr(acc, 2), f64, arr(acc, 1), none, none)
    yield from _final(spec, t, dt, acc)
    if isinstance(t, T.ClassMetric):
        yield from table_kernels(spec, t.average_final, i64, LABELS)


def table_kernels(spec, final, cell, labels=()):
    p = params_of(spec)
    table = arr(cell, 2)
    for label in labels:
        sig = (arr(label, 1), arr(label, 1), table, arr(i64, 1), b1)
        yield f"pair counts {label}", _gpu._pair_counts, sig
        yield f"label range {label}", _gpu._label_range, (arr(label, 1), arr(i64, 1))
    yield "margins", _gpu._margins, (table, arr(f64, 1), arr(f64, 1))
    sig = (table, arr(f64, 1), arr(f64, 1), p, arr(f64, 1))
    yield "table final", _gpu.table_final(final), sig


def pair_kernels(spec, t, dt):
    yield "zero counts", _gpu._zero_counts, (arr(i64, 1), arr(i64, 1))
    if t.final is None:
        for label in LABELS:
            sig = (arr(label, 1), arr(label, 1), arr(i64, 2), arr(i64, 1), b1)
            yield f"pair counts {label}", _gpu._pair_counts, sig
    else:
        yield from table_kernels(spec, t.final, i64, LABELS)


def info_table_kernels(spec, t, dt):
    yield from table_kernels(spec, t.final, dt)


def row_sum_kernels(spec, t, dt):
    p, flat = params_of(spec), arr(dt, 1)
    kernel = _gpu.reduce(t.term, 2, 1, 2, "float64", True)
    yield "reduce", kernel, (flat, flat, p, dt, none, none, arr(f64, 2))
    kernel = _gpu.classes_dense(t.term, True)
    yield "rows", kernel, (arr(dt, 3), arr(dt, 3), p, dt, arr(dt, 2), none, none)
    sig = (arr(f64, 2), f64, arr(f64, 1), arr(dt, 0), arr(f64, 1))
    yield "finish", _gpu.combine(identity), sig


def rank_kernels(spec, t, dt):
    keys = arr(f64, 1)
    for label in LABELS:
        for w in (none, arr(f64, 1)):
            sig = (arr(label, 1), arr(dt, 1), w, arr(i64, 1), keys, keys, keys)
            yield f"auc gather {label} {w}", _gpu._auc_gather, sig
    yield "auc terms", _gpu._auc_terms(), (keys, keys, keys, arr(f64, 2))
    yield "auc final", _gpu._auc_final, (arr(f64, 1), keys, keys, arr(f64, 1))
    yield "argsort keys", _gpu._pad_keys, (arr(dt, 1), keys, arr(i64, 1))
    yield "argsort step", _gpu._bitonic_step, (keys, arr(i64, 1), i64, i64)
    yield "scan sums", _gpu._chunk_sums, (keys, i64, keys)
    yield "scan", _gpu._scan_sums, (keys,)
    yield "scan chunks", _gpu._chunk_scan, (keys, i64, keys, keys)


def gains_kernels(spec, t, dt):
    yield "gains", _gpu._ranked_gains, (arr(dt, 2), i64, b1, arr(dt, 1))


def tied_gains_kernels(spec, t, dt):
    yield "tied gains", _gpu._tied_ndcg, (arr(f64, 2), arr(f64, 2), i64, arr(f64, 1))
    reduce = _gpu.reduce(T._value, 1, 1, 0, "float64", True)
    yield "mean", reduce, (arr(f64, 1), types.UniTuple(f64, 1), f64, arr(f64, 2))
    sig = (arr(f64, 1), f64, types.UniTuple(f64, 1), arr(f64, 1))
    yield "final", _gpu.final_kernel(T._mean, 1), sig


def gaussian_kernels(spec, t, dt):
    sig = (arr(dt, 2), arr(dt, 1), arr(f64, 2), f64, b1, arr(f64, 2), arr(dt, 1))
    yield "mvn", _gpu._mvn, sig


SIGNATURES = {
    T.Metric: metric_kernels,
    T.ClassMetric: metric_kernels,
    T.PairCounts: pair_kernels,
    T.Table: info_table_kernels,
    T.RowSums: row_sum_kernels,
    T.Ranks: rank_kernels,
    T.Gains: gains_kernels,
    T.TiedGains: tied_gains_kernels,
    T.Gaussian: gaussian_kernels,
    T.Map: map_kernels,
    T.Steps: map_kernels,
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
    yield from foreach_kernels()


def foreach_kernels():
    """The optimisers' and gradient tools' foreach kernels (``templates.FOREACH``), their
    per-array combination and the global norm's factor."""
    i64 = types.int64
    for t in T.FOREACH:
        for dt in (types.float32, types.float64):
            kernel = _gpu.foreach(t.f, len(t.columns), len(t.reads), t.stores, t.kinds)
            refs = types.Tuple([arr(dt, 1)] * len(t.columns))
            parts = arr(f64, 2) if t.kinds else none
            sig = (arr(i64, 2), arr(i64, 2), refs, types.UniTuple(f64, t.n_params))
            yield (
                f"foreach {t.f.__name__} {t.stores}{t.kinds}[{dt}]",
                kernel,
                (
                    *sig,
                    arr(f64, 1),
                    parts,
                ),
            )
    for kinds in {t.kinds for t in T.FOREACH if t.kinds}:
        kernel = _gpu.foreach_groups(kinds)
        yield f"foreach groups {kinds}", kernel, (arr(f64, 2), arr(i64, 1), arr(f64, 2))
    for dt in (types.float32, types.float64):
        sig = (arr(f64, 2), f64, arr(dt, 0), arr(f64, 1))
        yield f"global norm[{dt}]", _gpu._global_norm, sig
        yield f"norms[{dt}]", _gpu._norms, (arr(f64, 2), arr(dt, 1))


REGISTERS_PER_SM = 65536  # 32-bit registers of an sm_90 multiprocessor (and per block)


def ptxas_path() -> str | None:
    """``ptxas`` of the ``nvidia-cuda-nvcc`` wheel (its PTX version matches NVVM's), else
    the one on PATH."""
    try:
        import nvidia.cu13

        wheel = Path(next(iter(nvidia.cu13.__path__))) / "bin" / "ptxas"
        if wheel.exists():
            return str(wheel)
    except ImportError:
        pass
    return shutil.which("ptxas")


def assemble(ptxas: str, ptx: str) -> dict:
    """``ptxas -arch=sm_90 -v`` of one kernel's PTX: registers, smem, stack, spills."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        run = subprocess.run(
            [ptxas, f"-arch=sm_{CC[0]}{CC[1]}", "-v", str(src), "-o", str(Path(tmp) / "k.cubin")],
            capture_output=True,
            text=True,
        )
    if run.returncode:
        raise RuntimeError(run.stderr.strip().splitlines()[-1] if run.stderr else "ptxas failed")
    text = run.stderr + run.stdout

    def num(pattern: str) -> int:
        found = re.findall(pattern, text)
        return max((int(v) for v in found), default=0)

    return {
        "registers": num(r"Used (\d+) registers"),
        "smem": num(r"(\d+) bytes smem"),
        "stack": num(r"(\d+) bytes stack frame"),
        "spill_stores": num(r"(\d+) bytes spill stores"),
        "spill_loads": num(r"(\d+) bytes spill loads"),
    }


def problems(usage: dict) -> list[str]:
    """Why an assembled kernel is not acceptable (empty: it is)."""
    found = []
    if usage["spill_stores"] or usage["spill_loads"]:
        found.append("spills registers")
    if usage["stack"]:
        found.append(f"uses a {usage['stack']}-byte stack frame (local memory)")
    if usage["registers"] * _gpu.THREADS > REGISTERS_PER_SM:
        found.append(
            f"{usage['registers']} registers x {_gpu.THREADS} threads > {REGISTERS_PER_SM}"
        )
    return found


def main() -> int:
    ptxas = ptxas_path() if "--ptxas" in sys.argv else None
    if "--ptxas" in sys.argv and ptxas is None:
        print("FAIL ptxas: not found (install the test extra: nvidia-cuda-nvcc)")
        return 1
    failures = 0
    count = 0
    compiled = []
    for name, kernel, sig in kernels():
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=CC)
            assert ".entry" in ptx
            count += 1
            print(f"ok   {name}")
            compiled.append((name, ptx))
        except Exception as exc:
            failures += 1
            print(f"FAIL {name}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    print(f"compiled {count} kernels, {failures} failed")
    if ptxas is not None:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            usages = list(pool.map(lambda item: _assembled(ptxas, *item), compiled))
        for name, usage in usages:
            if isinstance(usage, str):
                failures += 1
                print(f"FAIL asm {name}: {usage}")
                continue
            cells = " | ".join(str(usage[k]) for k in ("registers", "smem", "stack"))
            print(f"asm  {name} | {cells} | {usage['spill_stores']} | {usage['spill_loads']}")
            for why in problems(usage):
                failures += 1
                print(f"FAIL asm {name}: {why}")
        print(f"assembled {len(usages)} kernels with {ptxas}")
    return 1 if failures else 0


def _assembled(ptxas: str, name: str, ptx: str) -> tuple[str, dict | str]:
    try:
        return name, assemble(ptxas, ptx)
    except Exception as exc:  # reported as a failure of that kernel
        return name, f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
