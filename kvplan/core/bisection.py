"""The largest value a monotone predicate accepts: one binary search for every "largest that fits" question."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["largest"]


def largest(fits: Callable[[int], bool], limit: int) -> int:
    """Largest n in [1, limit] with fits(n), for fits true up to some n and false above; 0 when none."""
    if limit < 1 or not fits(1):
        return 0
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
