"""Threads of the linear-algebra library during small solves.

A fit's linear algebra is tall and thin (thousands of rows, a dozen parameters): BLAS
threads gain nothing there, and on a machine whose cores are busy they cost a great deal (an
SVD of 5,000 x 12 took 85 ms with two OpenBLAS threads on a loaded two-core machine and
2 ms with one). Fits therefore run their linear algebra on one BLAS thread; parallelism
comes from fitting groups side by side (joblib), never from inside one small solve.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

__all__ = ["single_blas_thread", "usable_cores"]

_CONTROLLER = None
_DEPTH = threading.local()  # nested blocks (a grouped fit's groups) reuse the outer limit


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Limit BLAS to one thread inside the block (a no-op where threadpoolctl is absent, and
    inside another such block of the same thread, which already holds the limit)."""
    global _CONTROLLER
    depth = getattr(_DEPTH, "n", 0)
    if depth:
        _DEPTH.n = depth + 1
        try:
            yield
        finally:
            _DEPTH.n = depth
        return
    try:
        if _CONTROLLER is None:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER = ThreadpoolController()
        limiter = _CONTROLLER.limit(limits=1, user_api="blas")
    except Exception:  # noqa: BLE001 - thread control is an optimisation, never a failure
        yield
        return
    with limiter:
        _DEPTH.n = 1
        try:
            yield
        finally:
            _DEPTH.n = 0


def usable_cores() -> int:
    """Cores this process may use (its CPU affinity where the system reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)
