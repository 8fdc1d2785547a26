"""The main job's three tables as asv benchmarks, through the public API only (so that
``asv continuous`` can time any two commits, whatever their internals): the losses at
10^7 float64 (value and gradient in one pass, the gradient into a reused ``out=``), the
elementwise activations at 2 x 10^7 float32 (into a reused ``out=``), and the row
functions on 4096 x 4096 float32.

    asv continuous -b MainTables <previous commit> HEAD
"""

from __future__ import annotations

import os

import numpy as np

import mlkernels as mk

#: Elements of the flat tables and the rows' length (CI's smoke run: small, see _common).
SMOKE = os.environ.get("MLKERNELS_ASV_SMOKE", "") not in ("", "0")
N_LOSSES, N_ACTIVATIONS, ROW = (10_000, 20_000, 64) if SMOKE else (10**7, 2 * 10**7, 4096)

LOSSES = ["mse", "rmse", "mae", "huber", "log_cosh", "bce", "cce", "hinge", "squared_hinge"]
LOSSES += ["focal", "kl_divergence", "js_divergence", "nll", "contrastive"]
ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "swish", "mish"]
ACTIVATIONS += [name + "_grad" for name in ACTIVATIONS]
ROWS = ["softmax", "log_softmax", "softmax_grad", "log_softmax_grad", "layer_norm"]


def _loss_args(name: str, n: int, rng: np.random.Generator) -> tuple:
    if name in ("cce", "nll"):
        rows = n // 10
        p = rng.random((rows, 10)) + 0.01
        p /= p.sum(axis=1, keepdims=True)
        labels = rng.integers(0, 10, rows)
        return (np.eye(10)[labels], p) if name == "cce" else (np.log(p), labels)
    if name in ("bce", "focal"):
        return (rng.random(n) < 0.5).astype(float), rng.uniform(0.001, 0.999, n)
    if name in ("hinge", "squared_hinge"):
        return np.where(rng.random(n) < 0.5, -1.0, 1.0), rng.standard_normal(n)
    if name in ("kl_divergence", "js_divergence"):
        p, q = rng.random(n) + 0.01, rng.random(n) + 0.01
        return p / p.sum(), q / q.sum()
    if name == "contrastive":
        return np.abs(rng.standard_normal(n)), (rng.random(n) < 0.5).astype(float)
    return rng.standard_normal(n), rng.standard_normal(n)


FUNCTIONS = [f"losses.{n}" for n in LOSSES] + [f"activations.{n}" for n in ACTIVATIONS]
FUNCTIONS += [f"rows.{n}" for n in ROWS]
if SMOKE:  # one function of each table
    FUNCTIONS = ["losses.mse", "activations.sigmoid", "rows.softmax"]


class MainTables:
    """Seconds per call of mlkernels itself, for each function of the main job's tables."""

    params = (FUNCTIONS,)
    param_names = ("function",)
    timeout = 600

    def setup(self, function: str) -> None:
        table, name = function.split(".")
        rng = np.random.default_rng(0)
        if table == "losses":
            self.args = _loss_args(name, N_LOSSES, rng)
            grad_of = 0 if name in ("nll", "contrastive") else 1
            self.out = np.empty_like(self.args[grad_of], dtype=np.float64)
            self.f = getattr(mk, name + "_value_and_grad")
        elif table == "activations":
            x = (2 * rng.standard_normal(N_ACTIVATIONS)).astype(np.float32)
            self.f, self.args, self.out = getattr(mk, name), (x,), np.empty_like(x)
        else:
            x = rng.standard_normal((ROW, ROW)).astype(np.float32)
            if name == "layer_norm":
                self.args = (x, np.ones(ROW, np.float32), np.zeros(ROW, np.float32))
            elif name.endswith("_grad"):
                self.args = (x, rng.standard_normal((ROW, ROW)).astype(np.float32))
            else:
                self.args = (x,)
            self.f, self.out = getattr(mk, name), np.empty_like(x)
        self.f(*self.args, out=self.out)  # compile (or load) before timing

    def time_call(self, function: str) -> None:
        self.f(*self.args, out=self.out)
