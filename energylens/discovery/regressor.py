"""Structure discovery as a scikit-learn regressor, and the :func:`discover` functions over it.

:class:`SymbolicEnergyRegressor` owns every setting of a search: what is searched (target,
features, transforms, per request or per token, log, the batch rule) and the engine object,
which carries its own settings (:mod:`~energylens.discovery.engines`). :func:`discover` is
``SymbolicEnergyRegressor(...).fit(df).result_``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import sympy
from sklearn.base import BaseEstimator, RegressorMixin

from ..core.domain import Domain
from ..core.options import HasMethods, Interval, Real, StrOptions, check_fitted
from ..core.variables import VARIABLE_COLUMNS, VARIABLES, table_variables
from ..exceptions import EnergyLensWarning, PoorFitWarning
from .base import SELECTIONS, DiscoveryResult, Selection, energy_of, equations_table, make_row
from .engines import ENGINES, Engine, resolve_engine
from .features import default_features, feature_table, target_values
from .presentation import digits_needed

__all__ = ["SymbolicEnergyRegressor", "discover", "discover_phases", "DEFAULT_TRANSFORMS",
           "LEGACY_SETTINGS"]

DEFAULT_TRANSFORMS: tuple[str, ...] = ("inv_B", "t_m1", "p_m1", "tp_prod")

#: Engine settings ``discover`` used to take as keywords -> the engine parameter each became
#: (per engine; a keyword that an engine lacks is ignored for it, as before).
LEGACY_SETTINGS: dict[str, dict[str, str]] = {
    "terms": {"max_terms": "max_terms", "max_order": "max_order", "exhaustive_max": "exhaustive_max",
              "criterion": "criterion", "positive": "positive"},
    "operon": {"seed": "random_state", "niterations": "generations", "max_complexity": "max_length",
               "operators": "operators", "criterion": "criterion", "simplify": "simplify",
               "engine_options": "options"},
    "pysr": {"seed": "random_state", "niterations": "niterations", "max_complexity": "maxsize",
             "operators": "operators", "criterion": "criterion", "simplify": "simplify",
             "engine_options": "options"},
}
_LEGACY_NAMES = {k for m in LEGACY_SETTINGS.values() for k in m} | {"seed", "max_complexity"}


def _is_table(X) -> bool:
    """A DataFrame with column names is read by name; anything else by position (as
    scikit-learn does, a DataFrame whose column names are not all strings counts as an array)."""
    return isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns)


def _array_columns(names: Sequence[str]) -> list[str]:
    """Columns of the table made from an array: a short name (``t``, ``B``, ``si`` ...) is
    its canonical column, any other name stays as given."""
    return [VARIABLE_COLUMNS.get(n, n) for n in names]


def _as_table(X, features: Sequence[str] | None, owner: str) -> tuple[pd.DataFrame, list[str] | None]:
    """A canonical table from ``X``; a 2-D array's columns are the ``features`` (or
    ``x0, x1, ...``) in order, short names read as their canonical columns."""
    if _is_table(X):
        return X, None
    from sklearn.utils.validation import check_array

    a = check_array(X, dtype=np.float64, ensure_all_finite=True, ensure_min_samples=3)
    names = list(features) if features is not None else [f"x{i}" for i in range(a.shape[1])]
    if len(names) != a.shape[1]:
        raise ValueError(f"X has {a.shape[1]} features, but {owner} is expecting {len(names)} "
                         f"features as input (features={names}).")
    return pd.DataFrame(a, columns=_array_columns(names)), names


def checked_engine(engine, model_selection: str | None = None, owner: str = "discover"):
    """The engine object of ``engine`` (a name or an object), checked before any search:
    a class instead of an instance, or ``model_selection="criterion"`` with an engine that
    reports no criterion, is an error now rather than after the search."""
    if isinstance(engine, type):
        raise TypeError(f"{owner}: engine={engine.__name__} is a class; pass an instance, e.g. "
                        f"engine={engine.__name__}() (its settings go in the parentheses).")
    resolved = resolve_engine(engine)
    if model_selection == "criterion" and getattr(resolved, "reports_criterion", None) is False:
        name = getattr(resolved, "name", "") or type(resolved).__name__
        raise ValueError(f"{owner}: model_selection='criterion' needs an information criterion for "
                         f"each formula, which only the term search reports, not the {name} "
                         "engine; use 'best', 'accuracy' or 'score', or engine='terms'.")
    return resolved


class SymbolicEnergyRegressor(RegressorMixin, BaseEstimator):
    """Structure discovery as a scikit-learn regressor.

    ``fit`` searches formulas of energy over a canonical profiling table (or a 2-D array
    whose columns are ``features``); ``predict`` evaluates the selected formula (energy per
    request, J).

    Parameters
    ----------
    target : str, default="energy_j"
        Column to explain (J per request).
    features : sequence of str, optional
        Variables (short names ``t, p, B, si, so, N`` or canonical columns ``tp, pp,
        batch_size, input_tokens, output_tokens, params_b``, or other numeric columns);
        default: those of ``t, p, B, si, so, N`` that vary. ``B`` is the effective batch.
        For a 2-D array, the names of its columns in order (default ``x0, x1, ...``).
    engine : {"auto", "terms", "operon", "pysr"} or Engine, default="auto"
        The search: an engine object with its settings (``TermSearch(max_terms=4)``,
        ``Operon(random_state=3)``, ``PySR(...)``) or a name for an engine with its default
        settings; ``"auto"`` takes PySR if it imports with a working Julia (probed in a
        subprocess), else pyoperon if installed, else the term search.
    transforms : sequence of str, default=("inv_B", "t_m1", "p_m1", "tp_prod")
        Extra inputs built from the features: ``inv_B`` (1/B), ``t_m1`` (t-1), ``p_m1``
        (p-1), ``tp_prod`` (t*p), ``ctx`` (si + so/2), ``inv_so`` (1/so; always added for
        ``per="token"``).
    per : {"request", "token"}, default="request"
        Search energy per request, or per output token.
    log : bool, default=False
        Search the log of the target (absolute errors of the log instead of relative errors).
    batch_rule : str, default="auto"
        Effective-batch rule (:mod:`energylens.core.batch`).
    batch_k : float, default=1.0
        Constant of the ``"saturating"`` batch rule.
    model_selection : {"best", "accuracy", "score", "criterion"}, default="best"
        Rule choosing the one selected formula
        (:func:`~energylens.discovery.base.select_index`; ``"criterion"`` with the term
        search only, checked before the search).
    progress : bool, optional
        Progress display of long searches (None: only when standard error is a terminal).
    poor_fit_mape : float, default=25.0
        In-sample MAPE (%) of the selected formula above which ``fit`` warns
        (:class:`~energylens.PoorFitWarning`), the closed forms' threshold.

    Attributes
    ----------
    result_ : DiscoveryResult
    equations_ : DataFrame
        The front (full precision).
    engine_ : str
        Name of the engine that ran.
    search_engine_ : Engine
        The engine object that ran.
    n_features_in_ : int
        Columns of the array ``fit`` saw (array input only).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from energylens.discovery import TermSearch
    >>> df = pd.DataFrame({"input_tokens": np.linspace(100, 2000, 40),
    ...                    "output_tokens": np.tile([50.0, 400.0], 20)})
    >>> df["energy_j"] = 0.01 * df.input_tokens + 0.2 * df.output_tokens
    >>> reg = SymbolicEnergyRegressor(engine=TermSearch(max_terms=3)).fit(df)
    >>> float(np.round(reg.predict(df.head(1))[0], 6))
    11.0
    """

    _parameter_constraints: ClassVar[dict] = {
        "target": [str],
        "features": ["array-like", None],
        "engine": [StrOptions(set(ENGINES)), HasMethods(["search"])],
        "transforms": ["array-like"],
        "per": [StrOptions({"request", "token"})],
        "log": ["boolean"],
        "batch_rule": [str],
        "batch_k": [Interval(Real, 0, None, closed="neither")],
        "model_selection": [StrOptions(set(SELECTIONS))],
        "progress": ["boolean", None],
        "poor_fit_mape": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, *, target: str = "energy_j", features: Sequence[str] | None = None,
                 engine: str | Engine = "auto", transforms: Sequence[str] = DEFAULT_TRANSFORMS,
                 per: Literal["request", "token"] = "request", log: bool = False,
                 batch_rule: str = "auto", batch_k: float = 1.0,
                 model_selection: Selection = "best", progress: bool | None = None,
                 poor_fit_mape: float = 25.0):
        self.target = target
        self.features = features
        self.engine = engine
        self.transforms = transforms
        self.per = per
        self.log = log
        self.batch_rule = batch_rule
        self.batch_k = batch_k
        self.model_selection = model_selection
        self.progress = progress
        self.poor_fit_mape = poor_fit_mape

    def set_params(self, **params):
        """Set parameters; ``engine__<setting>`` on an engine given by name first turns the
        name into its engine object (``"auto"`` into the engine it resolves to)."""
        if any(k.startswith("engine__") for k in params):
            engine = params.get("engine", self.engine)
            if isinstance(engine, str):
                params = {"engine": checked_engine(engine, owner=type(self).__name__), **params}
        return super().set_params(**params)

    def fit(self, X, y=None, sample_weight=None):
        """Search formulas of ``y`` (default: ``X[target]``) over the table ``X``.

        Parameters
        ----------
        X : DataFrame or array of shape (n, k)
            Canonical profiling table, or an array whose columns are ``features``.
        y : array of shape (n,), optional
            Energies (J, > 0); required for an array, replaces ``X[target]`` for a table.
        sample_weight : array of shape (n,), optional
            Row weights (whole counts of a bootstrap resample work with every engine).

        Returns
        -------
        self
        """
        self._validate_params()
        engine = checked_engine(self.engine, self.model_selection, type(self).__name__)
        df, names = _as_table(X, self.features, type(self).__name__)
        if y is None and names is not None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is "
                             "None (an array has no energy column).")
        if y is not None:
            from sklearn.utils.validation import column_or_1d

            df = df.copy()
            df[self.target] = column_or_1d(y, dtype=np.float64, warn=True)
        if len(df) < 3:
            raise ValueError(f"discover needs at least 3 rows; got {len(df)}.")
        features = names if names is not None else self.features
        if features is None:
            features = default_features(df)
            if not features:
                raise ValueError("no configuration column varies in the table; pass features=[...].")
        self.result_ = self._search(df, list(features), sample_weight, engine)
        self._warn_poor_fit()
        self.equations_ = self.result_.equations_
        self.engine_ = self.result_.engine_
        self.features_in_ = names
        if names is not None:
            self.n_features_in_ = len(names)
        elif hasattr(self, "n_features_in_"):
            del self.n_features_in_
        return self

    def _search(self, df: pd.DataFrame, features: list[str], sample_weight,
                engine) -> DiscoveryResult:
        transforms = list(self.transforms)
        if self.per == "token" and "inv_so" not in transforms:
            transforms.append("inv_so")
        F, defs, rule = feature_table(df, features, transforms, batch_rule=self.batch_rule,
                                      batch_k=self.batch_k)
        base_vars = sorted({str(s) for e in defs.values() for s in e.free_symbols})
        y = target_values(df, self.target, per=self.per, log=self.log)
        self.search_engine_ = engine
        front = engine.search(F, y, definitions=defs, sample_weight=sample_weight,
                              relative=not self.log, progress=self.progress)
        batch_k = self.batch_k if rule == "saturating" else None
        used = (np.ones(len(df), dtype=bool) if sample_weight is None
                else np.asarray(sample_weight, dtype=float).reshape(-1) > 0)
        V = {v: F[v].to_numpy(dtype=float)[used] for v in base_vars if v in F.columns}
        energy = pd.to_numeric(df[self.target], errors="coerce").to_numpy(dtype=float)[used]
        rows = []
        for c in front:
            digits, f = digits_needed(energy_of(c.expression, self.per, self.log), V,
                                      return_values=True)
            rows.append(make_row(c.expression, c.loss, c.complexity, mape_pct=_mape(f, energy),
                                 digits=digits, **c.extra))
        info = dict(front.info)
        if front.selected is not None:
            info["engine_choice"] = front.selected
        name = getattr(engine, "name", "") or type(engine).__name__
        return DiscoveryResult(equations_table(rows), engine=name, selection=self.model_selection,
                               target=self.target, per=self.per, log=self.log, features=base_vars,
                               batch_rule=rule, batch_k=batch_k, info=info,
                               domain=_training_domain(df[used], base_vars, rule, batch_k))

    def _warn_poor_fit(self) -> None:
        res = self.result_
        r = res.equations_.iloc[res.best_index_]
        mape = float(r.get("mape_pct", np.nan))
        if mape > self.poor_fit_mape:
            warnings.warn(f"{type(self).__name__}: poor fit, the selected formula's in-sample MAPE "
                          f"{mape:.1f}% exceeds {self.poor_fit_mape:g}%: it does not describe the "
                          "data well (compare the front, res.table(), or fit a closed form).",
                          PoorFitWarning, stacklevel=3)

    def _table(self, X) -> pd.DataFrame:
        check_fitted(self, "result_")
        if _is_table(X) or self.features_in_ is None:
            if not _is_table(X):
                raise ValueError(f"{type(self).__name__} was fitted on a table; predict needs a "
                                 f"canonical table (DataFrame), got {type(X).__name__}.")
            return X
        from sklearn.utils.validation import check_array

        a = check_array(X, dtype=np.float64)
        if a.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {a.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        return pd.DataFrame(a, columns=_array_columns(self.features_in_))

    def predict(self, X) -> np.ndarray:
        """Energy per request (J) from the selected equation; rows outside the training
        data are flagged by an :class:`~energylens.ExtrapolationWarning`
        (:meth:`DiscoveryResult.predict`)."""
        table = self._table(X)
        self.result_._flag(table, stacklevel=2)
        return self.result_._evaluate(table, None)

    def predict_interval(self, X, level: float = 0.9) -> pd.DataFrame:
        """The prediction with the columns of the closed forms' ``predict_interval``: NaN
        bounds, and the rows outside the training data flagged
        (:meth:`DiscoveryResult.predict_interval`)."""
        return self.result_.predict_interval(self._table(X), level)

    def sympy(self, index: int | None = None) -> sympy.Expr:
        """The selected (or ``index``-th) formula as sympy."""
        check_fitted(self, "result_")
        return self.result_.sympy(index)

    def latex(self, index: int | None = None, digits: int | None = 4) -> str:
        """The selected (or ``index``-th) formula in LaTeX."""
        check_fitted(self, "result_")
        return self.result_.latex(index, digits)

    def to_model(self, index: int | None = None, **kwargs):
        """The selected formula as an unfitted ExpressionModel (see :meth:`DiscoveryResult.to_model`)."""
        check_fitted(self, "result_")
        return self.result_.to_model(index, **kwargs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True
        tags.target_tags.positive_only = True  # energies: relative errors need y > 0
        return tags


def _mape(f: np.ndarray | None, y: np.ndarray) -> float:
    """In-sample MAPE (%) of predictions ``f`` of ``y`` (NaN where there are none)."""
    if f is None or not len(y):
        return float("nan")
    with np.errstate(all="ignore"):
        out = 100.0 * float(np.mean(np.abs(f - y) / y))
    return out if np.isfinite(out) else float("inf")


def _training_domain(df: pd.DataFrame, base_vars: Sequence[str], rule: str,
                     batch_k: float | None) -> Domain:
    """Ranges of every configuration variable of the table (those the search did not use
    too) and the labels seen."""
    names = [v for v in VARIABLES if VARIABLE_COLUMNS[v] in df.columns]
    names += [v for v in base_vars if v not in names and VARIABLE_COLUMNS.get(v, v) in df.columns]
    V = table_variables(df, names, batch_rule=rule, batch_k=batch_k, check=False, owner="discover")
    return Domain.from_training({}, df, settings=V)


def _engine_from_legacy(engine: str | Engine, legacy: Mapping[str, Any]) -> str | Engine:
    unknown = sorted(set(legacy) - _LEGACY_NAMES)
    if unknown:
        raise TypeError(f"discover() got unexpected keyword argument(s) {unknown}.")
    if not legacy:
        return engine
    if isinstance(engine, (Engine, type)):
        name = engine.__name__ if isinstance(engine, type) else type(engine).__name__
        raise TypeError(f"discover(): set {sorted(legacy)} on the engine object itself "
                        f"(e.g. engine={name}(...)).")
    resolved = checked_engine(engine)
    name = getattr(resolved, "name", "")
    mapping = LEGACY_SETTINGS.get(name, {})
    ignored = sorted(k for k, v in legacy.items() if k not in mapping and v is not None)
    if ignored:
        msg = (f"discover(): {ignored} do(es) not apply to the {name} engine "
               f"({type(resolved).__name__}, settings {sorted(resolved.get_params())})")
        if engine != "auto":
            raise ValueError(msg + ".")
        warnings.warn(msg + ", which engine='auto' chose here: ignored.", EnergyLensWarning,
                      stacklevel=3)
    params = {mapping[k]: (dict(v) if k == "engine_options" and v is not None else v)
              for k, v in legacy.items() if k in mapping and v is not None}
    example = ", ".join(f"{k}={v!r}" for k, v in params.items())
    warnings.warn(f"discover(..., {', '.join(sorted(legacy))}=...) is deprecated: the settings of a "
                  f"search belong to its engine, e.g. engine={type(resolved).__name__}({example}).",
                  FutureWarning, stacklevel=3)
    return resolved.set_params(**params)


def discover(
    df: pd.DataFrame,
    target: str = "energy_j",
    features: Sequence[str] | None = None,
    *,
    engine: str | Engine = "auto",
    transforms: Sequence[str] = DEFAULT_TRANSFORMS,
    per: Literal["request", "token"] = "request",
    log: bool = False,
    batch_rule: str = "auto",
    batch_k: float = 1.0,
    model_selection: Selection = "best",
    progress: bool | None = None,
    sample_weight=None,
    poor_fit_mape: float = 25.0,
    **deprecated: Any,
) -> DiscoveryResult:
    """Discover closed-form structure of energy over a profiling table.

    ``SymbolicEnergyRegressor(...).fit(df, sample_weight=...).result_``: the parameters
    are those of :class:`SymbolicEnergyRegressor`. The settings of the search itself belong
    to the engine object (``engine=TermSearch(max_terms=4)``, ``engine=Operon(random_state=3)``);
    the keywords ``discover`` used to take for them (``seed, niterations, operators,
    max_complexity, criterion, positive, max_terms, max_order, exhaustive_max, simplify,
    engine_options``) still work with an engine name and warn (``FutureWarning``), and
    ``phases=True`` warns and returns :func:`discover_phases`'s dict.

    Parameters
    ----------
    df : DataFrame
        Canonical profiling table.
    target, features, engine, transforms, per, log, batch_rule, batch_k, model_selection, progress, \
poor_fit_mape :
        As for :class:`SymbolicEnergyRegressor`.
    sample_weight : array of shape (n,), optional
        Row weights (whole counts of a bootstrap resample work with every engine).
    **deprecated :
        The former engine keywords (see above).

    Returns
    -------
    DiscoveryResult

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from energylens.discovery import TermSearch
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"input_tokens": rng.uniform(100, 2000, 60),
    ...                    "output_tokens": rng.uniform(50, 500, 60),
    ...                    "batch_size": rng.choice([1.0, 8.0, 64.0], 60)})
    >>> df["energy_j"] = 0.01 * df.input_tokens + 0.5 * df.output_tokens / df.batch_size
    >>> res = discover(df, engine=TermSearch(max_terms=4))
    >>> res.terms_found()
    ['si', 'so/B']
    >>> print(res)  # doctest: +NORMALIZE_WHITESPACE
    selected (terms engine, rule 'best', complexity 2, loss 0, in-sample MAPE 0.0%; index 1 of
      equations_, 0 to 1):
      energy_j = 0.01*si + 0.5*so/B
      where B = effective running batch per replica; si = input tokens per request; so = output
      tokens per request
    """
    settings = dict(target=target, features=features, transforms=transforms, per=per, log=log,
                    batch_rule=batch_rule, batch_k=batch_k, model_selection=model_selection,
                    progress=progress, poor_fit_mape=poor_fit_mape)
    phases = deprecated.pop("phases", False)
    if not isinstance(phases, (bool, np.bool_)):
        raise ValueError(f"discover(phases=...) takes True or False, got {phases!r}; for one phase "
                         "search its column, e.g. discover(df, target='prefill_energy_j').")
    if phases:
        warnings.warn("discover(phases=True) is deprecated and will be removed: call "
                      "discover_phases(df, ...), which returns {'prefill': ..., 'decode': ...}.",
                      FutureWarning, stacklevel=2)
        settings.pop("target")
        return discover_phases(df, engine=engine, sample_weight=sample_weight, **settings, **deprecated)
    engine = _engine_from_legacy(engine, deprecated)
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"discover needs a canonical profiling table (DataFrame); got {type(df).__name__}.")
    reg = SymbolicEnergyRegressor(engine=engine, **settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = reg.fit(df, sample_weight=sample_weight).result_
    for w in caught:  # said where discover was called
        warnings.warn(w.message, w.category, stacklevel=2)
    return res


def discover_phases(df: pd.DataFrame, features: Sequence[str] | None = None,
                    **kwargs: Any) -> dict[str, DiscoveryResult]:
    """Discover prefill and decode energy separately.

    Searches the columns ``prefill_energy_j`` and ``decode_energy_j``; keyword arguments as
    for :func:`discover` (except ``target``).

    Returns
    -------
    dict
        ``{"prefill": DiscoveryResult, "decode": DiscoveryResult}``.
    """
    missing = [c for c in ("prefill_energy_j", "decode_energy_j") if c not in df.columns]
    if missing:
        raise ValueError(f"phase-wise discovery needs the column(s) {missing}; the table has "
                         f"columns {list(map(str, df.columns))}.")
    kwargs.pop("target", None)
    kwargs.pop("phases", None)
    legacy = {k: kwargs.pop(k) for k in list(kwargs) if k in _LEGACY_NAMES}
    engine = _engine_from_legacy(kwargs.pop("engine", "auto"), legacy)
    return {phase: discover(df, f"{phase}_energy_j", features, engine=engine, **kwargs)
            for phase in ("prefill", "decode")}
