"""The row variables of the hierarchical form, read from a profiling table and the catalogue.

Configuration columns come from the table (``tp``, ``pp``, ``dp``, ``ep``, the running batch,
output and input tokens, the run's request count); hardware and model descriptors come
from :func:`energylens.core.catalogue.descriptors`, so a model or GPU that the catalogue
knows is predicted without a single row of it, and one it does not know raises the
catalogue's error (which descriptor is missing and how to add it).

Variables (SI units, one value per row):

=========  ===============================================================================
``n``      GPUs of the serving unit, ``tp * pp * dp``
``tp``...  ``tp``, ``pp``, ``dp``, ``ep`` (1 where the table has no such column)
``B``      requests in flight over the unit: the running batch per replica (the cap where
           not measured) times ``dp``
``so``     output tokens per request
``si_obs`` recorded prompt length (NaN where the table flags it as assumed, or has no
           ``input_tokens`` column: the model then fits one latent length per workload; any
           other value must be a number > 0, see :func:`input_tokens`)
``nreq``   requests of the whole run (NaN where not recorded)
``bw``     memory bandwidth, bytes/s; ``F``: dense tensor FLOP/s at the weights' precision;
           ``P``: TDP, W
``Wd``     bytes of the weights outside routed experts; ``We``: of the routed experts;
           ``r``: experts per token / experts (1 for dense models)
``Ftok``   FLOPs per token, ``2 * active parameters``
``kvb``    KV bytes per token of context (layers whose cache spans the context); ``state``:
           recurrent state read and written per step and sequence (bytes)
``L``, ``H``  layers and hidden size
=========  ===============================================================================
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ...core.batch import effective_batch
from ...core.catalogue import aliased, descriptors
from ...core.checks import flag_column
from ...core.checks import plain as _plain
from ...core.variables import check_positive_column, check_variables
from ...exceptions import EnergyLensWarning, FitError

__all__ = ["REQUIRED_DESCRIPTORS", "LABEL_COLUMNS", "form_variables", "row_labels",
           "label_values", "input_tokens", "assumed_lengths", "overridden_lengths",
           "warn_overridden",
           "example_variables", "DOMAIN_VARIABLES", "model_family", "training_rows",
           "one_spelling", "domain_variables", "unused_request_counts"]

#: Catalogue descriptors every row needs (a missing one is a CatalogueError naming it).
REQUIRED_DESCRIPTORS: tuple[str, ...] = (
    "gpu_memory_bw_bytes_s", "gpu_flop_s", "gpu_tdp_w", "model_params_b",
    "model_active_params_b", "model_layers", "model_hidden", "kv_bytes_per_token_full",
    "bytes_per_weight")
#: Label columns the levels are built from (absent ones take one value, ``"-"``).
LABEL_COLUMNS: tuple[str, ...] = ("model", "gpu", "precision", "workload", "source")
#: Variables whose training range the model records (names of core.variables where they
#: have one): a prediction outside it is flagged. The input length's range holds the
#: measured lengths and the fitted prompt lengths of workloads whose rows give none.
DOMAIN_VARIABLES: dict[str, str] = {"t": "tp", "p": "pp", "d": "dp", "e": "ep", "B": "B",
                                    "so": "so", "si": "si"}
_CONFIG = {"tp": ("t", None), "pp": ("p", 1.0), "dp": ("d", 1.0), "ep": ("e", 1.0)}


def _column(X: pd.DataFrame, col: str, default: float | None) -> np.ndarray:
    if col not in X.columns:
        if default is None:
            raise ValueError(f"HierarchicalEnergyModel needs the column {col!r}; the table has "
                             f"columns {list(map(str, X.columns))}.")
        return np.full(len(X), default)
    return pd.to_numeric(X[col], errors="coerce").to_numpy(dtype=float)


def _check_names(X: pd.DataFrame) -> None:
    """Every row names its model and GPU (the levels and descriptors hang on them)."""
    for col in ("model", "gpu"):
        if col not in X.columns:
            continue
        s = X[col]
        bad = s.isna().to_numpy() | (s.astype(str).str.strip() == "").to_numpy()
        if bad.any():
            rows = [_plain(v) for v in X.index[np.flatnonzero(bad)[:5]]]
            raise ValueError(f"HierarchicalEnergyModel: column {col!r} has {int(bad.sum())} "
                             f"missing or empty value(s) (first at rows {rows}); every row "
                             f"needs its {'model' if col == 'model' else 'GPU'} name.")


def _config(X: pd.DataFrame) -> dict[str, np.ndarray]:
    """Configuration variables of the table, checked (finite, > 0). ``batch_size`` is checked
    even where a measured ``running_batch`` sets the batch the form reads (an invalid cap
    is an error, not ignored)."""
    for col in ("batch_size", "output_tokens"):
        _column(X, col, None)
    check_positive_column(_column(X, "batch_size", None), X, "batch_size", "HierarchicalEnergyModel")
    V = {short: _column(X, col, default) for col, (short, default) in _CONFIG.items()}
    V["B"] = effective_batch(X, "running", owner="HierarchicalEnergyModel")
    V["so"] = _column(X, "output_tokens", None)
    check_variables(V, X.index, "HierarchicalEnergyModel")
    return V


def _assumed(X: pd.DataFrame) -> np.ndarray:
    """Rows whose ``input_tokens`` the table flags as assumed (a nominal placeholder)."""
    return flag_column(X, "input_tokens_assumed", "HierarchicalEnergyModel")


def input_tokens(X: pd.DataFrame) -> np.ndarray:
    """The recorded prompt length of each row (``si_obs``), checked.

    NaN where the row flags its value as assumed (``input_tokens_assumed``: the model uses
    its workload's fitted length) or the table has no ``input_tokens`` column; every other
    value must be a number > 0.

    Raises
    ------
    ValueError
        Naming the column, the rows and their values, where a value is missing, not a
        number or not positive on a row that does not flag it as assumed.

    Examples
    --------
    >>> input_tokens(pd.DataFrame({"input_tokens": [512, 0], "input_tokens_assumed": [False, True]}))
    array([512.,  nan])
    """
    if "input_tokens" not in X.columns:
        return np.full(len(X), np.nan)
    si = pd.to_numeric(X["input_tokens"], errors="coerce").to_numpy(dtype=float)
    assumed = _assumed(X)
    bad = ~assumed & ~(np.isfinite(si) & (si > 0))
    if bad.any():
        first = np.flatnonzero(bad)[:5]
        rows = [_plain(v) for v in X.index[first]]
        values = [_plain(v) for v in X["input_tokens"].iloc[first]]
        raise ValueError(
            f"HierarchicalEnergyModel: column 'input_tokens' has {int(bad.sum())} value(s) that "
            f"are not a number > 0 (first at rows {rows}: {values}); give every row its prompt "
            "length, or flag a row whose length is not known with input_tokens_assumed=True "
            "(the model then uses its workload's fitted length).")
    return np.where(assumed, np.nan, si)


def _given_lengths(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Which rows flagged as assumed give an ``input_tokens`` value, and the values as
    numbers (NaN where not a number)."""
    if "input_tokens" not in X.columns:
        return np.zeros(len(X), dtype=bool), np.full(len(X), np.nan)
    given = _assumed(X) & X["input_tokens"].notna().to_numpy()
    return given, pd.to_numeric(X["input_tokens"], errors="coerce").to_numpy(dtype=float)


def assumed_lengths(X: pd.DataFrame, workloads: np.ndarray) -> dict[str, list[float]]:
    """The nominal ``input_tokens`` of the rows flagged as assumed, per workload label.

    Examples
    --------
    >>> t = pd.DataFrame({"input_tokens": [512, 512, 100], "input_tokens_assumed": [True, True, False]})
    >>> assumed_lengths(t, np.array(["chat", "chat", "code"], dtype=object))
    {'chat': [512.0]}
    """
    given, si = _given_lengths(X)
    given &= np.isfinite(si)
    out: dict[str, set[float]] = {}
    for wl, v in zip(workloads[given], si[given]):
        out.setdefault(str(wl), set()).add(float(v))
    return {wl: sorted(v) for wl, v in out.items()}


def overridden_lengths(X: pd.DataFrame, workloads: np.ndarray,
                       known: dict[str, list[float]]) -> np.ndarray:
    """Rows flagged as assumed whose ``input_tokens`` is none of the nominal values that
    training saw for their workload (for a workload without any, for any workload): a value
    the model does not use, since it predicts these rows at the fitted length.

    Examples
    --------
    >>> t = pd.DataFrame({"input_tokens": [512, 9000, 9000], "input_tokens_assumed": [True, True, False]})
    >>> overridden_lengths(t, np.array(["chat"] * 3, dtype=object), {"chat": [512.0]}).tolist()
    [False, True, False]
    """
    given, si = _given_lengths(X)
    out = np.zeros(len(X), dtype=bool)
    every = [v for vals in known.values() for v in vals]
    for i in np.flatnonzero(given):
        nominal = known.get(str(workloads[i]), every)
        out[i] = not np.any(np.isclose(si[i], nominal, rtol=1e-9, atol=0.0))
    return out


def warn_overridden(X: pd.DataFrame, workloads: np.ndarray, known: dict[str, list[float]] | None,
                    fitted: np.ndarray, *, stacklevel: int) -> None:
    """Warn (:class:`~energylens.EnergyLensWarning`) about the rows of
    :func:`overridden_lengths`, with the fitted prompt lengths (``fitted``, per row) they are
    predicted at; ``stacklevel`` as seen from the caller. Nothing where ``known`` is None
    (a model file that does not record the training placeholders)."""
    over = overridden_lengths(X, workloads, known) if known is not None else np.zeros(0, bool)
    if not over.any():
        return
    first = np.flatnonzero(over)[:5]
    rows = [_plain(v) for v in X.index[first]]
    values = [_plain(v) for v in X["input_tokens"].iloc[first]]
    warnings.warn(
        f"HierarchicalEnergyModel: {int(over.sum())} row(s) flagged input_tokens_assumed give "
        f"an input_tokens that the model does not use (first at rows {rows}: {values}); it "
        f"predicts them at their workload's fitted prompt length "
        f"({np.round(fitted[first]).tolist()} tokens). Set input_tokens_assumed=False to "
        "predict at the given length.",
        EnergyLensWarning, stacklevel=stacklevel + 1)


def unused_request_counts(V: dict, fitted: bool, *, stacklevel: int) -> dict:
    """``V`` for predicting with a model whose training rows recorded no request count
    (``fitted`` False): a given ``n_requests`` is not used, since the drain constant it would
    scale (``kappa``) was never fitted; the workload's fitted drain applies, and an
    :class:`~energylens.EnergyLensWarning` says so (``stacklevel`` as seen from the caller)."""
    given = np.isfinite(V["nreq"])
    if fitted or not given.any():
        return V
    warnings.warn(f"HierarchicalEnergyModel: {int(given.sum())} row(s) give n_requests, which "
                  "this model does not use: its training rows recorded no request count, so "
                  "the drain of a finite run is its workload's fitted value. Fit on a table "
                  "with n_requests to predict how the run length changes the energy.",
                  EnergyLensWarning, stacklevel=stacklevel + 1)
    return {**V, "nreq": np.full(len(given), np.nan)}


def domain_variables(X: pd.DataFrame, V: dict) -> dict[str, np.ndarray]:
    """The variables whose training range the model records (:data:`DOMAIN_VARIABLES`), from
    a table and its :func:`form_variables` (``dp`` as the table gives it)."""
    B = effective_batch(X, "running", owner="HierarchicalEnergyModel")
    return {"t": V["tp"], "p": V["pp"], "d": X["dp"].to_numpy(float) if "dp" in X else V["dp"],
            "e": V["ep"], "B": B, "so": V["so"], "si": V["si_obs"]}


def training_rows(X: pd.DataFrame, y) -> tuple[pd.DataFrame, np.ndarray]:
    """The table a fit reads (one spelling per model and GPU, :func:`one_spelling`) and its
    energies (``y``, else the ``energy_j`` column; finite and > 0)."""
    X = one_spelling(X, stacklevel=5)
    if y is None and "energy_j" not in X.columns:
        raise ValueError("HierarchicalEnergyModel needs y or an 'energy_j' column.")
    y = X["energy_j"].to_numpy(float) if y is None else np.asarray(y, dtype=float).ravel()
    if len(y) != len(X):
        raise ValueError(f"X and y have different lengths ({len(X)} and {len(y)}).")
    if not len(X):
        raise FitError("HierarchicalEnergyModel needs at least 1 row to fit; got n_samples = 0.")
    bad = ~np.isfinite(y) | (y <= 0)
    if bad.any():
        raise FitError(f"HierarchicalEnergyModel fits log energy: energy_j (or y) must be finite "
                       f"and > 0; {int(bad.sum())} row(s) are not (first rows "
                       f"{[_plain(v) for v in X.index[bad][:5]]}, values {y[bad][:5].tolist()}).")
    return X, y


def one_spelling(X: pd.DataFrame, *, stacklevel: int = 2) -> pd.DataFrame:
    """``X`` with the model and GPU names that the catalogue resolves to the same entry as an
    earlier name of the table spelt as that one (``"Qwen3-14B"`` after
    ``"Qwen/Qwen3-14B"``), so that one model or GPU is one level, as at prediction
    (:func:`~energylens.core.catalogue.aliased`); an :class:`~energylens.EnergyLensWarning`
    names the merges.

    Examples
    --------
    >>> t = pd.DataFrame({"model": ["Qwen/Qwen3-14B", "Qwen3-14B"], "gpu": ["B200", "B200 "]})
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     one_spelling(t).to_dict("list")
    {'model': ['Qwen/Qwen3-14B', 'Qwen/Qwen3-14B'], 'gpu': ['B200', 'B200']}
    """
    out, merged = X, []
    for col in ("model", "gpu"):
        if col not in X.columns:
            continue
        known: list[str] = []
        mapping = {}
        for v in pd.unique(X[col].dropna()):
            same = aliased(pd.DataFrame({col: [v]}), {col: known})[col].iloc[0] if known else v
            if same != v:
                mapping[v] = same
            else:
                known.append(str(v))
        if mapping:
            out = out.copy() if out is X else out
            out[col] = X[col].map(lambda v, m=mapping: m.get(v, v))
            merged += [f"{v!r} as {m!r}" for v, m in mapping.items()]
    if merged:  # stacklevel as seen from the caller
        warnings.warn(f"HierarchicalEnergyModel: names the catalogue reads as one model or GPU "
                      f"are fitted as one: {', '.join(merged)}.", EnergyLensWarning,
                      stacklevel=stacklevel + 1)
    return out


def _prompt_and_run(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    si = input_tokens(X)
    nreq = _column(X, "n_requests", np.nan)
    return si, np.where(np.isfinite(nreq) & (nreq > 0), nreq, np.nan)


def form_variables(X: pd.DataFrame, terms: dict | None = None) -> dict[str, np.ndarray]:
    """The kernel's variables for every row of a canonical table.

    Parameters
    ----------
    X : DataFrame
        Canonical profiling table (``model``, ``gpu``, ``tp``, ``batch_size``,
        ``output_tokens``; optionally ``pp``, ``dp``, ``ep``, ``running_batch``,
        ``precision``, ``input_tokens``, ``n_requests``).
    terms : dict, optional
        The form's switches: without ``"replicas"``, a row counts the GPUs of one replica
        and reads its dense weights once (the old form).

    Returns
    -------
    dict
        Name -> float array (see the module docstring).

    Raises
    ------
    CatalogueError
        A model or GPU the catalogue does not know, or a descriptor it lacks.
    ValueError
        A configuration column missing, non-finite or not positive.

    Examples
    --------
    >>> t = pd.DataFrame({"model": ["Llama-3.1-8B"], "gpu": ["H100"], "tp": [1],
    ...                   "batch_size": [64.0], "output_tokens": [256.0]})
    >>> V = form_variables(t)
    >>> V["n"].tolist(), V["kvb"].tolist()
    ([1.0], [131072.0])
    """
    if not isinstance(X, pd.DataFrame):
        raise ValueError("HierarchicalEnergyModel needs a canonical table (DataFrame) with "
                         f"model and GPU columns; got {type(X).__name__}.")
    _check_names(X)
    cfg = _config(X)
    d = descriptors(X, required=REQUIRED_DESCRIPTORS)
    replicas = (terms or {}).get("replicas", True)
    dp = cfg["d"]

    def num(col):
        return d[col].to_numpy(dtype=float)

    total, active = num("model_params_b"), num("model_active_params_b")
    E, k = num("model_experts"), num("model_active_experts")
    moe = np.isfinite(E) & np.isfinite(k) & (E > 1) & (k < E)
    per_expert = np.where(moe, (total - active) / np.where(moe, E - k, 1.0), 0.0)
    expert_b = per_expert * np.where(moe, E, 0.0)
    bpw = num("bytes_per_weight")
    si, nreq = _prompt_and_run(X)
    n = cfg["t"] * cfg["p"] * (dp if replicas else 1.0)
    return {
        "n": n, "tp": cfg["t"], "pp": cfg["p"], "dp": dp if replicas else np.ones(len(X)),
        "ep": cfg["e"], "B": cfg["B"] * dp, "so": cfg["so"], "si_obs": si, "nreq": nreq,
        "bw": num("gpu_memory_bw_bytes_s"), "F": num("gpu_flop_s"), "P": num("gpu_tdp_w"),
        "L": num("model_layers"), "H": num("model_hidden"),
        "Wd": (total - expert_b) * 1e9 * bpw, "We": expert_b * 1e9 * bpw,
        "r": np.where(moe, k / np.where(moe, E, 1.0), 1.0), "Ftok": 2e9 * active,
        "kvb": num("kv_bytes_per_token_full"), "state": 2.0 * num("state_bytes"),
    }


def label_values(s: pd.Series) -> np.ndarray:
    """A label column as strings, ``"-"`` (none given) where a value is missing.

    Examples
    --------
    >>> label_values(pd.Series(["chat", None, float("nan")])).tolist()
    ['chat', '-', '-']
    """
    return np.where(s.isna().to_numpy(), "-", s.astype(object).astype(str).to_numpy()).astype(object)


def row_labels(X: pd.DataFrame) -> pd.DataFrame:
    """The label columns of the levels, as strings (``precision`` resolved by the catalogue;
    ``"-"`` for a column the table lacks), plus ``n_gpus`` and ``dp`` of the layout and the
    catalogue's ``model_family`` (:func:`model_family`).

    Examples
    --------
    >>> t = pd.DataFrame({"model": ["Llama-3.1-8B-FP8"], "gpu": ["H100"], "tp": [2]})
    >>> row_labels(t).iloc[0].tolist()
    ['Llama-3.1-8B-FP8', 'H100', 'fp8', '-', '-', '2', '1', 'dense']
    """
    out = pd.DataFrame(index=X.index)
    d = descriptors(X[["model", "gpu"] + (["precision"] if "precision" in X else [])],
                    errors="coerce")
    for col in LABEL_COLUMNS:
        if col == "precision":
            out[col] = d["precision"].astype(str).to_numpy()
        elif col in X.columns:  # a missing value is no value given, as a missing column
            out[col] = label_values(X[col])
        else:
            out[col] = "-"
    tp = _column(X, "tp", 1.0)
    pp, dp = _column(X, "pp", 1.0), _column(X, "dp", 1.0)
    out["n_gpus"] = [f"{v:g}" for v in tp * pp * dp]
    out["dp"] = [f"{v:g}" for v in dp]
    out["model_family"] = model_family(d)
    return out


def model_family(d: pd.DataFrame) -> np.ndarray:
    """``"moe"`` (routed experts), ``"hybrid"`` (a recurrent state) or ``"dense"`` for each
    row of a descriptor table (``"-"`` where the catalogue does not know the model).

    Examples
    --------
    >>> d = pd.DataFrame({"model_experts": [128.0, np.nan, np.nan],
    ...                   "model_active_experts": [8.0, np.nan, np.nan],
    ...                   "state_bytes": [0.0, 1e6, 0.0], "model_layers": [48.0, 56.0, 32.0]})
    >>> model_family(d).tolist()
    ['moe', 'hybrid', 'dense']
    """
    def num(col):
        if col not in d.columns:
            return np.full(len(d), np.nan)
        return pd.to_numeric(d[col], errors="coerce").to_numpy(dtype=float)

    E, k, state, layers = (num(c) for c in ("model_experts", "model_active_experts",
                                             "state_bytes", "model_layers"))
    moe = np.isfinite(E) & np.isfinite(k) & (E > 1) & (k < E)
    hybrid = np.isfinite(state) & (state > 0)
    out = np.where(moe, "moe", np.where(hybrid, "hybrid", "dense")).astype(object)
    out[~np.isfinite(layers) & ~moe & ~hybrid] = "-"
    return out


def example_variables(n: int = 4) -> dict[str, np.ndarray]:
    """Variables of ``n`` made-up rows (an 8B dense model on one 80 GB GPU, batches 1 to
    ``2**(2n-2)``), for examples and tests of the kernel."""
    B = 4.0 ** np.arange(n)
    one = np.ones(n)
    return {"n": one, "tp": one, "pp": one, "dp": one, "ep": one, "B": B, "so": 256 * one,
            "si_obs": 512 * one, "nreq": np.full(n, np.nan), "bw": 3.35e12 * one,
            "F": 989e12 * one, "P": 700 * one, "L": 32 * one, "H": 4096 * one,
            "Wd": 16e9 * one, "We": 0 * one, "r": one, "Ftok": 16e9 * one,
            "kvb": 131072 * one, "state": 0 * one}
