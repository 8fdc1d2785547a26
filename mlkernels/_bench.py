"""The measuring logic of the main job, ``python -m mlkernels`` (see ``__main__``).

Every formula of the registry runs on generated data beside its NumPy formula: the results
are checked against each other, and the NumPy formula, the mlkernels function and its
value-and-gradient are timed *interleaved* (one call of each per round, best of
``repeat`` rounds), so that the ratios come from the same moments of a noisy machine. A
bandwidth probe runs in the same rounds and gives each kernel's "% of bandwidth": a
streaming-read sum over two large arrays on the CPU (a numba parallel reduction, as the
losses read two arrays) and a device-to-device copy on the GPU.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numba import prange

from mlkernels import _registry
from mlkernels._jit import cpu_jit

#: Relative tolerance of the check against the NumPy formula, per dtype.
RTOL = {"float32": 1e-4, "float64": 1e-6}
#: Smallest arrays the bandwidth is measured on (elements of float64, per array): far
#: larger than any cache, whatever ``n`` is.
CPU_BANDWIDTH_ELEMENTS = 10_000_000
GPU_BANDWIDTH_ELEMENTS = 1 << 25
#: Inputs smaller than this may be served from the caches, not from memory.
CACHE_BYTES = 64 << 20


def _noop() -> None:
    pass


def synchronizer(device: str) -> Callable[[], None]:
    """What stops the clock honestly: ``cuda.synchronize`` on the GPU, nothing on the CPU."""
    if device == "cuda":
        from numba import cuda

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


@functools.cache
def _sum2_kernel():
    return cpu_jit(_sum2)


@dataclass(frozen=True)
class Bandwidth:
    """A measured memory bandwidth: ``bytes_per_s`` and how it was measured."""

    device: str
    bytes_per_s: float
    method: str

    @property
    def gbps(self) -> float:
        return self.bytes_per_s / 1e9

    def __str__(self) -> str:
        return f"{self.device} memory bandwidth: {self.gbps:.1f} GB/s ({self.method})"


class BandwidthProbe:
    """A repeatable bandwidth measurement of ``device``; keeps the best of all its runs.

    CPU: a streaming read, the numba parallel sum of two float64 arrays (as a loss reads
    its two inputs). GPU: a device-to-device copy of a float64 array, counting the bytes
    read and written. The arrays hold at least ``n`` elements, and far more than any
    cache. :func:`measure` runs the probe in every round beside the kernels, so that the
    bandwidth is that of the same moments of the machine as the kernels' times.
    """

    def __init__(self, device: str, n: int) -> None:
        self.device = device
        self.runs = 0
        self.best_s = math.inf
        self.sync = synchronizer(device)
        if device == "cuda":
            from numba import cuda

            m = max(n, GPU_BANDWIDTH_ELEMENTS)
            src = cuda.device_array(m, np.float64)
            dst = cuda.device_array(m, np.float64)
            self.call: Callable[[], object] = lambda: dst.copy_to_device(src)
            self.nbytes = 2 * src.nbytes
            self.what = f"device-to-device copies of {src.nbytes / 1e6:,.0f} MB, read + write"
        else:
            m = max(n, CPU_BANDWIDTH_ELEMENTS)
            a = np.full(m, 1.0)
            b = np.full(m, 2.0)
            kernel = _sum2_kernel()
            self.call = lambda: kernel(a, b)
            self.nbytes = a.nbytes + b.nbytes
            self.what = f"parallel sums of 2 x {m:,} float64, {self.nbytes / 1e6:,.0f} MB read"
        self.call()  # compile or load the sum, start the threads; the first copy
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
        return Bandwidth(self.device, self.nbytes / self.best_s, f"best of {self.runs} {self.what}")


# --------------------------------------------------------------------------------------
# One formula
# --------------------------------------------------------------------------------------


def _scalar(x: object) -> float:
    """A reduced result as a Python float (a 0-d device array is copied to the host)."""
    if hasattr(x, "copy_to_host"):
        x = x.copy_to_host()
    return float(np.asarray(x))


def _rel_err(got: float, expected: float) -> float:
    if not (math.isfinite(got) and math.isfinite(expected)):
        return 0.0 if got == expected else math.inf
    return abs(got - expected) / (abs(expected) or 1.0)


@dataclass(frozen=True)
class Result:
    """One formula on one device: times in seconds, the check against NumPy."""

    name: str
    device: str
    dtype: str
    n: int
    input_bytes: int
    transcendental: bool
    numpy_s: float
    value_s: float
    value_and_grad_s: float
    value_and_grad_out_s: float  # with out=: the gradient written into a reused array
    expected: float
    value: float
    vg_value: float  # the value returned by value_and_grad
    bandwidth: float = math.nan  # bytes/s of the bandwidth probe in the same rounds (best)

    @property
    def rel_err(self) -> float:
        """Largest relative difference of value and value_and_grad's value from NumPy's."""
        return max(_rel_err(self.value, self.expected), _rel_err(self.vg_value, self.expected))

    @property
    def ok(self) -> bool:
        return self.rel_err <= RTOL[self.dtype]

    @property
    def speedup(self) -> float:
        return self.numpy_s / self.value_s

    @property
    def gbps(self) -> float:
        """Bytes of the input arrays over the mlkernels time, in GB/s."""
        return self.input_bytes / self.value_s / 1e9

    @property
    def vg_ratio(self) -> float:
        return self.value_and_grad_s / self.value_s

    @property
    def vg_out_ratio(self) -> float:
        return self.value_and_grad_out_s / self.value_s


def _grad_buffer(f: Callable, args: tuple) -> object:
    """An array for ``out=`` of ``f``'s gradient (like the argument it is taken against),
    or None for a function that declares no such argument."""
    spec = getattr(f, "spec", None)
    params = list(inspect.signature(f).parameters)
    if spec is None or getattr(spec, "pred", None) not in params:
        return None
    x = args[params.index(spec.pred)]
    if hasattr(x, "copy_to_host"):
        from numba import cuda

        return cuda.device_array(x.shape, x.dtype)
    return np.empty(x.shape, x.dtype)


def measure(
    entry: _registry.Entry,
    host_args: tuple,
    device: str = "cpu",
    repeat: int = 5,
    probe: BandwidthProbe | None = None,
) -> Result:
    """Check and time ``entry`` on ``host_args`` (moved to the GPU for ``device="cuda"``).

    ``probe`` (of the same device), if given, runs in every round too, unless the inputs
    are small enough to stay in the caches.
    """
    if device == "cuda":
        from numba import cuda

        args = tuple(cuda.to_device(a) for a in host_args)
    else:
        args = host_args
    sync = synchronizer(device)
    f, vg = entry.function, entry.function.value_and_grad
    gbuf = _grad_buffer(f, args)
    expected = float(entry.reference(*host_args))
    value = _scalar(f(*args))
    vg_value = _scalar(vg(*args)[0])
    calls = [
        (lambda: entry.reference(*host_args), _noop),
        (lambda: f(*args), sync),
        (lambda: vg(*args), sync),
    ]
    if gbuf is not None:
        vg(*args, out=gbuf)
        calls.append((lambda: vg(*args, out=gbuf), sync))
    sync()
    input_bytes = sum(a.nbytes for a in host_args)
    # The probe streams far more than the caches hold: beside inputs that fit in them, it
    # would evict them between rounds (and % of memory bandwidth means little there).
    probing = probe is not None and input_bytes >= CACHE_BYTES
    if probing:
        calls.append((probe.call, probe.sync))
    best = [math.inf] * len(calls)
    for _ in range(max(1, repeat)):  # rounds: NumPy, mlkernels and the probe side by side
        times = best_times(calls, 1)
        best = [min(b, t) for b, t in zip(best, times, strict=True)]
        if probing:
            probe.record(times[-1])
    bw = probe.nbytes / best.pop() if probing else math.nan
    numpy_s, value_s, vg_s, *rest = best
    vg_out_s = rest[0] if rest else math.nan
    dtype = np.result_type(*(a.dtype for a in host_args if a.dtype.kind == "f"))
    return Result(
        name=entry.name,
        device=device,
        dtype=str(dtype),
        n=max(a.size for a in host_args),
        input_bytes=input_bytes,
        transcendental=entry.transcendental,
        numpy_s=numpy_s,
        value_s=value_s,
        value_and_grad_s=vg_s,
        value_and_grad_out_s=vg_out_s,
        expected=expected,
        value=value,
        vg_value=vg_value,
        bandwidth=bw,
    )


@dataclass
class Report:
    """Everything one run measured."""

    n: int
    dtype: str
    bandwidths: dict[str, Bandwidth] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    def pct_of_bandwidth(self, r: Result) -> float:
        """GB/s of ``r`` as a percentage of the bandwidth measured beside it (else the best
        of the run)."""
        bw = r.bandwidth if math.isfinite(r.bandwidth) else self.bandwidths[r.device].bytes_per_s
        return 100 * r.input_bytes / r.value_s / bw


def run(
    names: Iterable[str] | None = None,
    n: int = 10_000_000,
    dtype: str = "float64",
    devices: Sequence[str] = ("cpu",),
    repeat: int = 5,
    progress: bool = True,
    probes: dict[str, BandwidthProbe] | None = None,
) -> Report:
    """Measure every formula of ``names`` (default: all) on each device; see :class:`Report`.

    Data is generated once per formula (``entry.args(n, dtype)``) and shared by the
    devices. Each device's bandwidth probe (made here unless given) runs in every round;
    the report holds the best bandwidth each probe saw.
    """
    from tqdm.auto import tqdm

    dtype = str(np.dtype(dtype))
    entries = _registry.entries(names)
    probes = dict(probes or {})
    for device in devices:
        if device not in probes:
            probes[device] = BandwidthProbe(device, n)
            probes[device].measure()
    report = Report(n, dtype)
    bar = tqdm(total=len(entries) * len(devices), desc="measuring", disable=not progress)
    with bar:
        for entry in entries:
            host_args = entry.args(n, dtype)
            for device in devices:
                bar.set_postfix_str(f"{entry.name} ({device})")
                result = measure(entry, host_args, device, repeat, probes[device])
                report.results.append(result)
                bar.update()
            del host_args
    report.bandwidths = {device: probes[device].bandwidth() for device in devices}
    return report


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------

COLUMNS = (
    ("formula", "<"),
    ("device", "<"),
    ("numpy ms", ">"),
    ("mlkernels ms", ">"),
    ("speedup", ">"),
    ("GB/s", ">"),
    ("% of bw", ">"),
    ("v&g / v", ">"),
    ("out= / v", ">"),
    ("rel err", ">"),
)


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def format_table(report: Report) -> str:
    """The results as a fixed-width text table, with a legend and a summary."""
    rows = []
    for r in report.results:
        rows.append(
            (
                r.name + (" *" if r.transcendental else ""),
                r.device,
                _ms(r.numpy_s),
                _ms(r.value_s),
                f"{r.speedup:.1f}x",
                f"{r.gbps:.1f}",
                f"{report.pct_of_bandwidth(r):.0f}%",
                f"{r.vg_ratio:.2f}",
                "-" if math.isnan(r.vg_out_ratio) else f"{r.vg_out_ratio:.2f}",
                f"{r.rel_err:.0e}" + ("" if r.ok else " FAIL"),
            )
        )
    heads = [c for c, _ in COLUMNS]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{c:{a}{w}}" for c, (_, a), w in zip(cells, COLUMNS, widths, strict=True)
        ).rstrip()

    out = [line(heads), line(["-" * w for w in widths]), *map(line, rows)]
    for device in report.bandwidths:
        speedups = [r.speedup for r in report.results if r.device == device]
        if speedups:
            gmean = math.exp(sum(map(math.log, speedups)) / len(speedups))
            out.append(f"geometric mean speedup over NumPy ({device}): {gmean:.1f}x")
    out += [
        "* calls log/exp/tanh: bound by scalar libm calls on the CPU, not by memory",
        "speedup: NumPy formula (on the CPU) time / mlkernels time",
        "GB/s: bytes of the input arrays / mlkernels time",
        "% of bw: of the bandwidth probe run in the same rounds as the formula (best of them)",
        *(f"  over the whole run, {bw}" for bw in report.bandwidths.values()),
        "v&g / v: value_and_grad time / value time (it also writes the gradient)",
        "out= / v: the same with value_and_grad(..., out=g): g reused, no new array",
        f"rel err: largest relative difference from NumPy (limit {RTOL[report.dtype]:g})",
        "times: best of the rounds, NumPy and mlkernels interleaved in each round",
    ]
    if any(r.input_bytes < CACHE_BYTES for r in report.results):
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
    fig.suptitle(
        f"mlkernels vs NumPy, n = {report.n:,} {report.dtype} "
        "(* = log/exp/tanh: libm-bound on the CPU)"
    )
    fig.savefig(path, dpi=120)
