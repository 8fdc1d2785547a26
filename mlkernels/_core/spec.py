"""One declaration per public formula: everything the rest of mlkernels knows about it.

A family module declares each public function once, with :func:`formula` on a stub whose
signature and docstring are the API::

    @formula(Map(_sigmoid, 0), family="activations", data=normal, derivative="sigmoid_grad")
    def sigmoid(x, *, out=None):
        \"\"\"Sigmoid, ...\"\"\"

The declaration holds the name and signature (the formula's positional parameters and
defaults; extensions such as ``out=``, ``reduction=`` and ``seed=`` keyword-only), the
role of each array argument (:data:`ROLES`), the hyper-parameters with their
constraints, the template it runs on (``templates.py``: what it reads and writes, and
whether ``out=`` may alias an input), its derivative, its NumPy reference formula
(``mlkernels.reference``, by name) and how to make benchmark data for it. From it come the
public function (one pipeline, ``pipeline.call``), the table of :data:`FORMULAS` that
``precompile``, the main job, asv, the tests and the PTX-compilation list are driven by.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The roles of array arguments: ``data`` decides the dtype computed in; ``label`` holds
#: targets (real, integer or bool values, never deciding the dtype); ``index`` holds
#: integer class indices; ``feature`` is a per-feature parameter (gamma, beta), real,
#: shaped like the features.
ROLES = ("data", "label", "index", "feature")

#: Every public formula by name, in declaration order (families in import order).
FORMULAS: dict[str, Formula] = {}


@dataclass(frozen=True)
class Real:
    """A real hyper-parameter: a finite number (``TypeError`` / ``ValueError`` naming it),
    within ``[lo, hi]`` (``lo_open``: above ``lo``; ``hi_open``: below ``hi``), returned as
    a Python float."""

    lo: float | None = None
    hi: float | None = None
    hi_open: bool = False
    lo_open: bool = False

    def __call__(self, name: str, v: Any) -> float:
        if type(v) is not float or not math.isfinite(v):
            if isinstance(v, np.ndarray) and v.ndim == 0:
                v = v.item()
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must be a real number, not {type(v).__name__}")
            if not math.isfinite(v):
                raise ValueError(f"{name} must be finite, not {v}")
            v = float(v)
        lo, hi = self.lo, self.hi
        below = lo is not None and (v < lo or (self.lo_open and v == lo))
        if hi is None:
            if below:
                raise ValueError(f"{name} must be {'>' if self.lo_open else '>='} {lo:g}, got {v}")
        elif below or v > hi or (self.hi_open and v == hi):
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            raise ValueError(f"{name} must be in {left}{lo:g}, {hi:g}{right}, got {v}")
        return v


REAL = Real()
NONNEGATIVE = Real(0)
POSITIVE = Real(0, lo_open=True)


def _floats(**values: float) -> tuple[float, ...]:
    return tuple(values.values())


@dataclass(frozen=True, eq=False)
class Formula:
    """A public formula (see the module docstring); built by :func:`formula`."""

    name: str
    family: str
    template: Any  # a template of mlkernels._core.templates
    signature: inspect.Signature
    arrays: dict[str, str]  # array argument -> role, in signature order
    hyper: dict[str, Callable[[str, Any], Any]]  # hyper-parameter -> its validator
    params: Callable[..., tuple]  # validated hyper-parameters -> the kernels' params
    data: Callable  # benchmark data: (n, dtype, rng) flat, ((rows, cols), dtype, rng) rows
    layout: str  # "flat" | "rows": how data is shaped for n elements
    transcendental: bool  # calls exp/log/tanh (what the benchmarks compare against)
    returns: str  # "array" | "scalar" | "tuple" | "loss" (a reduced value, reduction=)
    derivative: str | None  # the formula that is this one's derivative
    reference_name: str  # the NumPy formula in mlkernels.reference
    check: Callable | None  # (got, expected, host_args) -> error, for random formulas
    shortcut: Callable | None  # arguments -> a result without a kernel, or None
    want: str = "value"  # a loss's public functions: "value", "grad" or "both"

    @property
    def reference(self) -> Callable:
        from mlkernels import reference

        return getattr(reference, self.reference_name)

    @property
    def has_out(self) -> bool:
        return "out" in self.signature.parameters

    @functools.cached_property
    def _binding(self) -> tuple[tuple[str, ...], dict[str, Any], int, frozenset]:
        """(positional names, defaults, number of parameters, names accepted by keyword)."""
        params = self.signature.parameters
        positional = tuple(n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD)
        defaults = {n: p.default for n, p in params.items() if p.default is not p.empty}
        return positional, defaults, len(params), frozenset(params)

    def bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        """The call's arguments by name, defaults filled in: ``Signature.bind`` without
        its cost (a third of a small call's time), which stays for the error messages."""
        positional, defaults, count, accepted = self._binding
        if len(args) <= len(positional):
            arguments = defaults.copy()
            arguments.update(zip(positional, args, strict=False))
            if kwargs:
                if not accepted.issuperset(kwargs) or not kwargs.keys().isdisjoint(
                    positional[: len(args)]
                ):
                    return self._bind_slowly(args, kwargs)
                arguments.update(kwargs)
            if len(arguments) == count:
                return arguments
        return self._bind_slowly(args, kwargs)

    def _bind_slowly(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        bound = self.signature.bind(*args, **kwargs)  # TypeError as Python gives it
        bound.apply_defaults()
        return dict(bound.arguments)

    @functools.cached_property
    def no_hyper(self) -> bool:
        """Whether the kernels' parameters are always ``(0.0,)`` (nothing to validate)."""
        return not self.hyper and self.params is _floats

    @functools.cached_property
    def n_arrays(self) -> int:
        """How many positional parameters lead with the arrays: what ``pipeline.quick_parser``
        reads (never for a formula whose arrays do not come first)."""
        names = list(self.signature.parameters)
        first = names[: len(self.arrays)] == list(self.arrays)
        return len(self.arrays) if first else 1 << 30

    @functools.cached_property
    def real_arrays(self) -> bool:
        """Whether every array argument holds reals (none holds class indices)."""
        return "index" not in self.arrays.values()

    @functools.cached_property
    def defaults(self) -> dict[str, Any]:
        """The parameters' defaults (what a call that passes no keyword has for them)."""
        return self._binding[1]

    def validate_positional(self, values: tuple, named: dict[str, Any]) -> tuple | None:
        """:meth:`validate` of a call whose first hyper-parameters come by position
        (``values``) and the others from ``named`` (its keywords over the defaults); None
        when there are more positional values than it takes, or one without a default is
        missing."""
        checks, n_positional = self._checks
        if len(values) > n_positional:
            return None
        if len(values) < len(checks) and not all(n in named for n, _ in checks[len(values) :]):
            return None  # a required hyper-parameter is missing: bind's TypeError says so
        checked = [
            check(name, values[k] if k < len(values) else named[name])
            for k, (name, check) in enumerate(checks)
        ]
        if self.params is _floats:
            return tuple(checked) or (0.0,)
        return self.params(**dict(zip(self.hyper, checked, strict=True))) or (0.0,)

    @functools.cached_property
    def _checks(self) -> tuple[tuple, int]:
        """The hyper-parameters' (name, validator) pairs and how many may come by position."""
        return tuple(self.hyper.items()), len(self._binding[0]) - len(self.arrays)

    @functools.cached_property
    def host_keywords(self) -> frozenset:
        """The keywords a host call may pass on its fast path: ``out`` and the keyword-only
        hyper-parameters."""
        params = self.signature.parameters
        kw_only = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
        return frozenset(kw_only & ({"out"} | set(self.hyper)))

    def quick(self) -> Callable[[tuple, dict], Any]:
        """The formula's quick call: ``quick(args, kwargs)`` gives the result of the common
        host call (``pipeline.quick_parser``), in as few steps as the template can take
        (its ``quick``, else ``pipeline.quick_generic``), or None for ``pipeline.call``."""
        from mlkernels._core.pipeline import quick_generic, quick_parser

        parse = quick_parser(self)
        if parse is None:
            return _no_quick
        own = getattr(self.template, "quick", None)
        return (own and own(self, parse)) or quick_generic(self, parse)

    def validate(self, arguments: dict[str, Any]) -> tuple:
        """The hyper-parameters checked (before any kernel) and turned into the kernels'
        float64 parameter tuple (never empty: numba needs a type)."""
        if self.no_hyper:
            return (0.0,)
        values = {name: check(name, arguments[name]) for name, check in self.hyper.items()}
        return self.params(**values) or (0.0,)


def _no_quick(args: tuple, kwargs: dict) -> None:
    return None


def formula(template: Any, **fields: Any) -> Callable[[Callable], Callable]:
    """Declare a public formula from a stub, whose signature and docstring are the API:
    the decorator returns the public function (see :func:`declare` for the fields)."""

    def decorate(stub: Callable) -> Callable:
        return public(declare(stub, template, **fields), stub)

    return decorate


def declare(
    stub: Callable,
    template: Any,
    *,
    family: str,
    data: Callable,
    arrays: dict[str, str] | None = None,
    hyper: dict[str, Callable] | None = None,
    params: Callable[..., tuple] = _floats,
    layout: str = "flat",
    transcendental: bool = False,
    derivative: str | None = None,
    reference: str | None = None,
    check: Callable | None = None,
    shortcut: Callable | None = None,
) -> Formula:
    """The :class:`Formula` of a stub, entered in :data:`FORMULAS`.

    ``arrays`` gives the role of each array argument (default: the template's inputs, all
    ``data``); every other positional parameter is a hyper-parameter, a finite real
    unless ``hyper`` names its validator (which may also name keyword-only ones, such as
    ``reduction`` and ``seed``). ``params(**validated)`` makes the kernels' parameter
    tuple (default: the values in order). ``reference`` names the NumPy formula in
    ``mlkernels.reference`` (default: the function's name).
    """
    sig = inspect.signature(stub)
    names = [n for n, p in sig.parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    arrays = arrays or {n: "data" for n in names[: template.inputs]}
    for name, role in arrays.items():
        if name not in sig.parameters or role not in ROLES:
            raise TypeError(f"{stub.__name__}: bad array argument {name!r} ({role!r})")
    checks = hyper or {}
    validators = {n: checks.get(n, REAL) for n in names if n not in arrays}
    validators.update(
        {n: c for n, c in checks.items() if n not in validators and n in sig.parameters}
    )
    spec = Formula(
        name=stub.__name__,
        family=family,
        template=template,
        signature=sig,
        arrays={n: arrays[n] for n in sig.parameters if n in arrays},
        hyper=validators,
        params=params,
        data=data,
        layout=layout,
        transcendental=transcendental,
        returns=template.returns,
        derivative=derivative,
        reference_name=reference or stub.__name__,
        check=check,
        shortcut=shortcut,
    )
    if spec.name in FORMULAS:
        raise ValueError(f"{spec.name} is declared twice")
    FORMULAS[spec.name] = spec
    return spec


def public(spec: Formula, stub: Callable) -> Callable:
    """The public function of a declaration: the pipeline, with the stub's name,
    signature and docstring."""
    from mlkernels._core.pipeline import call

    quick = None

    def api(*args, **kwargs):
        nonlocal quick
        if quick is None:  # built at the first call: it creates the formula's kernels
            quick = spec.quick()
        done = quick(args, kwargs)
        return call(spec, args, kwargs) if done is None else done

    functools.update_wrapper(api, stub)
    api.__signature__ = spec.signature
    api.spec = spec
    return api
