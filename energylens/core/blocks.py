"""Row-wise formulas evaluated in blocks of rows that fit in the processor's cache.

A closed form on a million rows written as numpy expressions makes a temporary array of
8 MB per operation; each one leaves the cache, so the evaluation is bound by memory
traffic. The same operations on blocks of :data:`ROW_BLOCK` rows keep their temporaries in
the cache: a prediction of a million rows, reading the table included, takes about half the
time of the same formula written on whole columns (``benchmarks/speed.py``). Every kernel of
energylens is row-wise (row ``i`` of the result depends only on row ``i`` of the
variables), which is what makes the blocks exact: the result is the same, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["ROW_BLOCK", "in_row_blocks"]

#: Rows per block: 32,768 float64 rows are 256 kB a temporary, inside a typical L2 cache.
ROW_BLOCK = 32_768


def in_row_blocks(fn: Callable[..., np.ndarray], V: Mapping[str, np.ndarray], *args,
                  block: int = ROW_BLOCK) -> np.ndarray:
    """``fn(V, *args)`` for a row-wise ``fn``, evaluated ``block`` rows at a time.

    ``V`` maps names to arrays of one length (the rows); ``fn`` returns one value a row (or
    a scalar, broadcast). Tables of up to two blocks are passed through in one call.

    >>> V = {"x": np.arange(5.0)}
    >>> in_row_blocks(lambda V, a: a * V["x"] ** 2, V, 2.0, block=2)
    array([ 0.,  2.,  8., 18., 32.])
    """
    n = len(next(iter(V.values()))) if V else 0
    if n <= 2 * block:
        return fn(V, *args)
    out = np.empty(n)
    for start in range(0, n, block):
        rows = slice(start, start + block)
        out[rows] = fn({k: v[rows] for k, v in V.items()}, *args)
    return out
