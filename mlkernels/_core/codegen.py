"""Kernel source written once per pattern, expanded for an arity.

A template that takes any number of inputs, outputs or accumulators (``map``, ``reduce``,
the ``rows`` merge of a K-float state on the GPU) is written as Python source with
``{placeholders}`` and expanded for the arity a formula needs, as CuPy's
``ElementwiseKernel`` and numba's own ``@vectorize`` generate their loops. The expanded
source becomes a factory ``make(f, ...)`` whose closure holds the formula's scalar
functions: numba's cache keys a kernel on its bytecode *and* its closure (so two formulas
never share machine code), and the file name placed inside the package makes
``mlkernels._core.jit``'s cache locator accept it. The source is registered with
``linecache``, so tracebacks and numba's errors show the generated lines.
"""

from __future__ import annotations

import hashlib
import linecache
from collections.abc import Callable, Iterable
from pathlib import Path

GENERATED_DIR = Path(__file__).resolve().parent / "_generated"


def names(prefix: str, count: int) -> list[str]:
    """``[prefix0, prefix1, ...]``."""
    return [f"{prefix}{k}" for k in range(count)]


def joined(items: Iterable[str], sep: str = ", ") -> str:
    return sep.join(items)


def build(source: str, factory: str, env: dict) -> Callable:
    """Execute ``source`` (which defines ``factory``) with the globals ``env``; return the
    factory. The same source always gets the same file name (its hash), so a kernel's
    cache entry is found again by the next process."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    filename = str(GENERATED_DIR / f"{factory}_{digest}.py")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = dict(env)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own template text
    return namespace[factory]
