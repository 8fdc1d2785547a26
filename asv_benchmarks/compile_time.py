"""Compile time: the first call of a loss in a fresh process, with and without the cache.

``timeraw_`` benchmarks run their code in a new Python process and time only the
statement, not the imports: the first call of one loss (value, default reduction) on
1000 float64, which compiles its serial kernel (or loads it from the disk cache; a call
this small runs on the calling thread and starts no thread).

* ``timeraw_first_call_cold``: the JIT cache disabled (``MLKERNELS_CACHE_DIR`` set to a
  path that cannot be a directory), so the kernel is compiled.
* ``timeraw_first_call_cached``: the normal cache, filled by ``setup`` beforehand.

One loss per kernel template: elementwise (huber; focal, whose term is the largest),
rows of one-hot labels (cce) and rows of class indices (nll).
"""

from __future__ import annotations

from asv_benchmarks._common import smoke
from mlkernels._bench import registry as _registry

NAMES = smoke(["huber", "focal", "cce", "nll"], 1)

_SETUP = """
import os
{env}
from mlkernels._bench import registry as _registry
entry = _registry.ENTRIES[{name!r}]
args = entry.args(1000, "float64")
f = entry.function
"""


class CompileTime:
    """First call of a loss in a new process: cold compile vs loading from the cache."""

    params = (NAMES,)
    param_names = ("loss",)
    number = 1
    repeat = 3
    warmup_time = 0.0
    timeout = 300.0

    def setup(self, loss: str) -> None:
        # fill the disk cache for the "cached" case (loads it if already there)
        entry = _registry.ENTRIES[loss]
        entry.function(*entry.args(1000, "float64"))

    def timeraw_first_call_cold(self, loss: str) -> tuple[str, str]:
        env = 'os.environ["MLKERNELS_CACHE_DIR"] = "/dev/null/mlkernels-no-cache"'
        return "f(*args)", _SETUP.format(env=env, name=loss)

    def timeraw_first_call_cached(self, loss: str) -> tuple[str, str]:
        return "f(*args)", _SETUP.format(env="", name=loss)

    def timeraw_first_call_cached_threads_started(self, loss: str) -> tuple[str, str]:
        """As ``first_call_cached`` but with numba's threads already started by another
        parallel function (they were started by the first call before small calls ran
        serial kernels; kept to compare with that history)."""
        return "f(*args)", _SETUP.format(env="", name=loss) + _START_THREADS


_START_THREADS = """
import numpy as np
from numba import njit, prange

@njit(parallel=True)
def _start(a):
    s = 0.0
    for i in prange(a.size):
        s += a[i]
    return s

_start(np.ones(1000))
"""


class ImportTime:
    """``import mlkernels`` against ``import numba`` alone, each in a new process."""

    number = 1
    repeat = 5
    warmup_time = 0.0

    def timeraw_import_numba(self) -> str:
        return "import numba"

    def timeraw_import_mlkernels(self) -> str:
        return "import mlkernels"
