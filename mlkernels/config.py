"""Configuration and introspection: precompile, show_config, cuda_available, launch_config."""

from __future__ import annotations

import contextlib
import contextvars
import os
import platform
import sys
from collections.abc import Iterable, Iterator

import numba
import numpy as np

from mlkernels._core import jit as _jit

_LAUNCH: contextvars.ContextVar[tuple[int | None, int | None]] = contextvars.ContextVar(
    "mlkernels_launch", default=(None, None)
)


@contextlib.contextmanager
def launch_config(threads: int | None = None, blocks: int | None = None) -> Iterator[None]:
    """Fix the GPU launch shape (threads per block, a power of two; blocks in the grid).

    By default mlkernels picks 256 threads and enough blocks to fill the device. Tests use
    tiny values so that several blocks and the grid-stride loop run under the simulator.
    """
    if threads is not None and (threads < 1 or threads & (threads - 1) or threads > 1024):
        raise ValueError(f"threads must be a power of two in [1, 1024], got {threads}")
    if blocks is not None and blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    token = _LAUNCH.set((threads, blocks))
    try:
        yield
    finally:
        _LAUNCH.reset(token)


def launch_shape() -> tuple[int | None, int | None]:
    return _LAUNCH.get()


def simulator() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def cuda_available() -> bool:
    """True when a real CUDA GPU is usable (False under the CUDA simulator)."""
    if simulator():
        return False
    try:
        from mlkernels._core.cuda import cuda

        return bool(cuda.is_available())
    except Exception:
        return False


def show_config(file=None) -> None:
    """Print versions, CPU threads and threading layer, the GPU and the JIT cache."""
    cache = _jit.cache_dir()
    lines = {
        "mlkernels": sys.modules["mlkernels"].__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "llvmlite": __import__("llvmlite").__version__,
        "cpu": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{numba.get_num_threads()} numba threads",
        "threading layer": _jit.threading_layer(),
        "gpu": _gpu_description(),
        "jit cache": str(cache) if cache else f"off ({_jit.CACHE_OFF_REASON})",
    }
    width = max(map(len, lines))
    for key, value in lines.items():
        print(f"{key:>{width}}: {value}", file=file)


def _gpu_description() -> str:
    if simulator():
        return "CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    try:
        from mlkernels._core.cuda import cuda

        if not cuda.is_available():
            return "none"
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
        return f"{name}, compute capability {dev.compute_capability}"
    except Exception as exc:  # pragma: no cover - depends on the machine
        return f"none ({type(exc).__name__})"


def precompile(
    names: Iterable[str] | None = None,
    dtypes: Iterable[str] = ("float32", "float64"),
    device: str = "cpu",
    progress: bool = True,
    *,
    sizes: Iterable[int] | None = None,
    calls: Iterable[str] | None = None,
    workers: int | None = None,
) -> list[str]:
    """Compile (or load from the disk cache) every kernel of ``names`` ahead of time.

    ``names``: public function names (``"mse"``, ``"softmax"``, ``"batch_norm_grad"``,
    ...; default: every formula). Runs each function once per dtype on tiny data, in
    every way it is called: a loss, its gradient and its value-and-gradient for every
    reduction; any other function plain and, where it takes one, with ``out=``. On the
    CPU each kernel exists twice, for calls below and from ``MLKERNELS_PARALLEL_MIN``
    elements: ``sizes`` (element counts the calls will have) compiles only the ones those
    sizes run; by default both. ``calls``: only these calls, by the registry's names
    (``"value"``, ``"grad"``, ``"value_and_grad"``, ``"value_and_grad_out"``, ``"out"``,
    with their default reduction; default: every call, a loss's for every reduction).
    Returns the names compiled.

    ``workers``: processes that compile at once (default: one per CPU). They fill the
    disk cache (safe to share: each kernel has its own files and lock), then this process
    loads every kernel from it. One worker, the GPU, or no disk cache: everything is
    compiled here.
    """
    from mlkernels._bench import registry as _registry
    from mlkernels._core import threads as _threads

    entries = _registry.entries(names)
    dtypes = [np.dtype(d) for d in dtypes]
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
    kinds = ("serial", "parallel")
    if sizes is not None:
        small = [n < _threads.PARALLEL_MIN for n in sizes]
        kinds = ("serial",) * any(small) + ("parallel",) * (not all(small))
    calls = None if calls is None else tuple(calls)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    from tqdm.auto import tqdm

    spread = workers > 1 and device == "cpu" and bool(kinds) and len(entries) > 1
    spread = spread and _jit.cache_dir() is not None
    if spread:
        _compile_in_workers([e.name for e in entries], dtypes, kinds, calls, workers, progress)
    done = []
    desc = "mlkernels load" if spread else "mlkernels precompile"
    for entry in tqdm(entries, desc=desc, disable=not progress, unit="fn"):
        for dtype in dtypes:
            entry.warm(dtype, device, kinds, calls)
        done.append(entry.name)
    return done


#: Formulas whose kernels take longest to compile (several templates each): started first.
_SLOW_TO_COMPILE = frozenset({"layer_norm_grad", "batch_norm", "batch_norm_grad", "cce", "nll"})


def _compile_in_workers(
    names: list[str],
    dtypes: list[np.dtype],
    kinds: tuple,
    calls: tuple | None,
    workers: int,
    progress: bool,
) -> None:
    """Compile the CPU kernels of ``names`` into the disk cache in ``workers`` processes
    (started fresh, "spawn": nothing of this process's threads is inherited), a formula
    per task, the slowest first."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    order = sorted(names, key=lambda n: n not in _SLOW_TO_COMPILE)  # stable: table order
    dts = [d.str for d in dtypes]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(names)), mp_context=context) as pool:
        futures = [pool.submit(_compile_one, name, dts, kinds, calls) for name in order]
        with tqdm(total=len(futures), desc="mlkernels compile", disable=not progress) as bar:
            for future in as_completed(futures):
                future.result()  # a worker's error is this call's
                bar.update()


def _compile_one(name: str, dtypes: list[str], kinds: tuple, calls: tuple | None) -> str:
    """A worker's task: compile (and so cache) the CPU kernels of one formula."""
    from mlkernels._bench import registry as _registry

    for dtype in dtypes:
        _registry.ENTRIES[name].warm(np.dtype(dtype), "cpu", kinds, calls)
    return name
