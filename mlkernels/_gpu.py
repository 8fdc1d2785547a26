"""GPU kernel templates (``@cuda.jit``): the same three patterns as ``_cpu.py``, with the
same signature, so the dispatcher drives both devices with one orchestration.

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

import ctypes
import functools
import math

import numpy as np
from numba import cuda, float64

from mlkernels.config import launch_shape, simulator

is_host = False
THREADS = 256  # default threads per block
MAX_BLOCKS = 4096  # grid cap: enough to fill an H200 (132 SMs x 2048 threads) for streaming


# --------------------------------------------------------------------------------------
# Device arrays in and out
# --------------------------------------------------------------------------------------


def as_device_array(x):
    """A Numba device array viewing ``x`` (no copy): Numba, CuPy, PyTorch CUDA, ..."""
    if getattr(x, "__cuda_ndarray__", False):
        return x
    if simulator():
        return _simulated_view(x)
    return cuda.as_cuda_array(x)


def _simulated_view(x):
    """Under the simulator "device" memory is host memory: view the interface's pointer."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

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
    return cuda.device_array(shape, dtype)


def zeros(shape, dtype):
    return cuda.to_device(np.zeros(shape, dtype))


def flat(x, dtype):
    """A C-contiguous 1-D device array of ``x`` in ``dtype`` (copied on the device if needed)."""
    if np.dtype(x.dtype) != dtype or not x.is_c_contiguous():
        dst = cuda.device_array(x.shape, dtype)
        if x.size:
            threads, blocks = _shape(x.size)
            _COPY[x.ndim][blocks, threads](x, dst)
        x = dst
    return x.reshape(x.size)


@cuda.jit
def _copy0(src, dst):
    if cuda.grid(1) == 0:
        dst[()] = src[()]


@cuda.jit
def _copy1(src, dst):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, src.size, stride):
        dst[i] = src[i]


@cuda.jit
def _copy2(src, dst):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    n1 = src.shape[1]
    for i in range(start, src.size, stride):
        dst[i // n1, i % n1] = src[i // n1, i % n1]


@cuda.jit
def _copy3(src, dst):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    n1, n2 = src.shape[1], src.shape[2]
    for i in range(start, src.size, stride):
        i0, rest = i // (n1 * n2), i % (n1 * n2)
        dst[i0, rest // n2, rest % n2] = src[i0, rest // n2, rest % n2]


@cuda.jit
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


@cuda.jit(device=True)
def block_sum(acc, partials):
    """Tree-reduce each thread's ``acc`` over the block into ``partials[blockIdx.x]``.

    Needs ``blockDim.x`` float64 of dynamic shared memory; blockDim.x a power of two.
    """
    sm = cuda.shared.array(0, float64)
    tid = cuda.threadIdx.x
    sm[tid] = acc
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            sm[tid] += sm[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        partials[cuda.blockIdx.x] = sm[0]


# --------------------------------------------------------------------------------------
# The templates
# --------------------------------------------------------------------------------------


@functools.cache
def elementwise(fg):
    """Terms ``fg(a[i], b[i])`` over two flat arrays of the same size."""

    def kernel(a, b, params, mult, out, gout, partials):
        acc = 0.0
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            v, g = fg(float64(a[i]), float64(b[i]), params)
            if out is not None:
                out[i] = v
            if gout is not None:
                gout[i] = g * mult
            acc += v
        if partials is not None:
            block_sum(acc, partials)

    return cuda.jit(kernel)


@functools.cache
def rows_dense(fg):
    """Row terms ``sum_k fg(y[i, k, r], x[i, k, r])`` of (n, C, R) arrays; a thread per row."""

    def kernel(y, x, params, mult, out, gout, partials):
        n, c, r = x.shape
        acc = 0.0
        for j in range(cuda.grid(1), n * r, cuda.gridsize(1)):
            i = j // r
            q = j - i * r
            s = 0.0
            for k in range(c):
                v, g = fg(float64(y[i, k, q]), float64(x[i, k, q]), params)
                s += v
                if gout is not None:
                    gout[i, k, q] = g * mult
            if out is not None:
                out[i, q] = s
            acc += s
        if partials is not None:
            block_sum(acc, partials)

    return cuda.jit(kernel)


@functools.cache
def rows_index(fg):
    """Row terms of one-hot labels given by index; a target outside [-C, C) gives NaN."""

    def kernel(t, x, params, mult, out, gout, partials):
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
                v, g = fg(1.0, float64(x[i, k, q]), params)
            if gout is not None:
                for kk in range(c):
                    gout[i, kk, q] = 0.0
                if inside:
                    gout[i, k, q] = g * mult
            if out is not None:
                out[i, q] = v
            acc += v
        if partials is not None:
            block_sum(acc, partials)

    return cuda.jit(kernel)


@functools.cache
def final(fin):
    """One block: sum ``partials`` in a fixed order, then ``out, dfac = fin(sum * scale)``."""

    def kernel(partials, scale, out, dfac):
        tid = cuda.threadIdx.x
        acc = 0.0
        for i in range(tid, partials.size, cuda.blockDim.x):
            acc += partials[i]
        block_sum(acc, dfac)  # thread 0 writes the sum to dfac[0] and reads it back
        if tid == 0:
            v, d = fin(dfac[0] * scale)
            out[()] = v
            dfac[0] = d

    return cuda.jit(kernel)


@cuda.jit
def _rescale(g, dfac):
    d = dfac[0]
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        g[i] *= d


TEMPLATES = {"elementwise": elementwise, "rows_dense": rows_dense, "rows_index": rows_index}


@functools.cache
def unary(f):
    """``out[i], gout[i] = f(x[i], i, params)`` over a flat array (``None`` outputs pruned)."""

    def kernel(x, params, out, gout):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v, g = f(x[i], i, params)
            if out is not None:
                out[i] = v
            if gout is not None:
                gout[i] = g

    return cuda.jit(kernel)


STATE = 5  # float64 slots of a row operation's state


@functools.cache
def rows(op):
    """A row-wise operation over (n, c) arrays, a block per row (see ``_cpu.rows``).

    Thread ``t`` of the block takes the elements ``t, t + T, ...`` of the row (adjacent
    threads read adjacent elements: coalesced), reduces them with ``op.part``, the block
    merges the states in a shared-memory tree with ``op.merge`` (a fixed order:
    deterministic), and every thread writes its elements with ``op.emit``. Needs
    ``5 * blockDim.x`` float64 of dynamic shared memory; blockDim.x a power of two.
    """
    part, merge, emit = op.part, op.merge, op.emit

    def kernel(x, y, w, b, params, out, stats):
        sm = cuda.shared.array(0, float64)
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for i in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
            xs = x[i, t::nt]
            ys = y[i, t::nt] if y is not None else None
            ws = w[t::nt] if w is not None else None
            outs = out[i, t::nt]
            own = part(xs, ys, ws, params, outs)
            for q in range(STATE):
                sm[q * nt + t] = own[q]
            cuda.syncthreads()
            step = nt // 2
            while step > 0:
                if t < step:
                    a = (sm[t], sm[nt + t], sm[2 * nt + t], sm[3 * nt + t], sm[4 * nt + t])
                    u = t + step
                    c = (sm[u], sm[nt + u], sm[2 * nt + u], sm[3 * nt + u], sm[4 * nt + u])
                    merged = merge(a, c)
                    for q in range(STATE):
                        sm[q * nt + t] = merged[q]
                cuda.syncthreads()
                step //= 2
            state = (sm[0], sm[nt], sm[2 * nt], sm[3 * nt], sm[4 * nt])
            bs = b[t::nt] if b is not None else None
            s0, s1 = emit(xs, ys, ws, bs, params, own, state, outs)
            if stats is not None and t == 0:
                stats[i, 0] = s0
                stats[i, 1] = s1
            cuda.syncthreads()  # the next row reuses the shared memory

    return cuda.jit(kernel)


@functools.cache
def cols_push(op):
    """Chunk states of a column reduction (see ``_cpu.cols_reduce``): a thread per (chunk,
    column); adjacent threads read adjacent columns, so the loads coalesce."""
    push = op.push

    def kernel(x, y, aux, params, parts):
        n, c = x.shape
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
                push(acc_p, x, y, aux, params, r, k, j, j + 1)

    return cuda.jit(kernel)


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

    return cuda.jit(kernel)


@functools.cache
def cols_emit(op):
    """``out[r, j], out2[r, j] = op.emit(x, y, w, b, acc, params, r, j)``, a thread per element."""
    emit = op.emit

    def kernel(x, y, w, b, acc, params, out, out2):
        n, c = x.shape
        for t in range(cuda.grid(1), n * c, cuda.gridsize(1)):
            r = t // c
            j = t - r * c
            v, v2 = emit(x, y, w, b, acc, params, r, j)
            if out is not None:
                out[r, j] = v
            if out2 is not None:
                out2[r, j] = v2

    return cuda.jit(kernel)


def run_unary(f, x, params, out, gout):
    threads, blocks = _shape(x.size)
    if x.size:
        unary(f)[blocks, threads](x, params, out, gout)


def run_rows(op, x, y, w, b, params, out, stats):
    threads, blocks = launch_shape()
    threads = threads or THREADS
    blocks = blocks or max(1, min(x.shape[0], MAX_BLOCKS * 2))
    if x.size:
        rows(op)[blocks, threads, 0, STATE * threads * 8](x, y, w, b, params, out, stats)


def col_chunks(n: int, c: int, k: int) -> int:
    """Row chunks of a column reduction: enough (chunk, column) threads to fill the GPU,
    and partial states (chunks x k x c float64) of at most 64 MB."""
    return max(1, min(n, -(-65536 // max(1, c)), (8 << 20) // max(1, k * c)))


def run_cols(op, x, y, aux, w, b, params, out, out2):
    """Column statistics (op.size, c) of (n, c) data, then the elementwise pass (if any
    output is asked); returns the statistics (left on the device)."""
    n, c = x.shape
    chunks = col_chunks(n, c, op.size)
    parts = cuda.device_array((chunks, op.size, c), np.float64)
    acc = cuda.device_array((op.size, c), np.float64)
    if c:
        threads, blocks = _shape(chunks * c)
        cols_push(op)[blocks, threads](x, y, aux, params, parts)
        threads, blocks = _shape(c)
        cols_merge(op)[blocks, threads](n, params, parts, acc)
    if (out is not None or out2 is not None) and x.size:
        threads, blocks = _shape(x.size)
        cols_emit(op)[blocks, threads](x, y, w, b, acc, params, out, out2)
    return acc


def launch(pattern, fg, a, b, params, mult, out, gout, want_total):
    """Run ``pattern``'s kernel for ``fg``; return the per-block partial sums (or None)."""
    n = b.size if b.ndim == 1 else b.shape[0] * b.shape[2]
    threads, blocks = _shape(n)
    partials = cuda.device_array(blocks, np.float64) if want_total else None
    shared = threads * 8 if want_total else 0
    TEMPLATES[pattern](fg)[blocks, threads, 0, shared](a, b, params, mult, out, gout, partials)
    return partials


def finish(total, scale, fin, dtype):
    """Finalise the partials on the device: a 0-d array (no synchronisation)."""
    threads, _ = _shape(total.size)
    out = cuda.device_array((), dtype)
    dfac = cuda.device_array(1, np.float64)
    final(fin)[1, threads, 0, threads * 8](total, scale, out, dfac)
    return out, dfac


def rescale(gout, dfac):
    g = gout.reshape(gout.size)
    threads, blocks = _shape(g.size)
    _rescale[blocks, threads](g, dfac)
