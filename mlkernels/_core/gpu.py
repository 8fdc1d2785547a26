"""GPU kernel templates (``@cuda.jit``): the patterns of ``cpu.py``, launched with the same
arguments, so the pipeline drives both devices with one orchestration.

* Grid-stride loops: any grid covers any size; block and grid size are launch parameters
  (``mlkernels.launch_config``), so tests cover several blocks with tiny arrays.
* Reductions accumulate in float64 per thread, reduce each block with a shared-memory tree
  into ``partials[block]``, and a second one-block kernel sums the partials in a fixed
  order and finalises: no floating-point atomics, so the result is bit-identical run to
  run for a given launch shape (which depends only on the size and the device).
* Outputs passed as ``None`` are pruned at compile time, as on the CPU.

Imported only when a device array is seen: ``import mlkernels`` never imports numba.cuda.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import math
import sys
from collections.abc import Iterator

import numpy as np
from numba import float64
from numba import int64 as numba_int64
from numba.extending import register_jitable

from mlkernels._core import codegen, pointers
from mlkernels._core.codegen import joined, names
from mlkernels._core.cuda import cuda, fake_array_type
from mlkernels._core.jit import gpu_kernel
from mlkernels._core.scalar import as_is, maximum
from mlkernels.config import launch_shape, simulator

is_host = False
THREADS = 256  # default threads per block
MAX_BLOCKS = 4096  # grid cap: enough to fill an H200 (132 SMs x 2048 threads) for streaming


# --------------------------------------------------------------------------------------
# Device arrays in and out
# --------------------------------------------------------------------------------------


def as_device_array(x):
    """A Numba device array viewing ``x`` (no copy): Numba, CuPy, PyTorch CUDA, ...

    ``sync=False``: the host does not wait for the stream the array names; the kernels
    are queued on that stream instead (:func:`following`), after the producer's work."""
    if getattr(x, "__cuda_ndarray__", False):
        return x
    if simulator():
        return _simulated_view(x)
    return cuda.as_cuda_array(x, sync=False)


# --------------------------------------------------------------------------------------
# The caller's stream and memory pool
# --------------------------------------------------------------------------------------


class Caller:
    """Where a call's GPU work goes: the caller's stream and the library whose memory pool
    its results and scratch buffers come from (``library``: "cupy", "torch" or "numba"),
    with the arrays allocated there (each numba view -> the library's array, which is
    what the caller gets back)."""

    __slots__ = ("stream", "library", "device", "owners")

    def __init__(self, stream: object, library: str, device: object = None) -> None:
        self.stream, self.library, self.device = stream, library, device
        self.owners: dict[int, tuple] = {}


_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "mlkernels_gpu_caller", default=None
)


def stream_choice(iface: dict) -> tuple[str, int]:
    """The stream a ``__cuda_array_interface__`` (version 3) names, as ``(kind, pointer)``:
    "default" when it names none (numba's default stream: no ordering is asked for),
    "legacy" (1) and "per_thread" (2), the two default streams, else "external" (a
    ``cudaStream_t`` of the producer's: a PyTorch side stream, a CuPy stream)."""
    ptr = iface.get("stream")
    if ptr is None:
        return "default", 0
    if ptr == 1:
        return "legacy", 1
    if ptr == 2:
        return "per_thread", 2
    return "external", int(ptr)


def library_of(x: object) -> str:
    """The library that made an array: "cupy", "torch", or "numba" for anything else."""
    module = type(x).__module__.split(".")[0]
    return module if module in ("cupy", "torch") else "numba"


def caller_of(x: object) -> Caller:
    """The :class:`Caller` of a call whose first array is ``x``."""
    if getattr(x, "__cuda_ndarray__", False):  # a numba (or simulator) device array
        return Caller(getattr(x, "stream", 0) or 0, "numba")
    iface, library = x.__cuda_array_interface__, library_of(x)
    if library == "torch" and "stream" not in iface:
        # PyTorch exports version 2 of the interface, which names no stream: its producer's
        # stream is the current one (cuda_stream 0 is the legacy default stream)
        current = sys.modules["torch"].cuda.current_stream(x.device).cuda_stream
        iface = {**iface, "stream": current or 1}
    kind, ptr = stream_choice(iface)
    device = getattr(x, "device", None) if library == "torch" else None
    return Caller(0 if kind == "default" else stream_object(kind, ptr), library, device)


def stream_object(kind: str, ptr: int) -> object:
    """numba's stream for a :func:`stream_choice` (0 under the simulator, which runs every
    launch at once and has no external streams)."""
    if simulator():
        return 0
    if kind == "legacy":
        return cuda.legacy_default_stream()
    if kind == "per_thread":
        return cuda.per_thread_default_stream()
    return cuda.external_stream(ptr)


@contextlib.contextmanager
def following(x: object) -> Iterator[Caller]:
    """Inside the block, kernels launch on the stream of the caller's array ``x`` and
    buffers come from its library (see :class:`Caller`)."""
    token = _CALLER.set(caller_of(x))
    try:
        yield _CALLER.get()
    finally:
        _CALLER.reset(token)


def stream() -> object:
    """The stream the current call launches on (0: numba's default stream)."""
    caller = _CALLER.get()
    return 0 if caller is None else caller.stream


def device_array(shape, dtype):
    """An uninitialised device array from the caller's memory pool: ``cupy.empty`` for
    CuPy callers, ``torch.empty`` for PyTorch's, numba's allocator otherwise."""
    caller, dtype = _CALLER.get(), np.dtype(dtype)
    if caller is None or caller.library == "numba":
        return cuda.device_array(shape, dtype, stream=stream())
    if caller.library == "cupy":
        made = sys.modules["cupy"].empty(shape, dtype)
    else:
        torch = sys.modules["torch"]
        made = torch.empty(shape, dtype=_TORCH_DTYPES[dtype.char](torch), device=caller.device)
    view = as_device_array(made)
    caller.owners[id(view)] = (view, made)
    return view


_TORCH_DTYPES = {
    "f": lambda torch: torch.float32,
    "d": lambda torch: torch.float64,
    "l": lambda torch: torch.int64,
    "q": lambda torch: torch.int64,
    "i": lambda torch: torch.int32,
}


def to_device(host: np.ndarray):
    """A device copy of a host array, on the caller's stream and from its pool."""
    dst = device_array(host.shape, host.dtype)
    if host.size:
        dst.copy_to_device(host, stream=stream())
    return dst


def copy(src, dst) -> None:
    """``dst[...] = src`` for two device arrays of one shape (C-contiguous), on the stream."""
    dst.copy_to_device(src, stream=stream())


def owned(result):
    """The caller's library's array behind a result that :func:`device_array` made, or
    None (a view made otherwise: the caller's library wraps it)."""
    caller = _CALLER.get()
    hit = None if caller is None else caller.owners.get(id(result))
    return hit[1] if hit is not None and hit[0] is result else None


def _simulated_view(x):
    """Under the simulator "device" memory is host memory: view the interface's pointer."""
    FakeCUDAArray = fake_array_type()  # noqa: N806

    iface = x.__cuda_array_interface__
    dtype = np.dtype(iface["typestr"])
    shape = tuple(iface["shape"])
    strides = iface.get("strides") or tuple(
        int(np.prod(shape[i + 1 :], dtype=np.int64)) * dtype.itemsize for i in range(len(shape))
    )
    if 0 in shape:
        return FakeCUDAArray(np.empty(shape, dtype))
    dims = list(zip(shape, strides, strict=True))
    span = sum((s - 1) * abs(st) for s, st in dims) + dtype.itemsize
    low = iface["data"][0] + sum((s - 1) * st for s, st in dims if st < 0)
    base = np.frombuffer((ctypes.c_char * span).from_address(low), np.uint8)
    view = np.lib.stride_tricks.as_strided(
        base[iface["data"][0] - low :].view(dtype), shape, strides
    )
    return FakeCUDAArray(view)


def is_c_contiguous(x) -> bool:
    return x.is_c_contiguous()


def empty(shape, dtype):
    return device_array(shape, dtype)


def zeros(shape, dtype):
    return to_device(np.zeros(shape, dtype))


def empty_list(shapes, dtype, zero: bool = False) -> list:
    """Arrays of ``shapes`` from the caller's pool, one by one (each the caller's own
    array when wrapped: views of one block would not keep it alive)."""
    make = zeros if zero else empty
    return [make(tuple(s), dtype) for s in shapes]


def flat(x, dtype):
    """A C-contiguous 1-D device array of ``x`` in ``dtype`` (copied on the device if needed)."""
    if np.dtype(x.dtype) != dtype or not x.is_c_contiguous():
        dst = device_array(x.shape, dtype)
        if x.size:
            threads, blocks = _shape(x.size)
            _COPY[x.ndim][blocks, threads, stream()](x, dst)
        x = dst
    return x.reshape(x.size)


@gpu_kernel
def _copy0(src, dst):
    if cuda.grid(1) == 0:
        dst[()] = src[()]


@gpu_kernel
def _copy1(src, dst):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, src.size, stride):
        dst[i] = src[i]


@gpu_kernel
def _copy2(src, dst):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    n1 = src.shape[1]
    for i in range(start, src.size, stride):
        dst[i // n1, i % n1] = src[i // n1, i % n1]


@gpu_kernel
def _copy3(src, dst):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    n1, n2 = src.shape[1], src.shape[2]
    for i in range(start, src.size, stride):
        i0, rest = i // (n1 * n2), i % (n1 * n2)
        dst[i0, rest // n2, rest % n2] = src[i0, rest // n2, rest % n2]


@gpu_kernel
def _copy4(src, dst):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    n1, n2, n3 = src.shape[1], src.shape[2], src.shape[3]
    for i in range(start, src.size, stride):
        i0, rest = i // (n1 * n2 * n3), i % (n1 * n2 * n3)
        i1, rest = rest // (n2 * n3), rest % (n2 * n3)
        dst[i0, i1, rest // n3, rest % n3] = src[i0, i1, rest // n3, rest % n3]


class _CopyKernels(dict):
    def __missing__(self, ndim):
        raise ValueError(
            f"a non-contiguous or non-float {ndim}-d device array: make it contiguous first "
            "(mlkernels converts such arrays on the device for up to 4 dimensions)"
        )


_COPY = _CopyKernels({0: _copy0, 1: _copy1, 2: _copy2, 3: _copy3, 4: _copy4})


# --------------------------------------------------------------------------------------
# Launch shape and the block reduction
# --------------------------------------------------------------------------------------


def _shape(n: int) -> tuple[int, int]:
    threads, blocks = launch_shape()
    threads = threads or THREADS
    if blocks is None:
        blocks = max(1, min(-(-n // threads), MAX_BLOCKS))
    return threads, blocks


# --------------------------------------------------------------------------------------
# Block reductions
# --------------------------------------------------------------------------------------


@register_jitable
def _add(a, b):
    return a + b


@functools.cache
def block_total(acc: str = "float64", op: str = "sum"):
    """A device function: the sum (``op="max"``: the maximum, NaN propagating) of every
    thread's ``acc`` over the block, in thread 0.

    A shared-memory tree in a fixed order (deterministic); needs ``blockDim.x`` elements of
    dynamic shared memory, blockDim.x a power of two. Ends with a barrier, so that the
    shared memory can be used again at once.
    """
    dtype = getattr(__import__("numba"), acc)
    combine = {"sum": _add, "max": maximum}[op]

    def total(value):
        sm = cuda.shared.array(0, dtype)
        tid = cuda.threadIdx.x
        sm[tid] = value
        cuda.syncthreads()
        step = cuda.blockDim.x // 2
        while step > 0:
            if tid < step:
                sm[tid] = combine(sm[tid], sm[tid + step])
            cuda.syncthreads()
            step //= 2
        t = sm[0]
        cuda.syncthreads()
        return t

    return cuda.jit(device=True)(total)


def _env() -> dict:
    return {
        "__name__": __name__,
        "cuda": cuda,
        "float64": float64,
        "math": math,
        "block_total": block_total,
        "maximum": maximum,
    }


def _elements(n_in: int, widen: bool, counter: bool) -> str:
    elems = [f"float64(x{q}[i])" if widen else f"x{q}[i]" for q in range(n_in)]
    if counter:
        elems.append("i")
    return joined([*elems, "params"])


# --------------------------------------------------------------------------------------
# map and reduce
# --------------------------------------------------------------------------------------


@functools.cache
def map(f, n_in: int, n_out: int, widen: bool = False, counter: bool = False):  # noqa: A001
    """``r = f(x0[i], ..., params)``, ``o_j[i] = r[j]``: a grid-stride loop (see ``cpu.map``)."""
    xs, os_ = names("x", n_in), names("o", n_out)
    stores = "".join(
        f"\n            if o{j} is not None:\n                o{j}[i] = r[{j}]"
        for j in range(n_out)
    )
    source = f"""
def make_map(f):
    def map_kernel({joined([*xs, "params", *os_])}):
        for i in range(cuda.grid(1), x0.size, cuda.gridsize(1)):
            r = f({_elements(n_in, widen, counter)}){stores}
    return map_kernel
"""
    return gpu_kernel(codegen.build(source, "make_map", _env())(f))


@functools.cache
def reduce(f, n_in: int, k: int, n_out: int, acc: str, widen: bool):
    """``cpu.reduce`` on the GPU: each thread sums its elements' ``r[0:k]``, each block its
    threads' sums into ``partials[block, q]`` (a fixed tree: deterministic), and
    :func:`combine` adds the blocks in order."""
    xs, os_ = names("x", n_in), names("o", n_out)
    zero = "0.0" if acc == "float64" else "0"
    stores = "".join(
        f"\n            if o{j} is not None:\n                o{j}[i] = r[{j}]"
        + (" * grad_scale" if j >= k else "")
        for j in range(n_out)
    )
    sums = "".join(f"\n            a{q} += r[{q}]" for q in range(k))
    blocks = "".join(
        f"\n            t = block({f'a{q}'})\n            if cuda.threadIdx.x == 0:\n"
        f"                partials[cuda.blockIdx.x, {q}] = t"
        for q in range(k)
    )
    init = "".join(f"        a{q} = {zero}\n" for q in range(k))
    source = f"""
def make_reduce(f, block):
    def reduce_kernel({joined([*xs, "params", "grad_scale", *os_, "partials"])}):
{init}\
        for i in range(cuda.grid(1), x0.size, cuda.gridsize(1)):
            r = f({_elements(n_in, widen, False)}){stores}{sums}
        if partials is not None:{blocks}
    return reduce_kernel
"""
    return gpu_kernel(codegen.build(source, "make_reduce", _env())(f, block_total(acc)))


@functools.cache
def combine(final, acc: str = "float64"):
    """One block: ``partials[:, q]`` summed in a fixed order into ``total[q]``; then, for a
    finaliser ``final``, ``out, dfac = final(total[0] * scale)`` (a loss's value and the factor
    of its gradient)."""
    block = block_total(acc)
    zero = 0.0 if acc == "float64" else 0

    def kernel(partials, scale, total, out, dfac):
        tid = cuda.threadIdx.x
        for q in range(partials.shape[1]):
            a = zero
            for i in range(tid, partials.shape[0], cuda.blockDim.x):
                a += partials[i, q]
            t = block(a)
            if tid == 0:
                total[q] = t
        if out is not None:
            if tid == 0:
                v, d = final(total[0] * scale)
                out[()] = v
                dfac[0] = d

    return gpu_kernel(kernel)


@gpu_kernel
def _rescale(g, dfac):
    d = dfac[0]
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        g[i] *= d


# --------------------------------------------------------------------------------------
# Loss terms summed over the classes along axis 1
# --------------------------------------------------------------------------------------


@functools.cache
def classes_dense(term, widen: bool):
    """Per-sample sums over the classes of (n, C, R) arrays; a thread per sample."""
    block = block_total()
    elem = float64 if widen else as_is

    def kernel(y, x, params, grad_scale, out, gout, partials):
        n, c, r = x.shape
        acc = 0.0
        for j in range(cuda.grid(1), n * r, cuda.gridsize(1)):
            i = j // r
            q = j - i * r
            s = 0.0
            for k in range(c):
                v, g = term(elem(y[i, k, q]), elem(x[i, k, q]), params)
                s += v
                if gout is not None:
                    gout[i, k, q] = g * grad_scale
            if out is not None:
                out[i, q] = s
            acc += s
        if partials is not None:
            t = block(acc)
            if cuda.threadIdx.x == 0:
                partials[cuda.blockIdx.x, 0] = t

    return gpu_kernel(kernel)


@functools.cache
def classes_index(term):
    """Per-sample terms of one-hot labels given by index; a target outside [-C, C) gives NaN."""
    block = block_total()

    def kernel(t, x, params, grad_scale, out, gout, partials):
        n, c, r = x.shape
        acc = 0.0
        for j in range(cuda.grid(1), n * r, cuda.gridsize(1)):
            i = j // r
            q = j - i * r
            k = t[i, q]
            if k < 0:
                k += c
            inside = k >= 0 and k < c
            v = math.nan
            g = math.nan
            if inside:
                v, g = term(1.0, float64(x[i, k, q]), params)
            if gout is not None:
                for kk in range(c):
                    gout[i, kk, q] = 0.0
                if inside:
                    gout[i, k, q] = g * grad_scale
            if out is not None:
                out[i, q] = v
            acc += v
        if partials is not None:
            tot = block(acc)
            if cuda.threadIdx.x == 0:
                partials[cuda.blockIdx.x, 0] = tot

    return gpu_kernel(kernel)


# --------------------------------------------------------------------------------------
# rows and cols
# --------------------------------------------------------------------------------------


@functools.cache
def rows(op, n_in: int, n_feat: int):
    """A row operation (see ``cpu.rows``), a block per row.

    Thread ``t`` of the block takes the elements ``t, t + T, ...`` of the row (adjacent
    threads read adjacent elements: coalesced) and reduces them with ``op.part``; the block
    merges the ``op.k``-float states in a shared-memory tree with ``op.merge`` (a fixed
    order: deterministic), and every thread writes its elements with ``op.emit``. Needs
    ``op.k * blockDim.x`` float64 of dynamic shared memory; blockDim.x a power of two.
    """
    k = op.k
    xs, ws = names("x", n_in), names("w", n_feat)
    mine = joined(f"sm[{q} * nt + t]" for q in range(k))
    theirs = joined(f"sm[{q} * nt + u]" for q in range(k))
    source = f"""
def make_rows(part, merge, emit, n_stats):
    def rows_kernel({joined([*xs, *ws, "params", "out", "stats"])}):
        sm = cuda.shared.array(0, float64)
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        feats = ({joined(f"{w}[t::nt]" for w in ws)}{"," if n_feat == 1 else ""})
        for i in range(cuda.blockIdx.x, x0.shape[0], cuda.gridDim.x):
            row = ({joined(f"{x}[i, t::nt]" for x in xs)},)
            outs = out[i, t::nt]
            own = part(row, feats, params, outs)
            for q in range({k}):
                sm[q * nt + t] = own[q]
            cuda.syncthreads()
            step = nt // 2
            while step > 0:
                if t < step:
                    u = t + step
                    merged = merge(({mine},), ({theirs},))
                    for q in range({k}):
                        sm[q * nt + t] = merged[q]
                cuda.syncthreads()
                step //= 2
            state = ({joined(f"sm[{q} * nt]" for q in range(k))},)
            s = emit(row, feats, params, own, state, outs)
            if stats is not None and t == 0:
                for q in range(n_stats):
                    stats[i, q] = s[q]
            cuda.syncthreads()  # the next row reuses the shared memory
    return rows_kernel
"""
    make = codegen.build(source, "make_rows", _env())
    return gpu_kernel(make(op.part, op.merge, op.emit, op.stats))


@functools.cache
def cols_push(op, n_in: int):
    """Chunk states of a column reduction (see ``cpu.cols_reduce``): a thread per (chunk,
    column); adjacent threads read adjacent columns, so the loads coalesce."""
    xs = names("x", n_in)
    source = f"""
def make_cols_push(push):
    def cols_push_kernel({joined([*xs, "params", "parts"])}):
        ins = ({joined(xs)},)
        n, c = x0.shape
        chunks = parts.shape[0]
        size = (n + chunks - 1) // chunks
        for t in range(cuda.grid(1), chunks * c, cuda.gridsize(1)):
            p = t // c
            j = t - p * c
            acc_p = parts[p]
            for q in range(acc_p.shape[0]):
                acc_p[q, j] = 0.0
            k = 0
            for r in range(p * size, min(n, (p + 1) * size)):
                k += 1
                push(acc_p, ins, r, k, j, j + 1, params)
    return cols_push_kernel
"""
    return gpu_kernel(codegen.build(source, "make_cols_push", _env())(op.push))


@functools.cache
def cols_merge(op):
    """Merge the chunk states in chunk order and finalise: a thread per column."""
    merge, final = op.merge, op.final

    def kernel(n, params, parts, acc):
        chunks = parts.shape[0]
        c = acc.shape[1]
        size = (n + chunks - 1) // chunks
        for j in range(cuda.grid(1), c, cuda.gridsize(1)):
            for q in range(acc.shape[0]):
                acc[q, j] = 0.0
            m = 0
            for p in range(chunks):
                m_p = max(0, min(n, (p + 1) * size) - p * size)
                if m_p > 0:
                    merge(acc, m, parts[p], m_p, j)
                    m += m_p
            final(acc, n, params, j)

    return gpu_kernel(kernel)


@functools.cache
def cols_emit(op, n_in: int, n_feat: int):
    """``r = op.emit(acc, ins, feats, params, i, j)`` into the outputs, a thread per element."""
    xs, ws, os_ = names("x", n_in), names("w", n_feat), names("o", op.outputs)
    stores = "".join(
        f"\n            if o{q} is not None:\n                o{q}[i, j] = r[{q}]"
        for q in range(op.outputs)
    )
    source = f"""
def make_cols_emit(emit):
    def cols_emit_kernel({joined([*xs, *ws, "acc", "params", *os_])}):
        ins = ({joined(xs)},)
        feats = ({joined(ws)}{"," if n_feat == 1 else ""})
        n, c = x0.shape
        for t in range(cuda.grid(1), n * c, cuda.gridsize(1)):
            i = t // c
            j = t - i * c
            r = emit(acc, ins, feats, params, i, j){stores}
    return cols_emit_kernel
"""
    return gpu_kernel(codegen.build(source, "make_cols_emit", _env())(op.emit))


# --------------------------------------------------------------------------------------
# foreach, pairwise, by_label
# --------------------------------------------------------------------------------------


#: Elements per chunk of a foreach launch on the GPU: a block's share of the work, small
#: enough that a list of a few large arrays still fills the device.
FOREACH_CHUNK = 1 << 12


@functools.cache
def foreach(f, n_cols: int, n_read: int, stores: tuple, kinds: tuple):
    """``cpu.foreach`` on the GPU: a block per chunk of the table (grid-stride over the
    chunks), its threads striding through the chunk; each chunk's results go through the
    block's tree (:func:`block_total`, by kind) into ``parts[chunk, q]``, and
    :func:`foreach_groups` combines each group's chunks in order."""
    from mlkernels._core.cpu import foreach_body

    init, body = foreach_body(
        n_read,
        stores,
        kinds,
        lambda q: f"load(table[g, {q}], i, refs[{q}])",
        lambda c, v: f"store(table[g, {c}], i, refs[{c}], {v})",
        "            ",
    )
    blocks = "".join(
        f"            t = block_{kind}(a{q})\n            if cuda.threadIdx.x == 0:\n"
        f"                parts[c, {q}] = t\n"
        for q, kind in enumerate(kinds)
    )
    source = f"""
def make_foreach(f, block_sum, block_max):
    def foreach_kernel(chunks, table, refs, params, coef, parts):
        s = 1.0 if coef is None else coef[0]
        for c in range(cuda.blockIdx.x, chunks.shape[0], cuda.gridDim.x):
            g, lo, hi = chunks[c, 0], chunks[c, 1], chunks[c, 2]
{init}\
            for i in range(lo + cuda.threadIdx.x, hi, cuda.blockDim.x):
{body}\
{blocks}\
    return foreach_kernel
"""
    if simulator():
        env = {**_env(), "load": pointers.sim_load, "store": pointers.sim_store}
    else:
        env = {**_env(), "load": pointers.load, "store": pointers.store}
    make = codegen.build(source, "make_foreach", env)
    return gpu_kernel(make(f, block_total(), block_total("float64", "max")))


@functools.cache
def foreach_groups(kinds: tuple):
    """``totals[g, q]``: the chunks ``starts[g]:starts[g + 1]`` of ``parts[:, q]`` combined
    in order by ``kinds[q]``, a thread per group (deterministic)."""
    from mlkernels._core.cpu import FOREACH_KINDS

    combine = "".join(
        f"""
            t = {FOREACH_KINDS[kind][0]}
            for c in range(starts[g], starts[g + 1]):
                v = parts[c, {q}]
                t = {FOREACH_KINDS[kind][1].format(a="t", v="v")}
            totals[g, {q}] = t"""
        for q, kind in enumerate(kinds)
    )
    source = f"""
def make_foreach_groups():
    def foreach_groups_kernel(parts, starts, totals):
        for g in range(cuda.grid(1), totals.shape[0], cuda.gridsize(1)):{combine}
    return foreach_groups_kernel
"""
    return gpu_kernel(codegen.build(source, "make_foreach_groups", _env())())


@functools.cache
def pairwise(op, side: int):
    """``cpu.pairwise`` on the GPU, tiled: a block of ``side x side`` threads computes a
    tile of ``out``, staging ``side`` coordinates of ``side`` rows of A and of B at a time
    in shared memory (each element read from memory once per tile, not once per pair);
    grid-stride over the tiles."""
    init, step, end = op.init, op.step, op.end

    def kernel(a, b, params, out):
        sa = cuda.shared.array((side, side), float64)
        sb = cuda.shared.array((side, side), float64)
        n, d = a.shape
        m = b.shape[0]
        tx = cuda.threadIdx.x % side
        ty = cuda.threadIdx.x // side
        tiles_j = (m + side - 1) // side
        tiles = ((n + side - 1) // side) * tiles_j
        for tile in range(cuda.blockIdx.x, tiles, cuda.gridDim.x):
            i = (tile // tiles_j) * side + ty
            j = (tile % tiles_j) * side + tx
            acc = init
            for q0 in range(0, d, side):
                # thread (ty, tx) stages A[row ty of the tile, q0 + tx] and B[row tx, q0 + ty]
                ia = (tile // tiles_j) * side + ty
                jb = (tile % tiles_j) * side + tx
                sa[ty, tx] = float64(a[ia, q0 + tx]) if ia < n and q0 + tx < d else 0.0
                sb[tx, ty] = float64(b[jb, q0 + ty]) if jb < m and q0 + ty < d else 0.0
                cuda.syncthreads()
                for q in range(min(side, d - q0)):
                    acc = step(acc, sa[ty, q], sb[tx, q])
                cuda.syncthreads()
            if i < n and j < m:
                out[i, j] = end(acc, params)

    return gpu_kernel(kernel)


@gpu_kernel
def _by_label_push(x, labels, parts, cparts):
    """A thread per (chunk, column): the chunk's rows added into its partial sums."""
    n, d = x.shape
    chunks = parts.shape[0]
    size = (n + chunks - 1) // chunks
    for t in range(cuda.grid(1), chunks * d, cuda.gridsize(1)):
        p = t // d
        j = t - p * d
        for lab in range(parts.shape[1]):
            parts[p, lab, j] = 0.0
            if j == 0:
                cparts[p, lab] = 0
        for r in range(p * size, min(n, (p + 1) * size)):
            parts[p, labels[r], j] += float64(x[r, j])
            if j == 0:
                cparts[p, labels[r]] += 1


@gpu_kernel
def _by_label_merge(parts, cparts, sums, counts):
    """A thread per (label, column): the chunks' partials added in chunk order."""
    chunks, n_labels, d = parts.shape
    for t in range(cuda.grid(1), n_labels * d, cuda.gridsize(1)):
        lab = t // d
        j = t - lab * d
        s = 0.0
        c = 0
        for p in range(chunks):
            s += parts[p, lab, j]
            c += cparts[p, lab]
        sums[lab, j] = s
        if j == 0:
            counts[lab] = c


# --------------------------------------------------------------------------------------
# Launchers (the same arguments as cpu.py's)
# --------------------------------------------------------------------------------------


def run_map(f, ins, params, outs, widen=False, counter=False):
    n = ins[0].size
    if n:
        threads, blocks = _shape(n)
        map(f, len(ins), len(outs), widen, counter)[blocks, threads, stream()](*ins, params, *outs)


def _partials(n, k, want_total, acc):
    threads, blocks = _shape(n)
    partials = device_array((blocks, k), np.dtype(acc)) if want_total else None
    return threads, blocks, partials


def run_reduce(f, ins, params, grad_scale, outs, k, want_total, acc="float64", widen=True):
    """The reduction's kernels; returns the (k,) total on the device (or None)."""
    threads, blocks, partials = _partials(ins[0].size, k, want_total, acc)
    shared = threads * 8 if want_total else 0
    kernel = reduce(f, len(ins), k, len(outs), acc, widen)
    kernel[blocks, threads, stream(), shared](*ins, params, grad_scale, *outs, partials)
    if partials is None:
        return None
    total = device_array(k, np.dtype(acc))
    combine(None, acc)[1, threads, stream(), threads * 8](partials, 1.0, total, None, None)
    return total


def run_classes(pattern, term, a, b, params, grad_scale, out, gout, want_total, widen=True):
    """Returns the per-block partials (blocks, 1), finished by :func:`finish`."""
    threads, blocks, partials = _partials(b.shape[0] * b.shape[2], 1, want_total, "float64")
    kernel = classes_dense(term, widen) if pattern == "classes_dense" else classes_index(term)
    kernel[blocks, threads, stream(), threads * 8](a, b, params, grad_scale, out, gout, partials)
    return partials


def finish(total, scale, final, dtype):
    """Finalise a loss's total (k = 1) on the device: a 0-d array (no synchronisation)."""
    partials = total.reshape(total.shape[0], -1) if total.ndim == 2 else total.reshape(1, 1)
    threads, _ = _shape(partials.shape[0])
    out = device_array((), dtype)
    dfac = device_array(1, np.float64)
    summed = device_array(1, np.float64)
    combine(final)[1, threads, stream(), threads * 8](partials, scale, summed, out, dfac)
    return out, dfac


def rescale(gout, dfac):
    g = gout.reshape(gout.size)
    threads, blocks = _shape(g.size)
    _rescale[blocks, threads, stream()](g, dfac)


def run_rows(op, ins, feats, params, out, stats):
    threads, blocks = launch_shape()
    threads = threads or THREADS
    blocks = blocks or max(1, min(ins[0].shape[0], MAX_BLOCKS * 2))
    if ins[0].size:
        kernel = rows(op, len(ins), len(feats))
        kernel[blocks, threads, stream(), op.k * threads * 8](*ins, *feats, params, out, stats)


def col_chunks(n: int, c: int, k: int) -> int:
    """Row chunks of a column reduction: enough (chunk, column) threads to fill the GPU,
    and partial states (chunks x k x c float64) of at most 64 MB."""
    return max(1, min(n, -(-65536 // max(1, c)), (8 << 20) // max(1, k * c)))


def run_cols(op, ins, feats, params, outs):
    """Column statistics (op.k, c) of (n, c) data, then the elementwise pass (if any
    output is asked); returns the statistics (left on the device)."""
    n, c = ins[0].shape
    chunks = col_chunks(n, c, op.k)
    parts = device_array((chunks, op.k, c), np.float64)
    acc = device_array((op.k, c), np.float64)
    if c:
        threads, blocks = _shape(chunks * c)
        cols_push(op, len(ins))[blocks, threads, stream()](*ins, params, parts)
        threads, blocks = _shape(c)
        cols_merge(op)[blocks, threads, stream()](n, params, parts, acc)
    if any(o is not None for o in outs) and ins[0].size:
        threads, blocks = _shape(ins[0].size)
        cols_emit(op, len(ins), len(feats))[blocks, threads, stream()](
            *ins, *feats, acc, params, *outs
        )
    return acc


def overlap(a, b) -> str:
    """How two device arrays share memory (see ``cpu.overlap``), from their pointer ranges."""
    (a0, a1), (b0, b1) = _extent(a), _extent(b)
    if a0 >= b1 or b0 >= a1 or a0 == a1 or b0 == b1:
        return ""
    same = a0 == b0 and tuple(a.shape) == tuple(b.shape) and tuple(a.strides) == tuple(b.strides)
    return "same" if same else "partial"


def _extent(x) -> tuple[int, int]:
    """The byte range [lo, hi) of a device array's elements."""
    if simulator():
        host = x._ary if hasattr(x, "_ary") else np.asarray(x)
        if not host.size:
            return 0, 0
        lo = host.__array_interface__["data"][0]
        lo += sum((s - 1) * st for s, st in zip(host.shape, host.strides, strict=True) if st < 0)
        hi = lo + sum(abs(s - 1) * abs(st) for s, st in zip(host.shape, host.strides, strict=True))
        return lo, hi + host.itemsize
    iface = x.__cuda_array_interface__
    ptr = iface["data"][0]
    if x.size == 0:
        return ptr, ptr
    itemsize = np.dtype(iface["typestr"]).itemsize
    strides = iface.get("strides") or tuple(
        int(np.prod(x.shape[i + 1 :], dtype=np.int64)) * itemsize for i in range(x.ndim)
    )
    lo = ptr + sum((s - 1) * st for s, st in zip(x.shape, strides, strict=True) if st < 0)
    hi = ptr + sum((s - 1) * st for s, st in zip(x.shape, strides, strict=True) if st > 0)
    return lo, hi + itemsize


#: Chunk tables already on the device, by the arrays' addresses and sizes (an optimiser's
#: parameters and state are the same at every step; new gradients make a new table, an
#: upload on the stream, without waiting for it).
_TABLES: dict[tuple, tuple] = {}


def _foreach_tables(table: np.ndarray, sizes: list[int]) -> tuple:
    """The device copies of ``(table, chunks, starts)`` for these arrays (cached)."""
    from mlkernels._core.cpu import foreach_chunks

    # by stream too: a copy is ordered before the kernels of its own stream only, and
    # waiting for it would be a host synchronisation at every step with new gradients
    key = (table.tobytes(), tuple(sizes), launch_shape(), str(stream()))
    hit = _TABLES.get(key)
    if hit is None:
        chunks, starts = foreach_chunks(tuple(sizes), FOREACH_CHUNK)
        hit = (
            cuda.to_device(table, stream=stream()),
            cuda.to_device(chunks, stream=stream()),
            cuda.to_device(starts, stream=stream()),
            chunks.shape[0],
        )
        if len(_TABLES) >= 256:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = hit
    return hit


@functools.cache
def _ref(dtype: np.dtype):
    """A 0-size device array of ``dtype``: what tells a foreach kernel a column's dtype."""
    return cuda.device_array(0, dtype)


def run_foreach(f, columns, n_read, stores, kinds, params, coef=None):
    """``foreach`` over the groups of ``columns`` of device arrays (see
    ``cpu.run_foreach``); returns the (G, len(kinds)) float64 totals on the device, or
    None without ``kinds``."""
    groups = list(zip(*columns, strict=True))
    sizes = [g[0].size for g in groups]
    refs = tuple(_ref(np.dtype(col[0].dtype)) for col in columns)
    table = np.array([[pointers.address(a) for a in g] for g in groups], np.int64)
    table_d, chunks_d, starts_d, m = _foreach_tables(table, sizes)
    k = len(kinds)
    totals = device_array((len(groups), k), np.float64) if k else None
    threads, blocks = launch_shape()
    threads = threads or THREADS
    blocks = blocks or max(1, min(m, MAX_BLOCKS))
    parts = device_array((max(m, 1), k), np.float64) if k else None
    if m:
        kernel = foreach(f, len(columns), n_read, tuple(stores), tuple(kinds))
        kernel[blocks, threads, stream(), threads * 8](chunks_d, table_d, refs, params, coef, parts)
    if k:
        if not m:
            parts = to_device(np.zeros((1, k)))
        t, b = _shape(len(groups))
        foreach_groups(tuple(kinds))[b, t, stream()](parts, starts_d, totals)
    return totals


@gpu_kernel
def _global_norm(totals, max_norm, norm, coef):
    if cuda.grid(1) == 0:
        t = 0.0
        for g in range(totals.shape[0]):
            t += totals[g, 0]
        r = math.sqrt(t)
        norm[()] = r
        q = max_norm / (r + 1e-6)
        coef[0] = q if q < 1.0 else 1.0


def run_global_norm(totals, max_norm, dtype):
    """``cpu.run_global_norm`` on the device, one thread (no host round-trip): the 0-d
    norm (of dtype) and the (1,) float64 factor, left on the device."""
    norm, coef = device_array((), dtype), device_array(1, np.float64)
    _global_norm[1, 1, stream()](totals, float(max_norm), norm, coef)
    return norm, coef


@gpu_kernel
def _norms(totals, out):
    for g in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[g] = math.sqrt(totals[g, 0])


def run_norms(totals, dtype):
    """Each array's norm from its Σ g² (``totals`` (G, 1)): a (G,) device array of dtype."""
    out = device_array(totals.shape[0], dtype)
    threads, blocks = _shape(out.shape[0])
    _norms[blocks, threads, stream()](totals, out)
    return out


def run_pairwise(op, a, b, params, out):
    threads, blocks = launch_shape()
    side = 1 << (int(math.log2(threads or THREADS)) // 2)  # the largest square tile that fits
    tiles = -(-a.shape[0] // side) * -(-b.shape[0] // side)
    if out.size:
        blocks = blocks or max(1, min(tiles, MAX_BLOCKS))
        pairwise(op, side)[blocks, side * side, stream()](a, b, params, out)


def run_by_label(x, labels, n_labels):
    from mlkernels._core.cpu import label_chunks

    n, d = x.shape
    chunks = label_chunks(n, n_labels, d)
    parts = device_array((chunks, n_labels, d), np.float64)
    cparts = device_array((chunks, n_labels), np.int64)
    sums = device_array((n_labels, d), np.float64)
    counts = device_array(n_labels, np.int64)
    if d and n_labels:
        threads, blocks = _shape(chunks * d)
        _by_label_push[blocks, threads, stream()](x, labels, parts, cparts)
        threads, blocks = _shape(n_labels * d)
        _by_label_merge[blocks, threads, stream()](parts, cparts, sums, counts)
    return sums, counts


# --------------------------------------------------------------------------------------
# Primitives without a library at hand (see ``primitives``): they run under the simulator
# --------------------------------------------------------------------------------------


@cuda.jit(device=True)
def _dot_step(acc, a, b):
    return acc + a * b


@cuda.jit(device=True)
def _dot_end(acc, params):
    return acc


def _pair_op():
    from mlkernels._core.templates import PairOp

    return PairOp(0.0, _dot_step, _dot_end)


DOT = _pair_op()

#: Chunks of a scan: each summed by one thread, the chunk sums scanned by one thread.
SCAN_CHUNKS = 1024


@gpu_kernel
def _chunk_sums(x, size, sums):
    for c in range(cuda.grid(1), sums.size, cuda.gridsize(1)):
        s = 0.0
        for i in range(c * size, min(x.size, (c + 1) * size)):
            s += float64(x[i])
        sums[c] = s


@gpu_kernel
def _scan_sums(sums):
    if cuda.grid(1) == 0:
        s = 0.0
        for c in range(sums.size):
            t = sums[c]
            sums[c] = s  # exclusive: what comes before chunk c
            s += t


@gpu_kernel
def _chunk_scan(x, size, sums, out):
    for c in range(cuda.grid(1), sums.size, cuda.gridsize(1)):
        s = sums[c]
        for i in range(c * size, min(x.size, (c + 1) * size)):
            s += float64(x[i])
            out[i] = s


def cumsum(x):
    """Running sums of a 1-D device array: chunk sums, their exclusive scan, then each
    chunk's running sum from its offset (float64 throughout; deterministic)."""
    x = flat(x, np.dtype(x.dtype))
    out = device_array(x.size, np.dtype(x.dtype))
    if not x.size:
        return out
    chunks = min(SCAN_CHUNKS, x.size)
    size = -(-x.size // chunks)
    chunks = -(-x.size // size)
    sums = device_array(chunks, np.float64)
    threads, blocks = _shape(chunks)
    _chunk_sums[blocks, threads, stream()](x, size, sums)
    _scan_sums[1, 1, stream()](sums)
    _chunk_scan[blocks, threads, stream()](x, size, sums, out)
    return out


@cuda.jit(device=True)
def _before(ka, ia, kb, ib):
    """(ka, ia) sorts before (kb, ib): keys ascending with NaN last, ties by index."""
    if ka != ka:
        return kb != kb and ia < ib
    if kb != kb:
        return True
    return ka < kb or (ka == kb and ia < ib)


@gpu_kernel
def _bitonic_step(keys, idx, j, k):
    for i in range(cuda.grid(1), keys.size, cuda.gridsize(1)):
        partner = i ^ j
        if partner > i:
            up = (i & k) == 0
            a_first = _before(keys[i], idx[i], keys[partner], idx[partner])
            if a_first != up:
                keys[i], keys[partner] = keys[partner], keys[i]
                idx[i], idx[partner] = idx[partner], idx[i]


@gpu_kernel
def _pad_keys(x, keys, idx):
    for i in range(cuda.grid(1), keys.size, cuda.gridsize(1)):
        keys[i] = float64(x[i]) if i < x.size else math.nan
        idx[i] = i


def argsort(x):
    """Stable argsort of a 1-D device array: a bitonic network over (key, index) pairs
    padded to a power of two (the padding sorts last: NaN keys, larger indices)."""
    x = flat(x, np.dtype(x.dtype))
    n = x.size
    if not n:
        return device_array(0, np.int64)
    size = 1 << (n - 1).bit_length()
    keys = device_array(size, np.float64)
    idx = device_array(size, np.int64)
    threads, blocks = _shape(size)
    _pad_keys[blocks, threads, stream()](x, keys, idx)
    k = 2
    while k <= size:
        j = k // 2
        while j:
            _bitonic_step[blocks, threads, stream()](keys, idx, j, k)
            j //= 2
        k *= 2
    return idx[:n]


@gpu_kernel
def _chol_diag(a, low, j):
    if cuda.grid(1) == 0:
        s = float64(a[j, j])
        for k in range(j):
            s -= float64(low[j, k]) * float64(low[j, k])
        low[j, j] = math.sqrt(s) if s > 0 else math.nan


@gpu_kernel
def _chol_column(a, low, j):
    n = a.shape[0]
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        if i > j:
            s = float64(a[i, j])
            for k in range(j):
                s -= float64(low[i, k]) * float64(low[j, k])
            low[i, j] = s / float64(low[j, j])
        elif i < j:
            low[i, j] = 0.0


def cholesky(a):
    """Lower Cholesky factor, a column at a time (its diagonal, then the column below)."""
    n = a.shape[0]
    low = device_array((n, n), np.dtype(a.dtype))
    threads, blocks = _shape(n)
    for j in range(n):
        _chol_diag[1, 1, stream()](a, low, j)
        _chol_column[blocks, threads, stream()](a, low, j)
    return low


# --------------------------------------------------------------------------------------
# Metrics: finalisers, moments, pair counts, ranks, triangular solves, ranked gains
# --------------------------------------------------------------------------------------


def _scalars(out, results):
    """0-d views of a (results,) device array: a metric's value(s)."""
    if results == 1:
        return out.reshape(())
    return tuple(out[q : q + 1].reshape(()) for q in range(results))


@functools.cache
def final_kernel(final, results: int):
    """One thread: ``out[q] = final(total, n, params)[q]`` (a metric from its sums)."""
    source = f"""
def make_final(final):
    def final_kernel(total, n, params, out):
        if cuda.grid(1) == 0:
            r = final(total, n, params)
{"".join(f"            out[{q}] = r[{q}]" + chr(10) for q in range(results))}\
    return final_kernel
"""
    return gpu_kernel(codegen.build(source, "make_final", _env())(final))


def run_final(final, total, n, params, dtype, results):
    out = device_array((results,), dtype)
    final_kernel(final, results)[1, 1, stream()](total, float(n), params, out)
    return _scalars(out, results)


@register_jitable
def _chan(c, mean, m2, c_b, mean_b, m2_b):
    """Chan's merge of two (count, mean, M2) states."""
    tot = c + c_b
    if c_b == 0:
        return c, mean, m2
    d = mean_b - mean
    f = c_b / tot
    return tot, mean + d * f, m2 + m2_b + d * d * c * f


@functools.cache
def moments(f, n_in: int):
    """``cpu.moments`` on the GPU: Welford per thread over its grid-stride elements, a
    fixed shared-memory tree of Chan merges per block into ``partials[block]`` (count,
    mean, M2, Σ e), and :func:`merge_moments` merges the blocks in order."""
    xs = names("x", n_in)
    elements = joined([*(f"float64({x}[i])" for x in xs), "params"])
    source = f"""
def make_moments(f):
    def moments_kernel({joined([*xs, "params", "partials"])}):
        c = 0.0
        mean = 0.0
        m2 = 0.0
        es = 0.0
        for i in range(cuda.grid(1), x0.size, cuda.gridsize(1)):
            r = f({elements})
            c += 1.0
            d = r[0] - mean
            mean += d / c
            m2 += d * (r[0] - mean)
            es += r[1]
        sm = cuda.shared.array(0, float64)
        tid = cuda.threadIdx.x
        bd = cuda.blockDim.x
        sm[tid] = c
        sm[bd + tid] = mean
        sm[2 * bd + tid] = m2
        sm[3 * bd + tid] = es
        cuda.syncthreads()
        step = bd // 2
        while step > 0:
            if tid < step:
                o = tid + step
                c, mean, m2 = chan(sm[tid], sm[bd + tid], sm[2 * bd + tid],
                                   sm[o], sm[bd + o], sm[2 * bd + o])
                sm[tid] = c
                sm[bd + tid] = mean
                sm[2 * bd + tid] = m2
                sm[3 * bd + tid] += sm[3 * bd + o]
            cuda.syncthreads()
            step //= 2
        if tid == 0:
            b = cuda.blockIdx.x
            partials[b, 0] = sm[0]
            partials[b, 1] = sm[bd]
            partials[b, 2] = sm[2 * bd]
            partials[b, 3] = sm[3 * bd]
    return moments_kernel
"""
    env = {**_env(), "chan": _chan}
    return gpu_kernel(codegen.build(source, "make_moments", env)(f))


@gpu_kernel
def merge_moments(partials, total):
    """One thread: the blocks' states merged in order (Chan) into total (4,)."""
    if cuda.grid(1) == 0:
        c = 0.0
        mean = 0.0
        m2 = 0.0
        es = 0.0
        for b in range(partials.shape[0]):
            c, mean, m2 = _chan(c, mean, m2, partials[b, 0], partials[b, 1], partials[b, 2])
            es += partials[b, 3]
        total[0] = c
        total[1] = mean
        total[2] = m2
        total[3] = es


def run_moments(f, ins, params):
    threads, blocks = _shape(ins[0].size)
    partials = device_array((blocks, 4), np.float64)
    moments(f, len(ins))[blocks, threads, stream(), 4 * threads * 8](*ins, params, partials)
    total = device_array(4, np.float64)
    merge_moments[1, 1, stream()](partials, total)
    return total


#: Cells of a pair-count table counted in shared memory (per block, then added to the
#: table): 8 KB of int64; larger tables count with global atomics.
SHARED_CELLS = 1024


@gpu_kernel
def _zero_counts(cells, bad):
    for i in range(cuda.grid(1), cells.size, cuda.gridsize(1)):
        cells[i] = 0
    if cuda.grid(1) < 2:
        bad[cuda.grid(1)] = 0


@gpu_kernel
def _pair_counts(a, b, table, bad, shared):
    """Integer atomics (exact, in any order: deterministic): into a per-block table in
    shared memory when ``shared``, else into the table itself."""
    ca, cb = table.shape
    sm = cuda.shared.array(0, numba_int64)
    tid = cuda.threadIdx.x
    if shared:
        for c in range(tid, ca * cb, cuda.blockDim.x):
            sm[c] = 0
        cuda.syncthreads()
    wrong_a = 0
    wrong_b = 0
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        u = numba_int64(a[i])
        v = numba_int64(b[i])
        ok_u = u >= 0 and u < ca
        ok_v = v >= 0 and v < cb
        if ok_u and ok_v:
            if shared:
                cuda.atomic.add(sm, u * cb + v, 1)
            else:
                cuda.atomic.add(table, (u, v), 1)
        else:
            wrong_a += 0 if ok_u else 1
            wrong_b += 0 if ok_v else 1
    if wrong_a:
        cuda.atomic.add(bad, 0, wrong_a)
    if wrong_b:
        cuda.atomic.add(bad, 1, wrong_b)
    if shared:
        cuda.syncthreads()
        for c in range(tid, ca * cb, cuda.blockDim.x):
            if sm[c]:
                cuda.atomic.add(table, (c // cb, c % cb), sm[c])


def run_pair_counts(a, b, ca, cb):
    table = device_array((ca, cb), np.int64)
    bad = device_array(2, np.int64)
    threads, blocks = _shape(max(ca * cb, 2))
    _zero_counts[blocks, threads, stream()](table.reshape(ca * cb), bad)
    if a.size:
        shared = ca * cb <= SHARED_CELLS
        threads, blocks = _shape(a.size)
        mem = ca * cb * 8 if shared else 0
        _pair_counts[blocks, threads, stream(), mem](a, b, table, bad, shared)
    return table, bad


@gpu_kernel
def _label_range(x, out):
    lo = numba_int64(0x7FFFFFFFFFFFFFFF)
    hi = -lo - 1
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = numba_int64(x[i])
        lo = min(lo, v)
        hi = max(hi, v)
    cuda.atomic.min(out, 0, lo)
    cuda.atomic.max(out, 1, hi)


def label_range(x):
    """(min, max) of a device label array as Python ints: integer atomics, then a 16-byte
    copy to the host (a synchronisation). (0, -1) when empty."""
    if not x.size:
        return 0, -1
    out = to_device(np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min], np.int64))
    threads, blocks = _shape(x.size)
    _label_range[blocks, threads, stream()](x, out)
    lo, hi = out.copy_to_host(stream=stream())
    return int(lo), int(hi)


@gpu_kernel
def _margins(table, rows, cols):
    """Row and column sums of a table (float64): a thread per row, then per column."""
    a, b = table.shape
    for t in range(cuda.grid(1), a + b, cuda.gridsize(1)):
        s = 0.0
        if t < a:
            for j in range(b):
                s += float64(table[t, j])
            rows[t] = s
        else:
            for i in range(a):
                s += float64(table[i, t - a])
            cols[t - a] = s


@functools.cache
def table_final(final):
    """One thread: ``out[0] = final(table, rows, cols, params)[0]``."""

    def kernel(table, rows, cols, params, out):
        if cuda.grid(1) == 0:
            out[0] = final(table, rows, cols, params)[0]

    return gpu_kernel(kernel)


def run_table_final(final, table, params, dtype):
    a, b = table.shape
    rows = device_array(a, np.float64)
    cols = device_array(b, np.float64)
    threads, blocks = _shape(a + b)
    _margins[blocks, threads, stream()](table, rows, cols)
    out = device_array((1,), dtype)
    table_final(final)[1, 1, stream()](table, rows, cols, params, out)
    return out.reshape(())


@gpu_kernel
def _auc_gather(y, s, w, order, keys, pos_w, neg_w):
    """Sorted position i: its score, and its weight as a positive (label 1) or a negative."""
    for i in range(cuda.grid(1), order.size, cuda.gridsize(1)):
        j = order[i]
        wt = 1.0 if w is None else float64(w[j])
        positive = float64(y[j]) == 1.0
        keys[i] = float64(s[j])
        pos_w[i] = wt if positive else 0.0
        neg_w[i] = 0.0 if positive else wt


@cuda.jit(device=True)
def _bound(keys, v, upper):
    """The first index whose key is > v (``upper``) or >= v, in ascending keys."""
    lo = 0
    hi = keys.size
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] < v or (upper and keys[mid] == v):
            lo = mid + 1
        else:
            hi = mid
    return lo


@functools.cache
def _auc_terms():
    block = block_total()

    def kernel(keys, cum, neg_w, partials):
        """Each negative's weight times (the positives' weight above it + half of that
        level with it), and the negatives' weight: partials (blocks, 2)."""
        n = keys.size
        total_pos = cum[n - 1]
        area = 0.0
        negs = 0.0
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            wn = neg_w[i]
            if wn > 0:
                v = keys[i]
                lo = _bound(keys, v, False)
                hi = _bound(keys, v, True)
                below = cum[lo - 1] if lo > 0 else 0.0
                upto = cum[hi - 1]
                area += wn * ((total_pos - upto) + 0.5 * (upto - below))
                negs += wn
        t = block(area)
        if cuda.threadIdx.x == 0:
            partials[cuda.blockIdx.x, 0] = t
        t = block(negs)
        if cuda.threadIdx.x == 0:
            partials[cuda.blockIdx.x, 1] = t

    return gpu_kernel(kernel)


@gpu_kernel
def _auc_final(total, keys, cum, out):
    """AUC = area / (P N); NaN for one class or NaN scores (sorted last)."""
    if cuda.grid(1) == 0:
        n = keys.size
        p, q = cum[n - 1], total[1]
        bad = p <= 0 or q <= 0 or keys[n - 1] != keys[n - 1]
        out[0] = math.nan if bad else total[0] / (p * q)


def run_roc_auc(y, s, w, like=None):
    """The exact ROC-AUC on the device: sort the scores (``primitives.argsort``), gather
    their labels' weights, scan the positives' (``primitives.cumsum``), then per negative
    a binary search for its tie range (:func:`_auc_terms`); blocks summed in order."""
    from mlkernels._core import primitives

    n = s.size
    order = primitives.argsort(s, like)
    keys = device_array(n, np.float64)
    pos_w = device_array(n, np.float64)
    neg_w = device_array(n, np.float64)
    threads, blocks = _shape(n)
    _auc_gather[blocks, threads, stream()](y, s, w, order, keys, pos_w, neg_w)
    cum = primitives.cumsum(pos_w, like)
    partials = device_array((blocks, 2), np.float64)
    _auc_terms()[blocks, threads, stream(), threads * 8](keys, cum, neg_w, partials)
    total = device_array(2, np.float64)
    combine(None)[1, threads, stream(), threads * 8](partials, 1.0, total, None, None)
    out = device_array((1,), np.float64)
    _auc_final[1, 1, stream()](total, keys, cum, out)
    return out.reshape(())


#: Rows of the per-thread solution scratch of mvn (at most this many threads run).
MVN_SCRATCH = 1 << 16


@gpu_kernel
def _mvn(x, mu, low, c, density, z, out):
    """A thread per point: z = L⁻¹(x - mu) by forward substitution (its row of scratch z),
    then the (log-)density."""
    n, d = x.shape
    zr = z[cuda.grid(1)]
    for p in range(cuda.grid(1), n, cuda.gridsize(1)):
        xp = x[p]
        q = 0.0
        for i in range(d):
            s = float64(xp[i]) - float64(mu[i])
            for j in range(i):
                s -= low[i, j] * zr[j]
            v = s / low[i, i]
            zr[i] = v
            q += v * v
        r = c - 0.5 * q
        out[p] = math.exp(r) if density else r


def run_mvn(x, mu, low, c, density, out):
    n, d = x.shape
    if not n:
        return
    threads, blocks = _shape(n)
    blocks = max(1, min(blocks, MVN_SCRATCH // threads))
    z = device_array((threads * blocks, max(d, 1)), np.float64)
    _mvn[blocks, threads, stream()](x, mu, low, c, density, z, out)


@cuda.jit(device=True)
def _discount(i):
    return 1.0 / math.log2(i + 2.0)


@gpu_kernel
def _ranked_gains(r, k, ideal, out):
    """A thread per row: its DCG; with ``ideal`` over the ideal DCG + 1e-9, the ideal
    rank of each entry found by counting (O(m²): no sort in a thread)."""
    n, m = r.shape
    top = min(k, m)
    for row in range(cuda.grid(1), n, cuda.gridsize(1)):
        x = r[row]
        g = 0.0
        for i in range(top):
            g += float64(x[i]) * _discount(i)
        if ideal:
            best = 0.0
            for i in range(m):
                v = x[i]
                rank = 0
                for j in range(m):
                    if x[j] > v or (x[j] == v and j < i):
                        rank += 1
                if rank < top:
                    best += float64(v) * _discount(rank)
            g = g / (best + 1e-9)
        out[row] = g


def run_ranked_gains(r, k, ideal, out):
    if r.shape[0]:
        threads, blocks = _shape(r.shape[0])
        _ranked_gains[blocks, threads, stream()](r, k, ideal, out)


@gpu_kernel
def _tied_ndcg(y, s, k, out):
    """A thread per row: scikit-learn's tie-averaged DCG of y by s, over the ideal DCG,
    each entry's position found by counting (its tie group: the entries of equal score,
    after those of higher score)."""
    n, m = y.shape
    top = min(k, m)
    for row in range(cuda.grid(1), n, cuda.gridsize(1)):
        yr, sr = y[row], s[row]
        g = 0.0
        best = 0.0
        for i in range(m):
            above = 0
            level = 0
            rank = 0
            for j in range(m):
                above += 1 if sr[j] > sr[i] else 0
                level += 1 if sr[j] == sr[i] else 0
                rank += 1 if yr[j] > yr[i] or (yr[j] == yr[i] and j < i) else 0
            disc = 0.0
            for t in range(above, min(above + level, top)):
                disc += _discount(t)
            g += yr[i] * disc / level
            if rank < top:
                best += yr[i] * _discount(rank)
        out[row] = g / best if best != 0 else 0.0


def run_tied_ndcg(y, s, k, out):
    threads, blocks = _shape(y.shape[0])
    _tied_ndcg[blocks, threads, stream()](y, s, k, out)
