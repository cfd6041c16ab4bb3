"""Variants of the hierarchical model's random-effect structure, on the same draws.

Each variant replaces the level specifications (``DEFAULT_LEVELS``, used at 50 rows, and
``RICH_LEVELS``, used by the zero-shot fits of whole tables) for the length of its runs and
is scored on the 50-row protocol of ML.ENERGY v2 and v3 (the draws of
``benchmarks/hierarchical.py``) and on leave one GPU / model out. ``base`` restores the
structures from before the family level (every other variant is built on them);
``current`` takes the structures of the code as it is. Besides the structures: the
bandwidth descriptor (``bw_gamma*``), the fixed spread of levels with few values
(``tau_few*``), the group level's scale spread held fixed (``group_tau*``), the latent
prompt lengths' prior centred on the reader's nominal lengths (``prompt_nominal``), a level
on the catalogue entry shared by checkpoints of one architecture (``arch*``), population
priors from a fit of the other ML.ENERGY table (``other_prior*``) and a GPU x workload level
added once groups have two rows (``gw_from2``).
``--n 100`` draws 100 rows (one draw per seed, not the 50-then-100 sequence of
``benchmarks/hierarchical.py``, so its 100-row figures differ from the docs' by the draw).

Run (about 30 s per variant with the zero-shot folds, 5 s without, on one core)::

    python benchmarks/v3_transfer_variants.py --seeds 20 [--variants base,current,...]
        [--no-zeroshot] [--n 100] [--tables v3,v2]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import energylens.models.hierarchical.estimator as est
from energylens.models.hierarchical import design

#: The structures before the family level (the reference the variants are built on): the
#: library's, without the family level, and the default one with its former GPU x workload
#: level (scale and step overhead) back before the group level.
_NO_FAMILY = [lv for lv in design.DEFAULT_LEVELS if lv[0] != ("model_family",)]
DEFAULT_LEVELS = (*_NO_FAMILY[:-1], (("gpu", "workload"), ("s", "nu")), _NO_FAMILY[-1])
RICH_LEVELS = tuple(lv for lv in design.RICH_LEVELS if lv[0] != ("model_family",))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from v3_transfer_diagnosis import load, protocol_rows, zeroshot  # noqa: E402


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
    return (levels[0], (("model_family",), tuple(names)), *levels[1:])


VARIANTS = {
    "base": lambda L: L,  # the old structures (as in the code before the family level)
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
    "fnb+famgpu": lambda L: _add(_fnb(L), ("model_family", "gpu"), ("s",), first=False),
    "fnb+model_am": lambda L: _model_params(_fnb(L), ("am",)),
})


def _set(levels, cols, names):
    """``levels`` with the level on ``cols`` given exactly ``names`` (added at its place in
    RICH_LEVELS' order if absent)."""
    if any(c == cols for c, _ in levels):
        return tuple((c, tuple(names)) if c == cols else (c, n) for c, n in levels)
    return (*levels, (cols, tuple(names)))


#: Variants of the 50-row (default) structure only; the rich structure is family+no_gw's.
DEFAULT_ONLY = {
    "D:rich": lambda D, R: R,
    "D:prec_gpu": lambda D, R: _set(D, ("precision", "gpu"), ("s", "am", "ac")),
    "D:model": lambda D, R: _set(D, ("model",), ("s", "am", "ac", "nu")),
    "D:group_nu": lambda D, R: _set(D, ("group",), ("s", "nu")),
    "D:family_full": lambda D, R: _set(D, ("model_family",), ("s", "am", "ac", "nu", "dc", "tau1")),
}


def _current(which):
    return getattr(design, which)


def _arch(levels, names):
    """``levels`` with a level on the catalogue entry (``model_arch``: checkpoints of one
    architecture, e.g. instruct, thinking and FP8 variants) deviating in ``names``, just
    before the model level."""
    i = next(j for j, (c, _) in enumerate(levels) if c == ("model",))
    return (*levels[:i], (("model_arch",), tuple(names)), *levels[i:])


@contextlib.contextmanager
def _arch_labels():
    """The level labels with ``model_arch``: the catalogue entry each model resolves to (its
    own name where the catalogue does not know it)."""
    from energylens.core.catalogue import descriptors

    orig = est.row_labels

    def labels(X):
        out = orig(X)
        entry = descriptors(X[["model", "gpu"]], errors="coerce")["model_name"].to_numpy(object)
        out["model_arch"] = np.where(pd.notna(entry), entry, out["model"].to_numpy(object))
        return out

    est.row_labels = labels
    try:
        yield
    finally:
        est.row_labels = orig


#: Variants that set the two structures apart: (default, rich).
SPLIT = {
    "cur+prec_nu": (lambda D: _set(_current("DEFAULT_LEVELS"), ("precision", "gpu"), ("s", "nu")),
                    lambda R: _set(_current("RICH_LEVELS"), ("precision", "gpu"),
                                   ("s", "am", "ac", "nu"))),
    "cur+prec_nu_rich": (lambda D: _current("DEFAULT_LEVELS"),
                         lambda R: _set(_current("RICH_LEVELS"), ("precision", "gpu"),
                                        ("s", "am", "ac", "nu"))),
    "family+no_gw_at_50": (VARIANTS["family+no_gw"], VARIANTS["family"]),
    # the catalogue-entry level on the current structures: the model level's parameters
    # (scale at 50 rows; scale, bandwidth, compute and step overhead in the rich one) ...
    "arch": (lambda D: _arch(_current("DEFAULT_LEVELS"), ("s",)),
             lambda R: _arch(_current("RICH_LEVELS"), ("s", "am", "ac", "nu"))),
    # ... or the family level's (scale, bandwidth, compute) in both
    "arch_sac": (lambda D: _arch(_current("DEFAULT_LEVELS"), ("s", "am", "ac")),
                 lambda R: _arch(_current("RICH_LEVELS"), ("s", "am", "ac"))),
    "arch_s": (lambda D: _arch(_current("DEFAULT_LEVELS"), ("s",)),
               lambda R: _arch(_current("RICH_LEVELS"), ("s",))),
}
#: The family level with fewer parameters (no GPU x workload level at 50 rows).
for _names in (("ac",), ("s", "ac"), ("am", "ac")):
    SPLIT["fam_" + "_".join(_names)] = (
        lambda L, n=_names: _replace(_family(L, n), ("gpu", "workload"), ()),
        lambda L, n=_names: _family(L, n))


#: Descriptor variants on the current structures: the bandwidth the form divides by,
#: ``bw * ((P / bw) / (P_H100 / bw_H100)) ** gamma`` (gamma = 1: bandwidth in proportion
#: to board power, i.e. the same energy per streamed byte on every GPU at equal shares).
BANDWIDTH = {"bw_gamma0.5": 0.5, "bw_gamma1": 1.0}


@contextlib.contextmanager
def _bandwidth(gamma: float):
    orig = est.form_variables

    def patched(X, terms=None):
        V = orig(X, terms)
        V["bw"] = V["bw"] * ((V["P"] / V["bw"]) / (700.0 / 3.35e12)) ** gamma
        return V

    est.form_variables = patched
    try:
        yield
    finally:
        est.form_variables = orig


#: Spread of a level with too few values to estimate one (pooling.TAU_FEW, 0.5 in the code),
#: on the current structures.
TAU_FEW = {"tau_few0.3": 0.3, "tau_few0.75": 0.75, "tau_few1": 1.0}


@contextlib.contextmanager
def _tau_few(value: float):
    from energylens.models.hierarchical import pooling

    old = pooling.TAU_FEW
    pooling.TAU_FEW = value
    try:
        yield
    finally:
        pooling.TAU_FEW = old


#: The group level's scale spread held at a value instead of estimated (0.11 on v3 at 50 rows,
#: about the residual sd), on the current structures.
GROUP_TAU = {"group_tau0.05": 0.05, "group_tau0.2": 0.2, "group_tau0.4": 0.4}


@contextlib.contextmanager
def _group_tau(value: float):
    from energylens.models.hierarchical import pooling

    orig = pooling._update_spreads

    def patched(z, post, prec, tau, groups, *args, **kwargs):
        sigma, new, change = orig(z, post, prec, tau, groups, *args, **kwargs)
        last = max(li for li, _ in new)  # the group level comes last in every structure
        new.update({g: value for g in new if g == (last, "s")})
        return sigma, new, change

    pooling._update_spreads = patched
    try:
        yield
    finally:
        pooling._update_spreads = orig


@contextlib.contextmanager
def _prompt_nominal():
    """Each workload's latent prompt length with its prior centred on the length the reader
    records as assumed for it (ML.ENERGY v3: 256 or 1024 tokens) instead of 300."""
    from energylens.models.hierarchical.form import PARAMETER_NAMES

    orig, k = est.build_design, PARAMETER_NAMES.index("si")
    fit_table = est.HierarchicalEnergyModel._fit_table
    nominal: dict = {}

    def remember(self, X, *args, **kwargs):
        nominal.clear()
        if "input_tokens_assumed" in X.columns:
            assumed = X[X["input_tokens_assumed"].fillna(False).astype(bool)]
            nominal.update(assumed.groupby("workload")["input_tokens"].median().to_dict())
        return fit_table(self, X, *args, **kwargs)

    def patched(labels, specs, group_cols, inits):
        d = orig(labels, specs, group_cols, inits)
        for j in np.flatnonzero((d.kind == "wl") & (d.param == k)):
            if d.value[j] in nominal:
                d.prior_mean[j] = np.log(nominal[d.value[j]])
        return d

    est.build_design, est.HierarchicalEnergyModel._fit_table = patched, remember
    try:
        yield
    finally:
        est.build_design, est.HierarchicalEnergyModel._fit_table = orig, fit_table


#: Population priors from a fit of the whole other table (v2 for v3, v3 for v2): each
#: population value's prior centred on the other table's estimate, its spread that
#: estimate's standard error combined with the given between-table spread.
OTHER_PRIOR = {"other_prior0.2": 0.2, "other_prior0.5": 0.5}
_OTHER = {"v3": "v2", "v2": "v3"}


@contextlib.contextmanager
def _other_prior(spread: float, table: str):
    source = est.HierarchicalEnergyModel().fit(load(_OTHER[table]))
    d0 = source.design_
    pop = {int(d0.param[j]): (source.coef_[j], float(np.sqrt(source.posterior_.diag[j])))
           for j in np.flatnonzero(d0.kind == "pop")}
    orig = est.build_design

    def patched(labels, specs, group_cols, inits):
        d = orig(labels, specs, group_cols, inits)
        for j in np.flatnonzero(d.kind == "pop"):
            k = int(d.param[j])
            if k in pop and d.prior_sd[j] > 0.05:  # not the scale, which the levels own
                d.prior_mean[j] = pop[k][0]
                d.prior_sd[j] = min(d.prior_sd[j], float(np.hypot(pop[k][1], spread)))
        return d

    est.build_design = patched
    try:
        yield
    finally:
        est.build_design = orig


@contextlib.contextmanager
def _gw_from(rows: float):
    """The current default structure plus the GPU x workload level (s, nu) once the median
    group has ``rows`` training rows."""
    orig = est.HierarchicalEnergyModel._specs

    def specs(self, labels, group_cols):
        per_group = labels.groupby(list(group_cols)).size().median()
        levels = list(design.DEFAULT_LEVELS)
        if per_group >= rows:
            levels.insert(-1, (("gpu", "workload"), ("s", "nu")))
        old = est.DEFAULT_LEVELS
        est.DEFAULT_LEVELS = tuple(levels)
        try:
            return orig(self, labels, group_cols)
        finally:
            est.DEFAULT_LEVELS = old

    est.HierarchicalEnergyModel._specs = specs
    try:
        yield
    finally:
        est.HierarchicalEnergyModel._specs = orig


@contextlib.contextmanager
def variant(name: str, table: str | None = None):
    if name in OTHER_PRIOR:
        with variant("current"), _other_prior(OTHER_PRIOR[name], table):
            yield
        return
    if name.startswith("gw_from"):
        with variant("current"), _gw_from(float(name[len("gw_from"):])):
            yield
        return
    if name in TAU_FEW:
        with variant("current"), _tau_few(TAU_FEW[name]):
            yield
        return
    if name in GROUP_TAU:
        with variant("current"), _group_tau(GROUP_TAU[name]):
            yield
        return
    if name == "prompt_nominal":
        with variant("current"), _prompt_nominal():
            yield
        return
    if name.startswith("arch"):
        with _arch_labels():
            fd, fr = SPLIT[name]
            old = est.DEFAULT_LEVELS, est.RICH_LEVELS
            est.DEFAULT_LEVELS, est.RICH_LEVELS = fd(None), fr(None)
            try:
                yield
            finally:
                est.DEFAULT_LEVELS, est.RICH_LEVELS = old
        return
    if name in BANDWIDTH:
        with variant("current"), _bandwidth(BANDWIDTH[name]):
            yield
        return
    old = est.DEFAULT_LEVELS, est.RICH_LEVELS
    if name == "current":  # the structures of the code as it is
            est.DEFAULT_LEVELS, est.RICH_LEVELS = design.DEFAULT_LEVELS, design.RICH_LEVELS
    elif name in SPLIT:
        fd, fr = SPLIT[name]
        est.DEFAULT_LEVELS, est.RICH_LEVELS = fd(DEFAULT_LEVELS), fr(RICH_LEVELS)
    elif name in DEFAULT_ONLY:
        D, R = _fnb(DEFAULT_LEVELS), _fnb(RICH_LEVELS)
        est.DEFAULT_LEVELS, est.RICH_LEVELS = DEFAULT_ONLY[name](D, R), R
    else:
        f = VARIANTS[name]
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
    ap.add_argument("--n", type=int, default=50, help="training rows of the protocol")
    args = ap.parse_args(argv)
    data = {n: load(n) for n in args.tables.split(",")}
    rows = []
    for name in args.variants.split(","):
        row = {"variant": name}
        for tab, df in data.items():
            with variant(name, tab):
                t, s = protocol_rows(df, range(args.seeds), n=args.n)
                row[f"{tab} mape"] = s["mape"].mean()
                row[f"{tab} median_ape"] = s["median_ape"].mean()
                row[f"{tab} top1"] = s["top1"].mean()
                if not args.no_zeroshot:
                    for split in ("gpu", "model"):
                        z, _ = zeroshot(df, split)
                        key = f"{tab} LO{split[0].upper()}O"
                        row[f"{key} mape"] = float(np.average(z["mape"], weights=z["n_test"]))
                        row[f"{key} cover90"] = float(np.average(z["cover90"], weights=z["n_test"]))
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    out = pd.DataFrame(rows)
    fmt = {c: ("{:.3f}" if "top1" in c else "{:.2f}" if "cover" in c else "{:.1f}")
           for c in out.columns if c != "variant"}
    from _markdown import md_table

    print(f"seeds 0-{args.seeds - 1} ({args.n} rows); zero-shot MAPE row-weighted over folds\n")
    print(md_table(out, fmt, missing="-"))


if __name__ == "__main__":
    main()
