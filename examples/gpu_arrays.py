"""The same mlkernels calls on GPU arrays: CuPy arrays or PyTorch CUDA tensors in, the same
kind of array out, no host copy, no host synchronisation.

Every public function takes device arrays where it takes NumPy arrays. The kernels are
queued on the stream the inputs name in their ``__cuda_array_interface__`` (a PyTorch side
stream, a CuPy stream), so they run after the producer's work without the host waiting;
results and scratch buffers come from the caller's memory pool (``cupy.empty``,
``torch.empty``). A reduction returns a 0-d device array: reading it (``float(loss)``)
is what synchronises.

    python examples/gpu_arrays.py                  # CuPy if importable, else PyTorch
    python examples/gpu_arrays.py --library torch  # PyTorch CUDA tensors, a side stream
    python examples/gpu_arrays.py --n 1000000

With no CUDA GPU (or neither CuPy nor a CUDA build of PyTorch), it says so and exits 0:
the same calls on NumPy arrays run on the CPU (``python -m mlkernels``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import mlkernels as mk


def _library(choice: str) -> str | None:
    """The GPU array library to use: ``choice``, or the first of CuPy, PyTorch usable."""
    for name in ("cupy", "torch") if choice == "auto" else (choice,):
        try:
            if name == "cupy":
                import cupy

                if cupy.cuda.runtime.getDeviceCount() > 0:
                    return name
            else:
                import torch

                if torch.cuda.is_available():
                    return name
        except Exception:  # not installed, or no driver: try the next one
            continue
    return None


def _check(name: str, got, want, rtol: float = 1e-10) -> None:
    host = got.get() if hasattr(got, "get") else got.cpu().numpy() if hasattr(got, "cpu") else got
    err = float(np.max(np.abs(np.asarray(host, np.float64) - want)) / (np.max(np.abs(want)) or 1))
    status = "ok" if err <= rtol else "MISMATCH"
    print(f"  {name:<34} {type(got).__module__.split('.')[0]:<6} rel. error {err:.1e}  {status}")
    if err > rtol:
        raise SystemExit(f"{name}: the GPU result differs from the CPU's ({err:.2e})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", choices=("auto", "cupy", "torch"), default="auto")
    parser.add_argument("--n", type=int, default=1 << 20, help="elements per array")
    args = parser.parse_args(argv)

    if not mk.cuda_available():
        print("No CUDA GPU here: nothing to run on a GPU. The same calls on NumPy arrays run")
        print("on the CPU: python -m mlkernels")
        return 0
    library = _library(args.library)
    if library is None:
        print(
            f"A CUDA GPU, but {args.library if args.library != 'auto' else 'neither CuPy nor'}"
            " a CUDA build of PyTorch is importable: install one (pip install cupy-cuda13x)"
        )
        return 0

    rng = np.random.default_rng(0)
    n, cols = args.n, 1024
    y, y_hat = rng.standard_normal(n), rng.standard_normal(n)
    x = rng.standard_normal((max(n // cols, 1), cols)).astype(np.float32)
    gamma, beta = np.ones(cols, np.float32), np.zeros(cols, np.float32)

    if library == "cupy":
        import cupy as xp

        def dev(a):
            return xp.asarray(a)

        sync = xp.cuda.Device().synchronize
    else:
        import torch

        def dev(a):
            return torch.as_tensor(a, device="cuda")

        sync = torch.cuda.synchronize

    print(f"mlkernels {mk.__version__} on {library} arrays, n = {n:,}")
    yd, yhd, xd, gd, bd = (dev(a) for a in (y, y_hat, x, gamma, beta))
    loss = mk.huber(yd, yhd, 1.0)  # a 0-d device array of the caller's kind: no sync yet
    _check("huber (0-d device array)", loss, mk.huber(y, y_hat, 1.0))
    _check("huber_grad", mk.huber_grad(yd, yhd, 1.0), mk.huber_grad(y, y_hat, 1.0))
    value, grad = mk.mse_value_and_grad(yd, yhd)  # one pass
    _check("mse_value_and_grad: value", value, mk.mse(y, y_hat))
    _check("mse_value_and_grad: gradient", grad, mk.mse_grad(y, y_hat))
    _check("gelu (float32)", mk.gelu(xd), mk.gelu(x), rtol=1e-5)
    _check("softmax (float32, rows of 1024)", mk.softmax(xd), mk.softmax(x), rtol=1e-5)
    _check("layer_norm (float32)", mk.layer_norm(xd, gd, bd), mk.layer_norm(x, gamma, beta), 1e-5)
    out = dev(np.empty_like(x))
    assert mk.relu(xd, out=out) is out  # out= is written in place and returned
    _check("relu (out=)", out, mk.relu(x))

    if library == "torch":
        import torch

        # Produced on a side stream, consumed there: mlkernels queues its kernels on the
        # stream the tensor names (torch exports the current stream), no synchronize.
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            t = torch.as_tensor(x, device="cuda") * 2.0
            r = mk.relu(t)
        side.synchronize()
        _check("relu of a tensor made on a side stream", r, mk.relu(2.0 * x))

    # Time one call as a user would see it: queued and finished.
    for name, call in (("huber_grad", lambda: mk.huber_grad(yd, yhd, 1.0)),
                       ("softmax", lambda: mk.softmax(xd))):  # fmt: skip
        call()
        sync()
        start = time.perf_counter()
        for _ in range(20):
            call()
        sync()
        print(f"  {name:<34} {(time.perf_counter() - start) / 20 * 1e6:10.1f} us per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
