"""Learning-rate schedules: the formulas, on a step number or an array of them.

A Python number ``t`` gives a Python float equal to the formula; an array of steps gives
an array (CPU or GPU by where it lives: the ``Steps`` template, a map over the steps,
computed in float64). The scalar code is written once: the kernels and the Python-number
path call the same function. ``t`` must be >= 0 (``ValueError``), and so must the
parameters that count steps; where the formula would divide by zero (``T = 0``,
``T_total == T_warmup``, ``step_size = 0``) it is a ``ValueError`` too.

Past the end of a cosine (``t > T``, ``t > T_total``) the formulas' cosine goes on: the
rate rises again, as in PyTorch's closed form of ``CosineAnnealingLR``; clamp ``t`` to hold
``lr_min``. ``mk.schedule(name, **parameters)`` binds a schedule to its parameters, for an
optimiser's ``lr=`` (evaluated at the number of steps taken before each step).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba.extending import register_jitable

from mlkernels._bench import data
from mlkernels._core.scalar import cospi, pos
from mlkernels._core.spec import FORMULAS, NONNEGATIVE, POSITIVE, formula
from mlkernels._core.templates import Steps

__all__ = [
    "Schedule",
    "cosine_annealing",
    "cyclical_lr",
    "exp_decay",
    "schedule",
    "step_decay",
    "warmup_cosine",
]


# --------------------------------------------------------------------------------------
# The formulas' scalar code (kernels and Python numbers alike)
# --------------------------------------------------------------------------------------


@register_jitable
def _step_decay(t, params):
    lr0, drop, step = params
    return (lr0 * drop ** (t // step),)


@register_jitable
def _exp_decay(t, params):
    lr0, k = params
    return (lr0 * math.exp(-k * t),)


@register_jitable
def _cosine(progress, lr_min, lr_max):
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + cospi(progress))


@register_jitable
def _cosine_annealing(t, params):
    T, lr_min, lr_max = params
    return (_cosine(t / T, lr_min, lr_max),)


@register_jitable
def _warmup_cosine(t, params):
    t_warmup, t_total, lr_max, lr_min = params
    if t < t_warmup:
        return (lr_max * t / t_warmup,)
    return (_cosine((t - t_warmup) / (t_total - t_warmup), lr_min, lr_max),)


@register_jitable
def _cyclical(t, params):
    step_size, lr_min, lr_max = params
    cycle = math.floor(1.0 + t / (2.0 * step_size))
    x = abs(t / step_size - 2.0 * cycle + 1.0)
    return (lr_min + (lr_max - lr_min) * pos(1.0 - x),)


# --------------------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------------------


def _warmup_params(T_warmup: float, T_total: float, lr_max: float, lr_min: float) -> tuple:  # noqa: N803
    if T_total <= T_warmup:
        raise ValueError(
            f"T_total must be > T_warmup (the formula divides by T_total - T_warmup), got "
            f"T_total={T_total:g}, T_warmup={T_warmup:g}"
        )
    return (T_warmup, T_total, lr_max, lr_min)


def _number(name: str):
    """The shortcut of a schedule: a Python (or NumPy) number ``t`` gives a Python float,
    from the same scalar code, without a kernel; None for arrays."""

    def shortcut(arguments: dict) -> float | None:
        spec = FORMULAS[name]
        t = arguments[next(iter(spec.arrays))]
        if isinstance(t, np.ndarray) or not isinstance(t, (int, float, np.integer, np.floating)):
            return None
        t = NONNEGATIVE(next(iter(spec.arrays)), t)
        return float(spec.template.f(t, spec.validate(arguments))[0])

    return shortcut


def _schedule(f, name: str, **fields: Any):
    return formula(Steps(f), family="schedules", data=data.steps, shortcut=_number(name), **fields)


@_schedule(_step_decay, "step_decay", hyper={"step": POSITIVE})
def step_decay(epoch, lr0=0.1, drop=0.5, step=10, *, out=None):
    """Step decay, ``lr0 * drop ** (epoch // step)``; ``step > 0``."""


@_schedule(_exp_decay, "exp_decay")
def exp_decay(t, lr0=0.1, k=0.01, *, out=None):
    """Exponential decay, ``lr0 * exp(-k t)``."""


@_schedule(_cosine_annealing, "cosine_annealing", hyper={"T": POSITIVE})
def cosine_annealing(t, T, lr_min=1e-6, lr_max=0.1, *, out=None):  # noqa: N803
    """Cosine annealing, ``lr_min + (lr_max - lr_min) (1 + cos(π t / T)) / 2``: ``lr_max``
    at 0, ``lr_min`` at ``T``, rising again past it (the formula); ``T > 0``."""


@_schedule(
    _warmup_cosine,
    "warmup_cosine",
    hyper={"T_warmup": NONNEGATIVE, "T_total": NONNEGATIVE},
    params=_warmup_params,
)
def warmup_cosine(t, T_warmup, T_total, lr_max=1e-3, lr_min=1e-6, *, out=None):  # noqa: N803
    """Linear warm-up to ``lr_max`` over ``T_warmup`` steps (``lr_max t / T_warmup``), then
    a cosine from ``lr_max`` down to ``lr_min`` at ``T_total``. ``T_warmup = 0``: no
    warm-up; ``T_total <= T_warmup``: ``ValueError`` (the formula divides by zero)."""


@_schedule(_cyclical, "cyclical_lr", hyper={"step_size": POSITIVE})
def cyclical_lr(t, step_size, lr_min=1e-4, lr_max=1e-2, *, out=None):
    """Triangular cyclical rate (Smith 2017): from ``lr_min`` up to ``lr_max`` over
    ``step_size`` steps and back, a cycle every ``2 step_size``; ``step_size > 0``."""


SCHEDULES = {
    f.__name__: f for f in (step_decay, exp_decay, cosine_annealing, warmup_cosine, cyclical_lr)
}


class Schedule:
    """A schedule bound to its parameters: ``sched(t)`` is ``<name>(t, **parameters)``
    (a Python float for a number, an array for an array of steps). Checked when made:
    parameters that the formula cannot take raise at once, not at some later step."""

    def __init__(self, name: str, **parameters: Any) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"no schedule {name!r}; the schedules are {', '.join(SCHEDULES)}")
        self.name, self.parameters = name, dict(parameters)
        self(0)

    def __call__(self, t: Any) -> Any:
        return SCHEDULES[self.name](t, **self.parameters)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        return f"schedule({self.name!r}{', ' if args else ''}{args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return (self.name, self.parameters) == (other.name, other.parameters)

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.parameters.items()))))


def schedule(name: str, **parameters: Any) -> Schedule:
    """``mk.schedule("warmup_cosine", T_warmup=100, T_total=1000)``: the schedule
    ``name`` bound to its parameters (a callable of the step), e.g. for
    ``mk.AdamW(lr=mk.schedule(...))``."""
    return Schedule(name, **parameters)
