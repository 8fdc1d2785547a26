"""Track a performance regression between two commits with asv (airspeed velocity).

``asv continuous`` builds the package at both commits (each in its own virtual
environment under ``.asv/env``), runs the chosen benchmarks of ``asv_benchmarks/`` on
both, interleaving the rounds so that the machine's noise hits both alike, and exits 1
when a benchmark got slower by more than ``--factor``. This script sets the machine up
once (``asv machine --yes``), runs it, and says what the verdict means.

    python examples/asv_regression.py                            # HEAD~1 against HEAD
    python examples/asv_regression.py --base main --head HEAD -b SmallCalls
    python examples/asv_regression.py --bench "MainTables" --factor 1.3
    python examples/asv_regression.py --smoke --quick -b SmallCalls.time_mlkernels  # CI's run

Run it from the repository root of a git clone, with the ``bench`` extra installed
(``pip install -e ".[bench]"``). ``--smoke`` sets ``MLKERNELS_ASV_SMOKE=1``: small data,
one size per suite, to prove the pipeline works rather than to time anything.
Exit status: asv's (0: no regression beyond the factor; 1: a regression, or a commit that
did not build or a benchmark that failed), 2 when this script cannot start asv.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD~1", help="the commit to compare against")
    parser.add_argument("--head", default="HEAD", help="the commit under test")
    parser.add_argument(
        "-b", "--bench", default="SmallCalls", help="regex of the benchmarks to run"
    )
    parser.add_argument("--factor", type=float, default=1.2, help="slower by more: a regression")
    parser.add_argument("--machine", default="example", help="asv's name for this machine")
    parser.add_argument("--smoke", action="store_true", help="small data (CI)")
    parser.add_argument("--quick", action="store_true", help="each benchmark once (no timing)")
    args = parser.parse_args(argv)

    if shutil.which("asv") is None:
        print('asv is not installed: pip install -e ".[bench]"')
        return 2
    try:
        base, head = (_git("rev-parse", "--short", rev) for rev in (args.base, args.head))
    except subprocess.CalledProcessError:
        print(f"{args.base} or {args.head} is not a commit of {ROOT}")
        return 2
    env = {**os.environ, "MLKERNELS_ASV_SMOKE": "1" if args.smoke else "0"}
    env.pop("NUMBA_ENABLE_CUDASIM", None)  # benchmarks time real kernels, never the simulator
    subprocess.run(
        ["asv", "machine", "--yes", "--machine", args.machine],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    command = ["asv", "continuous", "--factor", str(args.factor), "--machine", args.machine]
    command += ["--show-stderr", "-b", args.bench, *(["--quick"] * args.quick), base, head]
    print("$", " ".join(command), flush=True)
    status = subprocess.run(command, cwd=ROOT, env=env).returncode
    verdict = {
        0: f"no benchmark of {args.bench!r} got slower by more than {args.factor}x "
        f"from {base} to {head}",
        1: f"REGRESSION, or a build or benchmark that failed: see the table and the errors "
        f"above (slower by more than {args.factor}x is a regression)",
    }.get(status, f"asv failed (exit status {status}): see its output above")
    print(verdict)
    print(f"the results stay in {ROOT / '.asv/results'}: asv compare {base} {head}")
    return status


if __name__ == "__main__":
    sys.exit(main())
