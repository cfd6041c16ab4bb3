"""From symbolic regression to a named, refittable closed form: :func:`derive_model`.

The derivation runs in four steps.

1. **A physical library.** Candidate terms are products of a *base* (``si``, ``si**2``,
   ``1/B`` for prefill and static energy; ``so``, ``so/B``, ``so*(si + so/2)`` for decode)
   and at most one *factor* of the parallel layout (``t - 1``, ``p - 1``, ``t*p``, ``d``),
   with the variables that vary in the table (:data:`energylens.models.derived.BASE_TERMS`).
   A candidate that is a linear combination of earlier ones on this table is dropped (the
   plain bases come first; for the terms shared by the batch the per-GPU factor ``t*p``
   comes before the overheads), so that every kept term is identifiable.
2. **Pooled groups.** Terms are searched on all the data, not per small group: each group
   (by default each model and GPU) first gets a multiplicative scale, a per-group log
   offset of a power law in the varying variables with one intercept per group, refined
   twice by the geometric mean ratio of the group's energies to the pooled formula found.
   The search then fits energy divided by the group's scale, so that a term is judged by
   how it shapes energy within every group rather than by how it separates a large model
   from a small one. Per-group offsets need no catalogue entry (the Wilkins and
   TokenPowerBench models have none) and no assumption on how energy scales with model size
   or memory bandwidth (mixture-of-experts models break the parameter-count law); they cost
   one degree of freedom per group, so groups of fewer than ``min_group_rows`` rows, whose
   offset would absorb them, are left out of the search.
3. **Phase by phase.** Where the table has ``prefill_energy_j`` and ``decode_energy_j``,
   prefill terms are searched on the prefill energy and decode terms on the decode energy,
   each a cleaner signal than their sum; otherwise every term is searched on the total.
4. **Stability.** The search is repeated on ``n_resamples`` bootstrap resamples of the rows
   (whole-number ``sample_weight``, seeded by ``random_state``); a term is kept when it is
   selected in more than ``threshold`` of them, so that the form does not change with a
   few rows. The frequencies are reported per term.

The terms kept become a :class:`~energylens.models.derived.DerivedEnergyModel`, fitted on
the whole table and returned; refit it on new data, per group with
:class:`~energylens.GroupedModel`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
import sympy

from ..core.batch import resolve_batch_rule
from ..core.domain import Domain
from ..core.expressions import parse_expression, symbol
from ..core.options import HasMethods, Interval, StrOptions, check_options, missing_columns_hint
from ..core.progress import progress as progress_bar
from ..core.variables import SCHEMA_DEFAULTS, VARIABLE_COLUMNS, table_variables
from ..exceptions import EnergyLensWarning, PoorFitWarning
from ..models.derived import DerivedEnergyModel, term_info
from .base import DiscoveryResult, equations_table, make_row
from .derive_library import (
    _PHASE_COLUMNS,
    PHASE_BASES,
    PHASE_TOLERANCE,
    VARIABLES,
    group_codes,
    initial_offsets,
    physical_library,
    search_targets,
)
from .engines import ENGINES, Engine, TermSearch, resolve_engine

__all__ = ["derive_model", "default_derive_engine", "physical_library", "Derivation", "PHASE_BASES",
           "PHASE_TOLERANCE"]

#: Fewest rows the pooled search needs.
MIN_ROWS = 8
_DEFAULT_BY = ("model", "gpu")


def default_derive_engine() -> TermSearch:
    """The engine :func:`derive_model` uses by default: best subset over the library's
    terms themselves (``max_order=1``), up to ten terms, non-negative coefficients (the
    model's bounds), the MDL criterion choosing the size.

    Examples
    --------
    >>> default_derive_engine()
    TermSearch(max_order=1, max_power=1, max_terms=10, positive=True)
    """
    return TermSearch(max_terms=10, max_order=1, max_power=1, exhaustive_max=3, positive=True)


@dataclass
class Derivation:
    """How :func:`derive_model` found the terms of a model (``model.derivation_``).

    Attributes
    ----------
    terms : DataFrame
        Every term selected at least once: ``term, parameter, phase, unit, frequency`` (share
        of the bootstrap resamples selecting it), ``full_data`` (selected on all rows) and
        ``kept``.
    fronts : dict
        Phase -> :class:`~energylens.discovery.DiscoveryResult` of the search on all rows,
        to inspect the Pareto front. Its formulas are of energy divided by the group's scale
        (printed ``energy_j/scale = ...``); its ``predict`` multiplies by the scale of each
        row's group, so that it gives joules for the groups searched.
    scales : DataFrame
        Per group: its key, ``n_rows``, ``scale`` (the multiplicative offset) and ``searched``.
    n_resamples, threshold, random_state, engine, phases, batch_rule :
        Settings of the run.
    engine_time_s : float
        Time spent in the engine's searches (seconds).
    """

    terms: pd.DataFrame
    fronts: dict[str, DiscoveryResult]
    scales: pd.DataFrame
    n_resamples: int
    threshold: float
    random_state: int | None
    engine: str
    phases: tuple[str, ...]
    batch_rule: str
    engine_time_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """The terms found, how often each was selected, and which were kept."""
        lines = [f"terms selected in {self.n_resamples} bootstrap resamples ({self.engine} engine, "
                 f"phases {', '.join(self.phases)}; kept above {self.threshold:.0%}; engine "
                 f"{self.engine_time_s:.2f} s):"]
        for _, r in self.terms.iterrows():
            lines.append(f"  {'kept ' if r['kept'] else 'drop '} {r['frequency']:>5.0%}  "
                         f"{r['parameter']:<16} {r['term']}  [{r['phase']}]")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ----------------------------------------------------------------------------- searches
@dataclass
class _Search:
    engine: Engine
    libraries: dict[str, tuple[pd.DataFrame, dict[str, sympy.Expr]]]
    targets: dict[str, np.ndarray]
    seconds: float = 0.0

    def run(self, phase: str, scale: np.ndarray, weight=None):
        F, _ = self.libraries[phase]
        t0 = time.perf_counter()
        front = self.engine.search(F, self.targets[phase] / scale, sample_weight=weight,
                                   progress=False)
        self.seconds += time.perf_counter() - t0
        return front

    def terms(self, phase: str, candidate) -> list[str]:
        """The chosen candidate's additive terms as texts in the short variable names."""
        _, defs = self.libraries[phase]
        return [str(sympy.sympify(parse_expression(t, defs | {"1": sympy.Integer(1)})))
                for t in candidate.terms()]


def _refine_offsets(search: _Search, offsets, codes, y, phases) -> tuple[np.ndarray, dict]:
    """Search on all rows, then move each group's offset to the geometric mean ratio of
    its energies to the pooled formula (twice)."""
    fronts = {}
    for _ in range(2):
        scale = np.exp(offsets[codes])
        f = np.zeros(len(y))
        for phase in phases:
            fronts[phase] = front = search.run(phase, scale)
            F, _ = search.libraries[phase]
            V = {str(c): F[c].to_numpy() for c in F.columns}
            e = front.chosen().expression
            fn = sympy.lambdify([symbol(c) for c in V], e, "numpy")
            f += np.broadcast_to(np.asarray(fn(*V.values()), float), f.shape)
        if not np.all(np.isfinite(f) & (f > 0)):
            break
        r = np.log(y / scale) - np.log(f)
        offsets = offsets + np.bincount(codes, r) / np.maximum(np.bincount(codes), 1)
    return offsets, fronts


def _stability(search: _Search, scale, phases, n_resamples, rng, progress) -> dict[str, int]:
    counts: dict[str, int] = {}
    n = len(scale)
    for _ in progress_bar(range(n_resamples), desc="derive: bootstrap", enabled=progress,
                          unit="resample"):
        w = rng.multinomial(n, np.full(n, 1.0 / n)).astype(float)
        found: set[str] = set()
        for phase in phases:
            found.update(search.terms(phase, search.run(phase, scale, w).chosen()))
        for t in found:
            counts[t] = counts.get(t, 0) + 1
    return counts


# ----------------------------------------------------------------------------- the function
def _check(df, target, engine, by, phases, n_resamples, threshold, random_state, min_group_rows):
    if isinstance(engine, type):
        raise TypeError(f"derive_model: engine={engine.__name__} is a class; pass an instance, "
                        f"e.g. engine={engine.__name__}().")
    check_options("derive_model", {
        "target": [str], "engine": [StrOptions(set(ENGINES)), HasMethods(["search"]), None],
        "by": ["array-like"], "phases": ["boolean", None],
        "n_resamples": [Interval(Integral, 1, None, closed="left")],
        "threshold": [Interval(Real, 0, 1, closed="left")],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
        "min_group_rows": [Interval(Integral, 2, None, closed="left")],
    }, dict(target=target, engine=engine, by=by, phases=phases, n_resamples=n_resamples,
            threshold=threshold, random_state=random_state, min_group_rows=min_group_rows))
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"derive_model needs a canonical profiling table (DataFrame); got "
                         f"{type(df).__name__}.")
    missing = [c for c in by if c not in df.columns]
    if missing and tuple(by) != _DEFAULT_BY:
        raise ValueError(f"derive_model: by={list(by)} names column(s) {missing} that the table "
                         f"lacks{missing_columns_hint(missing, df.columns)}; columns are "
                         f"{list(map(str, df.columns))}.")


def _variables(df: pd.DataFrame, rule: str) -> dict[str, np.ndarray]:
    names = [v for v in VARIABLES if VARIABLE_COLUMNS[v] in df.columns or v in SCHEMA_DEFAULTS]
    missing = [VARIABLE_COLUMNS[v] for v in ("si", "so") if v not in names]
    if missing:
        raise ValueError(f"derive_model needs the column(s) {missing}; the table has columns "
                         f"{list(map(str, df.columns))}.")
    # The saturating rule's constant is fitted by the model; the search takes k = 1, as
    # discover does by default.
    return table_variables(df, names, batch_rule=rule, batch_k=1.0 if rule == "saturating" else None,
                           fill=SCHEMA_DEFAULTS, owner="derive_model")


def _term_table(counts, full, search, n_resamples, threshold) -> pd.DataFrame:
    order = {}
    for _, defs in search.libraries.values():
        for e in defs.values():
            order.setdefault(str(e), len(order))
    order.setdefault("1", len(order))
    rows = []
    for term in sorted(set(counts) | full, key=lambda t: (order.get(t, len(order)), t)):
        info = term_info(term)
        freq = counts.get(term, 0) / n_resamples
        rows.append({"term": term, "parameter": info["name"], "phase": info["phase"],
                     "unit": info["unit"], "frequency": freq, "full_data": term in full,
                     "kept": freq > threshold})
    table = pd.DataFrame(rows, columns=["term", "parameter", "phase", "unit", "frequency",
                                        "full_data", "kept"])
    rank = {"prefill": 0, "decode": 1, "static": 2}
    return table.sort_values("phase", key=lambda s: s.map(rank), kind="stable").reset_index(drop=True)


def _fronts(search: _Search, fronts, df_target: str, rule: str, scale: dict[str, Any],
            domain: Domain) -> dict[str, DiscoveryResult]:
    out = {}
    for phase, front in fronts.items():
        _, defs = search.libraries[phase]
        subs = {symbol(k): v for k, v in defs.items()}
        rows = [make_row(c.expression.xreplace(subs), c.loss, c.complexity, **c.extra) for c in front]
        table = equations_table(rows)
        selection = "criterion" if "criterion" in table.columns else "best"
        target = _PHASE_COLUMNS.get(phase, df_target)
        out[phase] = DiscoveryResult(table, engine=getattr(search.engine, "name", "") or
                                     type(search.engine).__name__, selection=selection,
                                     target=target, features=list(VARIABLES), batch_rule=rule,
                                     info=dict(front.info), scale=scale, domain=domain)
    return out


def _fit_pooled(model: DerivedEnergyModel, df: pd.DataFrame, target: str, n_groups: int,
                by: list[str]) -> None:
    """Fit on every row; with several groups a poor pooled fit says what to do instead."""
    y = pd.to_numeric(df[target], errors="coerce").to_numpy(dtype=float)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(df, y)
    for w in caught:
        if n_groups > 1 and issubclass(w.category, PoorFitWarning):
            msg = (f"derive_model: the model returned is fitted on all {len(df)} rows of the "
                   f"{n_groups} groups (by {by}) with one set of coefficients, in-sample MAPE "
                   f"{model._state_.mape_pct:.1f}%; refit it per group with "
                   f"GroupedModel(model, by={by}).")
            warnings.warn(msg, PoorFitWarning, stacklevel=3)
        else:
            warnings.warn(w.message, w.category, stacklevel=3)


def derive_model(
    df: pd.DataFrame,
    target: str = "energy_j",
    *,
    engine: str | Engine | None = None,
    by: Sequence[str] = ("model", "gpu"),
    phases: bool | None = None,
    n_resamples: int = 20,
    threshold: float = 0.5,
    random_state: int | None = 0,
    batch_rule: str = "auto",
    min_group_rows: int = 3,
    progress: bool | None = None,
    **model_params: Any,
) -> DerivedEnergyModel:
    """Derive a named closed form of energy from a profiling table by symbolic regression.

    Searches the physical term library (:func:`physical_library`) phase by phase, pooled
    over groups whose scales are taken out first, keeps the terms selected in more than
    ``threshold`` of ``n_resamples`` bootstrap resamples, and returns them as a
    :class:`~energylens.models.derived.DerivedEnergyModel` fitted on ``df`` (see the module
    docstring for each step). The path from a table to a model of new data::

        res = discover(df, engine=TermSearch())          # 1. discover: any formula
        res.table()                                      # 2. inspect the Pareto front
        model = derive_model(df)                         # 3. derive: named, stable terms
        print(model.derivation_)                         #    selection frequency per term
        model.fit(new_df)                                # 4. refit on new data, or per group:
        GroupedModel(model, by=["model", "gpu"]).fit(new_df)

    Parameters
    ----------
    df : DataFrame
        Canonical profiling table (``input_tokens``, ``output_tokens``, and the layout and
        batch columns that vary).
    target : str, default="energy_j"
        Energy per request (J) to explain: a column whose name ends in ``_j`` (a latency is
        modelled by :class:`~energylens.LatencyModel`).
    engine : {"auto", "terms", "operon", "pysr"} or Engine, optional
        The search; default :func:`default_derive_engine` (the names ``"auto"`` and
        ``"terms"`` mean it too). A genetic engine searches formulas over the library's
        columns; the additive terms of its chosen formula are the candidates.
    by : sequence of str, default=("model", "gpu")
        Columns whose groups get a scale of their own (empty: one pooled group). Every
        column named must be in the table, except with the default, whose absent columns
        are ignored (a table of one GPU groups by model).
    phases : bool, optional
        Search prefill and decode energy apart (default: where the table has
        ``prefill_energy_j`` and ``decode_energy_j`` and ``target`` is ``energy_j``). Where
        ``energy_j`` differs from their sum by more than 5% in a row, ``phases=True`` is an
        error naming the rows, and the default searches the total with a warning.
    n_resamples : int, default=20
        Bootstrap resamples of the stability selection.
    threshold : float, default=0.5
        A term is kept when selected in more than this share of the resamples.
    random_state : int, optional
        Seed of the resamples (the same seed, table and engine give the same terms).
    batch_rule : str, default="auto"
        Effective-batch rule (:mod:`energylens.core.batch`), for the search and the model
        (the saturating rule searches with ``k = 1``; the model fits its own ``k``).
    min_group_rows : int, default=3
        Groups with fewer rows are left out of the search (their offset would absorb them).
    progress : bool, optional
        Progress bar over the resamples (None: only when standard error is a terminal).
    **model_params
        Constructor arguments of the model (``loss``, ``bounds``, ``fixed``, ...).

    Returns
    -------
    DerivedEnergyModel
        Fitted on ``df`` (one set of coefficients for every row: refit per group with
        :class:`~energylens.GroupedModel`), with ``selection_frequency`` per term and
        ``derivation_`` (:class:`Derivation`: frequencies, the fronts, the group scales).

    Raises
    ------
    ValueError
        For a table without the length columns or a positive target, with fewer than
        8 rows in groups of at least ``min_group_rows`` rows, a ``by`` column it lacks, or
        phases that do not add up to ``energy_j`` (``phases=True``).
    TypeError
        For an engine class instead of an engine object (``TermSearch`` for
        ``TermSearch()``).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"model": np.repeat(["a", "b"], 40), "gpu": "g",
    ...                    "input_tokens": rng.uniform(100, 2000, 80),
    ...                    "output_tokens": rng.uniform(50, 500, 80),
    ...                    "batch_size": rng.choice([1.0, 8.0, 64.0], 80)})
    >>> size = np.where(df.model == "a", 1.0, 5.0)
    >>> df["energy_j"] = size * (0.01 * df.input_tokens + 0.5 * df.output_tokens / df.batch_size)
    >>> model = derive_model(df, n_resamples=5, batch_rule="cap")
    >>> model.terms, model.parameter_names
    (['si', 'so/B'], ['k_si', 'k_so_per_B'])
    >>> model.params_.loc["k_so_per_B", "unit"]
    'J/token'
    >>> from energylens import GroupedModel
    >>> per_model = GroupedModel(model, by=["model"]).fit(df)
    >>> per_model.models_[("b",)].coef_.round(3).tolist()
    [0.05, 2.5]
    """
    _check(df, target, engine, by, phases, n_resamples, threshold, random_state, min_group_rows)
    targets = search_targets(df, target, phases)
    y = (targets["prefill"] + targets["decode"]) if "prefill" in targets else targets["total"]
    rule = resolve_batch_rule(df, batch_rule) if "batch_size" in df.columns else "cap"
    V = _variables(df, rule)
    codes, groups = group_codes(df, list(by))
    used = groups["n_rows"].to_numpy()[codes] >= min_group_rows
    if used.sum() < MIN_ROWS:
        raise ValueError(f"derive_model needs at least {MIN_ROWS} rows in groups (by {list(by)}) "
                         f"of at least {min_group_rows} rows; this table has {int(used.sum())} of "
                         f"{len(df)} (group sizes {sorted(groups['n_rows'].tolist(), reverse=True)[:8]}).")
    Vu = {k: v[used] for k, v in V.items()}
    search = _Search(default_derive_engine() if engine in (None, "auto", "terms") else resolve_engine(engine),
                     {ph: physical_library(Vu, ph) for ph in targets},
                     {ph: t[used] for ph, t in targets.items()})
    _, codes_u = np.unique(codes[used], return_inverse=True)
    offsets = initial_offsets(Vu, y[used], codes_u)
    offsets, fronts = _refine_offsets(search, offsets, codes_u, y[used], tuple(targets))
    scale = np.exp(offsets[codes_u])
    full = {t for ph in targets for t in search.terms(ph, fronts[ph].chosen())}
    counts = _stability(search, scale, tuple(targets), n_resamples,
                        np.random.default_rng(random_state), progress)
    table = _term_table(counts, full, search, n_resamples, threshold)
    kept = table[table["kept"]]
    if kept.empty:
        kept = table.nlargest(1, "frequency")
        warnings.warn(f"derive_model: no term was selected in more than {threshold:.0%} of the "
                      f"{n_resamples} resamples; keeping the most frequent, {kept['term'].iloc[0]!r} "
                      f"({kept['frequency'].iloc[0]:.0%}). The data do not determine a stable form.",
                      EnergyLensWarning, stacklevel=2)
    model = DerivedEnergyModel(terms=list(kept["term"]), batch_rule=batch_rule,
                               selection_frequency=dict(zip(kept["term"], kept["frequency"])),
                               **model_params)
    _fit_pooled(model, df, target, int((groups["n_rows"] > 0).sum()), list(by))
    scales = groups.assign(scale=np.nan, searched=groups["n_rows"] >= min_group_rows)
    scales.loc[scales["searched"], "scale"] = np.exp(offsets - offsets.mean())
    # The fronts' formulas are of energy / exp(offset); predict multiplies back.
    key_cols = [c for c in by if c in df.columns]
    front_scale = {"by": key_cols, "table": scales.loc[scales["searched"], key_cols].assign(
        scale=np.exp(offsets)).reset_index(drop=True)}
    model.derivation_ = Derivation(
        terms=table, fronts=_fronts(search, fronts, target, rule, front_scale,
                                    Domain.from_training({}, df[used], settings=Vu)),
        scales=scales,
        n_resamples=n_resamples, threshold=threshold, random_state=random_state,
        engine=getattr(search.engine, "name", "") or type(search.engine).__name__,
        phases=tuple(targets), batch_rule=rule, engine_time_s=search.seconds,
        info={"rows_searched": int(used.sum()), "library": {ph: list(F.columns) for ph, (F, _)
                                                          in search.libraries.items()}})
    return model
