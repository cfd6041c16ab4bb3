"""Evaluation protocols: sample efficiency and extrapolation, as long result tables.

Every protocol returns a long DataFrame with the columns
``model, dataset, protocol, n_train, seed, metric, value`` (plus ``split`` for
extrapolation). Models are cloned for every fit; a fit that raises is recorded as the
metric ``fit_failed`` (value 1) and never stops the study. The table itself is checked
before any draw: every row may be held out, so a target value that is not a finite number
> 0 (a metric divides by it) is a ``ValueError`` naming the column, the rows and the values.
Training and test rows are disjoint by construction, and checked.

Metrics recorded per fit (see :mod:`energylens.evaluation.metrics`): ``mape`` and
``median_ape`` (percent) on the held-out rows (not for a model that only ranks, such as
:class:`~energylens.evaluation.reference.RuleOfThumbModel`); ``top1``, ``pairwise``, ``regret``,
``within5`` and ``random_top1`` over the held-out candidates of each scenario with at least
two of them; ``fit_time_s``; ``n_fit`` and ``n_test``, the rows fitted on and tested on. With
``errors=True``, an ``error`` column says why a fit failed (empty on every other row), so that
no ``fit_failed`` goes without a reason.

The tables are small (tens to thousands of rows), where the OpenMP and BLAS threads of
scikit-learn's tree ensembles cost far more than they save (a histogram gradient boosting
fit on 120 rows takes about ten times longer with two busy threads than with one); the
protocols therefore run each fit with ``n_threads`` threads (default 1), through
:mod:`threadpoolctl`, and parallelise over seeds instead (``n_jobs``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from ..core.checks import check_positive_column, plain
from ..core.progress import progress
from ..exceptions import EnergyLensWarning
from . import metrics as M
from ._inputs import check_inputs, check_target, check_values_given

__all__ = ["sample_efficiency", "extrapolate", "evaluate_split", "RESULT_COLUMNS"]

RESULT_COLUMNS = ["model", "dataset", "protocol", "n_train", "seed", "metric", "value"]


class LeakageError(AssertionError):
    """Internal error: a test row was found among the training rows."""


def _scenario_labels(df: pd.DataFrame, scenario: Sequence[str]) -> np.ndarray:
    """One integer label per row, equal for rows of the same scenario (vectorised: a
    row-wise string join cost more than the fits it labels)."""
    cols = [c for c in scenario if c in df.columns]
    if not cols:
        return np.zeros(len(df), dtype=int)
    return df.groupby(cols, sort=True, dropna=False).ngroup().to_numpy()


def evaluate_split(model, train: pd.DataFrame, test: pd.DataFrame, *, scenario: Sequence[str],
                   target: str = "energy_j") -> dict[str, float]:
    """Fit a clone of ``model`` on ``train`` and score it on ``test``.

    The percentage errors and the selection metrics are computed on the predictions as
    given: a model that predicts below zero but orders the candidates of each scenario
    correctly ranks perfectly (its MAPE says how far off its joules are).

    Parameters
    ----------
    model : estimator
        Cloned before the fit.
    train, test : DataFrame
        Disjoint rows (by index label) of one table.
    scenario : sequence of str
        Columns defining a selection scenario.
    target : str
        The measured energy; on ``test`` a finite number > 0 on every row.

    Returns
    -------
    dict
        Metric name -> value; ``fit_failed`` is 1 (with an ``error`` text) where the fit or
        the prediction raised or a prediction is not finite.

    Raises
    ------
    ValueError
        A target value of ``test`` that is not a finite number > 0 (naming the rows).

    Examples
    --------
    >>> import pandas as pd
    >>> from energylens.evaluation.reference import NoiseCeilingModel
    >>> df = pd.DataFrame({"model": "m", "energy_j": [10.0, 20.0, 30.0, 40.0]})
    >>> out = evaluate_split(NoiseCeilingModel(noise=0.0), df.iloc[:2], df.iloc[2:],
    ...                      scenario=["model"])
    >>> out["top1"], out["fit_failed"]
    (1.0, 0.0)
    """
    check_target("evaluate_split", test, target)
    overlap = train.index.intersection(test.index)
    if len(overlap):
        raise LeakageError(f"{len(overlap)} test rows are also training rows (e.g. {list(overlap[:3])}).")
    est = clone(model)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(train, train[target].to_numpy())
            pred = np.asarray(est.predict(test), dtype=float)
    except Exception as exc:  # noqa: BLE001 - recorded, the study goes on
        return {"fit_failed": 1.0, "error": f"{type(exc).__name__}: {exc}"}
    fit_time = time.perf_counter() - t0
    y = test[target].to_numpy(dtype=float)
    if not np.all(np.isfinite(pred)):
        return {"fit_failed": 1.0, "error": "non-finite predictions", "fit_time_s": fit_time}
    out = {"fit_failed": 0.0, "fit_time_s": fit_time, "n_fit": float(len(train)),
           "n_test": float(len(test))}
    if not getattr(est, "ranks_only", False):  # a ranking score has no percentage error
        out.update(mape=M.mape(y, pred), median_ape=M.median_ape(y, pred))
    labels = _scenario_labels(test, scenario)
    try:  # on the predictions as given: a ranking needs no positive values
        out.update(M.selection_metrics(y, pred, labels))
    except ValueError:
        pass  # no held-out scenario with two candidates
    return out


def _draw(df: pd.DataFrame, n: int, rng: np.random.Generator, group: Sequence[str] | None,
          min_test: int = 2) -> pd.Index | None:
    """Training index: n random rows (per group if given, leaving min_test rows to test)."""
    if not group:
        if n > len(df) - min_test:
            return None
        return df.index[np.sort(rng.choice(len(df), n, replace=False))]
    parts = []
    for _, g in df.groupby(list(group), sort=True):
        k = min(n, len(g) - min_test)
        if k < 1:
            continue
        parts.append(g.index[np.sort(rng.choice(len(g), k, replace=False))])
    if not parts:
        return None
    return parts[0].append(parts[1:]) if len(parts) > 1 else parts[0]


def _rows(name, dataset, protocol, n_train, seed, values, **extra):
    rows = []
    error = values.get("error", "")
    for metric, value in values.items():
        if metric == "error":
            continue
        rows.append({"model": name, "dataset": dataset, "protocol": protocol, "n_train": n_train,
                     "seed": seed, "metric": metric, "value": float(value),
                     "error": error if metric == "fit_failed" else "", **extra})
    return rows


def _largest_size(df: pd.DataFrame, group: Sequence[str] | None, min_test: int = 2) -> int:
    """The most training rows a draw can take from one group (or the whole table) while
    leaving ``min_test`` rows to test."""
    largest = int(df.groupby(list(group), sort=False).size().max()) if group and len(df) \
        else len(df)
    return largest - min_test


def _usable_sizes(df: pd.DataFrame, n_train: Sequence[int], group: Sequence[str] | None,
                  min_test: int = 2) -> list[int]:
    """The training sizes some group can hold with ``min_test`` rows left to test; each other
    size is left out with a warning (its draws would only repeat a smaller size's rows under
    a larger label)."""
    largest = _largest_size(df, group, min_test)
    keep = [int(n) for n in n_train if n <= largest]
    dropped = [int(n) for n in n_train if n > largest]
    if dropped:
        where = (f"no group of {', '.join(group)} has more than {largest + min_test} rows"
                 if group else f"the table has {len(df)} rows")
        warnings.warn(f"sample_efficiency: n_train={dropped} left out: {where}, so at most "
                      f"{max(largest, 0)} can train with {min_test} left to test"
                      + (f"; training on n_train={keep} only." if keep else "; no size is left."),
                      EnergyLensWarning, stacklevel=3)
    return keep


def _training_sizes(n_train) -> list[int]:
    """``n_train`` as a list of whole numbers >= 1 (a single number is a list of one)."""
    if isinstance(n_train, (int, np.integer)) and not isinstance(n_train, bool):
        n_train = [n_train]
    if isinstance(n_train, (str, bytes)) or not isinstance(n_train, Iterable):
        raise ValueError(f"sample_efficiency: n_train must be a number of rows >= 1 or a list "
                         f"of them; got {n_train!r}.")
    sizes = list(n_train)
    bad = [n for n in sizes if isinstance(n, bool) or not isinstance(n, (int, np.integer))
           or n < 1]
    if bad or not sizes:
        raise ValueError(f"sample_efficiency: n_train must hold whole numbers of rows >= 1; got "
                         f"{sizes!r}.")
    return sizes


def _draws(df, n_train, seed, group) -> list[tuple[int, pd.Index]]:
    """The training rows of each size for one seed (one generator, sizes in order)."""
    rng = np.random.default_rng(seed)
    out = []
    for n in n_train:
        idx = _draw(df, n, rng, group)
        if idx is not None:
            out.append((n, idx))
    return out


def _one_split(name, model, train, test, n, seed, scenario, dataset, target, n_threads):
    """Fit one model on one draw and score it on the rest."""
    with threadpool_limits(n_threads):
        vals = evaluate_split(model, train, test, scenario=scenario, target=target)
    return _rows(name, dataset, "sample_efficiency", n, seed, vals)


def sample_efficiency(
    models: Mapping[str, object],
    df: pd.DataFrame,
    *,
    n_train: Sequence[int] = (10, 20, 50, 100),
    seeds: int | Sequence[int] = 20,
    scenario: Sequence[str] = ("model", "gpu", "workload"),
    group: Sequence[str] | None = None,
    dataset: str = "data",
    target: str = "energy_j",
    n_jobs: int | None = None,
    n_threads: int | None = 1,
    errors: bool = False,
    show_progress: bool | None = None,
) -> pd.DataFrame:
    """Train on ``n`` random rows, test on the rest, for each ``n`` and seed.

    Parameters
    ----------
    models : dict
        Name -> estimator (cloned for every fit).
    df : DataFrame
        Canonical profiling table; its index must be unique.
    n_train : int or sequence of int
        Training-set sizes (one number is one size); with ``group``, rows per group. A
        group too small to keep two rows to test trains on all but two of its rows (the
        ``n_fit`` metric counts the rows each fit used); a size that no group (or, without
        ``group``, the table) can hold with two rows left to test is left out, with an
        :class:`~energylens.EnergyLensWarning`.
    seeds : int or sequence of int
        Number of seeds (0, 1, ...) or the seeds themselves.
    scenario : sequence of str
        Columns defining a selection scenario (its candidates are its held-out rows). A
        column the table lacks is an error, except in the default scenario, whose absent
        columns are skipped (a table of one workload has no ``workload``).
    group : sequence of str, optional
        Draw ``n`` training rows within each group (e.g. ``["model", "gpu"]`` when the closed
        forms are fitted per group), leaving at least two rows of each group to test.
    dataset : str
        Label written to the ``dataset`` column.
    n_jobs : int, optional
        joblib workers over seeds.
    n_threads : int, optional
        OpenMP/BLAS threads per fit (default 1; None leaves the libraries' own setting).
    errors : bool
        Add an ``error`` column: why a fit failed, on its ``fit_failed`` row.
    show_progress : bool, optional
        A progress bar over seeds (:func:`energylens.core.progress.progress`): True, False,
        or None (default) for only when standard error is a terminal.

    Returns
    -------
    DataFrame
        Long results: ``model, dataset, protocol, n_train, seed, metric, value`` (and
        ``error`` with ``errors=True``).

    Examples
    --------
    >>> from energylens import WilkinsModel, simulate_profiles
    >>> table = simulate_profiles(models=["Llama-3.2-1B"], gpus=["L4"], noise=0.0)
    >>> res = sample_efficiency({"wilkins": WilkinsModel()}, table, n_train=[20], seeds=2,
    ...                         errors=True)
    >>> sorted(res["seed"].unique().tolist()), "mape" in set(res["metric"])
    ([0, 1], True)
    >>> res.loc[res["metric"] == "fit_failed", ["value", "error"]].values.tolist()
    [[0.0, ''], [0.0, '']]
    """
    check_inputs("sample_efficiency", models, df, scenario=scenario, target=target,
                 columns={"group": group})
    n_train = _training_sizes(n_train)
    seed_list = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else list(seeds)
    if not seed_list or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
                            for s in seed_list):
        raise ValueError(f"sample_efficiency: seeds must be a positive count or a list of "
                         f"non-negative integer seeds; got {seeds!r}.")
    n_train = _usable_sizes(df, n_train, group)
    # One task per (seed, size, model), in that order: the draws are made here, so the
    # results do not depend on how the tasks are spread over workers, and a slow model does
    # not hold a whole seed on one worker. Each draw's rows are split once, for all models,
    # as the tasks are dispatched.
    draws = [(s, n, idx) for s in seed_list for n, idx in _draws(df, n_train, s, group)]

    def jobs():
        for s, n, idx in draws:
            train, test = df.loc[idx], df.drop(index=idx)
            for name, model in models.items():
                yield delayed(_one_split)(name, model, train, test, n, s, list(scenario),
                                          dataset, target, n_threads)

    out = progress(Parallel(n_jobs=n_jobs, return_as="generator")(jobs()),
                   total=len(draws) * len(models),
                   desc="comparing models", unit="fit", enabled=show_progress)
    rows = [r for part in out for r in part]
    return pd.DataFrame(rows, columns=[*RESULT_COLUMNS, "error"] if errors else RESULT_COLUMNS)


def _batch_folds(df: pd.DataFrame, group: Sequence[str] | None,
                 batch_column: str) -> list[tuple[str, pd.Index, pd.Index]]:
    """Train on each group's batch sizes up to its median, test on those above; an empty
    list, with a warning, where no group has a batch size above its median."""
    values = pd.to_numeric(df[batch_column], errors="coerce").to_numpy(dtype=float)
    check_positive_column(values, df, batch_column, "extrapolate(split='batch')")
    batch = pd.Series(values, index=df.index)
    groups = df.groupby(list(group), sort=True, dropna=False) if group else [((), df)]
    tr, te = [], []
    for _, g in groups:
        b = batch.loc[g.index]
        med = b.median()
        tr.append(g.index[b <= med])
        te.append(g.index[b > med])
    train = tr[0].append(tr[1:]) if len(tr) > 1 else tr[0]
    test = te[0].append(te[1:]) if len(te) > 1 else te[0]
    if len(test) == 0:
        where = f"no group of {', '.join(group)} has" if group else "the table does not have"
        sizes = sorted(float(v) for v in np.unique(values))
        warnings.warn(f"extrapolate: split='batch' holds out no row: {where} a {batch_column} "
                      f"above its median ({batch_column} values {sizes[:6]}"
                      f"{' ...' if len(sizes) > 6 else ''}); the result is empty.",
                      EnergyLensWarning, stacklevel=3)
        return []
    return [("above-median", train, test)]


def _leave_one_out_folds(df: pd.DataFrame, col: str) -> list[tuple[str, pd.Index, pd.Index]]:
    """One fold per value of ``col`` (trained on the others); an empty list, with a
    warning, where ``col`` has one value only."""
    check_values_given("extrapolate", df, col, f"split={col!r}")
    values = list(df[col].unique())
    try:
        values = sorted(values)
    except TypeError:  # labels of mixed types: ordered by their text
        values = sorted(values, key=str)
    if len(values) < 2:
        warnings.warn(f"extrapolate: split={col!r} leaves out one {col} at a time, but the table "
                      f"has one only ({plain(values[0])!r}), which leaves nothing to train on; "
                      "the result is empty.", EnergyLensWarning, stacklevel=3)
        return []
    return [(str(v), df.index[df[col] != v], df.index[df[col] == v]) for v in values]


def extrapolate(
    models: Mapping[str, object],
    df: pd.DataFrame,
    *,
    split: Literal["batch", "gpu", "model"] = "batch",
    scenario: Sequence[str] = ("model", "gpu", "workload"),
    group: Sequence[str] | None = None,
    dataset: str = "data",
    target: str = "energy_j",
    batch_column: str = "batch_size",
    errors: bool = False,
) -> pd.DataFrame:
    """Train on one part of the table and test on a part outside its range.

    ``split="batch"``: within each ``group`` (or the whole table), train on rows whose batch
    size is at most the group's median and test on the rows above it. ``"gpu"``: leave one
    GPU out (train on every other GPU). ``"model"``: leave one model out. The models must be
    able to predict the held-out part (for example fitted per model across GPUs for the GPU
    split); a model that cannot is recorded as ``fit_failed``.

    Parameters
    ----------
    models : dict
        Name -> estimator (cloned for every fit).
    df : DataFrame
        Canonical profiling table; its index must be unique.
    split : {"batch", "gpu", "model"}
        What is held out. A table with one batch size per group (``"batch"``) or one GPU or
        model (``"gpu"``, ``"model"``) has nothing to hold out: the result is empty, with an
        :class:`~energylens.EnergyLensWarning`.
    scenario : sequence of str
        Columns defining a selection scenario (as for :func:`sample_efficiency`).
    group : sequence of str, optional
        Groups whose medians split the batch sizes (``split="batch"`` only).
    dataset : str
        Label written to the ``dataset`` column.
    target : str
        The measured energy: a finite number > 0 on every row.
    batch_column : str
        Batch sizes of the batch split: numbers > 0.
    errors : bool
        Add an ``error`` column: why a fit failed, on its ``fit_failed`` row.

    Returns
    -------
    DataFrame
        Long results with ``n_train`` the number of training rows and a ``split`` column
        naming the held-out value (``"above-median"`` for the batch split), and ``error``
        with ``errors=True``.

    Raises
    ------
    ValueError
        A column named here that the table lacks; a target value that is not a finite
        number > 0, a missing value in the ``gpu`` or ``model`` column of the split, or a
        batch size that is not a number > 0 (each naming the rows).

    Examples
    --------
    >>> from energylens import WilkinsModel, simulate_profiles
    >>> table = simulate_profiles(models=["Llama-3.2-1B"], gpus=["L4"], noise=0.0)
    >>> res = extrapolate({"wilkins": WilkinsModel()}, table, split="batch", errors=True)
    >>> res["split"].unique().tolist(), list(res.columns[-2:])
    (['above-median'], ['split', 'error'])
    """
    if split not in ("batch", "gpu", "model"):
        raise ValueError(f"split must be 'batch', 'gpu' or 'model'; got {split!r}.")
    check_inputs("extrapolate", models, df, scenario=scenario, target=target,
                 columns={"group": group,
                          "batch_column": [batch_column] if split == "batch" else None,
                          "split": None if split == "batch" else [split]})
    folds = (_batch_folds(df, group, batch_column) if split == "batch"
             else _leave_one_out_folds(df, split))
    rows = []
    with threadpool_limits(1):
        for label, tr_idx, te_idx in folds:
            train, test = df.loc[tr_idx], df.loc[te_idx]
            for name, model in models.items():
                vals = evaluate_split(model, train, test, scenario=scenario, target=target)
                rows += _rows(name, dataset, f"extrapolate-{split}", len(train), 0, vals,
                              split=label)
    columns = [*RESULT_COLUMNS, "split", *(["error"] if errors else [])]
    return pd.DataFrame(rows, columns=columns)
