"""CPU threads: which threading layer numba runs mlkernels' kernels on, and when a kernel
runs on one thread instead of all of them.

Why TBB. A NumPy program runs BLAS products (OpenBLAS, MKL), often PyTorch or
scikit-learn (OpenMP pools of their own) between mlkernels calls. numba's OpenMP layer
(GNU OpenMP) keeps its worker threads spinning after every parallel region, and they
take the cores from BLAS's threads and the other way round: measured in a NumPy MLP
training loop on 2 cores, every mlkernels call took 3-5 ms instead of 15-30 us and the
loop ran 25-33x slower than with the NumPy formulas. GNU OpenMP also kills any forked
child that runs a kernel ("fork() called from a process already using GNU OpenMP"), and
a fork-started ``multiprocessing.Pool`` hangs. ``OMP_WAIT_POLICY=PASSIVE`` ends most of
the fight but every parallel call then waits for sleeping workers to wake; numba's
``workqueue`` layer is slower still and not safe for calls from several Python threads.
TBB's workers back off and sleep, it survives ``fork``, and concurrent callers are safe:
it is the default.

Loading TBB. The ``tbb`` package (a dependency) puts ``libtbb.so.12`` in the
environment's ``lib/`` folder, which a virtual environment's dynamic loader does not
search, so numba alone reports "No threading layer could be loaded". Before numba picks
its layer (at the first parallel kernel), :func:`select` finds the library where the
package installed it and loads it by path; numba's ``tbbpool`` module then resolves it.

The choice, in order: ``NUMBA_THREADING_LAYER`` when the user set it (numba's own knob,
respected as it is; TBB is still loaded for numba to find unless it names ``omp`` or
``workqueue``); else TBB when it loads; else OpenMP, with one warning saying why and
what it costs. :func:`describe` says which and why (``mk.show_config()``).

Small calls run on the calling thread. Waking the other threads for a kernel of a few
microseconds costs more than it saves, and right after a BLAS product those threads
compete with BLAS's for the cores (OpenBLAS makes the same choice for small products).
Every CPU template is compiled twice, with its ``prange`` loops parallel and as plain
loops (``jit.CpuKernel``); a call on fewer than ``PARALLEL_MIN`` elements
(``$MLKERNELS_PARALLEL_MIN``, default 2**18) runs the serial one, which also skips the
~1 us of setting up a parallel region.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numba

__all__ = ["PARALLEL_MIN", "describe", "parallel_min", "select"]

_DEFAULT_PARALLEL_MIN = 1 << 18


def _parallel_min() -> int:
    raw = os.environ.get("MLKERNELS_PARALLEL_MIN", "")
    try:
        value = int(raw) if raw else _DEFAULT_PARALLEL_MIN
    except ValueError:
        value = -1
    if value < 0:
        warnings.warn(
            f"MLKERNELS_PARALLEL_MIN={raw!r} is not a non-negative integer; "
            f"using {_DEFAULT_PARALLEL_MIN}",
            RuntimeWarning,
            stacklevel=2,
        )
        value = _DEFAULT_PARALLEL_MIN
    return value


#: Calls on fewer elements than this run the serial kernels, on the calling thread.
PARALLEL_MIN = _parallel_min()


@contextlib.contextmanager
def parallel_min(value: int) -> Iterator[None]:
    """Use ``value`` as ``PARALLEL_MIN`` inside the block (``precompile`` compiles both
    kinds of kernel with 0 and with a huge value; not meant for concurrent use)."""
    global PARALLEL_MIN
    saved, PARALLEL_MIN = PARALLEL_MIN, value
    try:
        yield
    finally:
        PARALLEL_MIN = saved


_TBB_NAMES = {"linux": "libtbb.so.12", "darwin": "libtbb.12.dylib", "win32": "tbb12.dll"}
_TBB_MIN_INTERFACE = 12060  # what numba requires: TBB 2021 update 6


def _tbb_candidates(name: str) -> list[str]:
    """Where the ``tbb`` package may have put the library, the loader's own search first."""
    found = [name]
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, sys.exec_prefix)):
        folder = "Library/bin" if sys.platform == "win32" else "lib"
        found.append(str(Path(prefix, folder, name)))
    try:
        from importlib import metadata

        for file in metadata.files("tbb") or ():
            if Path(str(file)).name == name:
                found.append(str(file.locate()))
    except Exception:  # no tbb distribution, or no file list
        pass
    return list(dict.fromkeys(found))


def _load_tbb() -> tuple[bool, str]:
    """Load the TBB runtime numba's ``tbbpool`` needs; (loaded, where or why not)."""
    name = _TBB_NAMES.get(sys.platform)
    if name is None:
        return False, f"no TBB runtime name known for platform {sys.platform!r}"
    mode = getattr(os, "RTLD_GLOBAL", 0) | getattr(os, "RTLD_NOW", 0)
    errors = []
    for path in _tbb_candidates(name):
        if os.sep in path and not Path(path).exists():
            continue
        try:
            lib = ctypes.CDLL(path, mode=mode)
        except OSError as exc:
            errors.append(str(exc))
            continue
        try:
            version = lib.TBB_runtime_interface_version
        except AttributeError:  # a library of that name, but not oneTBB's runtime
            errors.append(f"{path} has no TBB_runtime_interface_version")
            continue
        version.restype = ctypes.c_int
        interface = version()
        if interface < _TBB_MIN_INTERFACE:
            return False, (
                f"{path} is TBB interface {interface}; numba needs >= {_TBB_MIN_INTERFACE} "
                "(TBB 2021.6 or later: pip install -U tbb)"
            )
        where = path if os.sep in path else f"{path} (on the loader's path)"
        return True, where
    why = errors[0] if errors else f"{name} not found"
    return False, f"{why} (pip install tbb)"


_CHOICE: tuple[str, str] | None = None


def select() -> tuple[str, str]:
    """Choose numba's threading layer before its first parallel kernel; (layer, why)."""
    global _CHOICE
    if _CHOICE is not None:
        return _CHOICE
    user = os.environ.get("NUMBA_THREADING_LAYER")
    if user:
        if user.lower() not in ("omp", "workqueue"):  # TBB may be numba's pick: help it
            _load_tbb()
        _CHOICE = (user, "NUMBA_THREADING_LAYER is set")
        return _CHOICE
    loaded, where = _load_tbb()
    if loaded:
        numba.config.THREADING_LAYER = "tbb"
        _CHOICE = ("tbb", f"the default: {where}")
    else:
        # "threadsafe": TBB if numba finds it after all, else OpenMP; never workqueue
        numba.config.THREADING_LAYER = "threadsafe"
        _CHOICE = ("omp", f"TBB could not be loaded: {where}")
        warnings.warn(
            f"mlkernels: {_CHOICE[1]}. Falling back to numba's OpenMP layer: next to BLAS "
            "or other OpenMP thread pools its spinning workers can make calls much slower, "
            "and a process forked after a kernel ran cannot run kernels. Install tbb, or "
            "set NUMBA_THREADING_LAYER to choose a layer and silence this warning.",
            RuntimeWarning,
            stacklevel=3,
        )
    return _CHOICE


def describe() -> str:
    """The layer in use (or the one chosen, before the first parallel kernel) and why."""
    chosen, why = select()
    try:
        layer = numba.threading_layer()
        state = ""
    except ValueError:  # numba starts its threads at the first parallel kernel
        layer, state = chosen, ", not started yet"
    if chosen not in (layer, "threadsafe", "safe", "forksafe", "default"):
        why = f"{why}; numba loaded {layer!r} instead of {chosen!r}"
    small = f"calls on < {PARALLEL_MIN} elements run on the calling thread"
    return f"{layer} ({why}{state}; {small})"
