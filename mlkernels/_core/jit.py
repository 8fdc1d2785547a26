"""The JIT: how mlkernels compiles, caches and runs its kernels.

* Kernels are built lazily, on first use, by the templates in ``cpu`` (and ``gpu``);
  ``import mlkernels`` compiles nothing.
* The on-disk cache lives in ``<cache root>/mlkernels-<version>-<hash of the package's
  sources>``: numba re-validates a cached kernel against its own file only, so a change to
  a scalar helper in another module would otherwise leave stale machine code in use.
  Keying the directory on every source file of the package makes any edit a clean miss.
* The cache root is ``$MLKERNELS_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlkernels``, else
  ``~/.cache/mlkernels``. If none is writable, kernels are simply not cached (never an
  import error). The caches of other builds are removed after 30 days unused.
* GPU kernels (:func:`gpu_kernel`) are cached the same way, in ``cuda/`` of that folder
  (numba-cuda keys each entry on the GPU's compute capability too); not under the CUDA
  simulator.
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
import warnings
from pathlib import Path

import filelock
import numba
from numba.core import caching

from mlkernels._core import threads as _threads

__all__ = ["CpuKernel", "cache_dir", "cpu_jit", "cpu_kernel", "cpu_serial", "source_hash"]

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
    """``$MLKERNELS_CACHE_DIR``, else ``$NUMBA_CACHE_DIR`` (what numba users already set for
    read-only installs and containers), else ``$XDG_CACHE_HOME/mlkernels``, else
    ``~/.cache/mlkernels``."""
    for var in ("MLKERNELS_CACHE_DIR", "NUMBA_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "mlkernels"


def _unsafe(path: Path) -> str:
    """Why ``path`` may not hold a cache (pickled machine code, run when loaded), or "": it
    must belong to this user and be writable by no one else (as ssh treats its keys)."""
    if os.name != "posix":  # no owner or mode bits to read (Windows: the ACLs decide)
        return ""
    st = path.stat()
    if st.st_uid != os.getuid():
        return f"it belongs to uid {st.st_uid}, not to this user (uid {os.getuid()})"
    if st.st_mode & 0o022:
        return f"it is writable by {'others' if st.st_mode & 0o002 else 'its group'}"
    return ""


#: Why the disk cache is off, when it is (what ``show_config`` prints).
CACHE_OFF_REASON = ""


@functools.cache
def cache_dir() -> Path | None:
    """The directory holding this build's compiled kernels, or None when kernels are not
    cached: no writable folder, or one that other users could write to (then a warning,
    once, names it and why: loading a cache runs the code in it)."""
    global CACHE_OFF_REASON
    from mlkernels import __version__

    root = _cache_root()
    path = root / f"mlkernels-{__version__}-{source_hash()}"
    try:
        for folder in (root, path):  # checked before anything is written into them
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            why = _unsafe(folder)
            if why:
                CACHE_OFF_REASON = f"{folder} is not safe to load code from: {why}"
                warnings.warn(
                    f"mlkernels compiles without a disk cache: {CACHE_OFF_REASON} (set "
                    "MLKERNELS_CACHE_DIR to a folder of your own, mode 700)",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return None
        tempfile.TemporaryFile(dir=path).close()
        os.utime(path)  # last used: what _prune_stale reads
    except OSError as exc:
        CACHE_OFF_REASON = f"no writable cache folder ({root}: {exc.strerror or exc})"
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


class _PackageLocator:
    """Cache locator for functions defined in mlkernels' own modules: this build's folder
    (``subdir`` in it), files told apart by line and :func:`closure_key`."""

    subdir = ""

    def __init__(self, py_func, py_file):
        self._py_file = py_file  # what numba's "cannot cache" warning names
        self._lineno = py_func.__code__.co_firstlineno
        self._key = closure_key(py_func)
        self._path = str(cache_dir() / self.subdir)

    def ensure_cache_path(self):
        os.makedirs(self._path, exist_ok=True)

    def get_cache_path(self):
        return self._path

    def get_source_stamp(self):
        return source_hash()

    def get_disambiguator(self):
        return f"{self._lineno}-{self._key}"

    @classmethod
    def from_function(cls, py_func, py_file):
        inside = Path(py_file).resolve().is_relative_to(PACKAGE_DIR)
        if not inside or cache_dir() is None:
            return None
        return cls(py_func, py_file)


class _PackageCacheLocator(_PackageLocator, caching._CacheLocator):
    """numba's locator of the CPU kernels."""


@functools.cache
def _cuda_locator() -> type:
    """numba-cuda's locator of the GPU kernels (numba-cuda has a cache module of its own),
    installed first in its list; they go into ``cuda/`` of this build's folder."""
    from numba.cuda.core import caching as cuda_caching

    class _PackageCudaCacheLocator(_PackageLocator, cuda_caching._CacheLocator):
        subdir = "cuda"

    classes = cuda_caching.CacheImpl._locator_classes
    classes.insert(0, _PackageCudaCacheLocator)
    return _PackageCudaCacheLocator


def _functions(obj, depth: int = 0):
    """The Python functions a closure cell leads to: a function (and those in its own
    closure: a template's inner helper closes over the formula's scalar function), a numba
    dispatcher, a tuple of them (an op record)."""
    if depth > 4:
        return
    if isinstance(obj, tuple):
        for item in obj:
            yield from _functions(item, depth + 1)
        return
    fn = getattr(obj, "py_func", obj)
    if isinstance(fn, types.FunctionType):
        yield fn
        for cell in fn.__closure__ or ():
            try:
                yield from _functions(cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                pass


def closure_key(py_func) -> str:
    """What a kernel was built from, as a digest: the scalar functions in its closure
    (module and name) and its other closure values, and the code of those functions
    that live outside the package (a test's, a user's: the package's source hash does not
    see their edits). Every kernel of a template then has cache files of its own; numba
    would otherwise keep all of them in ONE index, updated by an unlocked
    read-modify-write."""
    h = hashlib.sha256()
    for cell in py_func.__closure__ or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        fns = list(_functions(contents))
        if not fns:  # a constant (a count, a size); other objects by type only
            plain = isinstance(contents, (int, float, str, bool, type(None)))
            h.update((repr(contents) if plain else type(contents).__qualname__).encode())
        for fn in fns:
            h.update(f"{fn.__module__}.{fn.__qualname__}".encode())
            code = fn.__code__
            if not Path(code.co_filename).resolve().is_relative_to(PACKAGE_DIR):
                h.update(code.co_code)
                h.update(repr(code.co_consts).encode())
    return h.hexdigest()[:12]


def _install_locator() -> None:
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    if _PackageCacheLocator not in impl._locator_classes:
        impl._locator_classes.insert(0, _PackageCacheLocator)


def _njit(fn, parallel: bool):
    dispatcher = numba.njit(
        parallel=parallel,
        cache=cache_dir() is not None,
        fastmath=set(FASTMATH),
        error_model="numpy",
        nogil=True,
    )(fn)
    if cache_dir() is not None:
        dispatcher.compile = _locked(dispatcher.compile, closure_key(fn), fn.__qualname__)
    return dispatcher


def _locked(compile_, key: str, name: str):
    """``compile_`` holding a lock file of this kernel's: a process that compiles a kernel
    another is compiling waits, then loads what that one saved (numba's ``compile`` looks
    in the cache first). Different kernels do not wait for each other."""
    lock_path = (
        cache_dir() / "locks" / f"{name.replace('<locals>', '').replace('.', '_')}-{key}.lock"
    )

    def compile(sig):
        lock_path.parent.mkdir(exist_ok=True)
        with filelock.FileLock(str(lock_path)):
            return compile_(sig)

    return compile


def gpu_kernel(fn):
    """``cuda.jit`` of a GPU kernel template, cached on disk like the CPU kernels (this
    build's folder, a file per kernel, compiled and saved under the kernel's lock): a new
    process loads the machine code instead of compiling it through NVVM again. Under the
    simulator, or without a cache folder, nothing is cached."""
    from mlkernels._core.cuda import cuda
    from mlkernels.config import simulator

    if simulator() or cache_dir() is None:
        return cuda.jit(fn)
    _cuda_locator()
    dispatcher = cuda.jit(cache=True)(fn)
    dispatcher.compile = _locked(dispatcher.compile, closure_key(fn), fn.__qualname__ + "_cuda")
    return dispatcher


def cpu_jit(fn):
    """Compile a function for the CPU: parallel, cached where possible."""
    return _njit(fn, parallel=True)


def cpu_serial(fn):
    """Compile a function for the CPU, on the calling thread only (a small call's kernel:
    ``parallel=True`` would make its array allocations wake the threads), cached where
    possible."""
    return _njit(fn, parallel=False)


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
