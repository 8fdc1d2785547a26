"""The learning-rate schedules (issue 10, part 2): Python numbers give Python floats equal
to the formulas (``mlkernels.reference``, as the specification writes them); arrays of
steps give arrays on their device; the edge cases (t = 0, t = T, past T, no warm-up,
T_total == T_warmup, negative t) and ``mk.schedule``."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import mlkernels as mk
from conftest import to_device, to_host
from mlkernels import reference as R

#: name -> (the parameters after t, the steps that matter: 0, the ends, past the end)
CASES = {
    "step_decay": ({"lr0": 0.2, "drop": 0.5, "step": 7}, [0, 1, 6, 7, 8, 70, 1000]),
    "exp_decay": ({"lr0": 0.1, "k": 0.03}, [0, 1, 10, 500, 10_000]),
    "cosine_annealing": ({"T": 50, "lr_min": 1e-5, "lr_max": 0.1}, [0, 1, 25, 49, 50, 51, 75, 100]),
    "warmup_cosine": (
        {"T_warmup": 10, "T_total": 60, "lr_max": 3e-3, "lr_min": 1e-5},
        [0, 1, 9, 10, 11, 35, 59, 60, 61, 200],
    ),
    "cyclical_lr": ({"step_size": 8, "lr_min": 1e-4, "lr_max": 1e-2}, [0, 1, 4, 8, 12, 16, 17, 33]),
}


def _formula(name, t, kw):
    """The reference formula on a number, or element by element on an array of steps
    (warmup_cosine's formula branches on a scalar)."""
    f = getattr(R, name)
    if np.ndim(t) == 0:
        return float(f(t, **kw))
    return np.array([float(f(float(v), **kw)) for v in np.asarray(t, np.float64).ravel()])


@pytest.mark.parametrize("name", list(CASES))
def test_a_number_gives_a_python_float_equal_to_the_formula(name):
    kw, steps = CASES[name]
    f = getattr(mk, name)
    for t in [*steps, *(float(s) + 0.5 for s in steps), np.int64(3), np.float32(2.0)]:
        got = f(t, **kw)
        assert type(got) is float, (t, type(got))
        rel = 1e-6 if isinstance(t, np.float32) else 1e-14  # the formula computes in float32
        assert got == pytest.approx(_formula(name, t, kw), rel=rel, abs=1e-300)


@pytest.mark.parametrize("name", list(CASES))
def test_positional_parameters_and_defaults_are_the_formulas(name):
    kw, _ = CASES[name]
    f, ref = getattr(mk, name), getattr(R, name)
    required = {"cosine_annealing": 1, "warmup_cosine": 2, "cyclical_lr": 1}.get(name, 0)
    args = list(kw.values())[:required]
    assert f(5, *args) == pytest.approx(float(ref(5, *args)), rel=1e-14)
    assert f(5, *kw.values()) == pytest.approx(float(ref(5, *kw.values())), rel=1e-14)


@pytest.mark.parametrize("dtype", ["int64", "int32", "float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_an_array_of_steps_gives_an_array_on_its_device(device, name, dtype):
    kw, steps = CASES[name]
    t = np.array(steps * (1 if device == "gpu" else 9), dtype=dtype)
    got = getattr(mk, name)(to_device(t, device), **kw)
    want_dtype = np.float32 if dtype == "float32" else np.float64
    assert hasattr(got, "copy_to_host") == (device == "gpu")
    host = to_host(got)
    assert host.dtype == want_dtype and host.shape == t.shape
    single = dtype == "float32"  # (rates below float32's range round to 0)
    tol = {"rtol": 1e-6, "atol": 1e-37} if single else {"rtol": 1e-14, "atol": 1e-300}
    np.testing.assert_allclose(host, _formula(name, t, kw), **tol)


def test_two_dimensional_strided_steps_and_out():
    t = np.arange(40, dtype=np.float64).reshape(5, 8)[:, ::2]
    kw = CASES["cosine_annealing"][0]
    got = mk.cosine_annealing(t, **kw)
    assert got.shape == t.shape
    np.testing.assert_allclose(got.ravel(), _formula("cosine_annealing", t, kw), rtol=1e-14)
    steps = np.arange(10.0)
    out = mk.cosine_annealing(steps, **kw, out=steps)  # in place over the steps
    assert out is steps
    np.testing.assert_allclose(steps, _formula("cosine_annealing", np.arange(10.0), kw), rtol=1e-14)
    a = np.array([0.0, np.nan, 3.0])
    assert np.isnan(mk.exp_decay(a)[1]) and not np.isnan(mk.exp_decay(a)[[0, 2]]).any()


def test_the_edges_of_the_schedules():
    # t = 0 and t = T: the two ends of a cosine; past T the formula's cosine rises again
    assert mk.cosine_annealing(0, 10, lr_min=0.0, lr_max=1.0) == 1.0
    assert mk.cosine_annealing(10, 10, lr_min=0.25, lr_max=1.0) == pytest.approx(0.25, abs=1e-16)
    assert mk.cosine_annealing(15, 10, lr_min=0.0, lr_max=1.0) == pytest.approx(0.5)
    # warm-up: 0 at t = 0, lr_max at T_warmup, lr_min at T_total
    assert mk.warmup_cosine(0, 5, 20) == 0.0
    assert mk.warmup_cosine(5, 5, 20, lr_max=0.1) == pytest.approx(0.1, rel=1e-15)
    assert mk.warmup_cosine(20, 5, 20, lr_min=1e-6) == pytest.approx(1e-6, rel=1e-9)
    # no warm-up: a cosine from t = 0
    assert mk.warmup_cosine(0, 0, 10, lr_max=0.1) == pytest.approx(0.1, rel=1e-15)
    assert mk.warmup_cosine(4, 0, 10) == pytest.approx(mk.cosine_annealing(4, 10, 1e-6, 1e-3))
    np.testing.assert_allclose(
        mk.warmup_cosine(np.arange(11), 0, 10), _formula("warmup_cosine", np.arange(11),
                                                         {"T_warmup": 0, "T_total": 10}),
        rtol=1e-14,
    )  # fmt: skip
    # step_decay's stairs and cyclical_lr's triangle
    assert [mk.step_decay(e, 1.0, 0.5, 10) for e in (0, 9, 10, 19, 20)] == [1, 1, 0.5, 0.5, 0.25]
    assert mk.cyclical_lr(0, 4) == pytest.approx(1e-4)
    assert mk.cyclical_lr(4, 4) == pytest.approx(1e-2)
    assert mk.cyclical_lr(8, 4) == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mk.warmup_cosine(3, 10, 10), "T_total must be > T_warmup"),
        (lambda: mk.warmup_cosine(np.arange(3), 10, 5), "T_total must be > T_warmup"),
        (lambda: mk.warmup_cosine(3, -1, 10), "T_warmup"),
        (lambda: mk.cosine_annealing(3, 0), "T must be > 0"),
        (lambda: mk.step_decay(3, step=0), "step must be > 0"),
        (lambda: mk.cyclical_lr(3, -2), "step_size must be > 0"),
        (lambda: mk.exp_decay(-1), "t must be >= 0"),
        (lambda: mk.step_decay(-0.5), "epoch must be >= 0"),
        (lambda: mk.exp_decay(float("nan")), "finite"),
        (lambda: mk.exp_decay(np.array([3, -1, 2])), "t must be >= 0"),
        (lambda: mk.exp_decay(to_device(np.array([3.0, -1.0]), "gpu")), "t must be >= 0"),
    ],
)
def test_what_the_formulas_cannot_take_is_a_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_refused_call_writes_nothing_into_out():
    out = np.full(3, 7.0)
    with pytest.raises(ValueError):
        mk.exp_decay(np.array([1.0, -1.0, 2.0]), out=out)
    np.testing.assert_array_equal(out, 7.0)


def test_schedule_binds_a_schedule_to_its_parameters():
    sched = mk.schedule("warmup_cosine", T_warmup=4, T_total=40, lr_max=0.01)
    assert sched(2) == mk.warmup_cosine(2, 4, 40, lr_max=0.01)
    np.testing.assert_array_equal(sched(np.arange(5)), mk.warmup_cosine(np.arange(5), 4, 40, 0.01))
    assert pickle.loads(pickle.dumps(sched)) == sched
    assert "warmup_cosine" in repr(sched) and isinstance(sched, mk.Schedule)
    assert hash(sched) == hash(mk.schedule("warmup_cosine", T_warmup=4, T_total=40, lr_max=0.01))
    with pytest.raises(ValueError, match="no schedule"):
        mk.schedule("linear")
    with pytest.raises(ValueError, match="T_total"):  # checked when made, not at a later step
        mk.schedule("warmup_cosine", T_warmup=4, T_total=4)
    with pytest.raises(TypeError):
        mk.schedule("cosine_annealing", lr_max=0.1)  # T is required
