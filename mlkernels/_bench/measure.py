"""The measuring logic of the main job, ``python -m mlkernels`` (see ``__main__``).

Every formula of the registry runs on generated data beside its NumPy formula and, where
one exists and PyTorch is importable, its PyTorch equivalent: the results are checked
against the NumPy formula, and NumPy, PyTorch and the mlkernels calls (the function, and
its value-and-gradient or its ``out=`` form) are timed *interleaved* (one call of each per
round, best of ``repeat`` rounds), so that the ratios come from the same moments of a
noisy machine. A bandwidth probe runs in the same rounds and gives each kernel's "% of
bandwidth": for the losses and the other reductions a streaming read (a numba parallel
sum over two large arrays, as a loss reads two), for the functions that write arrays a
streaming read-and-write (a numba parallel ``b = 2 a``, counting both arrays, as such a
kernel's GB/s counts its inputs and outputs); a device-to-device copy on the GPU.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numba import prange

from mlkernels._bench import registry as _registry
from mlkernels._core.jit import cpu_jit

#: Relative tolerance of the check against the NumPy formula, per dtype.
RTOL = {"float32": 1e-4, "float64": 1e-6}
#: Smallest arrays the bandwidth is measured on (elements of float64, per array): far
#: larger than any cache, whatever ``n`` is.
CPU_BANDWIDTH_ELEMENTS = 10_000_000
GPU_BANDWIDTH_ELEMENTS = 1 << 25
#: Inputs smaller than this may be served from the caches, not from memory.
CACHE_BYTES = 64 << 20
#: Once a call has spent this many seconds in a run's rounds, it sits out the rest (a slow
#: NumPy formula on a large input would otherwise dominate the run's time).
BUDGET_S = 3.0

#: The small calls of a training loop on a batch (the main job's "n=1000" column), and
#: how they are timed: the best of ``SMALL_REPEAT`` rounds of ``SMALL_NUMBER`` calls.
SMALL_N, SMALL_COLS, SMALL_NUMBER, SMALL_REPEAT = 1000, 32, 200, 5
#: The probe kinds: "read" for the reductions, "copy" (read + write) for the rest.
PROBE_KINDS = ("read", "copy")


def _noop() -> None:
    pass


def synchronizer(device: str) -> Callable[[], None]:
    """What stops the clock honestly: ``cuda.synchronize`` on the GPU, nothing on the CPU."""
    if device == "cuda":
        from mlkernels._core.cuda import cuda

        return cuda.synchronize
    return _noop


def best_times(
    calls: Sequence[tuple[Callable[[], object], Callable[[], None]]], repeat: int
) -> list[float]:
    """Best-of-``repeat`` wall time of each ``(fn, sync)``, the calls interleaved per round."""
    best = [math.inf] * len(calls)
    for _ in range(max(1, repeat)):
        for i, (fn, sync) in enumerate(calls):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


# --------------------------------------------------------------------------------------
# Memory bandwidth
# --------------------------------------------------------------------------------------


def _sum2(a, b):
    s = 0.0
    for i in prange(a.size):
        s += a[i] + b[i]
    return s


def _scale(a, b):
    for i in prange(a.size):
        b[i] = 2.0 * a[i]


@functools.cache
def _sum2_kernel():
    return cpu_jit(_sum2)


@functools.cache
def _scale_kernel():
    return cpu_jit(_scale)


@dataclass(frozen=True)
class Bandwidth:
    """A measured memory bandwidth: ``bytes_per_s`` and how it was measured."""

    device: str
    bytes_per_s: float
    method: str
    kind: str = "read"  # "read", or "copy": read + write

    @property
    def gbps(self) -> float:
        return self.bytes_per_s / 1e9

    def __str__(self) -> str:
        what = "read + write" if self.kind == "copy" or self.device == "cuda" else "read"
        return f"{self.device} memory bandwidth, {what}: {self.gbps:.1f} GB/s ({self.method})"


def probe_kind(entry: _registry.Entry) -> str:
    """The probe an entry's "% of bandwidth" is of: "copy" if it writes arrays, else "read"."""
    return "copy" if entry.writes_arrays else "read"


class BandwidthProbe:
    """A repeatable bandwidth measurement of ``device``; keeps the best of all its runs.

    CPU, ``kind="read"``: a streaming read, the numba parallel sum of two float64 arrays (as
    a loss reads its two inputs). CPU, ``kind="copy"``: a streaming read and write, the
    numba parallel ``b = 2 a`` into a reused array, counting the bytes read and written
    (as an activation's GB/s counts its input and its output). GPU (either kind): a
    device-to-device copy of a float64 array, counting the bytes read and written. The
    arrays hold at least ``n`` elements, and far more than any cache. :func:`measure` runs
    the probe in every round beside the kernels, so that the bandwidth is that of the same
    moments of the machine as the kernels' times.
    """

    def __init__(self, device: str, n: int, kind: str = "read") -> None:
        if kind not in PROBE_KINDS:
            raise ValueError(f"kind must be one of {PROBE_KINDS}, not {kind!r}")
        self.device = device
        self.kind = kind
        self.runs = 0
        self.best_s = math.inf
        self.sync = synchronizer(device)
        if device == "cuda":
            from mlkernels._core.cuda import cuda

            m = max(n, GPU_BANDWIDTH_ELEMENTS)
            src = cuda.device_array(m, np.float64)
            dst = cuda.device_array(m, np.float64)
            self.call: Callable[[], object] = lambda: dst.copy_to_device(src)
            self.nbytes = 2 * src.nbytes
            self.what = f"device-to-device copies of {src.nbytes / 1e6:,.0f} MB, read + write"
        elif kind == "copy":
            m = max(n, CPU_BANDWIDTH_ELEMENTS)
            a = np.full(m, 1.0)
            b = np.zeros(m)
            kernel = _scale_kernel()
            self.call = lambda: kernel(a, b)
            self.nbytes = a.nbytes + b.nbytes
            self.what = (
                f"parallel b = 2a over {m:,} float64, {a.nbytes / 1e6:,.0f} MB read + "
                f"{b.nbytes / 1e6:,.0f} MB written"
            )
        else:
            m = max(n, CPU_BANDWIDTH_ELEMENTS)
            a = np.full(m, 1.0)
            b = np.full(m, 2.0)
            kernel = _sum2_kernel()
            self.call = lambda: kernel(a, b)
            self.nbytes = a.nbytes + b.nbytes
            self.what = f"parallel sums of 2 x {m:,} float64, {self.nbytes / 1e6:,.0f} MB read"
        self.call()  # compile or load the kernel, start the threads; the first copy
        self.sync()

    def record(self, seconds: float) -> None:
        """Count one timed run of :attr:`call` (timed by the caller)."""
        self.runs += 1
        self.best_s = min(self.best_s, seconds)

    def measure(self, repeat: int = 10) -> Bandwidth:
        """Run the probe ``repeat`` times; return the bandwidth, best of every run so far."""
        for _ in range(repeat):
            self.record(best_times([(self.call, self.sync)], 1)[0])
        return self.bandwidth()

    def bandwidth(self) -> Bandwidth:
        """The best bandwidth seen so far."""
        return Bandwidth(
            self.device, self.nbytes / self.best_s, f"best of {self.runs} {self.what}", self.kind
        )


# --------------------------------------------------------------------------------------
# One formula
# --------------------------------------------------------------------------------------


def _host(x: object) -> object:
    """A result on the host: device arrays copied, tuples element by element."""
    if isinstance(x, tuple):
        return tuple(_host(v) for v in x)
    if hasattr(x, "copy_to_host"):
        return x.copy_to_host()
    return x


def _nbytes(x: object) -> int:
    """Bytes of the arrays in a result (a scalar counts its 8 or 4 bytes)."""
    if isinstance(x, tuple):
        return sum(_nbytes(v) for v in x)
    return int(getattr(x, "nbytes", 0))


@dataclass(frozen=True)
class Result:
    """One formula on one device: times in seconds, the check against NumPy."""

    name: str
    family: str
    kind: str  # the registry entry's kind: "loss", "map", "scalar" or "tuple"
    device: str
    dtype: str
    shape: tuple[int, ...]  # of the main (first) argument
    nbytes: int  # bytes of the input arrays and of the arrays a call returns
    transcendental: bool
    numpy_s: float
    torch_s: float  # math.nan when there is no PyTorch equivalent (or no PyTorch)
    times: dict[str, float]  # mlkernels, by call: "value", "out", "value_and_grad", ...
    rel_err: float  # largest error of the checked calls against the NumPy formula
    probe: str = "read"  # the kind of bandwidth probe the % of bandwidth is of
    bandwidth: float = math.nan  # bytes/s of that probe in the same rounds (best)
    small: float = math.nan  # speedup over NumPy of a call on SMALL_N elements (CPU)

    @property
    def n(self) -> int:
        return math.prod(self.shape)

    @property
    def value_s(self) -> float:
        return self.times["value"]

    @property
    def ok(self) -> bool:
        return self.rel_err <= RTOL[self.dtype]

    @property
    def speedup(self) -> float:
        """NumPy formula time / mlkernels time."""
        return self.numpy_s / self.value_s

    @property
    def torch_speedup(self) -> float:
        """PyTorch time / mlkernels time (nan without a PyTorch equivalent)."""
        return self.torch_s / self.value_s

    @property
    def kernel_s(self) -> float:
        """The time of the kernel's own work: the ``out=`` call when the function has one
        (writing into an existing array, as the bandwidth probe does; a fresh array adds
        the operating system's page zeroing, about as much again), else the call."""
        return self.times.get("out", self.value_s)

    @property
    def gbps(self) -> float:
        """Bytes of the inputs and outputs over the kernel time, in GB/s."""
        return self.nbytes / self.kernel_s / 1e9

    def ratio(self, call: str) -> float:
        """Time of another mlkernels ``call`` over the function's time (nan if not run)."""
        return self.times.get(call, math.nan) / self.value_s


#: The mlkernels calls each kind times (beyond "value"), and which are checked.
TIMED_CALLS = {"loss": ("value_and_grad", "value_and_grad_out"), "map": ("out",)}


def small_call_speedup(
    entry: _registry.Entry,
    dtype: str,
    n: int = SMALL_N,
    number: int = SMALL_NUMBER,
    repeat: int = SMALL_REPEAT,
) -> float:
    """NumPy formula time / mlkernels time of one call on ``n`` elements (rows of
    ``SMALL_COLS``), host arrays: the best of ``repeat`` rounds of ``number`` calls each,
    the two alternating. Where the Python around a kernel, not the kernel, takes the time."""
    import timeit

    args = entry.args(n, dtype, cols=min(SMALL_COLS, n))
    f, ref = entry.function, entry.reference
    f(*args)
    ref(*args)
    best = {"numpy": math.inf, "mlkernels": math.inf}
    for _ in range(repeat):
        best["numpy"] = min(best["numpy"], timeit.timeit(lambda: ref(*args), number=number))
        best["mlkernels"] = min(best["mlkernels"], timeit.timeit(lambda: f(*args), number=number))
    return best["numpy"] / best["mlkernels"]


def measure(
    entry: _registry.Entry,
    host_args: tuple,
    device: str = "cpu",
    repeat: int = 5,
    probe: BandwidthProbe | None = None,
    budget_s: float = BUDGET_S,
    small: bool = False,
) -> Result:
    """Check and time ``entry`` on ``host_args`` (moved to the GPU for ``device="cuda"``).

    ``probe`` (of the same device), if given, runs in every round too, unless the inputs
    are small enough to stay in the caches. A call that has spent ``budget_s`` seconds
    sits out the remaining rounds. ``small``: time calls on ``SMALL_N`` elements too (the
    CPU's :func:`small_call_speedup`).
    """
    if device == "cuda":
        from mlkernels._core.cuda import cuda

        args = tuple(cuda.to_device(a) for a in host_args)
    else:
        args = host_args
    sync = synchronizer(device)
    calls = entry.calls(args)
    start = time.perf_counter()
    expected = entry.reference(*host_args)
    numpy_first_s = time.perf_counter() - start  # the first NumPy sample (a slow formula
    # on a large input then needs no second call: see ``budget_s``)

    value = calls["value"]()
    sync()
    nbytes = sum(a.nbytes for a in host_args) + _nbytes(value)
    errors = [entry.error(_host(value), expected, host_args)]
    del value
    if "value_and_grad" in calls:
        errors.append(entry.error(_host(calls["value_and_grad"]()[0]), expected, host_args))
    if "out" in calls:
        errors.append(entry.error(_host(calls["out"]()), expected, host_args))
    del expected

    timed: list[tuple[str, Callable[[], object], Callable[[], None]]] = [
        ("numpy", lambda: entry.reference(*host_args), _noop)
    ]
    torch = entry.torch_call(host_args, device)
    if torch is not None:
        torch[0]()  # PyTorch's first call of an op sets things up
        torch[1]()
        timed.append(("torch", *torch))
    for name in ("value", *TIMED_CALLS.get(entry.kind, ())):
        if name in calls:
            calls[name]()
            timed.append((name, calls[name], sync))
    sync()
    # The probe streams far more than the caches hold: beside inputs that fit in them, it
    # would evict them between rounds (and % of memory bandwidth means little there).
    in_bytes = sum(a.nbytes for a in host_args)
    probing = probe is not None and in_bytes >= CACHE_BYTES
    if probing:
        timed.append(("probe", probe.call, probe.sync))

    best = {label: math.inf for label, _, _ in timed}
    spent = dict.fromkeys(best, 0.0)
    best["numpy"] = spent["numpy"] = numpy_first_s
    for _ in range(max(1, repeat)):  # rounds: NumPy, PyTorch, mlkernels, probe
        for label, fn, fn_sync in timed:
            if spent[label] > budget_s and label != "probe":
                continue
            fn_sync()
            start = time.perf_counter()
            fn()
            fn_sync()
            t = time.perf_counter() - start
            spent[label] += t
            best[label] = min(best[label], t)
            if label == "probe":
                probe.record(t)
    bw = probe.nbytes / best.pop("probe") if probing else math.nan
    reals = [a.dtype for a in host_args if a.dtype.kind == "f"]
    dtype = np.result_type(*reals) if reals else np.dtype(np.float64)  # labels alone
    return Result(
        name=entry.name,
        family=entry.family,
        kind=entry.kind,
        device=device,
        dtype=str(dtype),
        shape=tuple(host_args[0].shape),
        nbytes=nbytes,
        transcendental=entry.transcendental,
        numpy_s=best.pop("numpy"),
        torch_s=best.pop("torch", math.nan),
        times=best,
        rel_err=max(errors),
        probe=probe_kind(entry),
        bandwidth=bw,
        small=small_call_speedup(entry, dtype.name) if small and device == "cpu" else math.nan,
    )


@dataclass
class Report:
    """Everything one run measured."""

    n: int
    dtype: str
    bandwidths: dict[tuple[str, str], Bandwidth] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    def pct_of_bandwidth(self, r: Result) -> float:
        """GB/s of ``r`` as a percentage of the bandwidth of its probe measured beside it
        (else the best of the run)."""
        bw = r.bandwidth
        if not math.isfinite(bw):
            run_bw = self.bandwidths.get((r.device, r.probe))
            bw = run_bw.bytes_per_s if run_bw is not None else 0.0
        return 100 * r.nbytes / r.kernel_s / bw if bw > 0 else math.nan


def run(
    names: Iterable[str] | None = None,
    n: int = 10_000_000,
    dtype: str = "float64",
    devices: Sequence[str] = ("cpu",),
    repeat: int = 5,
    progress: bool = True,
    probes: dict[tuple[str, str], BandwidthProbe] | None = None,
    families: Iterable[str] | None = None,
    cols: int | None = None,
    budget_s: float = BUDGET_S,
    small: bool = False,
) -> Report:
    """Measure every formula of ``names`` and ``families`` (default: all) on each device;
    see :class:`Report`.

    Data is generated once per formula (``entry.args(n, dtype, cols=cols)``) and shared by
    the devices. The bandwidth probes (keyed ``(device, kind)``; made here unless given)
    run in every round; the report holds the best bandwidth each probe saw.
    """
    from tqdm.auto import tqdm

    dtype = str(np.dtype(dtype))
    entries = _registry.entries(names, families)
    probes = dict(probes or {})
    for device in devices:
        for kind in dict.fromkeys(probe_kind(e) for e in entries):
            if (device, kind) not in probes:
                probes[(device, kind)] = BandwidthProbe(device, n, kind)
            if not probes[(device, kind)].runs:
                probes[(device, kind)].measure()
    report = Report(n, dtype)
    bar = tqdm(total=len(entries) * len(devices), desc="measuring", disable=not progress)
    with bar:
        for entry in entries:
            host_args = entry.args(n, dtype, cols=cols)
            for device in devices:
                bar.set_postfix_str(f"{entry.name} ({device})")
                probe = probes[(device, probe_kind(entry))]
                result = measure(entry, host_args, device, repeat, probe, budget_s, small)
                report.results.append(result)
                bar.update()
            del host_args
    report.bandwidths = {key: probe.bandwidth() for key, probe in probes.items()}
    return report


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _x(ratio: float) -> str:
    return f"{ratio:.1f}x" if math.isfinite(ratio) else "-"


def _r(ratio: float) -> str:
    return f"{ratio:.2f}" if math.isfinite(ratio) else "-"


def _pct(pct: float) -> str:
    return f"{pct:.0f}%" if math.isfinite(pct) else "-"


def _shape(shape: tuple[int, ...]) -> str:
    return " x ".join(str(s) for s in shape)


def _gmean(values: Iterable[float]) -> float:
    values = [v for v in values if math.isfinite(v) and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan


def _table(report: Report, results: list[Result]) -> list[str]:
    """One family's results as fixed-width lines."""
    has_torch = any(math.isfinite(r.torch_s) for r in results)
    shapes = {r.shape for r in results}
    show_shape = results[0].family != "losses" and len(shapes) > 1
    columns: list[tuple[str, str, Callable[[Result], str]]] = [
        ("formula", "<", lambda r: r.name + (" *" if r.transcendental else "")),
        ("device", "<", lambda r: r.device),
    ]
    if show_shape:
        columns.append(("shape", "<", lambda r: _shape(r.shape)))
    columns.append(("numpy ms", ">", lambda r: _ms(r.numpy_s)))
    if has_torch:
        columns.append(("torch ms", ">", lambda r: _ms(r.torch_s)))
    columns += [
        ("mlkernels ms", ">", lambda r: _ms(r.value_s)),
        ("vs numpy", ">", lambda r: _x(r.speedup)),
    ]
    if has_torch:
        columns.append(("vs torch", ">", lambda r: _x(r.torch_speedup)))
    if any(math.isfinite(r.small) for r in results):
        columns.append((f"n={SMALL_N:,}", ">", lambda r: _x(r.small)))
    columns += [
        ("GB/s", ">", lambda r: f"{r.gbps:.1f}"),
        ("% of bw", ">", lambda r: _pct(report.pct_of_bandwidth(r))),
    ]
    kinds = {r.kind for r in results}
    if "loss" in kinds:
        columns.append(("v&g / v", ">", lambda r: _r(r.ratio("value_and_grad"))))
        columns.append(("out= / v", ">", lambda r: _r(r.ratio("value_and_grad_out"))))
    if "map" in kinds:
        columns.append(("out= / f", ">", lambda r: _r(r.ratio("out"))))
    columns.append(("rel err", ">", lambda r: f"{r.rel_err:.0e}" + ("" if r.ok else " FAIL")))
    rows = [[fmt(r) for _, _, fmt in columns] for r in results]
    heads = [c for c, _, _ in columns]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{c:{a}{w}}" for c, (_, a, _), w in zip(cells, columns, widths, strict=True)
        ).rstrip()

    out = [line(heads), line(["-" * w for w in widths]), *map(line, rows)]
    for device in dict.fromkeys(r.device for r in results):
        mine = [r for r in results if r.device == device]
        summary = f"geometric mean speedup ({device}): {_gmean(r.speedup for r in mine):.1f}x NumPy"
        vs_torch = [r.torch_speedup for r in mine if math.isfinite(r.torch_speedup)]
        if vs_torch:
            summary += f", {_gmean(vs_torch):.1f}x PyTorch ({len(vs_torch)} formulas)"
        out.append(summary)
    return out


def format_table(report: Report) -> str:
    """The results as fixed-width text tables, one per family, with a legend."""
    out: list[str] = []
    families = list(dict.fromkeys(r.family for r in report.results))
    for family in families:
        results = [r for r in report.results if r.family == family]
        if len(families) > 1:
            out += [f"== {family}", ""]
        out += [*_table(report, results), ""]
    results = report.results
    kinds = {r.kind for r in results}
    names = {r.name for r in results}
    out += [
        "* calls log/exp/tanh",
        "vs numpy: NumPy formula (on the CPU) time / mlkernels time",
    ]
    if any(math.isfinite(r.small) for r in results):
        out.append(
            f"n={SMALL_N:,}: the same on {SMALL_N:,} elements (rows of {SMALL_COLS} for the row "
            f"functions), best of {SMALL_REPEAT} x {SMALL_NUMBER} calls: a training loop's batch"
        )
    if any(math.isfinite(r.torch_s) for r in results):
        out.append(
            "vs torch: PyTorch (same device) time / mlkernels time; derivatives: PyTorch's "
            "backward op given an all-ones upstream gradient"
        )
    out += [
        "GB/s: bytes of the input arrays and of the returned arrays / mlkernels time; for "
        "functions with out=, the out= time (the kernel's work, writing into an existing "
        "array as the probe does; speedups are of the plain calls, which allocate)",
        "% of bw: of the bandwidth probe run in the same rounds as the formula (best of them):",
        *(f"  over the whole run, {bw}" for bw in report.bandwidths.values()),
    ]
    if "copy" in {r.probe for r in results}:
        out.append("  (reductions: of the read probe; functions returning arrays: of read + write)")
    if "loss" in kinds:
        out += [
            "v&g / v: value_and_grad time / value time (it also writes the gradient)",
            "out= / v: the same with value_and_grad(..., out=g): g reused, no new array",
        ]
    if "map" in kinds:
        out.append("out= / f: the function writing into a reused out= array / allocating one")
    out += [
        f"rel err: max |mlkernels - NumPy| / max |NumPy| (limit {RTOL[report.dtype]:g})"
        + ("; dropout: its kept values and kept fraction" if "dropout" in names else ""),
        "times: best of the rounds (NumPy's also of the check's call), interleaved in each round; "
        f"a call stops after {BUDGET_S:g} s in total",
    ]
    if any(r.nbytes < CACHE_BYTES for r in results):
        out.append(
            f"note: inputs under {CACHE_BYTES >> 20} MB may stay in the CPU caches: their % of bw "
            "is of the run's bandwidth and can exceed 100%"
        )
    return "\n".join(out)


def require_matplotlib() -> None:
    """Fail early, with the fix, when ``--plot`` is asked for without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            "--plot needs matplotlib: pip install 'mlkernels[bench]' (or matplotlib)"
        ) from exc


def plot(report: Report, path: str) -> None:
    """Save a bar chart of the speedup and the % of bandwidth of each formula to ``path``."""
    require_matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    devices = list(dict.fromkeys(r.device for r in report.results))
    names = list(dict.fromkeys(r.name for r in report.results))
    by = {(r.name, r.device): r for r in report.results}
    height = 0.8 / len(devices)
    fig = Figure(figsize=(11, 0.35 * len(names) * len(devices) + 1.8), layout="constrained")
    ax_speed, ax_bw = fig.subplots(1, 2, sharey=True)
    ys = np.arange(len(names))
    for k, device in enumerate(devices):
        pos = ys + (k - (len(devices) - 1) / 2) * height
        rs = [by.get((name, device)) for name in names]
        speed = [r.speedup if r else 0.0 for r in rs]
        pct = [report.pct_of_bandwidth(r) if r else 0.0 for r in rs]
        ax_speed.barh(pos, speed, height, label=device)
        ax_bw.barh(pos, pct, height, label=device)
    ax_speed.set_xscale("log")
    ax_speed.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax_speed.axvline(1.0, color="black", linewidth=0.8)
    ax_speed.set_xlabel("speedup over the NumPy formula (log scale)")
    ax_bw.axvline(100.0, color="black", linewidth=0.8)
    ax_bw.set_xlabel("% of the measured memory bandwidth")
    star = {name: " *" if _registry.ENTRIES[name].transcendental else "" for name in names}
    ax_speed.set_yticks(ys, [name + star[name] for name in names])
    ax_speed.invert_yaxis()
    if len(devices) > 1:
        ax_bw.legend()
    fig.suptitle(f"mlkernels vs NumPy, n = {report.n:,} {report.dtype} (* = calls log/exp/tanh)")
    fig.savefig(path, dpi=120)
