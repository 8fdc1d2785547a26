"""Every GPU kernel compiles to sm_90 PTX, for float32 and float64, without a GPU.

The simulator does no type checking; this does (see ptx_compile.py). It runs in a
subprocess because this test session runs with the simulator on.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONPATH": str(HERE.parent)}


def _run(*args):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=ENV, timeout=900
    )


@pytest.fixture(scope="module")
def compiled():
    return _run(str(HERE / "ptx_compile.py"))


def test_every_gpu_kernel_compiles_to_ptx(compiled):
    from mlkernels.losses import LOSSES

    assert compiled.returncode == 0, compiled.stdout[-3000:] + compiled.stderr[-3000:]
    lines = compiled.stdout.splitlines()
    assert not [ln for ln in lines if ln.startswith("FAIL")]
    # 3 launch variants per loss and dtype, plus finalisers, rescale and copy kernels
    assert sum(ln.startswith("ok") for ln in lines) >= 2 * 3 * len(LOSSES)
    for name in LOSSES:
        assert f"ok   {name} reduce[float32]" in lines
        assert f"ok   {name} reduce grad[float64]" in lines
    for dt in ("float32", "float64"):
        for name in ("sigmoid_grad", "mish", "dropout"):
            assert f"ok   {name} map[{dt}]" in lines
        for name in ("softmax", "log_softmax_grad", "layer_norm_grad"):
            assert f"ok   {name} rows[{dt}]" in lines
        for name in ("batch_norm", "batch_norm_grad", "max_norm"):
            assert f"ok   {name} cols_emit[{dt}]" in lines
        assert f"ok   layer_norm_grad cols_merge[{dt}]" in lines


def test_ptx_check_catches_a_typing_error():
    """Negative control: the same path rejects a kernel the simulator would run happily."""
    code = textwrap.dedent(
        """
        import sys
        sys.argv = ["x"]
        import ptx_compile
        from numba import cuda, types

        def bad(a):
            a[0] = "not a number"

        try:
            cuda.compile_ptx(bad, (types.Array(types.float32, 1, "C"),), cc=(9, 0))
        except Exception as exc:
            print("rejected", type(exc).__name__)
        """
    )
    result = _run("-c", f"import sys; sys.path.insert(0, {str(HERE)!r})\n" + code)
    assert "rejected TypingError" in result.stdout, result.stdout + result.stderr
