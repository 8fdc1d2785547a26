"""The main job's table of the optimisers and the gradient tools over lists (``python -m
mlkernels``, families "optimisers" and "gradients"): what a training step runs, beside the
NumPy formulas and PyTorch's fused optimisers (``torch.optim.Adam(..., fused=True)``; the
foreach implementation where there is no fused one) and
``torch.nn.utils.clip_grad_norm_(foreach=True)``.

Rows (n elements in all, the dtype of the run):

* ``<Optimiser>.step``, one array of n: in place (PyTorch: ``opt.step()``, the formula:
  its ``update`` assigned back);
* ``Adam.update``: the formula's allocating call;
* ``Adam.step``, 200 arrays of n/200 (a small model's layers), 3 steps from a fresh
  optimiser (its state allocated and zeroed inside the timing);
* ``clip_by_global_norm`` over the 200 arrays: new arrays as the formula, and in place as
  PyTorch (CPU).

On the GPU (``--device cuda``) the step rows run on numba device arrays beside PyTorch's
fused CUDA optimisers.

Every call is checked against the formula; the calls are timed interleaved, best of
``repeat`` rounds (``measure.best_times``), beside the bandwidth probe, and the table
gives GB/s by the bytes each element moves (an Adam step: 7 arrays, read or written).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import mlkernels as mk
from mlkernels import reference
from mlkernels._bench.measure import BandwidthProbe, _noop, best_times, synchronizer

#: Arrays of the list rows, and the steps taken from a fresh optimiser.
LIST_ARRAYS, LIST_STEPS = 200, 3


@dataclass
class Row:
    """One row: the times (s; NaN where there is no such call) and the check."""

    what: str
    family: str
    nbytes: int  # bytes moved by the mlkernels call
    mk_s: float
    numpy_s: float
    torch_s: float
    error: float
    rtol: float
    device: str = "cpu"

    @property
    def ok(self) -> bool:
        return self.error <= self.rtol


def _rel(got: list, want: list) -> float:
    worst = 0.0
    for g, w in zip(got, want, strict=True):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        scale = float(np.max(np.abs(w))) or 1.0
        worst = max(worst, float(np.max(np.abs(g - w))) / scale)
    return worst


def _torch(device: str = "cpu"):
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    return torch


def _to(device: str, host: np.ndarray):
    """The array the mlkernels call gets: the host array, or a numba device copy."""
    if device == "cpu":
        return host
    from mlkernels._core.cuda import cuda

    return cuda.to_device(host)


def _host(x) -> np.ndarray:
    return x.copy_to_host() if hasattr(x, "copy_to_host") else np.asarray(x)


def _tensor(torch, device: str, host: np.ndarray):
    t = torch.from_numpy(host.copy())
    return t.cuda() if device == "cuda" else t


def _torch_opt(torch, name: str, tensors: list):
    kw = {"lr": 1e-3} if name.startswith("Adam") else {"lr": 1e-2, "momentum": 0.9}
    if name == "AdamW":
        kw["weight_decay"] = 0.01
    if name == "NAG":
        kw["nesterov"] = True
    cls = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}.get(name, torch.optim.SGD)
    for impl in ({"fused": True}, {"foreach": True}):
        try:
            return cls(tensors, **kw, **impl)
        except (RuntimeError, TypeError, ValueError):
            continue
    return cls(tensors, **kw)


def _mk_opt(name: str):
    if name == "Adam":
        return mk.Adam(lr=1e-3)
    if name == "AdamW":
        return mk.AdamW(lr=1e-3, weight_decay=0.01)
    return getattr(mk, name)(lr=1e-2, momentum=0.9)


def _ref_opt(name: str):
    if name == "NAG":  # its step is the look-ahead form of torch's nesterov SGD: no formula
        return None
    if name == "AdamW":
        return reference.AdamW(lr=1e-3, weight_decay=0.01)
    if name == "Adam":
        return reference.Adam(lr=1e-3)
    return reference.SGDMomentum(lr=1e-2, momentum=0.9)


#: Bytes per element of one step, in units of the dtype's size: arrays read + written.
_MOVES = {"Adam": 7, "AdamW": 7, "SGDMomentum": 5, "NAG": 5}


def _one_array(name: str, n: int, dtype: str, repeat: int, probe, rng, device: str) -> Row:
    torch = _torch(device)
    sync = synchronizer(device)
    p0, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    # the check: three steps from the same start against the formula (NAG: torch, CPU)
    check_p, opt, gd = _to(device, p0.copy()), _mk_opt(name), _to(device, g)
    ref = _ref_opt(name)
    want = p0.astype(np.float64)
    for _ in range(3):
        opt.step(check_p, gd)
        if ref is not None:
            want = ref.update(want, g.astype(np.float64))
    cpu_torch = _torch()
    if ref is None and cpu_torch is not None:
        t = cpu_torch.tensor(p0.astype(np.float64), requires_grad=True)
        t.grad = cpu_torch.tensor(g.astype(np.float64))
        topt = _torch_opt(cpu_torch, name, [t])
        for _ in range(3):
            topt.step()
        want = t.detach().numpy()
    checked = ref is not None or cpu_torch is not None
    error = _rel([_host(check_p)], [want]) if checked else 0.0
    # the timing: steps on a live state
    p, opt, ref = _to(device, p0.copy()), _mk_opt(name), _ref_opt(name)
    state = {"theta": p0.copy()}
    calls: list[tuple[Callable[[], object], Callable[[], None]]] = [(lambda: opt.step(p, gd), sync)]
    if ref is not None and device == "cpu":
        calls.append((lambda: state.__setitem__("theta", ref.update(state["theta"], g)), sync))
    if torch is not None:
        t = _tensor(torch, device, p0)
        t.grad = _tensor(torch, device, g)
        topt = _torch_opt(torch, name, [t])
        calls.append((topt.step, sync))
    calls.append((probe.call, probe.sync))
    times = best_times(calls, repeat)
    probe.record(times[-1])
    numpy_s = times[1] if ref is not None and device == "cpu" else math.nan
    torch_s = times[-2] if torch is not None else math.nan
    size = np.dtype(dtype).itemsize
    rtol = 1e-4 if dtype == "float32" else 1e-10
    return Row(f"{name}.step", "optimisers", _MOVES[name] * size * n, times[0], numpy_s,
               torch_s, error, rtol, device)  # fmt: skip


def _update(n: int, dtype: str, repeat: int, probe, rng) -> Row:
    p0, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    opt, ref = mk.Adam(), reference.Adam()
    got, want = opt.update(p0, g), ref.update(p0.astype(np.float64), g.astype(np.float64))
    error = _rel([got], [want])
    opt, ref = mk.Adam(), reference.Adam()
    calls = [(lambda: opt.update(p0, g), _noop), (lambda: ref.update(p0, g), _noop)]
    times = best_times([*calls, (probe.call, probe.sync)], repeat)
    probe.record(times[-1])
    rtol = 1e-4 if dtype == "float32" else 1e-10
    size = np.dtype(dtype).itemsize
    return Row("Adam.update", "optimisers", 7 * size * n, times[0], times[1], math.nan,
               error, rtol)  # fmt: skip


def _list_data(n: int, dtype: str, rng) -> tuple[list, list]:
    m = max(1, n // LIST_ARRAYS)
    params = [rng.standard_normal(m).astype(dtype) for _ in range(LIST_ARRAYS)]
    grads = [rng.standard_normal(m).astype(dtype) for _ in range(LIST_ARRAYS)]
    return params, grads


def _list_steps(n: int, dtype: str, repeat: int, probe, rng, device: str) -> Row:
    torch = _torch(device)
    sync = synchronizer(device)
    params0, grads = _list_data(n, dtype, rng)
    params = [_to(device, p.copy()) for p in params0]
    dgrads = [_to(device, g) for g in grads]

    def ours():
        opt = mk.Adam()
        for _ in range(LIST_STEPS):
            opt.step(params, dgrads)

    def formula():
        return _formula_loop(params0, grads)

    ours()
    wide = [p.astype(np.float64) for p in params0], [g.astype(np.float64) for g in grads]
    error = _rel([_host(p) for p in params], _formula_loop(*wide))
    calls = [(ours, sync)]
    if device == "cpu":
        calls.append((formula, sync))
    if torch is not None:
        tensors = [_tensor(torch, device, p) for p in params0]
        tgrads = [_tensor(torch, device, g) for g in grads]

        def theirs():
            for t, tg in zip(tensors, tgrads, strict=True):
                t.grad = tg
            opt = _torch_opt(torch, "Adam", tensors)
            for _ in range(LIST_STEPS):
                opt.step()

        calls.append((theirs, sync))
    times = best_times([*calls, (probe.call, probe.sync)], repeat)
    probe.record(times[-1])
    size = np.dtype(dtype).itemsize
    m = params0[0].size
    rtol = 1e-4 if dtype == "float32" else 1e-10
    numpy_s = times[1] if device == "cpu" else math.nan
    torch_s = times[-2] if torch is not None else math.nan
    return Row(f"Adam.step, {LIST_ARRAYS} x {m:,}, {LIST_STEPS} steps", "optimisers",
               7 * size * m * LIST_ARRAYS * LIST_STEPS, times[0], numpy_s, torch_s, error,
               rtol, device)  # fmt: skip


def _formula_loop(params0: list, grads: list) -> list:
    """A Python loop over the formula's ``update``, one optimiser per array, from fresh."""
    refs = [reference.Adam() for _ in params0]
    thetas = list(params0)
    for _ in range(LIST_STEPS):
        thetas = [r.update(t, g) for r, t, g in zip(refs, thetas, grads, strict=True)]
    return thetas


def _clip_rows(n: int, dtype: str, repeat: int, probe, rng) -> list[Row]:
    torch = _torch()
    _, grads = _list_data(n, dtype, rng)
    grads = [3 * g for g in grads]
    got, norm = mk.clip_by_global_norm(grads, 1.0)
    want, want_norm = reference.clip_by_global_norm([g.astype(np.float64) for g in grads], 1.0)
    error = max(_rel(got, want), abs(float(norm) - want_norm) / want_norm)
    work = [g.copy() for g in grads]
    calls = [
        (lambda: mk.clip_by_global_norm(grads, 1.0), _noop),
        (lambda: reference.clip_by_global_norm(grads, 1.0), _noop),
        (lambda: mk.clip_by_global_norm(work, 1e30, inplace=True), _noop),
    ]
    if torch is not None:
        tensors = [torch.from_numpy(g.copy()) for g in grads]
        for t in tensors:
            t.grad = t.clone()
        calls.append((lambda: torch.nn.utils.clip_grad_norm_(tensors, 1e30, foreach=True), _noop))
    times = best_times([*calls, (probe.call, probe.sync)], repeat)
    probe.record(times[-1])
    size, m = np.dtype(dtype).itemsize, grads[0].size
    elements = m * LIST_ARRAYS
    rtol = 1e-4 if dtype == "float32" else 1e-10
    what = f"clip_by_global_norm, {LIST_ARRAYS} x {m:,}"
    torch_s = times[3] if torch is not None else math.nan
    return [
        Row(what, "gradients", 3 * size * elements, times[0], times[1], math.nan, error, rtol),
        Row(what + ", in place", "gradients", 3 * size * elements, times[2], math.nan, torch_s,
            error, rtol),
    ]  # fmt: skip


def run(
    n: int,
    dtype: str,
    repeat: int,
    families: list[str],
    probes: dict | None = None,
    devices: tuple[str, ...] = ("cpu",),
) -> tuple[list[Row], dict]:
    """Measure the rows of ``families`` ("optimisers", "gradients") on ``devices`` (the
    NumPy formulas on the CPU only; the list tools' rows on the CPU only); ``probes``:
    the "copy" bandwidth probe of each device, made here when missing."""
    probes = dict(probes or {})
    rng = np.random.default_rng(0)
    rows: list[Row] = []
    for device in devices:
        probe = probes.get(device) or BandwidthProbe(device, n, "copy")
        probes[device] = probe
        if "optimisers" in families:
            for name in ("SGDMomentum", "NAG", "Adam", "AdamW"):
                rows.append(_one_array(name, n, dtype, repeat, probe, rng, device))
            if device == "cpu":
                rows.append(_update(n, dtype, repeat, probe, rng))
            rows.append(_list_steps(n, dtype, repeat, probe, rng, device))
        if "gradients" in families and device == "cpu":
            rows.extend(_clip_rows(n, dtype, repeat, probe, rng))
    return rows, probes


def _t(s: float) -> str:
    return "-" if not math.isfinite(s) else f"{s * 1e3:.2f}"


def _x(a: float, b: float) -> str:
    return "-" if not (math.isfinite(a) and math.isfinite(b)) else f"{b / a:.1f}x"


def format_table(rows: list[Row], probes: dict, n: int, dtype: str) -> str:
    head = ["call", "device", "mlkernels ms", "NumPy formula ms", "vs NumPy", "PyTorch ms",
            "vs PyTorch", "GB/s", "% of bw", "rel. error"]  # fmt: skip
    body = []
    for r in rows:
        gbps = r.nbytes / r.mk_s / 1e9
        bw = probes[r.device].bandwidth().gbps
        body.append([
            r.what, r.device, _t(r.mk_s), _t(r.numpy_s), _x(r.mk_s, r.numpy_s), _t(r.torch_s),
            _x(r.mk_s, r.torch_s), f"{gbps:.1f}", f"{100 * gbps / bw:.0f}%",
            f"{r.error:.1e}" + ("" if r.ok else " FAIL"),
        ])  # fmt: skip
    widths = [max(len(row[k]) for row in [head, *body]) for k in range(len(head))]

    def line(cells):
        return "  ".join(
            c.ljust(w) if k < 2 else c.rjust(w)
            for k, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    bws = "; ".join(f"{d}: {p.bandwidth().gbps:.1f} GB/s" for d, p in probes.items())
    out = [
        f"== optimisers and gradient tools over lists ({n:,} {dtype} elements in all)",
        "",
        line(head),
        line(["-" * w for w in widths]),
        *(line(row) for row in body),
        "",
        "vs NumPy / vs PyTorch: their time / mlkernels' time; PyTorch: fused optimisers "
        "(foreach where none), clip_grad_norm_(foreach=True); GB/s: bytes each element "
        f"moves (Adam: 7 arrays) per second; % of bw: of the read + write probe ({bws}).",
    ]
    return "\n".join(out)
