"""CPU kernel templates: one per pattern, turned into a kernel by a formula's scalar code.

Every template is a loop over the data written once (below, as source expanded by
:mod:`mlkernels._core.codegen` for the number of inputs, outputs and accumulators a formula
has) and compiled twice by :class:`mlkernels._core.jit.CpuKernel`: with its ``prange``
loop on every thread, and as a plain loop on the calling thread for calls on fewer than
``PARALLEL_MIN`` elements (see ``threads``); the first argument of a call is its element
count. An output passed as ``None`` is pruned at compile time (numba specialises on
``NoneType`` and drops the dead branch), so e.g. the value-only kernel of an activation
contains no derivative code.

Patterns (the GPU has the same ones, with the same arguments, in ``gpu.py``):

* :func:`map`       ``r = f(x0[i], ..., params)``; output ``j`` receives ``r[j]``:
  activations and their derivatives, dropout (``counter``: ``f(x[i], i, params)``),
  penalty gradients, a loss's per-term values.
* :func:`reduce`    the same map, and the first ``k`` results summed into ``k``
  accumulators (float64, or int64 for exact counts); results from ``k`` on are written
  times ``grad_scale`` (a loss gradient's 1/n). Sums are taken over chunks that depend on the
  size alone (:func:`sum_chunks`) and combined in chunk order: the same bits whatever
  the number of threads. ``total`` receives the combined partial (``k`` values);
  partials of separate calls combine by addition.
* :func:`classes_dense` / :func:`classes_index`  a loss term summed over the classes
  along axis 1 of (n, C, R) data, per sample (cce's and nll's ``reduction="none"``).
* :func:`rows`      a K-float state per row along the last axis (``op.part``), then an
  elementwise pass over the same row (``op.emit``): softmax, layer_norm, their VJPs.
* :func:`cols`      K float64 statistics per column over axis 0 (``op.push`` per row
  into chunk states, ``op.merge`` of the chunks in order, ``op.final``), then an
  elementwise pass (``op.emit``): batch_norm, max_norm, layer_norm's dgamma/dbeta.
* :func:`foreach`   an update of LISTS of flat arrays (in place or into new arrays), or
  per-array sums and maxima, in one launch over a table of (array, start, stop) chunks:
  optimisers, clip_by_global_norm, layer_grad_norms, gradient_stats.
* :func:`pairwise`  A (n, d) x B (m, d) -> (n, m) in tiles, ``op.init``/``op.step`` per
  coordinate and ``op.end`` per pair: distances and kernel matrices.
* :func:`by_label`  per-label sums of rows (n, d) into (L, d) with counts: k-means.

Matrix products, sorts, scans and Cholesky factors come from :mod:`primitives`, not from
templates.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np
from numba import carray, float64, int64, prange  # noqa: F401 - used by the generated kernels
from numba.extending import register_jitable

from mlkernels._core import codegen, pointers
from mlkernels._core.codegen import joined, names
from mlkernels._core.jit import cpu_kernel, cpu_serial
from mlkernels._core.scalar import as_is, maximum

is_host = True

#: Values summed per block of a reduction's chunk, after the block's loop wrote its outputs.
SUM_BLOCK = 512


@register_jitable
def sum_chunks(n):
    """The chunks a reduction over ``n`` terms is cut into: each chunk's terms are summed
    in order, then the chunks' sums in order. A function of ``n`` alone, so a sum is the
    same whatever the number of threads and however the threading layer schedules them
    (a ``prange`` reduction's split follows the threads, and TBB's work stealing)."""
    return max(1, min(256, n // 4096))


@register_jitable
def part(x, lo, hi):
    """``x[lo:hi]``, or None for an output not asked for. Loops over such 0-based views
    vectorise; over ``range(lo, hi)`` numba keeps a negative-index check in every access."""
    if x is None:
        return None
    return x[lo:hi]


def unique_tag(f) -> str:
    """An identifier naming a scalar function everywhere: its module and qualified name."""
    return re.sub(r"\W", "_", f"{f.__module__}.{f.__qualname__}")


def _env() -> dict:
    """The globals of a generated kernel: this module's (numba rebuilds a cached kernel's
    environment from the module its ``__name__`` names, so the names must be found here)."""
    return {
        "__name__": __name__,
        "np": np,
        "prange": prange,
        "float64": float64,
        "int64": int64,
        "register_jitable": register_jitable,
        "sum_chunks": sum_chunks,
        "part": part,
        "SUM_BLOCK": SUM_BLOCK,
    }


# --------------------------------------------------------------------------------------
# map and reduce
# --------------------------------------------------------------------------------------


def _elements(n_in: int, widen: bool, counter: bool, index: str = "i") -> str:
    elems = [f"float64(x{q}[{index}])" if widen else f"x{q}[{index}]" for q in range(n_in)]
    if counter:
        elems.append(index)
    return joined([*elems, "params"])


@functools.cache
def map(f, n_in: int, n_out: int, widen: bool = False, counter: bool = False):  # noqa: A001
    """``r = f(x0[i], ..., x{n_in-1}[i], params)`` (``i`` before ``params`` with
    ``counter``) over flat arrays of one size; ``o_j[i] = r[j]`` for each output asked.
    ``widen`` hands the elements over as float64 (the losses' terms)."""
    xs, os_ = names("x", n_in), names("o", n_out)
    stores = "".join(
        f"\n            if o{j} is not None:\n                o{j}[i] = r[{j}]"
        for j in range(n_out)
    )
    source = f"""
def make_map(f):
    def map_kernel({joined([*xs, "params", *os_])}):
        for i in prange(x0.size):
            r = f({_elements(n_in, widen, counter)}){stores}
    return map_kernel
"""
    return cpu_kernel(codegen.build(source, "make_map", _env())(f))


@functools.cache
def reduce(f, n_in: int, k: int, n_out: int, acc: str, widen: bool):
    """``r = f(float64(x0[i]), ..., params)`` (the elements in their own type without
    ``widen``); ``r[0:k]`` summed in ``acc`` into ``total`` (k,), output ``j`` receives
    ``r[j]`` (times ``grad_scale`` from ``j = k`` on). No defaults: the kernels are cached
    by the arguments as given, and a call leaving one out would make a second kernel.

    The sums are taken apart from the loop that writes the outputs: that loop keeps a
    block's values in ``v*``, a loop with no stores adds them. LLVM gives a loop with
    stores a vectorised and a scalar version, picked at run time by where the arrays lie
    in memory; summed in that loop, the same data could give another last bit for another
    ``out=`` buffer.
    """
    xs, os_, vs = names("x", n_in), names("o", n_out), names("v", k)
    zero = "0.0" if acc == "float64" else "0"
    stores = "".join(
        f"\n            if o{j} is not None:\n                o{j}[i] = r[{j}]"
        + (" * grad_scale" if j >= k else "")
        for j in range(n_out)
    )
    keeps = "".join(
        f"\n            if v{q} is not None:\n                v{q}[i] = r[{q}]" for q in range(k)
    )
    sums = "".join(
        f"\n        a{q} = {zero}\n        if v{q} is not None:\n"
        f"            for i in range(x0.size):\n                a{q} += v{q}[i]"
        for q in range(k)
    )
    chunk_args = joined(
        [*(f"{x}[lo:hi]" for x in xs), "params", "grad_scale", *(f"part({o}, lo, hi)" for o in os_)]
    )
    block_args = joined(
        [*(f"{x}[s:e]" for x in xs), "params", "grad_scale", *(f"part({o}, s, e)" for o in os_)]
    )
    # A native term's values are kept in the data's own type (they are rounded to it
    # already): a float64 scratch would make LLVM vectorise float32 terms 4 lanes wide.
    kept = f"np.{acc}" if widen else "x0.dtype"
    scratch = "".join(f"                v{q} = np.empty(SUM_BLOCK, {kept})\n" for q in range(k))
    # The helper is named after the formula: numba names a function's machine code after
    # its qualified name and a per-process counter, so two kernels compiled in different
    # processes and loaded into one would otherwise both define "terms" and call the same.
    tag = unique_tag(f)
    source = f"""
def make_reduce(f):
    def terms_{tag}({joined([*xs, "params", "grad_scale", *os_, *vs])}):
        for i in range(x0.size):
            r = f({_elements(n_in, widen, False)}){stores}{keeps}{sums}
        return ({joined(f"a{q}" for q in range(k))},)

    terms = register_jitable(terms_{tag})

    def reduce_kernel({joined([*xs, "params", "grad_scale", *os_, "total"])}):
        n = x0.size
        chunks = sum_chunks(n)
        size = (n + chunks - 1) // chunks
        parts = np.zeros((chunks, {k}), np.{acc})
        for p in prange(chunks):
            lo, hi = p * size, min(n, (p + 1) * size)
            if total is None:
                terms({chunk_args}, {joined(["None"] * k)})
            else:
{scratch}\
                for s in range(lo, hi, SUM_BLOCK):
                    e = min(hi, s + SUM_BLOCK)
                    r = terms({block_args}, {joined(vs)})
                    for q in range({k}):
                        parts[p, q] += r[q]
        if total is not None:
            for q in range({k}):
                t = {zero}
                for p in range(chunks):
                    t += parts[p, q]
                total[q] = t
    return reduce_kernel
"""
    return cpu_kernel(codegen.build(source, "make_reduce", _env())(f))


@functools.cache
def count(f, n_in: int, k: int):
    """``r = f(x0[i], ..., params)`` (the elements in their own type: integer labels are
    compared as integers) and ``r[0:k]`` counted into ``total`` (k,) int64: the exact
    counts of the metrics. Integer sums do not depend on their order, so each chunk sums
    in the loop itself (no block scratch, as :func:`reduce` needs for floats); the chunks
    are still the size's alone."""
    xs = names("x", n_in)
    views = "".join(f"            c{q} = x{q}[lo:hi]\n" for q in range(n_in))
    elements = joined([*(f"c{q}[i]" for q in range(n_in)), "params"])
    init = "".join(f"            a{q} = 0\n" for q in range(k))
    adds = "".join(f"\n                a{q} += r[{q}]" for q in range(k))
    saves = "".join(f"\n            parts[p, {q}] = a{q}" for q in range(k))
    source = f"""
def make_count(f):
    def count_kernel({joined([*xs, "params", "total"])}):
        n = x0.size
        chunks = sum_chunks(n)
        size = (n + chunks - 1) // chunks
        parts = np.zeros((chunks, {k}), np.int64)
        for p in prange(chunks):
            lo, hi = p * size, min(n, (p + 1) * size)
{views}{init}\
            for i in range(hi - lo):
                r = f({elements}){adds}{saves}
        for q in range({k}):
            t = 0
            for p in range(chunks):
                t += parts[p, q]
            total[q] = t
    return count_kernel
"""
    return cpu_kernel(codegen.build(source, "make_count", _env())(f))


# --------------------------------------------------------------------------------------
# Loss terms summed over the classes along axis 1
# --------------------------------------------------------------------------------------


@register_jitable
def _in_order(parts):
    s = 0.0
    for p in range(parts.size):
        s += parts[p]
    return s


@functools.cache
def classes_dense(term, widen: bool):
    """Per-sample sums ``Σ_k term(y[i, k, r], x[i, k, r])`` of (n, C, R) arrays, one per
    (i, r), the gradient times ``grad_scale`` into ``gout``. A sample's terms are kept in
    ``vals`` (float64) and added by a loop with no stores (see :func:`reduce`). The
    elements are handed over as float64, or in their own type without ``widen``."""
    elem = float64 if widen else as_is

    def kernel(y, x, params, grad_scale, out, gout, total):
        n, c, r = x.shape
        m = n * r
        chunks = sum_chunks(m)
        size = (m + chunks - 1) // chunks
        parts = np.empty(chunks)
        for p in prange(chunks):
            vals = np.empty(c)
            acc = 0.0
            for j in range(p * size, min(m, (p + 1) * size)):
                i = j // r
                q = j - i * r
                for k in range(c):
                    v, g = term(elem(y[i, k, q]), elem(x[i, k, q]), params)
                    vals[k] = v
                    if gout is not None:
                        gout[i, k, q] = g * grad_scale
                s = 0.0
                for k in range(c):
                    s += vals[k]
                if out is not None:
                    out[i, q] = s
                acc += s
            parts[p] = acc
        if total is not None:
            total[0] = _in_order(parts)

    return cpu_kernel(kernel)


@functools.cache
def classes_index(term):
    """Per-sample terms of a one-hot label given by its index: ``term(1, x[i, t[i, r], r])``.

    Only the target entry of each sample is read for the value; the gradient is zero
    except at the target. A target outside ``[-C, C)`` (checked before the launch on the
    CPU) gives NaN rather than an out-of-bounds read.
    """

    def kernel(t, x, params, grad_scale, out, gout, total):
        n, c, r = x.shape
        m = n * r
        chunks = sum_chunks(m)
        size = (m + chunks - 1) // chunks
        parts = np.empty(chunks)
        for p in prange(chunks):
            acc = 0.0
            for j in range(p * size, min(m, (p + 1) * size)):
                i = j // r
                q = j - i * r
                k = t[i, q]
                if k < 0:
                    k += c
                inside = k >= 0 and k < c
                if inside:
                    v, g = term(1.0, float64(x[i, k, q]), params)
                else:
                    v, g = np.nan, np.nan
                if gout is not None:
                    for kk in range(c):
                        gout[i, kk, q] = 0.0
                    if inside:
                        gout[i, k, q] = g * grad_scale
                if out is not None:
                    out[i, q] = v
                acc += v
            parts[p] = acc
        if total is not None:
            total[0] = _in_order(parts)

    return cpu_kernel(kernel)


# --------------------------------------------------------------------------------------
# rows and cols
# --------------------------------------------------------------------------------------


@functools.cache
def rows(op, n_in: int, n_feat: int):
    """A row operation over (n, c) arrays ``x0, ...`` along the last axis, a row per thread
    at a time: ``state = op.part(row, feats, params, out_row)`` (``row`` the tuple of the
    inputs' rows, ``feats`` of the (c,) per-feature arrays; ``op.k`` floats, in one pass,
    intermediate values may be left in the row of ``out``), then
    ``op.emit(row, feats, params, own, state, out_row)`` writes the row of ``out`` and
    returns ``op.stats`` per-row statistics, stored in ``stats[i]`` when asked. (The GPU
    splits a row over a block, ``own`` is then the state of a thread's part, merged into
    the row's ``state`` with ``op.merge``; here both are the row's.)"""
    xs, ws = names("x", n_in), names("w", n_feat)
    source = f"""
def make_rows(part, emit, n_stats):
    def rows_kernel({joined([*xs, *ws, "params", "out", "stats"])}):
        feats = ({joined(ws)}{"," if n_feat == 1 else ""})
        for i in prange(x0.shape[0]):
            row = ({joined(f"{x}[i]" for x in xs)},)
            state = part(row, feats, params, out[i])
            s = emit(row, feats, params, state, state, out[i])
            if stats is not None:
                for q in range(n_stats):
                    stats[i, q] = s[q]
    return rows_kernel
"""
    return cpu_kernel(codegen.build(source, "make_rows", _env())(op.part, op.emit, op.stats))


def col_chunks(n: int, c: int, k: int) -> int:
    """Row chunks of a column reduction: up to 32 (one per thread and more, for balance),
    each of at least ``COL_CHUNK_MIN`` elements (a small matrix is one chunk: 32 partial
    states to clear and merge cost more than its rows), fewer when the partial states
    (chunks x k x c float64) would pass 64 MB. A function of the shape only, so results do
    not depend on the number of threads."""
    return max(1, min(n, 32, (n * c) // COL_CHUNK_MIN, (8 << 20) // max(1, k * c)))


#: Elements per chunk of a column reduction, at least (:func:`col_chunks`).
COL_CHUNK_MIN = 1 << 14


@functools.cache
def cols_reduce(op, n_in: int):
    """Per-column statistics of (n, c) arrays over axis 0, into ``acc`` (op.k, c) float64.

    The rows are cut into chunks (:func:`col_chunks`, a function of the shape); ``op.push
    (acc_p, ins, r, k, lo, hi, params)`` adds row ``r`` (the ``k``-th of its chunk, from 1)
    of the inputs ``ins`` to the columns ``lo:hi`` of the chunk's state (all columns here;
    one per thread on the GPU); ``op.merge(acc, m, acc_p, m_p, j)`` merges a chunk's state
    of ``m_p`` rows into the total of ``m`` rows, in chunk order (deterministic);
    ``op.final(acc, n, params, j)`` turns the sums into the statistics. ``push`` loops
    along the columns of a row (contiguous in memory): it vectorises.
    """
    xs = names("x", n_in)
    source = f"""
def make_cols_reduce(push, merge, final):
    def cols_reduce_kernel({joined([*xs, "params", "parts", "acc"])}):
        ins = ({joined(xs)},)
        n, c = x0.shape
        chunks = parts.shape[0]
        size = (n + chunks - 1) // chunks
        for p in prange(chunks):
            acc_p = parts[p]
            acc_p[:] = 0.0
            k = 0
            for r in range(p * size, min(n, (p + 1) * size)):
                k += 1
                push(acc_p, ins, r, k, 0, c, params)
        acc[:] = 0.0
        m = 0
        for p in range(chunks):
            m_p = max(0, min(n, (p + 1) * size) - p * size)
            if m_p > 0:
                for j in range(c):
                    merge(acc, m, parts[p], m_p, j)
                m += m_p
        for j in range(c):
            final(acc, n, params, j)
    return cols_reduce_kernel
"""
    make = codegen.build(source, "make_cols_reduce", _env())
    return cpu_kernel(make(op.push, op.merge, op.final))


@functools.cache
def cols_emit(op, n_in: int, n_feat: int):
    """``r = op.emit(acc, ins, feats, params, i, j)``; output ``q`` receives ``r[q]`` at
    ``(i, j)``, for the ``op.outputs`` outputs asked."""
    xs, ws, os_ = names("x", n_in), names("w", n_feat), names("o", op.outputs)
    stores = "".join(
        f"\n                if o{q} is not None:\n                    o{q}[i, j] = r[{q}]"
        for q in range(op.outputs)
    )
    source = f"""
def make_cols_emit(emit):
    def cols_emit_kernel({joined([*xs, *ws, "acc", "params", *os_])}):
        ins = ({joined(xs)},)
        feats = ({joined(ws)}{"," if n_feat == 1 else ""})
        n, c = x0.shape
        for i in prange(n):
            for j in range(c):
                r = emit(acc, ins, feats, params, i, j){stores}
    return cols_emit_kernel
"""
    return cpu_kernel(codegen.build(source, "make_cols_emit", _env())(op.emit))


# --------------------------------------------------------------------------------------
# foreach, pairwise, by_label
# --------------------------------------------------------------------------------------

#: Elements per chunk of a foreach launch on the CPU: the chunk table, and so the order in
#: which a foreach reduction adds its chunks, depends on the arrays' sizes alone.
FOREACH_CHUNK = 1 << 16


@functools.lru_cache(maxsize=64)
def foreach_chunks(sizes: tuple, chunk: int = FOREACH_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """The chunk table of a foreach launch, ``(chunks (m, 3), starts (G + 1,))``: rows
    ``(group, lo, hi)`` of at most ``chunk`` elements, group by group, and where each
    group's rows start (group ``g`` has the rows ``starts[g]:starts[g + 1]``). Cached by
    the sizes (an optimiser's list has the same at every step); never to be written."""
    rows, starts = [], [0]
    for g, n in enumerate(sizes):
        rows.extend((g, lo, min(n, lo + chunk)) for lo in range(0, n, chunk))
        starts.append(len(rows))
    return np.array(rows, np.int64).reshape(-1, 3), np.array(starts, np.int64)


#: What a foreach reduction starts from and how it adds a value, by kind.
FOREACH_KINDS = {"sum": ("0.0", "{a} + {v}"), "max": ("-math.inf", "maximum({a}, {v})")}


def foreach_body(n_read: int, stores: tuple, kinds: tuple, load, store, ind: str):
    """The inner loop of a foreach kernel, shared with ``gpu``: ``(init, body)``, the
    accumulators' start and the loop's body (indented by ``ind``). ``f`` receives the
    elements of the ``n_read`` columns read (``load(q)``); result ``j`` goes into column
    ``stores[j]`` (``store(c, value)``: an input column for an update in place, another for
    one into new arrays); the results after them are accumulated by their ``kinds``, in
    float64."""
    if stores and kinds:
        raise ValueError("a foreach kernel either writes arrays or reduces them, not both")
    init = "".join(f"{ind}a{q} = {FOREACH_KINDS[k][0]}\n" for q, k in enumerate(kinds))
    args = joined([*(f"e{q}" for q in range(n_read)), "s", "params"])
    body = "".join(f"{ind}    e{q} = {load(q)}\n" for q in range(n_read))
    body += f"{ind}    r = f({args})\n"
    body += "".join(f"{ind}    {store(c, f'r[{j}]')}\n" for j, c in enumerate(stores))
    for q, kind in enumerate(kinds):
        value = f"float64(r[{len(stores) + q}])"
        body += f"{ind}    a{q} = {FOREACH_KINDS[kind][1].format(a=f'a{q}', v=value)}\n"
    return init, body


def foreach_tag(f, n_cols: int, n_read: int, stores: tuple, kinds: tuple) -> str:
    """A name for one foreach kernel of ``f`` (see the helper's name in :func:`reduce`):
    an update in place and one into new arrays are two kernels of one ``f``."""
    return f"{unique_tag(f)}_{n_cols}_{n_read}_{''.join(str(c) for c in stores)}_" + "".join(
        k[0] for k in kinds
    )


def _foreach_chunk(f, n_cols: int, n_read: int, stores: tuple, kinds: tuple) -> str:
    init, body = foreach_body(
        n_read, stores, kinds, lambda q: f"x{q}[i]", lambda c, v: f"x{c}[i] = {v}", "        "
    )
    result = joined([f"a{q}" for q in range(len(kinds))] or ["0.0"])
    tag, args = foreach_tag(f, n_cols, n_read, stores, kinds), joined([*names("x", n_cols), "s"])
    return f"""
    def chunk_{tag}({args}, params):
{init}\
        for i in range(x0.size):
{body}\
        return ({result},)
"""


@functools.cache
def foreach(f, n_cols: int, n_read: int, stores: tuple, kinds: tuple):
    """``r = f(a0[i], ..., a{n_read-1}[i], s, params)`` over every element ``i`` of every
    group of LISTS of arrays, in ONE launch over a chunk table (:func:`foreach_chunks`).

    ``table[g, q]`` is the address of column ``q``'s array in group ``g`` (C-contiguous;
    see ``pointers``), its dtype that of ``refs[q]``: a group is a parameter, its gradient,
    its moments, its new value. ``r[j]`` is stored into column ``stores[j]`` (an update in
    place stores into a column it reads: LLVM then knows the two are one array, and
    vectorises). The results after the stores are reduced per chunk in float64, by their
    ``kinds`` ("sum" or "max", NaN propagating), and the chunks of each group combined in
    order into ``totals[g]``: the same bits whatever the number of threads. ``s`` is
    ``coef[0]`` (1.0 without ``coef``), a factor computed on the device: the clip of an
    optimiser's step by the global norm."""
    k = len(kinds)
    chunk_source = _foreach_chunk(f, n_cols, n_read, stores, kinds)
    views = "".join(
        f"            x{q} = carray(pointer(table[g, {q}], refs[{q}]), hi)[lo:hi]\n"
        for q in range(n_cols)
    )
    combine = "".join(
        f"""
                t = {FOREACH_KINDS[kind][0]}
                for c in range(starts[g], starts[g + 1]):
                    t = {FOREACH_KINDS[kind][1].format(a="t", v=f"parts[c, {q}]")}
                totals[g, {q}] = t"""
        for q, kind in enumerate(kinds)
    )
    source = f"""
def make_foreach(f):{chunk_source}
    chunk = register_jitable(chunk_{foreach_tag(f, n_cols, n_read, stores, kinds)})

    def foreach_kernel(chunks, starts, table, refs, params, coef, totals):
        m = chunks.shape[0]
        parts = np.empty((m, {max(k, 1)}))
        s = 1.0 if coef is None else coef[0]
        for c in prange(m):
            g, lo, hi = chunks[c, 0], chunks[c, 1], chunks[c, 2]
{views}\
            r = chunk({joined([*names("x", n_cols), "s", "params"])})
            for q in range({k}):
                parts[c, q] = r[q]
        if totals is not None:
            for g in range(totals.shape[0]):{combine or chr(10) + "                pass"}
    return foreach_kernel
"""
    env = {
        **_env(),
        "carray": carray,
        "math": math,
        "pointer": pointers.pointer,
        "maximum": maximum,
    }
    return cpu_kernel(codegen.build(source, "make_foreach", env)(f))


#: Rows of A and of B per tile of a pairwise kernel: a tile of B stays in cache while the
#: rows of A's tile pass over it.
PAIR_TILE = 64


@functools.cache
def pairwise(op):
    """``out[i, j] = op.end(acc, params)``, ``acc`` folded by ``op.step(acc, a, b)`` from
    ``op.init`` over the coordinates of A[i] and B[j] (A (n, d), B (m, d), float64
    accumulation): distances and kernel matrices. Tiles of PAIR_TILE x PAIR_TILE, a row of
    tiles per thread."""
    init, step, end = op.init, op.step, op.end

    def kernel(a, b, params, out):
        n, d = a.shape
        m = b.shape[0]
        for ti in prange((n + PAIR_TILE - 1) // PAIR_TILE):
            i0 = ti * PAIR_TILE
            for j0 in range(0, m, PAIR_TILE):
                for i in range(i0, min(n, i0 + PAIR_TILE)):
                    ai = a[i]
                    for j in range(j0, min(m, j0 + PAIR_TILE)):
                        bj = b[j]
                        acc = init
                        for q in range(d):
                            acc = step(acc, float64(ai[q]), float64(bj[q]))
                        out[i, j] = end(acc, params)

    return cpu_kernel(kernel)


def label_chunks(n: int, labels: int, d: int) -> int:
    """Row chunks of a per-label sum: up to 32, fewer when the partial sums (chunks x
    labels x d float64) would pass 64 MB. A function of the shape only."""
    return max(1, min(n, 32, (8 << 20) // max(1, labels * d)))


@functools.cache
def by_label():
    """Per-label sums of the rows of x (n, d) into ``sums`` (L, d) float64 and their
    counts into ``counts`` (L,) int64: k-means' centroid update. Labels are checked to lie
    in [0, L) before the launch. The rows are cut into chunks (:func:`label_chunks`), each
    summed into its own partial, and the partials added in chunk order: deterministic."""

    def kernel(x, labels, parts, cparts, sums, counts):
        n, d = x.shape
        chunks = parts.shape[0]
        size = (n + chunks - 1) // chunks
        for p in prange(chunks):
            part_p, cpart_p = parts[p], cparts[p]
            part_p[:] = 0.0
            cpart_p[:] = 0
            for r in range(p * size, min(n, (p + 1) * size)):
                lab = labels[r]
                row, acc = x[r], part_p[lab]
                for j in range(d):
                    acc[j] += float64(row[j])
                cpart_p[lab] += 1
        sums[:] = 0.0
        counts[:] = 0
        for p in range(chunks):
            sums += parts[p]
            counts += cparts[p]

    return cpu_kernel(kernel)


# --------------------------------------------------------------------------------------
# Metrics: moments, pair counts, ranks, triangular solves, ranked gains
# --------------------------------------------------------------------------------------


@functools.cache
def moments(f, n_in: int):
    """``(v, e) = f(float64(x0[i]), ..., params)``: the count, mean and M2 of ``v`` and the
    sum of ``e`` into ``total`` (4,) float64, in one pass (r2, gaussian_mle). Per block of
    SUM_BLOCK terms (in cache) the mean, then the squared deviations from it; blocks and
    chunks (:func:`sum_chunks`) merged in order with Chan's formula: accurate for data far
    from zero, and the same bits whatever the number of threads."""
    xs = names("x", n_in)
    elements = joined([*(f"float64(c{q}[i])" for q in range(n_in)), "params"])
    views = "".join(f"                c{q} = x{q}[s : s + m]\n" for q in range(n_in))
    source = f"""
def make_moments(f):
    def moments_kernel({joined([*xs, "params", "total"])}):
        n = x0.size
        chunks = sum_chunks(n)
        size = (n + chunks - 1) // chunks
        parts = np.zeros((chunks, 4))
        for p in prange(chunks):
            lo, hi = p * size, min(n, (p + 1) * size)
            vb = np.empty(SUM_BLOCK)
            eb = np.empty(SUM_BLOCK)
            cnt = 0.0
            mean = 0.0
            m2 = 0.0
            es = 0.0
            for s in range(lo, hi, SUM_BLOCK):
                m = min(hi, s + SUM_BLOCK) - s
{views}\
                for i in range(m):
                    r = f({elements})
                    vb[i] = r[0]
                    eb[i] = r[1]
                t = 0.0
                u = 0.0
                for i in range(m):
                    t += vb[i]
                    u += eb[i]
                mb = t / m
                q = 0.0
                for i in range(m):
                    d = vb[i] - mb
                    q += d * d
                tot = cnt + m
                d = mb - mean
                mean += d * (m / tot)
                m2 += q + d * d * cnt * (m / tot)
                es += u
                cnt = tot
            parts[p, 0] = cnt
            parts[p, 1] = mean
            parts[p, 2] = m2
            parts[p, 3] = es
        merge_moments(parts, total)
    return moments_kernel
"""
    env = {**_env(), "merge_moments": merge_moments}
    return cpu_kernel(codegen.build(source, "make_moments", env)(f))


@register_jitable
def merge_moments(parts, total):
    """Chan's merge of the (count, mean, M2, Σ e) rows of ``parts``, in order, into total."""
    cnt = 0.0
    mean = 0.0
    m2 = 0.0
    es = 0.0
    for p in range(parts.shape[0]):
        c = parts[p, 0]
        if c == 0:
            continue
        tot = cnt + c
        d = parts[p, 1] - mean
        mean += d * (c / tot)
        m2 += parts[p, 2] + d * d * cnt * (c / tot)
        es += parts[p, 3]
        cnt = tot
    total[0] = cnt
    total[1] = mean
    total[2] = m2
    total[3] = es


def pair_chunks(n: int, cells: int) -> int:
    """Chunks of a pair count (confusion_matrix, a contingency table): up to 32, fewer
    when the partial tables (chunks x cells int64) would pass 64 MB. From the shape only."""
    return max(1, min(n // 65536 + 1, 32, (8 << 20) // max(1, cells)))


@functools.cache
def pair_counts():
    """``out[a[i], b[i]] += 1`` over label arrays a, b of one size into ``out`` (ca, cb)
    int64: exact, from per-chunk tables (``parts`` (chunks, ca * cb)) added in order.
    Pairs with a label outside [0, ca) or [0, cb) are not counted (the launcher counts
    them when the table's total falls short: only a failing call pays for it)."""

    def kernel(a, b, parts, out):
        n = a.size
        chunks = parts.shape[0]
        ca, cb = out.shape
        size = (n + chunks - 1) // chunks
        for p in prange(chunks):
            table = parts[p]
            table[:] = 0
            lo, hi = p * size, min(n, (p + 1) * size)
            ac, bc = a[lo:hi], b[lo:hi]
            for i in range(hi - lo):
                u, v = int64(ac[i]), int64(bc[i])
                if u >= 0 and u < ca and v >= 0 and v < cb:
                    table[u * cb + v] += 1
        flat = out.reshape(ca * cb)
        flat[:] = 0
        for p in range(chunks):
            flat += parts[p]

    return cpu_kernel(kernel)


@functools.cache
def pair_table():
    """Small inputs in ONE serial call: the label ranges, then the pair counts into a new
    table (ca, cb), a size of 0 taken from the labels (1 + the largest; both from the
    larger of the two when ``square``). Returns ``(table, ok)``; ``ok`` is False (and the
    table empty) when a label is negative or outside a given size: the general path
    (:func:`pair_counts`) then says which."""

    def kernel(a, b, ca, cb, square):
        lo, hi_a, hi_b = int64(0), int64(-1), int64(-1)
        for i in range(a.size):
            u, v = int64(a[i]), int64(b[i])
            lo = min(lo, min(u, v))
            hi_a = max(hi_a, u)
            hi_b = max(hi_b, v)
        if square and ca == 0:
            ca = cb = max(hi_a, hi_b) + 1
        ca = ca if ca else hi_a + 1
        cb = cb if cb else hi_b + 1
        ok = lo >= 0 and hi_a < ca and hi_b < cb
        table = np.zeros((ca, cb) if ok else (0, 0), np.int64)
        if ok:
            for i in range(a.size):
                table[int64(a[i]), int64(b[i])] += 1
        return table, ok

    return cpu_serial(kernel)


#: Negatives per chunk of the ROC-AUC's merge walk (at most 256 chunks).
AUC_CHUNK = 1 << 14


@functools.cache
def auc_split():
    """Count each chunk's positives (label == 1) and NaN scores (``counts`` (chunks, 2)),
    the first pass of splitting the scores by class."""

    def kernel(y, s, counts):
        n = y.size
        chunks = counts.shape[0]
        size = (n + chunks - 1) // chunks
        for p in prange(chunks):
            pos = 0
            nan = 0
            for i in range(p * size, min(n, (p + 1) * size)):
                pos += float64(y[i]) == 1.0
                nan += s[i] != s[i]
            counts[p, 0] = pos
            counts[p, 1] = nan

    return cpu_kernel(kernel)


@functools.cache
def auc_fill():
    """Scatter each chunk's scores (and weights) to the positives' or the negatives'
    arrays, from the chunk's offsets in each (``offsets`` (chunks, 2)): the order within a
    class is kept."""

    def kernel(y, s, w, offsets, ps, ns, pw, nw):
        n = y.size
        chunks = offsets.shape[0]
        size = (n + chunks - 1) // chunks
        for p in prange(chunks):
            a, b = offsets[p, 0], offsets[p, 1]
            for i in range(p * size, min(n, (p + 1) * size)):
                if float64(y[i]) == 1.0:
                    ps[a] = s[i]
                    if w is not None:
                        pw[a] = w[i]
                    a += 1
                else:
                    ns[b] = s[i]
                    if w is not None:
                        nw[b] = w[i]
                    b += 1

    return cpu_kernel(kernel)


@functools.cache
def auc_merge():
    """Σ over the negatives (sorted ascending, ``ns``) of their weight times the weight of
    the positives (sorted ascending, ``ps``) scored above them plus half of those scored
    equal: the area under the ROC curve times P N, ties exact (scikit-learn's trapezoid).
    Unweighted (``cum`` None): twice the sum, in exact int64. Weighted: ``cum`` (P + 1,)
    the positives' running weights, ``nw`` the negatives' weights, float64. Chunks of
    negatives walk from their own binary search in ``ps``; their sums added in order."""

    def kernel(ps, ns, cum, nw, parts):
        n_pos, n_neg = ps.size, ns.size
        chunks = parts.shape[0]
        size = (n_neg + chunks - 1) // chunks
        for p in prange(chunks):
            lo, hi = p * size, min(n_neg, (p + 1) * size)
            if lo >= hi:
                parts[p] = 0.0
                continue
            a = np.searchsorted(ps, ns[lo], "left")
            b = a
            twice = 0
            area = 0.0
            for j in range(lo, hi):
                v = ns[j]
                while a < n_pos and ps[a] < v:
                    a += 1
                if b < a:
                    b = a
                while b < n_pos and ps[b] <= v:
                    b += 1
                if cum is None:
                    twice += 2 * (n_pos - b) + (b - a)
                else:
                    above = cum[n_pos] - cum[b]
                    area += float64(nw[j]) * (above + 0.5 * (cum[b] - cum[a]))
            parts[p] = float64(twice) if cum is None else area

    return cpu_kernel(kernel)


#: Points per block of a triangular solve (mvn_logpdf): their solutions, d x MVN_BLOCK
#: float64, stay in L1 and each step is a vector operation over the block. A thread
#: takes MVN_CHUNK blocks at a time, with one scratch for all of them.
MVN_BLOCK, MVN_CHUNK = 64, 16


@functools.cache
def mvn():
    """``out[i] = c - ||L^{-1} (x[i] - mu)||^2 / 2`` for points x (n, d): a forward
    substitution per point, MVN_BLOCK points at a time (float64), never an inverse; the
    squares summed as each row of the solution is made. ``c`` is the log-density's
    constant (-d/2 log 2π - log det(Σ)/2); ``exp_out``: the density instead."""

    def kernel(x, mu, low, c, exp_out, out):
        n, d = x.shape
        blocks = (n + MVN_BLOCK - 1) // MVN_BLOCK
        inv = np.empty(d)
        for i in range(d):
            inv[i] = 1.0 / float64(low[i, i])
        for chunk in prange((blocks + MVN_CHUNK - 1) // MVN_CHUNK):
            z = np.empty((d, MVN_BLOCK))
            q = np.empty(MVN_BLOCK)
            for blk in range(chunk * MVN_CHUNK, min(blocks, (chunk + 1) * MVN_CHUNK)):
                b0 = blk * MVN_BLOCK
                m = min(n, b0 + MVN_BLOCK) - b0
                for b in range(m):
                    xb = x[b0 + b]
                    for i in range(d):
                        z[i, b] = float64(xb[i]) - float64(mu[i])
                q[:] = 0.0
                for i in range(d):
                    zi = z[i]
                    for j in range(i):
                        lij = float64(low[i, j])
                        zj = z[j]
                        for b in range(m):
                            zi[b] -= lij * zj[b]
                    s = inv[i]
                    for b in range(m):
                        v = zi[b] * s
                        zi[b] = v
                        q[b] += v * v
                for b in range(m):
                    v = c - 0.5 * q[b]
                    out[b0 + b] = math.exp(v) if exp_out else v

    return cpu_kernel(kernel)


@register_jitable
def discount(i):
    """The DCG discount of rank i (0-based): 1 / log2(i + 2)."""
    return 1.0 / math.log2(i + 2.0)


@functools.cache
def ranked_gains():
    """Per row of r (n, m): DCG of its first k entries, Σ r_i / log2(i + 2); with
    ``ideal``, divided by (the DCG of the row sorted descending + 1e-9): ndcg."""

    def kernel(r, k, ideal, out):
        n, m = r.shape
        top = min(k, m)
        disc = np.empty(top)
        for i in range(top):
            disc[i] = discount(i)
        for row in prange(n):
            x = r[row]
            g = 0.0
            for i in range(top):
                g += float64(x[i]) * disc[i]
            if ideal:
                srt = np.sort(x)
                best = 0.0
                for i in range(top):
                    best += float64(srt[m - 1 - i]) * disc[i]
                g = g / (best + 1e-9)
            out[row] = g

    return cpu_kernel(kernel)


@functools.cache
def tied_ndcg():
    """scikit-learn's ndcg_score per row of y_true, y_score (n, m): the DCG of y_true in
    the order of y_score descending, a tie group's gains averaged over its positions (the
    first k), over the DCG of y_true sorted descending (0 where that is 0)."""

    def kernel(y, s, k, out):
        n, m = y.shape
        top = min(k, m)
        for row in prange(n):
            yr, sr = y[row], s[row]
            order = np.argsort(-sr.astype(np.float64))
            g = 0.0
            a = 0
            while a < m and a < top:
                b = a + 1
                v = sr[order[a]]
                while b < m and sr[order[b]] == v:
                    b += 1
                gain = 0.0
                for t in range(a, b):
                    gain += float64(yr[order[t]])
                disc = 0.0
                for t in range(a, min(b, top)):
                    disc += discount(t)
                g += gain / (b - a) * disc
                a = b
            srt = np.sort(yr)
            best = 0.0
            for i in range(top):
                best += float64(srt[m - 1 - i]) * discount(i)
            out[row] = g / best if best != 0 else 0.0

    return cpu_kernel(kernel)


# --------------------------------------------------------------------------------------
# Launchers: what the pipeline calls, the same on both devices
# --------------------------------------------------------------------------------------


def run_map(f, ins, params, outs, widen=False, counter=False):
    x0 = ins[0]
    map(f, len(ins), len(outs), widen, counter)(x0.size, *ins, params, *outs)


def run_reduce(f, ins, params, grad_scale, outs, k, want_total, acc="float64", widen=True):
    """The reduction's kernel; returns the (k,) partial (or None). Counts (int64, no
    outputs) run :func:`count`."""
    if acc == "int64" and not outs:
        total = np.empty(k, np.int64)
        count(f, len(ins), k)(ins[0].size, *ins, params, total)
        return total
    total = np.zeros(k, np.dtype(acc)) if want_total else None
    reduce(f, len(ins), k, len(outs), acc, widen)(
        ins[0].size, *ins, params, grad_scale, *outs, total
    )
    return total


def run_classes(pattern, term, a, b, params, grad_scale, out, gout, want_total, widen=True):
    total = np.zeros(1) if want_total else None
    kernel = classes_dense(term, widen) if pattern == "classes_dense" else classes_index(term)
    kernel(b.size, a, b, params, grad_scale, out, gout, total)
    return total


def run_rows(op, ins, feats, params, out, stats):
    if ins[0].size:
        rows(op, len(ins), len(feats))(ins[0].size, *ins, *feats, params, out, stats)


def run_cols(op, ins, feats, params, outs):
    """Column statistics (op.k, c) of (n, c) data, then the elementwise pass (if any
    output is asked); returns the statistics."""
    n, c = ins[0].shape
    chunks = col_chunks(n, c, op.k)
    parts = np.empty((chunks, op.k, c))
    acc = np.empty((op.k, c))
    work = ins[0].size
    cols_reduce(op, len(ins))(work, *ins, params, parts, acc)
    if any(o is not None for o in outs):
        cols_emit(op, len(ins), len(feats))(work, *ins, *feats, acc, params, *outs)
    return acc


@functools.cache
def _ref(dtype: np.dtype) -> np.ndarray:
    """A 0-size array of ``dtype``: what tells a foreach kernel a column's dtype."""
    return np.empty(0, dtype)


def run_foreach(f, columns, n_read, stores, kinds, params, coef=None):
    """``foreach`` over the groups of ``columns`` (a list per column, one array per group,
    every array of a group of one size): returns the per-group totals (G, len(kinds))
    float64, or None without ``kinds``. ``coef``: None or a (1,) float64 array."""
    groups = list(zip(*columns, strict=True))
    refs = tuple(_ref(col[0].dtype) for col in columns)
    address = pointers.address
    table = np.array([[address(a) for a in g] for g in groups], np.int64)
    chunks, starts = foreach_chunks(tuple(g[0].size for g in groups))
    totals = np.zeros((len(groups), len(kinds))) if kinds else None
    work = sum(g[0].size for g in groups)
    kernel = foreach(f, len(columns), n_read, tuple(stores), tuple(kinds))
    kernel(work, chunks, starts, table, refs, params, coef, totals)
    return totals


def run_global_norm(totals, max_norm, dtype):
    """The norm of a list from its arrays' Σ g² (``totals`` (G, 1), added in order) and
    clip_by_global_norm's factor ``min(1, max_norm / (norm + 1e-6))`` (1 for a NaN norm,
    as the formula's Python ``min`` gives): ``(norm in dtype, coef (1,) float64)``."""
    t = 0.0
    for v in totals[:, 0].tolist():
        t += v
    norm = math.sqrt(t)
    q = max_norm / (norm + 1e-6)
    return dtype.type(norm), np.array([q if q < 1.0 else 1.0])


def run_norms(totals, dtype):
    """Each array's norm from its Σ g² (``totals`` (G, 1)): a (G,) array of dtype."""
    return np.sqrt(totals[:, 0]).astype(dtype)


def run_pairwise(op, a, b, params, out):
    if out.size:
        pairwise(op)(a.shape[0] * b.shape[0] * max(a.shape[1], 1), a, b, params, out)


def run_by_label(x, labels, n_labels):
    """``(sums (L, d) float64, counts (L,) int64)`` of the rows of x by label."""
    n, d = x.shape
    chunks = label_chunks(n, n_labels, d)
    parts = np.empty((chunks, n_labels, d))
    cparts = np.empty((chunks, n_labels), np.int64)
    sums = np.empty((n_labels, d))
    counts = np.empty(n_labels, np.int64)
    by_label()(x.size, x, labels, parts, cparts, sums, counts)
    return sums, counts


def run_final(final, total, n, params, dtype, results):
    """A metric's value(s) from its sums (``total``): ``final(total, n, params)``, as
    NumPy scalars of ``dtype`` (a tuple of ``results`` of them when more than one)."""
    values = tuple(dtype.type(v) for v in final(total, float(n), params))
    return values[0] if results == 1 else values


def run_moments(f, ins, params):
    """The (count, mean, M2, Σ e) of :func:`moments`, (4,) float64."""
    total = np.empty(4)
    moments(f, len(ins))(ins[0].size, *ins, params, total)
    return total


def run_pair_counts(a, b, ca, cb):
    """``(table (ca, cb) int64, bad (2,) int64)``: the pair counts of two flat label
    arrays and how many of each lay outside its range."""
    parts = np.empty((pair_chunks(a.size, ca * cb), ca * cb), np.int64)
    out = np.empty((ca, cb), np.int64)
    pair_counts()(a.size, a, b, parts, out)
    bad = np.zeros(2, np.int64)
    if int(out.sum()) != a.size:  # some label lies outside: count them (an error follows)
        bad[0] = np.count_nonzero((a < 0) | (a >= ca))
        bad[1] = np.count_nonzero((b < 0) | (b >= cb))
    return out, bad


@functools.cache
def table_final(final):
    """``final(table, rows, cols, params)`` of a 2-D table and its row and column sums
    (float64, computed here): a metric of a confusion matrix or a contingency table. On
    the calling thread: its loops are serial (and threads woken for its two small
    allocations would cost a small call more than its work)."""

    def kernel(table, params, out):
        a, b = table.shape
        rows = np.zeros(a)
        cols = np.zeros(b)
        for i in range(a):
            for j in range(b):
                v = float64(table[i, j])
                rows[i] += v
                cols[j] += v
        r = final(table, rows, cols, params)
        out[0] = r[0]

    return cpu_serial(kernel)


def run_table_final(final, table, params, dtype):
    out = np.empty(1)
    table_final(final)(table, params, out)
    return dtype.type(out[0])


@functools.cache
def value_range():
    """(min, max) of an integer array in one pass (per chunk, then in order)."""

    def kernel(x, out):
        n = x.size
        chunks = sum_chunks(n)
        size = (n + chunks - 1) // chunks
        lo = np.empty(chunks, np.int64)
        hi = np.empty(chunks, np.int64)
        for p in prange(chunks):
            a, b = p * size, min(n, (p + 1) * size)
            c = x[a:b]
            small, big = int64(c[0]), int64(c[0])
            for i in range(b - a):
                v = int64(c[i])
                small = min(small, v)
                big = max(big, v)
            lo[p], hi[p] = small, big
        out[0], out[1] = lo.min(), hi.max()

    return cpu_kernel(kernel)


def label_range(x):
    """(min, max) of an integer label array, as Python ints (0, -1 when empty)."""
    if not x.size:
        return 0, -1
    out = np.empty(2, np.int64)
    value_range()(x.size, x, out)
    return int(out[0]), int(out[1])


def _sorted_pair(ps, ns, weighted):
    """Sort the two classes' scores at once, on two threads (NumPy's sorts release the
    GIL): ``np.sort``, or ``np.argsort`` when weights travel with the scores."""
    import threading

    how = np.argsort if weighted else np.sort
    if ps.size + ns.size < AUC_CHUNK:  # a thread costs more than sorting a few thousand
        return how(ps), how(ns)
    done = [None]

    def other():
        done[0] = how(ns)

    thread = threading.Thread(target=other)
    thread.start()
    first = how(ps)
    thread.join()
    return first, done[0]


def run_roc_auc(y, s, w):
    """The exact ROC-AUC of flat labels y (positive: == 1), scores s and weights w (or
    None): split by class in two parallel passes, the classes sorted on two threads, then
    a parallel merge walk (:func:`auc_merge`). Raises ``ValueError`` for NaN scores or a
    single class."""
    n = y.size
    chunks = max(1, min(256, n // AUC_CHUNK))
    counts = np.empty((chunks, 2), np.int64)
    auc_split()(n, y, s, counts)
    if counts[:, 1].sum():
        raise ValueError(
            "scores contains NaN: the ROC curve is undefined (scikit-learn raises too)"
        )
    pos = counts[:, 0]
    n_pos = int(pos.sum())
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        which = "no positive (label 1)" if n_pos == 0 else "no negative"
        raise ValueError(f"y_true has {which}: ROC AUC is undefined for one class")
    if chunks == 1:
        offsets = np.zeros((1, 2), np.int64)
    else:  # each chunk's first place among the positives and among the negatives
        neg = _chunk_sizes(n, chunks) - pos
        offsets = np.stack([np.cumsum(pos) - pos, np.cumsum(neg) - neg], axis=1)
    ps, ns = np.empty(n_pos, s.dtype), np.empty(n_neg, s.dtype)
    weighted = w is not None
    pw = np.empty(n_pos, w.dtype) if weighted else None
    nw = np.empty(n_neg, w.dtype) if weighted else None
    auc_fill()(n, y, s, w, offsets, ps, ns, pw, nw)
    a, b = _sorted_pair(ps, ns, weighted)
    if weighted:
        ps, ns, pw, nw = ps[a], ns[b], pw[a], nw[b]
        cum = np.zeros(n_pos + 1)
        np.cumsum(pw, dtype=np.float64, out=cum[1:])
    else:
        ps, ns, cum = a, b, None
    parts = np.empty(max(1, min(256, n_neg // AUC_CHUNK)))
    auc_merge()(n, ps, ns, cum, nw, parts)
    area = 0.0
    for v in parts.tolist():
        area += v
    if weighted:
        return np.float64(area / (cum[n_pos] * float(np.sum(nw, dtype=np.float64))))
    return np.float64(area / (2.0 * n_pos * n_neg))


def _chunk_sizes(n, chunks):
    size = (n + chunks - 1) // chunks
    starts = np.arange(chunks) * size
    return np.clip(n - starts, 0, size)


def run_mvn(x, mu, low, c, density, out):
    """The Gaussian log-density (``density``: the density) of the rows of x (n, d)."""
    if x.shape[0]:
        mvn()(x.size * x.shape[1], x, mu, low, c, density, out)


def run_ranked_gains(r, k, ideal, out):
    if r.shape[0]:
        ranked_gains()(r.size * (8 if ideal else 1), r, k, ideal, out)


def run_tied_ndcg(y, s, k, out):
    if y.shape[0]:
        tied_ndcg()(y.size * 8, y, s, k, out)


def finish(total, scale, final, dtype):
    """Finalise a partial: ``final(total * scale) -> (value, d value / d(total * scale))``."""
    value, d = final(total[0] * scale)
    return dtype.type(value), d


def rescale(gout, d):
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as autograd gives
        gout *= d


# --------------------------------------------------------------------------------------
# Host arrays
# --------------------------------------------------------------------------------------


def empty(shape, dtype):
    return np.empty(shape, dtype)


def zeros(shape, dtype):
    return np.zeros(shape, dtype)


def empty_list(shapes, dtype, zero: bool = False) -> list:
    """Arrays of ``shapes`` (uninitialised, or zeros), views of ONE block: a list of
    several hundred arrays of 10^4-10^5 elements allocated one by one costs a page fault
    per 4 KiB on first use (each is an mmap of its own, 20 ms for 40 MB here); one block
    is a few huge pages (NumPy asks for them)."""
    sizes = [math.prod(s) for s in shapes]
    block = (np.zeros if zero else np.empty)(sum(sizes), dtype)
    out, at = [], 0
    for shape, n in zip(shapes, sizes, strict=True):
        out.append(block[at : at + n].reshape(shape))
        at += n
    return out


def as_device_array(x):
    return x


def flat(x, dtype):
    """A C-contiguous 1-D view of ``x`` in ``dtype`` (a copy only when needed)."""
    if type(x) is np.ndarray and x.dtype is dtype and x.flags.c_contiguous:
        return x.reshape(-1)  # the common case, without ascontiguousarray's cost
    return np.ascontiguousarray(x, dtype=dtype).reshape(-1)


def is_c_contiguous(x):
    return x.flags.c_contiguous


def overlap(a, b) -> str:
    """How two arrays share memory: "same" (the same elements in the same order: an
    elementwise kernel may write one while it reads the other), "partial", or ""."""
    if not np.may_share_memory(a, b):
        return ""
    same = (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
    )
    return "same" if same else "partial"
