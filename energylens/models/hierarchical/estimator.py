"""HierarchicalEnergyModel: one closed form for a whole table, with partially pooled groups."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from numbers import Integral, Real
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from joblib import effective_n_jobs
from sklearn.base import BaseEstimator, RegressorMixin

from ...core.catalogue import aliased
from ...core.domain import Domain, Extrapolation
from ...core.metrics import mape
from ...core.options import LEVEL, N_JOBS, Interval, StrOptions, check_fitted, check_options
from ...core.threads import single_blas_thread
from ...exceptions import ExtrapolationWarning
from .. import registry
from ..design import checked_prediction
from ..settings import FittedParams
from .calibration import calibrated_scores
from .chunks import local_columns, make_chunks, row_log_theta, touched_columns
from .design import UNSEEN, build_design, check_levels, choose_specs, flag_unseen, group_columns
from .form import (
    FORMULA,
    PARAMETER_NAMES,
    PARAMETERS,
    PHASE_PREFILL,
    UPPER,
    WORKLOAD_PARAMETERS,
    energy_components,
    energy_kernel,
    resolve_terms,
    theta_from_link,
)
from .phases import phase_rows
from .pooling import Layout, fit_pooled
from .ranges import flag_group_ranges, group_ranges
from .uncertainty import interval_table
from .variables import (
    assumed_lengths,
    domain_variables,
    form_variables,
    label_values,
    row_labels,
    training_rows,
    unused_request_counts,
    warn_overridden,
)

__all__ = ["HierarchicalEnergyModel"]


class HierarchicalEnergyModel(FittedParams, RegressorMixin, BaseEstimator):
    """One energy form for a whole table, with partially pooled group parameters.

    Each row's parameters are a population value, scaled through the physics of the form by
    the hardware and model descriptors of the catalogue, times the deviations of its levels
    (its GPU, its model, its group, ...). The deviations are random effects in log-parameter
    space whose spreads are estimated from the data (empirical Bayes), so a group with two
    rows gets the population's shape and its own scale, and one with two hundred rows is
    fitted almost on its own. The form, its parameters and their meaning are in
    :mod:`energylens.models.hierarchical.form`; ``docs/model.md`` gives the evidence for
    every term.

    Parameters
    ----------
    pooling : {"partial", "none", "complete"}, default="partial"
        ``"partial"``: deviations are random effects with estimated spreads; ``"none"``:
        every group has its own deviations under a fixed weak penalty (a spread of 3 in
        log, a factor of 20); ``"complete"``: population parameters only (the descriptors
        alone tell groups apart).
    by : sequence of str, default=("model", "gpu")
        Columns of a group. ``precision`` and ``source`` are added where the table has them
        and they vary (an FP8 checkpoint or another engine is another group).
    levels : {"auto", "default", "rich"} or sequence, default="auto"
        The random-effect structure (:data:`~.design.DEFAULT_LEVELS`: groups deviate in
        scale only; :data:`~.design.RICH_LEVELS`: also in shape, per workload and per
        parallel layout), or (columns, parameters) pairs where the column ``"group"``
        stands for the group columns (besides the table's label columns, ``n_gpus``,
        ``dp`` and ``model_family``: dense, moe or hybrid, from the catalogue).
        ``"auto"`` takes the rich structure when the median group has at least 4
        training rows.
    terms : dict, optional
        Switches of the form's terms (:data:`~.form.TERMS`), all on by default; for
        ablations, e.g. ``{"experts": False}``.
    new_gpu_spread : float, default=0.3
        Spread (sd of log energy) added to the interval of a GPU absent from training when
        the table has too few GPUs (fewer than 5) to estimate the spread between GPUs: 0.3
        is the size of the zero-shot GPU errors measured on ML.ENERGY v2 and v3.
    new_precision_spread, new_source_spread : float, default=0.42, 1.4
        The same for a weight precision (a source: engine, benchmark) absent from training
        when no level of at least 5 values over it (alone or crossed with the GPU) estimates
        the spread. Stated priors, not fits: a new precision is predicted at its nominal
        bytes per weight and FLOP/s (a factor of 2 between neighbouring formats), and 0.42 =
        ln 2 / 1.645 lets kernels realise none to twice of that at 90%; software stacks differ
        by one to two orders of magnitude, so 1.4 = ln 10 / 1.645 (a factor of 10 at 90%).
    max_em : int, default=12
        Empirical-Bayes iterations (each a few Levenberg-Marquardt steps).
    tol : float, default=0.01
        Relative change of the spreads that ends the empirical-Bayes iterations.
    n_jobs : int, optional
        Workers for the per-group work (joblib; under a distributed backend such as dask,
        None means every worker of the cluster, never a silent in-process loop).
    poor_fit_mape : float, default=25.0
        In-sample MAPE (percent) above which ``fit`` warns :class:`~energylens.PoorFitWarning`.
    phases : {"auto", True, False}, default="auto"
        Fit the measured prefill and decode energy (``prefill_energy_j``,
        ``decode_energy_j``) jointly, each against its part of the form, wherever a row
        records both (the total alone does not identify the split). ``"auto"`` does so when
        the table has both columns; True requires them.
    calibrate : {"none", "models"}, default="none"
        ``"models"``: leave each training model out once, refit, and scale the intervals of a
        model absent from training by the held-out errors (see
        :mod:`~energylens.models.hierarchical.calibration`; one refit per model, at least 10).

    Notes
    -----
    ``input_tokens`` must be a number > 0 on every row but those that ``input_tokens_assumed``
    flags as placeholders: these are read at their workload's fitted prompt length, and a
    flagged prediction row giving a value other than the placeholders training saw warns
    that the value is not used (set the flag to False to predict at the given length). As in
    scikit-learn, ``set_params`` on a fitted model takes effect at the next ``fit``.

    Attributes
    ----------
    params_ : DataFrame
        Population values with unit, meaning, standard error and whether the data identify
        them (``identifiable``; a prior-driven parameter is reported as such, not as physics).
    tau_ : DataFrame
        Spread between level values (sd of the log parameter) per level and parameter.
    groups_ : DataFrame
        Each group's parameters, their standard errors (of the log) and shrinkage.
    sigma_ : float
        Residual sd of log energy.
    sigma_dof_ : float
        Its degrees of freedom (rows less the columns the data inform): the intervals' t.
    group_ranges_ : ndarray or None
        Each group's measured tp, pp, dp, ep and batch (:mod:`.ranges`; None: an older file).
    request_counts_ : bool
        Whether training rows recorded ``n_requests`` (else a given one is not used).
    structure_ : str
        The random-effect structure used (``"default"``, ``"rich"``, ``"custom"``, ...).
    domain_ : Domain
        Training ranges and labels.
    n_chunks_ : int
        Chunks of groups the per-group work was split into (one per joblib worker).
    phases_ : int
        Rows whose prefill and decode energies were fitted jointly (0: totals only).
    assumed_input_tokens_ : dict or None
        Placeholder ``input_tokens`` of the training rows flagged as assumed, per workload
        (None: read from a file that does not record them).
    fitted_params_ : dict
        The constructor parameters of the fit.
    upper_ : dict
        Bounded parameters (fitted as a logit, :data:`~.form.UPPER`) and their bounds.
    new_model_scores_ : ndarray or None
        Held-out scores of ``calibrate="models"`` (sorted), else None.

    Examples
    --------
    >>> import energylens
    >>> table = energylens.simulate_profiles(models=["Llama-3.1-8B", "Qwen3-8B"],
    ...                                      gpus=["H100-SXM", "A100-80GB"], seed=0)
    >>> model = HierarchicalEnergyModel().fit(table)
    >>> bool(np.all(model.predict(table) > 0)), model.structure_
    (True, 'rich')
    """

    _parameter_constraints: ClassVar[dict] = {
        "pooling": [StrOptions({"partial", "none", "complete"})],
        "by": [list, tuple],
        "levels": [StrOptions({"auto", "default", "rich"}), list, tuple],
        "terms": [dict, None],
        "new_gpu_spread": [Interval(Real, 0, None, closed="left")],
        "new_precision_spread": [Interval(Real, 0, None, closed="left")],
        "new_source_spread": [Interval(Real, 0, None, closed="left")],
        "max_em": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "n_jobs": N_JOBS,
        "poor_fit_mape": [Interval(Real, 0, None, closed="neither")],
        "phases": [StrOptions({"auto"}), bool],
        "calibrate": [StrOptions({"none", "models"})],
    }
    formula: ClassVar[str] = FORMULA

    def __init__(self, *, pooling: Literal["partial", "none", "complete"] = "partial",
                 by: Sequence[str] = ("model", "gpu"), levels="auto", terms: dict | None = None,
                 new_gpu_spread: float = 0.3, new_precision_spread: float = 0.42,
                 new_source_spread: float = 1.4, max_em: int = 12, tol: float = 1e-2,
                 n_jobs: int | None = None, poor_fit_mape: float = 25.0, phases="auto",
                 calibrate: Literal["none", "models"] = "none"):
        self.pooling = pooling
        self.by = by
        self.levels = levels
        self.terms = terms
        self.new_gpu_spread = new_gpu_spread
        self.new_precision_spread = new_precision_spread
        self.new_source_spread = new_source_spread
        self.max_em = max_em
        self.tol = tol
        self.n_jobs = n_jobs
        self.poor_fit_mape = poor_fit_mape
        self.phases = phases
        self.calibrate = calibrate

    # ------------------------------------------------------------------ structure
    def _group_columns(self, X: pd.DataFrame) -> list[str]:
        return group_columns(self.by, X)

    def _labels(self, X: pd.DataFrame, group_cols: Sequence[str]) -> pd.DataFrame:
        labels = row_labels(X)
        for c in group_cols:
            if c not in labels.columns:
                labels[c] = label_values(X[c])
        return labels

    def _specs(self, labels: pd.DataFrame, group_cols: list[str]) -> tuple[list, str]:
        return choose_specs(self.pooling, self.levels, labels, group_cols)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: pd.DataFrame, y=None):
        """Fit every group of a table at once.

        Parameters
        ----------
        X : DataFrame
            Canonical profiling table (see :func:`energylens.read_profiles`); its models
            and GPUs must be in the catalogue (:mod:`energylens.core.catalogue`).
        y : array-like of shape (n_samples,), optional
            Energy per request, J; ``X["energy_j"]`` when omitted.

        Returns
        -------
        self
        """
        with self._fitting():
            return self._fit(X, y)

    def _fit(self, X, y):
        self._validate_params()
        check_levels(self.levels)
        t0 = time.perf_counter()
        terms = resolve_terms(self.terms)
        if not isinstance(X, pd.DataFrame):
            raise ValueError("HierarchicalEnergyModel needs a canonical table (DataFrame) with "
                             f"model and GPU columns; got {type(X).__name__}.")
        X, y = training_rows(X, y)
        V = form_variables(X, terms)  # read and checked once, on the user's own rows
        scores = calibrated_scores(self, X, y)  # before the fit changes anything: the long part
        rows, ly, phase = phase_rows(X, y, self.phases)
        X_fit, V_fit = X, V
        if len(rows) > len(X):  # a split row twice, once per phase
            X_fit, V_fit = X.iloc[rows].reset_index(drop=True), {k: v[rows] for k, v in V.items()}
        with single_blas_thread():
            self._fit_table(X_fit, V_fit, ly, terms, phase)
        self.phases_ = int(np.sum(phase == PHASE_PREFILL))
        if self.phases_:  # group counts and in-sample error over the table's own rows
            from .report import compute_group_table

            cols, groups = self.design_.row_columns(self._labels(X, self.group_columns_),
                                                    self.group_columns_)
            self._groups_table = compute_group_table(self, cols, groups)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.train_mape_ = mape(y, self.predict(X))
        self.new_model_scores_ = scores
        self.fit_time_s_ = time.perf_counter() - t0
        self._warn()
        return self

    def _fit_table(self, X: pd.DataFrame, V: dict, ly: np.ndarray, terms: dict,
                   phase: np.ndarray) -> None:
        V = {**V, "phase": phase}
        group_cols = self._group_columns(X)
        labels = self._labels(X, group_cols)
        specs, self.structure_ = self._specs(labels, group_cols)
        inits = np.array([p.init for p in PARAMETERS])
        design = build_design(labels, specs, group_cols, inits)
        row_cols, row_group = design.row_columns(labels, group_cols)
        G = len(design.groups)
        touched, _ = touched_columns(row_cols, row_group, np.flatnonzero(~design.slot_local),
                                     G, design.n_global)
        layout = Layout(design.n_global, local_columns(design), touched)
        from ..grouped import _n_jobs

        n_chunks = max(1, min(int(effective_n_jobs(_n_jobs(self.n_jobs))), G))
        chunks = make_chunks(V, ly, row_cols, row_group, design, touched, n_chunks, terms)
        self.n_chunks_ = len(chunks)
        spread = {k: v for k, v in design.spread_groups().items() if len(v)}
        res = fit_pooled(chunks, layout, design.prior_mean, design.prior_sd, spread,
                         pooling=self.pooling, n_jobs=self.n_jobs, max_em=self.max_em, tol=self.tol)
        self.coef_, self.sigma_, self.design_, self.layout_ = res.z, res.sigma, design, layout
        self.sigma_dof_ = res.dof
        self.group_columns_, self.terms_ = group_cols, terms
        self.tau_map_ = {(design.levels[li].label, name): t for (li, name), t in res.tau.items()}
        self.posterior_, self.converged_, self.history_ = res.post, res.converged, res.history
        self.n_train_, self.n_features_in_ = len(ly), len(X.columns)
        self.log_evidence_ = float(-0.5 * res.cost - 0.5 * res.post.logdet - len(ly) * np.log(res.sigma))
        self.upper_ = dict(UPPER)
        pred = theta_from_link(row_log_theta(res.z, row_cols, design.slot_param), self.upper_)
        Vd = domain_variables(X, V)
        self.group_ranges_ = group_ranges(Vd, row_group, G, X["batch_size"])
        Vd["si"] = np.where(np.isfinite(Vd["si"]), Vd["si"], pred[:, PARAMETER_NAMES.index("si")])
        self.domain_ = Domain.from_training(Vd, X.assign(precision=labels["precision"].to_numpy()))
        self.gpus_ = sorted(labels["gpu"].unique())
        self.request_counts_ = bool(np.isfinite(V["nreq"]).any())
        self.assumed_input_tokens_ = assumed_lengths(X, labels["workload"].to_numpy())
        self.train_mape_ = mape(np.exp(ly), energy_kernel(V, pred, terms))  # per phase, if split
        from .report import compute_group_table

        self._groups_table = compute_group_table(self, row_cols, row_group)

    def _warn(self) -> None:
        from .report import fit_warnings

        for category, message in fit_warnings(self):
            warnings.warn(f"HierarchicalEnergyModel: {message}", category, stacklevel=4)

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        check_fitted(self, "coef_")

    def _rows(self, X) -> tuple[pd.DataFrame, dict, np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
        """The rows (names the catalogue knows as trained ones spelt as in training),
        variables, log-parameters, columns, labels and group index (-1: unseen)."""
        self._check_fitted()
        if not isinstance(X, pd.DataFrame):
            raise ValueError("HierarchicalEnergyModel needs a canonical table (DataFrame) with "
                             f"model and GPU columns; got {type(X).__name__}.")
        X = aliased(X, self.domain_.labels)
        V = unused_request_counts(form_variables(X, self.terms_),  # a pickle from before: used
                                  getattr(self, "request_counts_", True), stacklevel=3)
        missing = [c for c in self._setting("by") if c not in X.columns]
        if missing:
            raise ValueError(f"HierarchicalEnergyModel needs the group column(s) {missing} in X; "
                             f"columns are {list(map(str, X.columns))}.")
        labels = self._labels(X, self.group_columns_)
        cols, groups = self.design_.row_columns(labels, self.group_columns_)
        LT = self._log_theta(cols)
        warn_overridden(X, labels["workload"].to_numpy(), getattr(self, "assumed_input_tokens_", None),
                        np.exp(LT[:, PARAMETER_NAMES.index("si")]), stacklevel=3)  # predict's caller
        return X, V, LT, cols, labels, groups

    def _log_theta(self, cols: np.ndarray) -> np.ndarray:
        """Each row's link values: log-parameters, the logit of a bounded one."""
        d = self.design_
        z_ext = np.append(self.coef_, 0.0)
        LT = row_log_theta(z_ext, np.where(cols == UNSEEN, len(self.coef_), cols), d.slot_param)
        for m in np.flatnonzero(d.slot_level < 0):
            k = d.slot_param[m]
            if PARAMETER_NAMES[k] in WORKLOAD_PARAMETERS:
                unseen = cols[:, m] == UNSEEN  # a new workload: the mean of the known ones
                wl = np.flatnonzero((d.kind == "wl") & (d.param == k))
                LT[unseen, k] += float(np.mean(self.coef_[wl]))
        return LT

    def _extrapolation(self, X: pd.DataFrame, V: dict, labels, cols, groups, warn: bool
                       ) -> Extrapolation:
        Vd = domain_variables(X, V)
        ext = self.domain_.check(Vd, X.assign(precision=labels["precision"].to_numpy()))
        flag_unseen(ext, self.design_, labels, cols, self.group_columns_)
        flag_group_ranges(ext, getattr(self, "group_ranges_", None), Vd, groups, self.design_.groups)
        if warn and ext.any:
            warnings.warn(f"HierarchicalEnergyModel: {int(ext.mask.sum())} of {len(ext.mask)} "
                          f"row(s) lie outside the training data ({ext.describe()}); these "
                          "predictions extrapolate.", ExtrapolationWarning, stacklevel=3)
        return ext

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Energy per request (J) of each row.

        Rows of a group, model or GPU seen in training use its deviations; unseen ones the
        population, through the descriptors (zero-shot). Rows outside the training data are
        flagged by one :class:`~energylens.ExtrapolationWarning`.
        """
        X, V, LT, cols, labels, groups = self._rows(X)
        self._extrapolation(X, V, labels, cols, groups, warn=True)
        return checked_prediction(energy_kernel(V, theta_from_link(LT, self.upper_), self.terms_), X,
                                  type(self).__name__)

    def predict_components(self, X: pd.DataFrame) -> pd.DataFrame:
        """Prefill, decode and static energy of each row (J; they sum to :meth:`predict`), the
        decode's memory and compute parts and the decode step time (s).

        On tables without a measured prefill/decode split the split rests on the physics of
        the form and the priors, not on data (see :attr:`params_`)."""
        X, V, LT, cols, labels, groups = self._rows(X)
        self._extrapolation(X, V, labels, cols, groups, warn=True)
        comp = energy_components(V, theta_from_link(LT, self.upper_), self.terms_)
        comp.index = X.index
        return comp

    def predict_interval(self, X: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
        """Prediction with a lognormal interval that holds ``level`` of new measurements.

        The log-variance adds the parameters' posterior covariance, the residual variance
        and, for every level value not seen in training (a new model, GPU or group), the
        between-level spreads of its parameters (for a new GPU in a table of fewer than
        5 GPUs: ``new_gpu_spread``; for a new precision or source whose spread training
        could not estimate: ``new_precision_spread``, ``new_source_spread``). Outside the
        training ranges the sd grows by the library's rule
        (:func:`energylens.models.intervals.distance_outside`).

        Returns
        -------
        DataFrame
            ``energy_j``, ``lower``, ``upper``, ``log_sd`` (sd of log energy), ``stderr``
            (J, ``energy_j * log_sd``), ``extrapolated``, ``extrapolated_by`` and ``wide``
            (the interval spans more than a factor of 10, warned once; see
            :func:`energylens.models.intervals.flag_wide`).

        Examples
        --------
        >>> from energylens.models.hierarchical import form_table
        >>> table, _ = form_table(["Llama-3.1-8B", "Qwen3-8B"], ["H100-SXM", "A100-80GB"],
        ...                       rows_per_group=6)
        >>> model = HierarchicalEnergyModel().fit(table)
        >>> new = table.head(2).assign(model="Qwen3-14B")  # in the catalogue, never measured
        >>> pi = model.predict_interval(new)
        >>> bool((pi["upper"] > pi["energy_j"]).all() and pi["extrapolated"].all())
        True
        """
        check_options("predict_interval", {"level": [LEVEL]}, {"level": level})
        X, V, LT, cols, labels, groups = self._rows(X)
        ext = self._extrapolation(X, V, labels, cols, groups, warn=True)
        return interval_table(self, X, V, LT, (cols, labels, groups), ext, level)

    # ------------------------------------------------------------------ reports and files
    @property
    def params_(self) -> pd.DataFrame:
        """Population values: value, standard error, unit, meaning, identifiability."""
        from .report import population_table

        return population_table(self)

    @property
    def tau_(self) -> pd.DataFrame:
        """Spread between the values of each level, per parameter (sd of the log)."""
        from .report import spread_table

        return spread_table(self)

    @property
    def groups_(self) -> pd.DataFrame:
        """Each group's parameters, their standard errors (of the log) and shrinkage."""
        from .report import group_table

        return group_table(self)

    def fit_report(self) -> str:
        """A text report: population values, spreads between groups, each group's shrinkage."""
        from .report import fit_report

        return fit_report(self)

    def _repr_html_(self) -> str:
        from .report import html_report

        return html_report(self)

    def save(self, path, *, force: bool = False):
        """Save the fitted model as validated JSON (see :func:`energylens.load_model`).

        An existing energylens model file at ``path`` is replaced; any other file only with
        ``force=True`` (otherwise :class:`FileExistsError`); a folder raises
        :class:`IsADirectoryError`.
        """
        from .persistence import save_hierarchical

        return save_hierarchical(self, path, force=force)

    @classmethod
    def _from_model_file(cls, data: dict, where: str):
        from .persistence import model_from_file

        return model_from_file(cls, data, where)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False  # fit(df) reads the target from the table
        tags.target_tags.positive_only = True
        tags.input_tags.allow_nan = False
        return tags


registry.register(HierarchicalEnergyModel)
