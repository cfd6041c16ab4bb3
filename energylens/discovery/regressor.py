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

from ..core.options import HasMethods, Interval, Real, StrOptions, check_fitted
from .base import SELECTIONS, DiscoveryResult, Selection, equations_table, make_row
from .engines import ENGINES, Engine, resolve_engine
from .features import default_features, feature_table, target_values

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


def _as_table(X, features: Sequence[str] | None, owner: str) -> tuple[pd.DataFrame, list[str] | None]:
    """A canonical table from ``X``; a 2-D array's columns are the ``features`` (or
    ``x0, x1, ...``) in order."""
    if _is_table(X):
        return X, None
    from sklearn.utils.validation import check_array

    a = check_array(X, dtype=np.float64, ensure_all_finite=True, ensure_min_samples=3)
    names = list(features) if features is not None else [f"x{i}" for i in range(a.shape[1])]
    if len(names) != a.shape[1]:
        raise ValueError(f"X has {a.shape[1]} features, but {owner} is expecting {len(names)} "
                         f"features as input (features={names}).")
    return pd.DataFrame(a, columns=names), names


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
        (:func:`~energylens.discovery.base.select_index`).
    progress : bool, optional
        Progress display of long searches (None: only when standard error is a terminal).

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
    }

    def __init__(self, *, target: str = "energy_j", features: Sequence[str] | None = None,
                 engine: str | Engine = "auto", transforms: Sequence[str] = DEFAULT_TRANSFORMS,
                 per: Literal["request", "token"] = "request", log: bool = False,
                 batch_rule: str = "auto", batch_k: float = 1.0,
                 model_selection: Selection = "best", progress: bool | None = None):
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
        self.result_ = self._search(df, list(features), sample_weight)
        self.equations_ = self.result_.equations_
        self.engine_ = self.result_.engine_
        self.features_in_ = names
        if names is not None:
            self.n_features_in_ = len(names)
        elif hasattr(self, "n_features_in_"):
            del self.n_features_in_
        return self

    def _search(self, df: pd.DataFrame, features: list[str], sample_weight) -> DiscoveryResult:
        transforms = list(self.transforms)
        if self.per == "token" and "inv_so" not in transforms:
            transforms.append("inv_so")
        F, defs, rule = feature_table(df, features, transforms, batch_rule=self.batch_rule,
                                      batch_k=self.batch_k)
        base_vars = sorted({str(s) for e in defs.values() for s in e.free_symbols})
        y = target_values(df, self.target, per=self.per, log=self.log)
        engine = resolve_engine(self.engine)
        self.search_engine_ = engine
        front = engine.search(F, y, definitions=defs, sample_weight=sample_weight,
                              relative=not self.log, progress=self.progress)
        rows = [make_row(c.expression, c.loss, c.complexity, **c.extra) for c in front]
        info = dict(front.info)
        if front.selected is not None:
            info["engine_choice"] = front.selected
        name = getattr(engine, "name", "") or type(engine).__name__
        return DiscoveryResult(equations_table(rows), engine=name, selection=self.model_selection,
                               target=self.target, per=self.per, log=self.log, features=base_vars,
                               batch_rule=rule, batch_k=self.batch_k if rule == "saturating" else None,
                               info=info)

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
        return pd.DataFrame(a, columns=self.features_in_)

    def predict(self, X) -> np.ndarray:
        """Energy per request (J) from the selected equation."""
        table = self._table(X)
        return self.result_.predict(table)

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


def _engine_from_legacy(engine: str | Engine, legacy: Mapping[str, Any]) -> str | Engine:
    unknown = sorted(set(legacy) - _LEGACY_NAMES)
    if unknown:
        raise TypeError(f"discover() got unexpected keyword argument(s) {unknown}.")
    if not legacy:
        return engine
    if isinstance(engine, Engine):
        raise TypeError(f"discover(): set {sorted(legacy)} on the engine object itself "
                        f"(e.g. engine={type(engine).__name__}(...)).")
    resolved = resolve_engine(engine)
    mapping = LEGACY_SETTINGS.get(getattr(resolved, "name", ""), {})
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
    target, features, engine, transforms, per, log, batch_rule, batch_k, model_selection, progress :
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
    selected (terms engine, rule 'best', complexity 2, loss 0; index 1 of equations_, 0 to 1):
      energy_j = 0.01*si + 0.5*so/B
      where B = effective running batch per replica; si = input tokens per request; so = output
      tokens per request
    """
    settings = dict(target=target, features=features, transforms=transforms, per=per, log=log,
                    batch_rule=batch_rule, batch_k=batch_k, model_selection=model_selection,
                    progress=progress)
    if deprecated.pop("phases", False):
        warnings.warn("discover(phases=True) is deprecated and will be removed: call "
                      "discover_phases(df, ...), which returns {'prefill': ..., 'decode': ...}.",
                      FutureWarning, stacklevel=2)
        settings.pop("target")
        return discover_phases(df, engine=engine, sample_weight=sample_weight, **settings, **deprecated)
    engine = _engine_from_legacy(engine, deprecated)
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"discover needs a canonical profiling table (DataFrame); got {type(df).__name__}.")
    reg = SymbolicEnergyRegressor(engine=engine, **settings)
    return reg.fit(df, sample_weight=sample_weight).result_


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
