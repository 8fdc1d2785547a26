"""Optimisers: SGD, SGD with momentum, Nesterov, Adam and AdamW, fused and in place.

Each optimiser has

* ``update(theta, grad)``: the formula's call, step after step: a NEW array for the new
  parameters (``theta`` is read, not written) and the state (velocity, moments, step
  count) kept in the optimiser, as the formula keeps ``self.v``, ``self.m``, ``self.t``;
* ``step(params, grads)``: the same update IN PLACE over one array or a LIST of arrays of
  any shapes and sizes, in ONE kernel launch for the whole list on either device (the
  ``Foreach`` template: a table of (array, start, stop) chunks, as PyTorch's fused
  multi-tensor optimisers). ``max_grad_norm=`` clips the gradients by their global norm
  first, in the same launch sequence: one more launch for the norm, and on the GPU one
  thread for the factor, which the update reads on the device (no host round-trip).

Both share one state: a list of per-parameter arrays (``opt.state``: dicts of "v", or "m"
and "v"), on the parameters' device, in their dtype or ``state_dtype``, and the step
count ``opt.t``, a Python int (the bias corrections are host numbers, as in PyTorch's
default, non-capturable mode). ``state_dict()`` / ``load_state_dict()`` save and restore
it as PyTorch's optimisers do. The learning rate may be a number or a schedule
(``mk.schedule(...)``, any callable of the step), evaluated at the number of steps taken
before the current one (0 for the first), as PyTorch's ``LambdaLR``.

Every step is checked before anything is written: params and grads of different devices
(``DeviceMismatchError``), dtypes (``TypeError``), shapes or list lengths (``ValueError``)
leave parameters, state and step count untouched. A NaN gradient propagates into its
parameter and moments, as in the formulas and PyTorch.

The scalar updates are written once, below, for both devices; each computes in the
state's dtype (float32 state: float32 arithmetic, as the formula on float32 arrays).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba.extending import register_jitable

from mlkernels._bench import data
from mlkernels._core import cpu as _cpu
from mlkernels._core import pipeline
from mlkernels._core.spec import NONNEGATIVE, POSITIVE, Real, formula
from mlkernels._core.templates import Foreach, Map
from mlkernels._core.vmath import like
from mlkernels.gradients import SQUARES

__all__ = ["NAG", "SGD", "Adam", "AdamW", "SGDMomentum", "sgd_update"]


# --------------------------------------------------------------------------------------
# The scalar updates: f(p, g, *state, s, params) -> (new p, *new state); s scales g
# (the global-norm clip's factor, 1 without it).
# --------------------------------------------------------------------------------------


@register_jitable
def _sgd(p, g, s, params):
    lr = like(p, params[0])
    return (p - lr * (g * like(p, s)),)


@register_jitable
def _sgd_map(theta, grad, params):
    return (theta - like(theta, params[0]) * grad,)


@register_jitable
def _momentum(p, g, v, s, params):
    lr, beta = like(v, params[0]), like(v, params[1])
    v = beta * v - lr * (g * like(v, s))
    return p + v, v


@register_jitable
def _nesterov(p, g, v, s, params):
    """The look-ahead form: p holds theta + beta v, the point the gradient is taken at."""
    lr, beta = like(v, params[0]), like(v, params[1])
    step = lr * (g * like(v, s))
    v = beta * v - step
    return p + beta * v - step, v


@register_jitable
def _momentum_first(p, g, s, params):
    """:func:`_momentum` from v = 0 (the first step): v is written, not read."""
    v = -like(p, params[0]) * (g * like(p, s))
    return p + v, v


@register_jitable
def _nesterov_first(p, g, s, params):
    """:func:`_nesterov` from v = 0."""
    lr, beta = like(p, params[0]), like(p, params[1])
    step = lr * (g * like(p, s))
    v = -step
    return p + beta * v - step, v


@register_jitable
def _look_ahead(p, v, s, params):
    return (p + like(v, params[1]) * v,)


@register_jitable
def _adam(p, g, m, v, s, params):
    lr, b1, b2, eps = like(m, params[0]), like(m, params[1]), like(m, params[2]), like(m, params[3])
    c1, c2, lr_wd = like(m, params[4]), like(m, params[5]), like(m, params[6])
    one_b1, one_b2 = like(m, params[7]), like(m, params[8])
    g = g * like(m, s)
    m = b1 * m + one_b1 * g
    v = b2 * v + one_b2 * (g * g)
    return p - lr * (m * c1) / (math.sqrt(v * c2) + eps) - lr_wd * p, m, v


@register_jitable
def _adam_first(p, g, s, params):
    """:func:`_adam` from m = v = 0 (the first step): the moments are written, not read
    (a fresh optimiser's first step moves 20 bytes per float32 element, not 28)."""
    lr, eps = like(p, params[0]), like(p, params[3])
    c1, c2, lr_wd = like(p, params[4]), like(p, params[5]), like(p, params[6])
    one_b1, one_b2 = like(p, params[7]), like(p, params[8])
    g = g * like(p, s)
    m = one_b1 * g
    v = one_b2 * (g * g)
    return p - lr * (m * c1) / (math.sqrt(v * c2) + eps) - lr_wd * p, m, v


# --------------------------------------------------------------------------------------
# sgd_update: the formula's function (elementwise, a Map)
# --------------------------------------------------------------------------------------


@formula(
    Map(_sgd_map, 0, inputs=2, results=1),
    family="optimisers",
    data=data.normal2,
    hyper={"lr": NONNEGATIVE},
)
def sgd_update(theta, grad, lr=0.01, *, out=None):
    """Vanilla SGD, ``theta - lr * grad``: a new array (or ``out=``, which may be
    ``theta`` itself: the update in place). ``lr >= 0``."""


# --------------------------------------------------------------------------------------
# The optimisers
# --------------------------------------------------------------------------------------


def _lists(params: Any, grads: Any) -> tuple[list, list]:
    """One array or a list/tuple of arrays each (the same kind for both)."""
    many = isinstance(params, (list, tuple))
    if many != isinstance(grads, (list, tuple)):
        raise TypeError("params and grads must both be arrays or both be lists of arrays")
    ps, gs = (list(params), list(grads)) if many else ([params], [grads])
    if len(ps) != len(gs):
        raise ValueError(f"{len(ps)} params but {len(gs)} grads")
    return ps, gs


def _state_dtype(value: Any) -> np.dtype | None:
    if value is None:
        return None
    dt = np.dtype(value)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"state_dtype must be float32 or float64, not {dt}")
    return dt


#: Adam's betas: in [0, 1).
_BETA = Real(0, 1, hi_open=True)


def _positive_or_none(name: str, value: Any) -> float | None:
    return None if value is None else POSITIVE(name, value)


def _arrays(state: list[dict[str, Any]]) -> list:
    return [a for s in state for a in s.values()]


def _copy(x: Any) -> Any:
    """A copy of a host or device array, of the same kind (host arrays: NumPy's)."""
    if isinstance(x, np.ndarray):
        return x.copy()
    if type(x).__module__.split(".")[0] == "torch":
        return x.clone() if x.device.type == "cuda" else x.detach().numpy().copy()
    if getattr(x, "__cuda_ndarray__", False):  # a numba (or simulator) device array
        from mlkernels._core.cuda import cuda

        y = cuda.device_array(x.shape, x.dtype)
        y.copy_to_device(x)
        return y
    return x.copy()  # CuPy


class _Optimiser:
    """The machinery of every optimiser; a subclass names its scalar update (``_f``), its
    state arrays (``_names``) and its kernel parameters (:meth:`_params`)."""

    _f: Callable
    _names: tuple[str, ...] = ()
    _hyper: tuple[str, ...] = ("lr",)  # constructor arguments saved in state_dict
    _n_params = 1  # how many floats _params gives
    _in_place: Foreach  # the update in place (step) and into new arrays (update)
    _into_new: Foreach

    _first: Callable | None = None  # the update from zero state (writes it, reads none)
    _first_in_place: Foreach | None = None
    _first_into_new: Foreach | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_f" in cls.__dict__:  # one pair of templates per scalar update
            reads, names, n = ("params", "grads", *cls._names), cls._names, cls._n_params
            cls._in_place = Foreach(cls._f, reads, ("params", *names), params=n)
            cls._into_new = Foreach(cls._f, reads, ("new", *names), params=n)
            first = cls.__dict__.get("_first")
            if first is not None:  # the same update from zeros, without reading them
                two = ("params", "grads")
                cls._first_in_place = Foreach(first, two, ("params", *names), params=n)
                cls._first_into_new = Foreach(first, two, ("new", *names), params=n)

    def __init__(self, lr: Any, *, state_dtype: Any = None, max_grad_norm: Any = None) -> None:
        self.lr = lr if callable(lr) else NONNEGATIVE("lr", lr)
        self.state_dtype = _state_dtype(state_dtype)
        self.max_grad_norm = _positive_or_none("max_grad_norm", max_grad_norm)
        self.state: list[dict[str, Any]] = []
        self._views: tuple | None = None  # (ids of the state's arrays, their device views)
        self.t = 0
        self.last_lr: float | None = None  # the learning rate of the last step
        self.last_grad_norm: Any = None  # the global norm before clipping, if clipping

    # the formula's attributes --------------------------------------------------------
    def _one(self, name: str) -> Any:
        if not self.state:
            return None
        if len(self.state) == 1:
            return self.state[0][name]
        return [s[name] for s in self.state]

    def __repr__(self) -> str:
        hyper = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._hyper)
        return f"{type(self).__name__}({hyper}, t={self.t}, arrays={len(self.state)})"

    # one step ------------------------------------------------------------------------
    def _lr_at(self, t: int) -> float:
        """The learning rate of step ``t`` (1-based): a schedule gets ``t - 1``."""
        if not callable(self.lr):
            return NONNEGATIVE("lr", self.lr)
        return NONNEGATIVE(f"lr (the schedule at step {t - 1})", self.lr(t - 1))

    def _params(self, lr: float, t: int) -> tuple:
        return (lr,)

    def _check(self, ps: list, gs: list) -> tuple[Any, list, list, np.dtype]:
        """Place and check params and grads (nothing is written): the backend, the arrays
        as its own (grads C-contiguous, copied where they were not) and the dtype."""
        if all(type(a) is np.ndarray for a in ps) and all(type(a) is np.ndarray for a in gs):
            backend, pa, ga = _cpu, ps, gs  # the common case: nothing to place
        else:
            named = {f"params[{i}]": p for i, p in enumerate(ps)}
            named.update({f"grads[{i}]": g for i, g in enumerate(gs)})
            backend, placed = pipeline.place(named)
            pa = [placed[f"params[{i}]"] for i in range(len(ps))]
            ga = [placed[f"grads[{i}]"] for i in range(len(gs))]
            if backend.is_host:
                for i, (p, orig) in enumerate(zip(pa, ps, strict=True)):
                    if not isinstance(orig, np.ndarray) and not np.shares_memory(p, orig):
                        raise TypeError(
                            f"params[{i}] is a {type(orig).__name__}: step updates arrays in "
                            "place, so params must be arrays (NumPy, PyTorch, CuPy, Numba)"
                        )
        dtype = np.dtype(pa[0].dtype) if pa else np.dtype(np.float64)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"params[0] has dtype {dtype}: parameters must be float32 or float64")
        for i, (p, g) in enumerate(zip(pa, ga, strict=True)):
            if p.dtype != dtype:
                raise TypeError(
                    f"params[{i}] has dtype {p.dtype}: every parameter must be float32, or "
                    f"every one float64 (params[0] is {dtype})"
                )
            if g.dtype != dtype:
                raise TypeError(f"grads[{i}] has dtype {g.dtype} but params[{i}] has {dtype}")
            if p.shape != g.shape:
                pipeline.same_shape(f"params[{i}]", p, f"grads[{i}]", g)
        if backend.is_host:
            ga = [g if g.flags.c_contiguous else np.ascontiguousarray(g) for g in ga]
        else:
            ga = [backend.flat(g, dtype) for g in ga]
        return backend, pa, ga, dtype

    def _state_for(
        self, backend: Any, pa: list, dtype: np.dtype, zero: bool = True
    ) -> list[dict[str, Any]]:
        """The state for these parameters, as the backend's arrays: new arrays at the first
        call (zeros, or uninitialised for the first-step kernel, which writes every
        element; not yet kept: :meth:`_commit` keeps them), else the kept state, checked."""
        if not self.state or not self._names:  # (SGD keeps none)
            sdt, k = self.state_dtype or dtype, len(self._names)
            arrays = backend.empty_list([p.shape for p in pa for _ in range(k)], sdt, zero=zero)
            return [dict(zip(self._names, arrays[i * k : (i + 1) * k], strict=True))
                    for i in range(len(pa))]  # fmt: skip
        if len(self.state) != len(pa):
            raise ValueError(
                f"this optimiser's state holds {len(self.state)} arrays but {len(pa)} "
                "params were given"
            )
        if backend.is_host:
            if not all(type(a) is np.ndarray for s in self.state for a in s.values()):
                raise pipeline.DeviceMismatchError(
                    "the optimiser's state and the params live on different devices"
                )
            own_state = self.state
        elif self._views is not None and self._views[0] == [id(a) for a in _arrays(self.state)]:
            own_state = self._views[1]  # the device views kept with the state (unchanged)
        else:
            named = {
                f"state[{i}][{n}]": s[n] for i, s in enumerate(self.state) for n in self._names
            }
            try:
                _, placed = pipeline.place({"params[0]": pa[0], **named})
            except pipeline.DeviceMismatchError:
                raise pipeline.DeviceMismatchError(
                    "the optimiser's state and the params live on different devices"
                ) from None
            own_state = [{n: placed[f"state[{i}][{n}]"] for n in self._names}
                         for i in range(len(pa))]  # fmt: skip
        for i, (p, own) in enumerate(zip(pa, own_state, strict=True)):
            for n, a in own.items():
                if a.shape != p.shape and tuple(a.shape) != tuple(p.shape):
                    raise ValueError(
                        f"params[{i}] has shape {tuple(p.shape)} but the optimiser's "
                        f"state[{i}][{n!r}] has {tuple(a.shape)}"
                    )
        return own_state

    def _commit(self, state: list[dict[str, Any]], like: Any, backend: Any, t: int) -> None:
        if not self.state and self._names:  # keep new state as the caller's kind of array
            keep = (lambda a: a) if backend.is_host else (lambda a: pipeline.wrap(a, like))
            self.state = [{n: keep(a) for n, a in s.items()} for s in state]
            if not backend.is_host:  # and its numba views: viewing a CuPy or torch array
                # costs tens of microseconds, twice per parameter at every step
                self._views = ([id(a) for a in _arrays(self.state)], state)
        self.t = t

    def _run(self, ps: list, gs: list, new: list | None) -> list | None:
        backend, pa, ga, dtype = self._check(ps, gs)
        if not pa:
            return []
        if backend.is_host:
            return self._launch(backend, pa, ga, dtype, new, ps[0])
        with backend.following(ps[0]):
            return self._launch(backend, pa, ga, dtype, new, ps[0])

    def _launch(self, backend, pa, ga, dtype, new, like) -> list | None:
        # a fresh state's first step reads no zeros (when the state has the parameters'
        # dtype: the first-step kernels compute in theirs)
        first = not self.state and self._first_in_place is not None
        first = first and (self.state_dtype is None or self.state_dtype == dtype)
        state = self._state_for(backend, pa, dtype, zero=not first)
        t = self.t + 1
        lr = self._lr_at(t)
        kernel = self._first_in_place if first else self._in_place
        if new is not None:  # theta is read only: any layout, copied if it must be
            new = backend.empty_list([p.shape for p in pa], dtype)
            pa = [backend.flat(p, dtype) for p in pa]
            kernel = self._first_into_new if first else self._into_new
        lists = {"params": pa, "grads": ga, **{n: [s[n] for s in state] for n in self._names}}
        if new is not None:
            lists["new"] = new
        _, columns = kernel.place(lists)  # every check before the first launch
        coef = None
        if self.max_grad_norm is not None:
            totals = SQUARES.launch(backend, [ga], ())
            norm, coef = backend.run_global_norm(totals, self.max_grad_norm, dtype)
            self.last_grad_norm = norm if backend.is_host else pipeline.wrap(norm, like)
        kernel.launch(backend, columns, self._params(lr, t), coef)
        self._commit(state, like, backend, t)
        self.last_lr = lr
        if new is None:
            return None
        return lists["new"] if backend.is_host else [pipeline.wrap(a, like) for a in lists["new"]]

    # the public calls ----------------------------------------------------------------
    def step(self, params: Any, grads: Any) -> None:
        """Update ``params`` (one array or a list of arrays) in place from ``grads``, in one
        fused launch for the whole list (two with ``max_grad_norm``)."""
        self._run(*_lists(params, grads), None)

    def update(self, theta: Any, grad: Any) -> Any:
        """The formula's update: the new parameters as a new array (``theta`` is read, not
        written); the state is kept in the optimiser."""
        if isinstance(theta, (list, tuple)):
            raise TypeError("update takes one array; use step() for a list")
        return self._run([theta], [grad], [])[0]

    # state ---------------------------------------------------------------------------
    def _hyper_values(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self._hyper}

    def state_dict(self) -> dict[str, Any]:
        """The state as PyTorch's optimisers give it: ``{"state": {i: {"step": t, name:
        array}}, "param_groups": [{hyper-parameters..., "params": [0, 1, ...]}]}``; the
        arrays are copies, on their device."""
        state = {
            i: {"step": self.t, **{n: _copy(a) for n, a in s.items()}}
            for i, s in enumerate(self.state)
        }
        group = {
            **self._hyper_values(),
            "max_grad_norm": self.max_grad_norm,
            "state_dtype": None if self.state_dtype is None else self.state_dtype.name,
            "t": self.t,  # the step count of a stateless optimiser (SGD) too
            "params": list(range(len(self.state))),
        }
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (copies it: the dict stays the caller's). The
        arrays stay on the device they come from; the next step checks they are where
        the parameters are."""
        try:
            state, (group,) = state_dict["state"], state_dict["param_groups"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                "a state dict has 'state' and 'param_groups' (one group), as state_dict() gives"
            ) from None
        keys = sorted(state)
        if keys != list(range(len(keys))):
            raise ValueError(f"the state's keys must be 0..{len(keys) - 1}, got {keys}")
        steps = {int(state[i].get("step", -1)) for i in keys}
        if len(steps) > 1 or (steps and min(steps) < 0):
            raise ValueError(f"every array's 'step' must be one count >= 0, got {steps}")
        restored = []
        for i in keys:
            missing = [n for n in self._names if n not in state[i]]
            if missing:
                raise ValueError(f"state[{i}] has no {missing} ({type(self).__name__})")
            arrays = {n: state[i][n] for n in self._names}
            shapes = {tuple(a.shape) for a in arrays.values()}
            if len(shapes) > 1:
                raise ValueError(f"the arrays of state[{i}] have different shapes: {shapes}")
            restored.append({n: _copy(a) for n, a in arrays.items()})
        hyper = {n: group[n] for n in self._hyper if n in group}
        checked = type(self)(**hyper)  # validates the hyper-parameters
        for n in self._hyper:
            setattr(self, n, getattr(checked, n))
        self.max_grad_norm = _positive_or_none("max_grad_norm", group.get("max_grad_norm"))
        self.state_dtype = _state_dtype(group.get("state_dtype"))
        self.state, self.t = restored, steps.pop() if steps else int(group.get("t", 0))
        self._views = None


class SGD(_Optimiser):
    """Plain SGD as an optimiser: ``theta - lr * grad`` (:func:`sgd_update`), with ``step``
    over lists in one launch; no state."""

    _f = _sgd

    def __init__(self, lr: Any = 0.01, *, max_grad_norm: Any = None) -> None:
        super().__init__(lr, max_grad_norm=max_grad_norm)


class SGDMomentum(_Optimiser):
    """SGD with momentum: ``v <- beta v - lr g``, ``theta <- theta + v``.

    ``torch.optim.SGD(momentum=beta)`` keeps ``buf <- beta buf + g`` and subtracts
    ``lr * buf``: the same parameters while ``lr`` is constant (``v = -lr buf``); under a
    schedule the formula's velocity keeps the learning rates it was made with.
    ``state_dtype``: the velocity's dtype (default: the parameters'); ``max_grad_norm``:
    clip the gradients by their global norm first (``step`` and ``update``).
    """

    _f = _momentum
    _first = _momentum_first
    _names = ("v",)
    _hyper = ("lr", "momentum")
    _n_params = 2

    def __init__(
        self,
        lr: Any = 0.01,
        momentum: float = 0.9,
        *,
        state_dtype: Any = None,
        max_grad_norm: Any = None,
    ) -> None:
        super().__init__(lr, state_dtype=state_dtype, max_grad_norm=max_grad_norm)
        self.momentum = NONNEGATIVE("momentum", momentum)

    @property
    def beta(self) -> float:
        """The formula's name of ``momentum``."""
        return self.momentum

    @property
    def v(self) -> Any:
        """The velocity (the formula's ``self.v``): an array, a list for a list of
        parameters, None before the first update."""
        return self._one("v")

    def _params(self, lr: float, t: int) -> tuple:
        return (lr, self.momentum)


class NAG(SGDMomentum):
    """Nesterov accelerated gradient.

    ``update(theta, grad_fn)`` is the formula: the gradient is taken at the look-ahead
    point ``theta + beta v`` (``grad_fn(theta_look)``), then ``v <- beta v - lr g`` and
    ``theta <- theta + v``.

    ``step(params, grads)`` takes gradients already computed, so it uses the look-ahead
    form (Sutskever et al. 2013; PyTorch's ``SGD(nesterov=True)``): the parameters hold the
    look-ahead point ``phi = theta + beta v`` and ``grads`` are taken there; then
    ``v <- beta v - lr g`` and ``phi <- phi + beta v - lr g``. It follows the same
    trajectory shifted by ``beta v``, and equals PyTorch's nesterov SGD while ``lr`` is
    constant (``v = -lr buf``).
    """

    _f = _nesterov
    _first = _nesterov_first
    _look = Foreach(_look_ahead, ("params", "v"), ("look",), params=2)
    _formula = SGDMomentum._into_new  # update(): the momentum step after the look-ahead

    def update(self, theta: Any, grad_fn: Callable[[Any], Any]) -> Any:  # type: ignore[override]
        """The formula: ``grad_fn(theta + beta v)``, then the momentum update into a new
        array (``theta`` is not written)."""
        if not callable(grad_fn):
            raise TypeError("NAG.update takes grad_fn, a function of the look-ahead point")
        backend, (p,), _, dtype = self._check([theta], [theta])
        if backend.is_host:
            return self._nag_update(backend, p, dtype, grad_fn, theta)
        with backend.following(theta):
            return self._nag_update(backend, p, dtype, grad_fn, theta)

    def _nag_update(self, backend, p, dtype, grad_fn, like) -> Any:
        state = self._state_for(backend, [p], dtype)
        p = backend.flat(p, dtype).reshape(p.shape)
        look = backend.empty(tuple(p.shape), dtype)
        lists = {"params": [p], "v": [state[0]["v"]], "look": [look]}
        self._look.launch(backend, self._look.place(lists)[1], (0.0, self.momentum))
        look_out = look if backend.is_host else pipeline.wrap(look, like)
        grad = grad_fn(look_out)
        t = self.t + 1
        lr = self._lr_at(t)
        (_, _, ga, _), new = self._check([p], [grad]), backend.empty(tuple(p.shape), dtype)
        lists = {"params": [p], "grads": ga, "v": [state[0]["v"]], "new": [new]}
        _, columns = self._formula.place(lists)
        self._formula.launch(backend, columns, (lr, self.momentum))
        self._commit(state, like, backend, t)
        self.last_lr = lr
        return new if backend.is_host else pipeline.wrap(new, like)


class Adam(_Optimiser):
    """Adam: ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g²``, ``m̂ = m / (1 - b1^t)``,
    ``v̂ = v / (1 - b2^t)``, ``theta <- theta - lr m̂ / (sqrt(v̂) + eps)``.

    The bias corrections are host numbers per step; each element costs one pass: read
    theta, g, m, v, write theta, m, v (28 bytes in float32). Equal to
    ``torch.optim.Adam`` (which folds the corrections into the step size and ``eps``:
    the same values to rounding). ``state_dtype``: the moments' dtype (default: the
    parameters'; float64 moments of float32 parameters compute in float64);
    ``max_grad_norm``: clip the gradients by their global norm first.
    """

    _f = _adam
    _first = _adam_first
    _names = ("m", "v")
    _hyper = ("lr", "beta1", "beta2", "eps")
    _n_params = 9

    def __init__(
        self,
        lr: Any = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        *,
        state_dtype: Any = None,
        max_grad_norm: Any = None,
    ) -> None:
        super().__init__(lr, state_dtype=state_dtype, max_grad_norm=max_grad_norm)
        self.beta1 = _BETA("beta1", beta1)
        self.beta2 = _BETA("beta2", beta2)
        self.eps = NONNEGATIVE("eps", eps)

    # the formula's names
    b1 = property(lambda self: self.beta1)
    b2 = property(lambda self: self.beta2)
    m = property(lambda self: self._one("m"), doc="The first moments (the formula's m).")
    v = property(lambda self: self._one("v"), doc="The second moments (the formula's v).")

    def _decay(self) -> float:
        return 0.0

    def _params(self, lr: float, t: int) -> tuple:
        c1 = 1.0 / (1.0 - self.beta1**t)
        c2 = 1.0 / (1.0 - self.beta2**t)
        return (lr, self.beta1, self.beta2, self.eps, c1, c2, lr * self._decay(),
                1.0 - self.beta1, 1.0 - self.beta2)  # fmt: skip


class AdamW(Adam):
    """AdamW, the formula's decoupled weight decay on the OLD parameters:
    ``theta_new - lr * wd * theta``, ``theta_new`` Adam's step.

    ``torch.optim.AdamW`` multiplies theta by ``1 - lr wd`` before Adam's step: the same
    value (both decay the old theta), to rounding.
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, *args: Any, weight_decay: float = 0.01, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.weight_decay = NONNEGATIVE("weight_decay", weight_decay)

    @property
    def wd(self) -> float:
        """The formula's name of ``weight_decay``."""
        return self.weight_decay

    def _decay(self) -> float:
        return self.weight_decay
