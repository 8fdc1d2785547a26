"""The dispatcher: device from where the data lives, no host copies, results returned as
the caller's kind of array. Where no GPU exists, CuPy/PyTorch CUDA arrays are stood in for
by objects exposing ``__cuda_array_interface__`` over host memory (which is what device
memory is under the simulator)."""

import sys
import types

import numpy as np
import pytest

import mlkernels as mk
from conftest import GPU, SIMULATOR, to_device, to_host

needs_simulator = pytest.mark.skipif(not SIMULATOR, reason="fake device arrays need the simulator")


class FakeCudaArray:
    """A foreign CUDA array: only ``__cuda_array_interface__`` (version 3), like CuPy's."""

    def __init__(self, host: np.ndarray, device="cuda:0"):
        self.host = host  # keeps the memory alive
        self.device = device

    @property
    def __cuda_array_interface__(self):
        a = self.host
        return {
            "shape": a.shape,
            "typestr": a.dtype.str,
            "data": (a.__array_interface__["data"][0], False),
            "strides": None if a.flags.c_contiguous else a.strides,
            "version": 3,
        }


def _fake_module(monkeypatch, name, convert):
    """Install a stand-in for cupy/torch that records what mlkernels asked it to wrap."""
    module = types.ModuleType(name)
    module.calls = []

    def wrap(obj, **kwargs):
        module.calls.append((obj, kwargs))
        return ("wrapped", convert(obj))

    setattr(module, convert.__name__, wrap)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def _as_cupy(obj):  # pragma: no cover - replaced by the recorder
    return obj


def _as_tensor(obj):  # pragma: no cover - replaced by the recorder
    return obj


_as_cupy.__name__ = "asarray"
_as_tensor.__name__ = "as_tensor"


def test_numpy_lists_scalars_and_torch_cpu_tensors_run_on_the_cpu():
    torch = pytest.importorskip("torch")
    y, yh = [1.0, 2.0, 3.0], [1.5, 2.0, 2.0]
    want = np.mean((np.array(y) - np.array(yh)) ** 2)
    assert mk.mse(y, yh) == pytest.approx(want, rel=1e-15)
    assert mk.mse(torch.tensor(y, dtype=torch.float64), np.array(yh)) == pytest.approx(want)
    assert mk.mse(2.0, 1.0) == 1.0
    assert isinstance(mk.mse(np.array(y), np.array(yh)), np.float64)


@pytest.mark.skipif(not GPU, reason="needs the simulator or a GPU")
def test_mixing_host_and_device_arrays_names_the_arguments():
    y = np.ones(4)
    with pytest.raises(mk.DeviceMismatchError, match=r"y_hat on the GPU but y on the host"):
        mk.mse(y, to_device(y, "gpu"))
    with pytest.raises(ValueError, match=r"p on the GPU but y on the host"):
        mk.bce(y, to_device(y / 2, "gpu"))
    with pytest.raises(mk.DeviceMismatchError, match="same device"):
        mk.mse_grad(to_device(y, "gpu"), to_device(y, "gpu"), out=np.empty(4))


@needs_simulator
@pytest.mark.parametrize("kind", ["cupy", "torch"])
def test_foreign_cuda_arrays_run_on_the_gpu_and_come_back_as_their_kind(monkeypatch, kind):
    convert = _as_cupy if kind == "cupy" else _as_tensor
    module = _fake_module(monkeypatch, kind, convert)
    fake = type("ndarray" if kind == "cupy" else "Tensor", (FakeCudaArray,), {})
    fake.__module__ = f"{kind}._core" if kind == "cupy" else kind
    rng = np.random.default_rng(0)
    y, yh = rng.standard_normal(40), rng.standard_normal(40)
    with mk.launch_config(threads=32, blocks=2):
        value = mk.mse(fake(y), fake(yh))
        grad = mk.mse_grad(fake(y), fake(yh), reduction="sum")
    assert value[0] == "wrapped" and grad[0] == "wrapped"
    assert to_host(value[1]) == pytest.approx(np.mean((y - yh) ** 2), rel=1e-12)
    np.testing.assert_allclose(to_host(grad[1]), 2 * (yh - y), rtol=1e-12)
    assert to_host(value[1]).shape == ()  # reductions: a 0-d array of the caller's kind
    if kind == "torch":
        assert all(call[1] == {"device": "cuda:0"} for call in module.calls)
    assert len(module.calls) == 2


@needs_simulator
def test_device_inputs_are_read_in_place_not_copied_to_the_host():
    """The kernel reads the caller's memory: changing it changes the result."""
    y = np.zeros(8)
    yh = np.ones(8)
    fake_y, fake_yh = FakeCudaArray(y), FakeCudaArray(yh)
    with mk.launch_config(threads=32, blocks=1):
        assert to_host(mk.mse(fake_y, fake_yh)) == 1.0
        yh[:] = 3.0
        assert to_host(mk.mse(fake_y, fake_yh)) == 9.0


@needs_simulator
def test_strided_and_integer_device_arrays_are_converted_on_the_device():
    rng = np.random.default_rng(2)
    y = rng.standard_normal((6, 10))
    yh = rng.integers(-3, 3, (6, 10))
    want = np.mean((y[:, ::3] - yh[:, ::3]) ** 2)
    with mk.launch_config(threads=32, blocks=2):
        got = mk.mse(FakeCudaArray(y[:, ::3]), to_device(yh, "gpu")[:, ::3])
        got_rev = mk.mse(to_device(y, "gpu")[::-1], to_device(yh, "gpu")[::-1])
    assert to_host(got) == pytest.approx(want, rel=1e-12)
    assert to_host(got_rev) == pytest.approx(np.mean((y - yh) ** 2), rel=1e-12)


@pytest.mark.skipif(not GPU, reason="needs the simulator or a GPU")
def test_out_on_the_gpu_is_written_in_place():
    y = np.linspace(-1, 1, 40)
    out = to_device(np.zeros(40), "gpu")
    launch = mk.launch_config(threads=32, blocks=2) if SIMULATOR else mk.launch_config()
    with launch:
        res = mk.huber_grad(to_device(y, "gpu"), to_device(-y, "gpu"), 0.5, out=out)
    assert res is out
    np.testing.assert_allclose(to_host(out), mk.huber_grad(y, -y, 0.5), rtol=1e-15)


def test_wrap_leaves_numba_device_arrays_alone():
    from mlkernels._core.pipeline import wrap

    marker = object()
    assert wrap(marker, np.zeros(1)) is marker


def test_launch_config_validates_its_arguments():
    with pytest.raises(ValueError, match="power of two"):
        with mk.launch_config(threads=48):
            pass
    with pytest.raises(ValueError, match="blocks"):
        with mk.launch_config(blocks=0):
            pass
