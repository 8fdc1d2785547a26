"""Every GPU kernel compiles to sm_90 PTX, for float32 and float64, without a GPU, and
assembles with ``ptxas`` without spilling registers, without local memory, within an SM's
registers at the default launch shape.

The simulator does no type checking; this does (see ptx_compile.py). It runs in a
subprocess because this test session runs with the simulator on. The table of registers,
shared memory, stack frames and spills is printed at the end of the test session.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import conftest

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONPATH": str(HERE.parent)}


def _run(*args):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=ENV, timeout=900
    )


@pytest.fixture(scope="module")
def compiled():
    return _run(str(HERE / "ptx_compile.py"), "--ptxas")


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


def test_every_gpu_kernel_assembles_without_spills_or_local_memory(compiled, record_property):
    """``ptxas -v`` of every kernel: a line per kernel, none failing (ptx_compile.problems:
    spills, a stack frame, registers x threads per block above an SM's 65536)."""
    assert compiled.returncode == 0, compiled.stdout[-3000:] + compiled.stderr[-3000:]
    lines = compiled.stdout.splitlines()
    names = [ln[5:] for ln in lines if ln.startswith("ok   ")]
    table = [ln[5:].split(" | ") for ln in lines if ln.startswith("asm  ")]
    assert sorted(row[0] for row in table) == sorted(names)
    rows = sorted(table, key=lambda row: -int(row[1]))
    width = max(len(row[0]) for row in rows)
    report = [f"{'kernel (sm_90)':{width}}  registers  smem  stack  spills"]
    for name, regs, smem, stack, stores, loads in rows:
        spills = f"{stores}/{loads}"
        report.append(f"{name:{width}}  {regs:>9}  {smem:>4}  {stack:>5}  {spills}")
    record_property(conftest.REPORT_KEY, report)  # printed at the end of the session
    assert all(row[3] == "0" and row[4] == "0" and row[5] == "0" for row in rows)
    assert max(int(row[1]) for row in rows) * 256 <= 65536


def test_ptxas_check_catches_local_memory_and_spills():
    """Negative control: a kernel indexing a local array at run time gets a stack frame,
    and the check rejects it."""
    code = textwrap.dedent(
        """
        import sys
        sys.argv = ["x"]
        import ptx_compile
        from numba import cuda, float64, types

        def local(a, k):
            scratch = cuda.local.array(64, float64)
            for i in range(64):
                scratch[i] = a[i]
            a[0] = scratch[k]

        sig = (types.Array(types.float64, 1, "C"), types.int64)
        ptx, _ = cuda.compile_ptx(local, sig, cc=(9, 0))
        usage = ptx_compile.assemble(ptx_compile.ptxas_path(), ptx)
        print("usage", usage)
        print("problems", ptx_compile.problems(usage))
        """
    )
    result = _run("-c", f"import sys; sys.path.insert(0, {str(HERE)!r})\n" + code)
    assert "stack frame (local memory)" in result.stdout, result.stdout + result.stderr


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
