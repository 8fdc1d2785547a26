"""Reductions as partial -> combine -> finalize: chunks of the data give the loss of it all
(what a chunked, distributed engine needs)."""

import numpy as np
import pytest

from mlkernels import reference
from mlkernels._bench.registry import ENTRIES
from mlkernels.losses import LOSSES


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chunked_partials_combine_to_the_whole(name, dtype):
    spec = LOSSES[name]
    args = ENTRIES[name].args(1000, dtype, seed=5)
    bounds = [0, 7, 40, 41, len(args[0])]  # uneven chunks along the first axis
    chunks = [tuple(a[lo:hi] for a in args) for lo, hi in zip(bounds, bounds[1:], strict=False)]
    combined = spec.combine(*(spec.partial(*chunk) for chunk in chunks))
    assert combined[1] == spec.partial(*args)[1]
    args64 = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in args]
    whole = ENTRIES[name].function(*args64, reduction="sum")
    for reduction in ("mean", "sum"):
        got = spec.finalize(combined, reduction)
        want = ENTRIES[name].function(*args, reduction=reduction)
        assert got == pytest.approx(float(want), rel=1e-5 if dtype == "float32" else 1e-12)
    # the float64 partials keep float32 data's sum as accurate as a float64 computation
    # (to the float32 rounding of each term, for the terms computed in float32)
    in_float32 = dtype == "float32" and not spec.spec.template.widen
    rel = 1e-6 if in_float32 else 1e-12
    assert spec.finalize(combined, "sum") == pytest.approx(float(whole), rel=rel, abs=1e-300)
    default = spec.signature.parameters["reduction"].default
    formula = float(getattr(reference, name)(*args64))
    assert spec.finalize(combined, default) == pytest.approx(formula, rel=max(rel, 1e-9))


def test_partials_reject_bad_input_as_the_loss_does():
    spec = LOSSES["huber"]
    with pytest.raises(ValueError, match="delta"):
        spec.partial(np.ones(3), np.ones(3), -1.0)
    with pytest.raises(ValueError, match="empty"):
        spec.finalize(spec.combine(spec.partial(np.ones(0), np.ones(0))))
