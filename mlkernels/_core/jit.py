"""The JIT: how mlkernels compiles, caches and runs its CPU kernels.

* Kernels are built lazily, on first use, by the templates in ``cpu`` (and ``gpu``);
  ``import mlkernels`` compiles nothing.
* The on-disk cache lives in ``<cache root>/mlkernels-<version>-<hash of the package's
  sources>``: numba re-validates a cached kernel against its own file only, so a change to
  a scalar helper in another module would otherwise leave stale machine code in use.
  Keying the directory on every source file of the package makes any edit a clean miss.
* The cache root is ``$MLKERNELS_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlkernels``, else
  ``~/.cache/mlkernels``. If none is writable, kernels are simply not cached (never an
  import error). The caches of other builds are removed after 30 days unused.
* Threads: TBB unless the user chose a layer through ``NUMBA_THREADING_LAYER``; each
  template is compiled parallel and serial, and small calls run the serial one
  (:class:`CpuKernel`, ``threads``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

import numba
from numba.core import caching

from mlkernels._core import threads as _threads

__all__ = ["CpuKernel", "cache_dir", "cpu_jit", "cpu_kernel", "source_hash"]

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # mlkernels/

# NaN and Inf must survive (no "nnan"/"ninf"); reassociation lets LLVM vectorise the
# reductions with several accumulators and "contract" allows FMA.
FASTMATH = frozenset({"reassoc", "contract"})

_threads.select()  # before numba's first parallel kernel picks a layer


@functools.cache
def source_hash() -> str:
    """SHA-256 (first 16 hex digits) of every Python source file of the package and
    numba's version."""
    h = hashlib.sha256(numba.__version__.encode())
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


# Hashed now, at import: the sources this process runs. Hashed lazily, at the first
# compile, an edit made after the import would file the old code under the new hash.
source_hash()


def _cache_root() -> Path:
    if os.environ.get("MLKERNELS_CACHE_DIR"):
        return Path(os.environ["MLKERNELS_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "mlkernels"


@functools.cache
def cache_dir() -> Path | None:
    """The directory holding this build's compiled kernels, or None if none is writable."""
    from mlkernels import __version__

    path = _cache_root() / f"mlkernels-{__version__}-{source_hash()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        os.utime(path)  # last used: what _prune_stale reads
    except OSError:
        return None
    _prune_stale(path)
    _install_locator()
    return path


def _prune_stale(current: Path, days: float = 30) -> None:
    """Remove the caches of other builds (older versions or sources) unused for ``days``."""
    cutoff = time.time() - days * 86400
    for other in current.parent.glob("mlkernels-*"):
        try:
            if other != current and other.stat().st_mtime < cutoff:
                shutil.rmtree(other)
        except OSError:
            pass  # another process is using or removing it


class _PackageCacheLocator(caching._CacheLocator):
    """Numba cache locator for functions defined in mlkernels' own modules."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file  # what numba's "cannot cache" warning names
        self._lineno = py_func.__code__.co_firstlineno
        self._outside = _outside_code(py_func)
        self._path = str(cache_dir())

    def ensure_cache_path(self):
        os.makedirs(self._path, exist_ok=True)

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        return source_hash()

    def get_disambiguator(self):
        return f"{self._lineno}-{self._outside}" if self._outside else str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        inside = Path(py_file).resolve().is_relative_to(PACKAGE_DIR)
        if not inside or cache_dir() is None:
            return None
        return cls(py_func, py_file)


def _functions(obj, depth: int = 0):
    """The Python functions in a closure cell: a function, a numba dispatcher, a tuple of
    them (an op record)."""
    if depth > 3:
        return
    if isinstance(obj, tuple):
        for item in obj:
            yield from _functions(item, depth + 1)
        return
    fn = getattr(obj, "py_func", obj)
    if isinstance(fn, types.FunctionType):
        yield fn


def _outside_code(py_func) -> str:
    """A digest of the code of the scalar functions in a kernel's closure that live
    outside the package (a test's, a user's): the package's source hash does not see their
    edits, and numba keys a cached kernel on its closure by reference only. Empty when
    there are none."""
    h = hashlib.sha256()
    found = False
    for cell in py_func.__closure__ or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        for fn in _functions(contents):
            code = fn.__code__
            if not Path(code.co_filename).resolve().is_relative_to(PACKAGE_DIR):
                h.update(code.co_code)
                h.update(repr(code.co_consts).encode())
                found = True
    return h.hexdigest()[:12] if found else ""


def _install_locator() -> None:
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    if _PackageCacheLocator not in impl._locator_classes:
        impl._locator_classes.insert(0, _PackageCacheLocator)


def _njit(fn, parallel: bool):
    return numba.njit(
        parallel=parallel,
        cache=cache_dir() is not None,
        fastmath=set(FASTMATH),
        error_model="numpy",
        nogil=True,
    )(fn)


def cpu_jit(fn):
    """Compile a function for the CPU: parallel, cached where possible."""
    return _njit(fn, parallel=True)


class CpuKernel:
    """A kernel template compiled twice, lazily: ``parallel`` (its ``prange`` loops on
    every thread) and ``serial`` (the same loops on the calling thread). A call names its
    element count first: below ``threads.PARALLEL_MIN`` the serial kernel runs, so a
    small call wakes no thread (see ``threads``)."""

    __slots__ = ("parallel", "serial")

    def __init__(self, fn):
        self.parallel = _njit(fn, parallel=True)
        # A copy under its own name: numba's cache files are named after the function,
        # and its index keys do not tell a parallel compilation from a serial one.
        twin = types.FunctionType(
            fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
        )
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__module__ = fn.__module__
        self.serial = _njit(twin, parallel=False)

    def __call__(self, work: int, *args):
        if work < _threads.PARALLEL_MIN:
            return self.serial(*args)
        return self.parallel(*args)


def cpu_kernel(fn) -> CpuKernel:
    """Compile a kernel template for the CPU (see :class:`CpuKernel`)."""
    return CpuKernel(fn)


def threading_layer() -> str:
    """The threading layer numba uses, or will use from the first parallel kernel, and why."""
    return _threads.describe()


def python_version() -> str:
    return sys.version.split()[0]
