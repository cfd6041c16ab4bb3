"""Variants of the hierarchical model's random-effect structure, on the same draws.

Each variant replaces the level specifications (``DEFAULT_LEVELS``, used at 50 rows, and
``RICH_LEVELS``, used by the zero-shot fits of whole tables) for the length of its runs and
is scored on the 50-row protocol of ML.ENERGY v2 and v3 (the draws of
``benchmarks/hierarchical.py``) and on leave one GPU / model out. ``base`` is the code
unchanged.

Run::

    python benchmarks/v3_transfer_variants.py --seeds 10 [--variants base,family,...]
        [--no-zeroshot]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import energylens.models.hierarchical.estimator as est
from energylens.models.hierarchical.design import DEFAULT_LEVELS, RICH_LEVELS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from v3_transfer_diagnosis import load, md, protocol_rows, zeroshot  # noqa: E402


def _replace(levels, cols, names):
    """``levels`` with the parameters of the level on ``cols`` replaced (dropped if empty)."""
    out = [(c, n) for c, n in levels if c != cols]
    if names:
        out.append((cols, tuple(names)))
    return tuple(out)


def _add(levels, cols, names, first=True):
    return ((cols, tuple(names)), *levels) if first else (*levels, (cols, tuple(names)))


def _family(levels, names):
    # after the source level, before the model: a model's deviation is then relative to
    # its family's
    return (levels[0], (("family",), tuple(names)), *levels[1:])


VARIANTS = {
    "base": lambda L: L,
    "family_s": lambda L: _family(L, ("s",)),
    "family": lambda L: _family(L, ("s", "am", "ac")),
    "gw_nu": lambda L: _replace(L, ("gpu", "workload"), ("nu",)),
    "no_gw": lambda L: _replace(L, ("gpu", "workload"), ()),
    "prec": lambda L: _add(L, ("precision",), ("am", "ac"), first=False),
    "family+gw_nu": lambda L: _replace(_family(L, ("s", "am", "ac")), ("gpu", "workload"), ("nu",)),
    "family_nu": lambda L: _family(L, ("s", "am", "ac", "nu")),
    "family_acnu": lambda L: _family(L, ("s", "ac", "nu")),
    "family+no_gw": lambda L: _replace(_family(L, ("s", "am", "ac")), ("gpu", "workload"), ()),
    "family_nu+no_gw": lambda L: _replace(_family(L, ("s", "am", "ac", "nu")), ("gpu", "workload"),
                                          ()),
}


def _fnb(L):
    return VARIANTS["family+no_gw"](L)


def _model_params(levels, names):
    """The model level with at least ``names`` (rich levels already have more)."""
    out = []
    for c, n in levels:
        out.append((c, tuple(dict.fromkeys(n + tuple(names)))) if c == ("model",) else (c, n))
    return tuple(out)


VARIANTS.update({
    "fnb+prec": lambda L: _add(_fnb(L), ("precision",), ("am", "ac"), first=False),
    "fnb+prec_s": lambda L: _add(_fnb(L), ("precision",), ("s", "am", "ac"), first=False),
    "fnb+famgpu": lambda L: _add(_fnb(L), ("family", "gpu"), ("s",), first=False),
    "fnb+model_am": lambda L: _model_params(_fnb(L), ("am",)),
})


@contextlib.contextmanager
def variant(name: str):
    f = VARIANTS[name]
    old = est.DEFAULT_LEVELS, est.RICH_LEVELS
    est.DEFAULT_LEVELS, est.RICH_LEVELS = f(DEFAULT_LEVELS), f(RICH_LEVELS)
    try:
        yield
    finally:
        est.DEFAULT_LEVELS, est.RICH_LEVELS = old


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--no-zeroshot", action="store_true")
    ap.add_argument("--tables", default="v3,v2")
    args = ap.parse_args(argv)
    data = {n: load(n) for n in args.tables.split(",")}
    rows = []
    for name in args.variants.split(","):
        row = {"variant": name}
        with variant(name):
            for tab, df in data.items():
                t, s = protocol_rows(df, range(args.seeds))
                row[f"{tab} mape"] = s["mape"].mean()
                row[f"{tab} median_ape"] = s["median_ape"].mean()
                row[f"{tab} top1"] = s["top1"].mean()
                if not args.no_zeroshot:
                    for split in ("gpu", "model"):
                        z, _ = zeroshot(df, split)
                        row[f"{tab} LO{split[0].upper()}O mape"] = float(
                            np.average(z["mape"], weights=z["n_test"]))
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    out = pd.DataFrame(rows)
    fmt = {c: ("{:.3f}" if "top1" in c else "{:.1f}") for c in out.columns if c != "variant"}
    from _markdown import md_table

    print(f"seeds 0-{args.seeds - 1} (50 rows); zero-shot MAPE row-weighted over folds\n")
    print(md_table(out, fmt, missing="-"))


if __name__ == "__main__":
    main()
