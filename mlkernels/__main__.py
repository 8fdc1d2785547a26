"""The main job: ``python -m mlkernels`` (or the ``mlkernels`` console script).

Runs every formula mlkernels implements on generated data, beside its NumPy formula and
(when PyTorch is importable) its PyTorch equivalent; checks that mlkernels agrees with
NumPy and prints, per family, a table of times, speedups and the fraction of the memory
bandwidth (measured in the same run) that each kernel reaches. Exits 1 if any result
disagrees with NumPy, 2 on a usage error.

    python -m mlkernels                      # n = 10^7 float64 on the CPU
    python -m mlkernels --n 100000           # a quick smoke test
    python -m mlkernels --family activations --dtype float32 --n 2e7
    python -m mlkernels --only softmax layer_norm --n 16777216 --cols 4096
    python -m mlkernels --device all --dtype float32 --plot bench.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _count(text: str) -> int:
    """A positive element count: ``100000``, ``100_000`` or ``1e5``."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return int(value)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    """The command line of the main job."""
    from mlkernels._bench import registry as _registry

    row_names = [e.name for e in _registry.ENTRIES.values() if e.layout == "rows"]
    script = not sys.argv[0].endswith("__main__.py")  # the console script, not python -m
    p = argparse.ArgumentParser(
        prog="mlkernels" if script else "python -m mlkernels",
        description="Run, check and time every mlkernels formula against its NumPy formula "
        "(and PyTorch's equivalent, when PyTorch is importable).",
    )
    p.add_argument(
        "--n", type=_count, default=10_000_000, help="elements per input array (default 1e7)"
    )
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument(
        "--device",
        choices=("cpu", "cuda", "all"),
        default="cpu",
        help="'all': the CPU and, if one is usable, the GPU (default cpu)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=list(_registry.ENTRIES),
        help="measure only these formulas (default: all of " + ", ".join(_registry.ENTRIES) + ")",
    )
    p.add_argument(
        "--family",
        nargs="+",
        metavar="FAMILY",
        choices=_registry.FAMILIES,
        help="measure only these families (" + ", ".join(_registry.FAMILIES) + ")",
    )
    p.add_argument(
        "--cols",
        type=_count,
        default=_registry.ROW_COLS,
        metavar="C",
        help=f"row length of the row functions ({', '.join(row_names)}): they get "
        f"(n // C, C) arrays (default {_registry.ROW_COLS})",
    )
    p.add_argument(
        "--repeat",
        type=_positive,
        default=5,
        metavar="K",
        help="timed rounds, the best taken (default 5)",
    )
    p.add_argument("--plot", metavar="FILE", help="save a bar chart to FILE (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the main job; return the exit status (0 ok, 1 a check failed, 2 usage)."""
    import mlkernels
    from mlkernels._bench import measure as _bench
    from mlkernels._bench import registry as _registry

    args = parser().parse_args(argv)
    progress = not args.no_progress
    if args.plot:
        try:
            _bench.require_matplotlib()
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    gpu = mlkernels.cuda_available()
    if args.device == "cuda" and not gpu:
        print("error: --device cuda, but no CUDA GPU is usable here", file=sys.stderr)
        return 2
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else []
    if args.device == "all":
        devices = ["cpu", "cuda"] if gpu else ["cpu"]

    # The bandwidth first: it also starts the CPU threads, so show_config names the layer.
    entries = _registry.entries(args.only, args.family)
    if not entries:
        print("error: no formula is both in --only and in --family", file=sys.stderr)
        return 2
    kinds = dict.fromkeys(_bench.probe_kind(e) for e in entries)
    probes = {(d, k): _bench.BandwidthProbe(d, args.n, k) for d in devices for k in kinds}
    bandwidths = {key: probe.measure() for key, probe in probes.items()}
    print("mlkernels main job: every formula beside its NumPy formula and PyTorch's equivalent")
    mlkernels.show_config()
    for bw in bandwidths.values():
        print(bw)
    if args.device == "all" and not gpu:
        print("cuda: skipped (no usable CUDA GPU)")
    print(f"pytorch: {_torch_version()}")
    names = [e.name for e in entries]
    data = f"data: {args.n:,} {args.dtype} elements per input"
    if any(e.name in ("cce", "nll") for e in entries):
        data += "; (n/10, 10) rows for cce and nll"
    rows = [e for e in entries if e.layout == "rows"]
    if rows:
        data += f"; {_registry.ENTRIES[rows[0].name].shape(args.n, args.cols)} for " + ", ".join(
            e.name for e in rows
        )
    print(f"{data}; best of {args.repeat} rounds")
    print(flush=True)

    for device in devices:  # compiles every kernel it times once, or loads it from the cache
        timed = ("value", *(c for calls in _bench.TIMED_CALLS.values() for c in calls))
        mlkernels.precompile(names, (args.dtype,), device, progress, sizes=[args.n], calls=timed)
        if device == "cpu":  # the small calls' column: the serial kernels of the values
            mlkernels.precompile(
                names, (args.dtype,), device, progress, sizes=[_bench.SMALL_N], calls=["value"]
            )
    report = _bench.run(
        names,
        args.n,
        args.dtype,
        devices,
        args.repeat,
        progress=progress,
        probes=probes,
        cols=args.cols,
        small=True,
    )
    print()
    print(_bench.format_table(report))
    lists = [  # the optimisers' and gradient tools' calls over lists: their own table
        f
        for f in ("optimisers", "gradients")
        if (args.family is None and args.only is None) or f in (args.family or ())
    ]
    optim_failures = []
    if lists:
        from mlkernels._bench import optim as _optim

        given = {d: probes[(d, "copy")] for d in devices if (d, "copy") in probes}
        rows, used = _optim.run(args.n, args.dtype, args.repeat, lists, given, tuple(devices))
        print()
        print(_optim.format_table(rows, used, args.n, args.dtype))
        optim_failures = [r for r in rows if not r.ok]

    if args.plot:
        _bench.plot(report, args.plot)
        print(f"plot saved to {args.plot}")
    failures = report.failures
    for r in optim_failures:
        print(f"FAILED: {r.what} differs from its formula by {r.error:.2e}", file=sys.stderr)
    if optim_failures and not failures:
        return 1
    if failures:
        print(file=sys.stderr)
        print("FAILED: mlkernels disagrees with the NumPy formula:", file=sys.stderr)
        for r in failures:
            print(
                f"  {r.name} ({r.device}, {r.dtype}, shape {r.shape}): relative error "
                f"{r.rel_err:.2e} > {_bench.RTOL[r.dtype]:g}",
                file=sys.stderr,
            )
        return 1
    return 0


def _torch_version() -> str:
    try:
        import torch
    except ImportError:
        return "not importable (no PyTorch columns)"
    return f"{torch.__version__}, {torch.get_num_threads()} threads"


if __name__ == "__main__":
    sys.exit(main())
