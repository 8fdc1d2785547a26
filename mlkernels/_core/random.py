"""A counter-based random generator, written once for both devices: a uniform number is a
hash of (counter, key), so a stream needs no state, any element can be drawn on its own
(in any order, by any thread) and the CPU and the GPU draw the same numbers. Used by
dropout; initialisers and k-means++ next."""

from __future__ import annotations

from numba.extending import register_jitable

MASK32 = 0xFFFFFFFF


@register_jitable
def _mix32(h):
    """A 32-bit integer finaliser (xorshift-multiply, the "lowbias32" shape with 31-bit
    multipliers so that every product fits in an int64 on both devices)."""
    h ^= h >> 16
    h = (h * 0x7FEB352D) & MASK32
    h ^= h >> 15
    h = (h * 0x4B2D63C5) & MASK32
    h ^= h >> 16
    return h


@register_jitable
def uniform(i, key0, key1):
    """A uniform number in [0, 1) (32 bits) from the counter ``i`` and a 64-bit key."""
    h = _mix32((i & MASK32) ^ key0)
    h = _mix32(h ^ (i >> 32) ^ key1)
    h = _mix32(h ^ key0)
    return h * 2.3283064365386963e-10  # 2**-32
