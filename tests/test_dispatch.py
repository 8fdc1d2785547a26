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


class FakeStreamArray(FakeCudaArray):
    """A foreign CUDA array that names the stream its producer wrote it on."""

    def __init__(self, host: np.ndarray, stream):
        super().__init__(host)
        self.stream = stream

    @property
    def __cuda_array_interface__(self):
        return {**super().__cuda_array_interface__, "stream": self.stream}


def _fake_library(monkeypatch, kind):
    """A stand-in for cupy or torch: its array type (over host memory, as device memory is
    under the simulator), ``empty`` (its memory pool: each allocation recorded in
    ``made``) and its wrapper of foreign arrays (recorded in ``wrapped``)."""
    module = types.ModuleType(kind)
    module.made, module.wrapped = [], []
    fake = type("ndarray" if kind == "cupy" else "Tensor", (FakeCudaArray,), {})
    fake.__module__ = "cupy._core" if kind == "cupy" else "torch"
    dtypes = {}
    if kind == "torch":
        for name in ("float32", "float64", "int64", "int32"):
            setattr(module, name, f"torch.{name}")
            dtypes[f"torch.{name}"] = np.dtype(name)

    def empty(shape, dtype=None, device=None):
        if kind == "torch":
            assert device == "cuda:0", device  # the caller's device
            dtype = dtypes[dtype]
        made = fake(np.full(shape, np.nan, np.dtype(dtype)))
        module.made.append(made)
        return made

    def wrap(obj, **kwargs):
        module.wrapped.append((obj, kwargs))
        return ("wrapped", obj)

    module.empty = empty
    setattr(module, "asarray" if kind == "cupy" else "as_tensor", wrap)
    if kind == "torch":  # the current stream: what a tensor (interface v2) is made on
        module.streams = []
        current = types.SimpleNamespace(cuda_stream=0x7F00CAFE)
        module.cuda = types.SimpleNamespace(
            current_stream=lambda device: module.streams.append(device) or current
        )
    monkeypatch.setitem(sys.modules, kind, module)
    return module, fake


@needs_simulator
@pytest.mark.parametrize("kind", ["cupy", "torch"])
def test_results_and_scratch_come_from_the_callers_library(monkeypatch, kind):
    """Outputs and scratch buffers (a reduction's partials) are allocated by the caller's
    library (its memory pool), and a result allocated there comes back as that very array;
    numba allocates nothing."""
    from mlkernels._core import gpu

    module, fake = _fake_library(monkeypatch, kind)

    def numba_allocates(*args, **kwargs):
        raise AssertionError("numba allocated a buffer")

    monkeypatch.setattr(gpu.cuda, "device_array", numba_allocates)
    rng = np.random.default_rng(0)
    y, yh = rng.standard_normal(40), rng.standard_normal(40)
    x = rng.standard_normal((6, 8))
    with mk.launch_config(threads=32, blocks=2):
        value = mk.mse(fake(y), fake(yh))
        grad = mk.mse_grad(fake(y), fake(yh), reduction="sum")
        act = mk.gelu(fake(x))
        out, mean, var, x_hat = mk.batch_norm(fake(x), fake(np.ones(8)), fake(np.zeros(8)))
    for made in (value, grad, act, out, x_hat):
        assert any(made is m for m in module.made), type(made)
    assert len(module.made) > 5  # the partials of the reductions too
    assert value.host.shape == () and value.host == pytest.approx(np.mean((y - yh) ** 2))
    np.testing.assert_allclose(grad.host, 2 * (yh - y), rtol=1e-12)
    np.testing.assert_allclose(act.host, mk.gelu(x), rtol=1e-12)
    np.testing.assert_allclose(out.host, mk.batch_norm(x, np.ones(8), np.zeros(8))[0], atol=1e-12)
    # the statistics are views of a scratch array: wrapped by the caller's library
    assert mean[0] == "wrapped" and var[0] == "wrapped"
    np.testing.assert_allclose(to_host(mean[1]), x.mean(axis=0), rtol=1e-12)
    if kind == "torch":
        assert all(kwargs == {"device": "cuda:0"} for _, kwargs in module.wrapped)


@pytest.mark.parametrize(
    ("stream", "kind"),
    [(None, "default"), (1, "legacy"), (2, "per_thread"), (0x7F00BEEF, "external")],
)
def test_the_stream_named_by_the_interface_is_chosen(stream, kind):
    pytest.importorskip("numba.cuda")
    from mlkernels._core import gpu

    iface = {"shape": (1,), "typestr": "<f8", "data": (0, False), "version": 3}
    if stream is not None:
        iface["stream"] = stream
    assert gpu.stream_choice(iface) == (kind, stream or 0)


def test_streams_are_numbas_objects_for_them_and_inputs_are_not_synchronised(monkeypatch):
    """Off the simulator: the stream objects numba is asked for, and ``as_cuda_array``
    with ``sync=False`` (the host never waits for the producer's stream)."""
    pytest.importorskip("numba.cuda")
    from mlkernels._core import gpu

    asked = []
    fake_cuda = types.SimpleNamespace(
        legacy_default_stream=lambda: "legacy stream",
        per_thread_default_stream=lambda: "per-thread stream",
        external_stream=lambda ptr: ("external stream", ptr),
        as_cuda_array=lambda x, sync=True: asked.append(sync) or "view",
    )
    monkeypatch.setattr(gpu, "cuda", fake_cuda)
    monkeypatch.setattr(gpu, "simulator", lambda: False)
    assert gpu.stream_object("legacy", 1) == "legacy stream"
    assert gpu.stream_object("per_thread", 2) == "per-thread stream"
    assert gpu.stream_object("external", 1234) == ("external stream", 1234)
    assert gpu.as_device_array(FakeCudaArray(np.zeros(2))) == "view" and asked == [False]
    caller = gpu.caller_of(FakeStreamArray(np.zeros(2), 1234))
    assert caller.stream == ("external stream", 1234) and caller.library == "numba"
    assert gpu.caller_of(FakeCudaArray(np.zeros(2))).stream == 0  # no stream named


@needs_simulator
@pytest.mark.parametrize("named", [0x7F00BEEF, None])
def test_every_launch_of_a_call_goes_on_the_callers_stream(monkeypatch, named):
    """Kernels (and copies) are queued on the stream the first input names, so they run
    after the producer's writes with no host synchronisation; none named: numba's
    default stream (0)."""
    from numba.cuda.simulator import kernel as sim_kernel

    from mlkernels._core import gpu

    monkeypatch.setattr(gpu, "stream_object", lambda kind, ptr: f"stream {ptr:#x}")
    launches = []
    original = sim_kernel.FakeCUDAKernel.__getitem__

    def record(self, configuration):
        launches.append(configuration[2] if len(configuration) > 2 else "no stream given")
        return original(self, configuration)

    monkeypatch.setattr(sim_kernel.FakeCUDAKernel, "__getitem__", record)
    rng = np.random.default_rng(1)
    y, yh, x = rng.standard_normal(40), rng.standard_normal(40), rng.standard_normal((4, 8))
    with mk.launch_config(threads=32, blocks=2):
        value = mk.huber(FakeStreamArray(y, named), FakeStreamArray(yh, named), 0.5)
        soft = mk.softmax(FakeStreamArray(x, named))
        norm = mk.layer_norm_grad(*(FakeStreamArray(a, named) for a in (x, np.ones(8), x)))
        strided = mk.relu(FakeStreamArray(x[:, ::2], named))  # a copy on the device first
    want = f"stream {named:#x}" if named else 0
    assert launches and set(launches) == {want}
    launches.clear()
    module, tensor = _fake_library(monkeypatch, "torch")
    with mk.launch_config(threads=32, blocks=2):
        got = mk.softmax(tensor(x))  # PyTorch names no stream: its current one is used
    assert set(launches) == {"stream 0x7f00cafe"} and module.streams == ["cuda:0"]
    np.testing.assert_allclose(got.host, mk.softmax(x), rtol=1e-12)
    assert to_host(value) == pytest.approx(mk.huber(y, yh, 0.5), rel=1e-12)
    np.testing.assert_allclose(to_host(soft), mk.softmax(x), rtol=1e-12)
    np.testing.assert_allclose(
        to_host(norm[0]), mk.layer_norm_grad(x, np.ones(8), x)[0], atol=1e-12
    )
    np.testing.assert_allclose(to_host(strided), np.maximum(x[:, ::2], 0))


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


@pytest.mark.skipif(SIMULATOR or not GPU, reason="needs a real GPU")
def test_gpu_torch_tensors_written_on_a_side_stream_need_no_synchronize():
    """On a real GPU: a tensor written on a PyTorch side stream, then an mlkernels call on
    that stream, with no synchronisation in between, reads what was written."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA here")
    x = np.random.default_rng(0).standard_normal(1 << 22)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        t = torch.as_tensor(x, device="cuda")
        for _ in range(50):  # long enough that an unordered launch would read early
            t.mul_(1.01).add_(0.5)
        got = mk.relu(t)
        loss = mk.mse(t, torch.zeros_like(t))
    side.synchronize()
    want = x.copy()
    for _ in range(50):
        want = want * 1.01 + 0.5
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.cpu().numpy(), np.maximum(want, 0), rtol=1e-12)
    assert float(loss) == pytest.approx(np.mean(want**2), rel=1e-10)
