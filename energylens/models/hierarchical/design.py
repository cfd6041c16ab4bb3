"""Levels of random effects, and the layout of the unknowns they give.

Every row's log-parameters are a population value (one per workload for
:data:`~energylens.models.hierarchical.form.WORKLOAD_PARAMETERS`) plus, for every level of
the structure, the deviation of the row's value at that level (its GPU, its model, its
group, ...). A *level* is a tuple of label columns and the parameters that deviate there.

The unknowns (*columns*) are laid out so that the normal equations have a block structure:
*global* columns (population, workload and the levels that cross groups, such as ``model``
or ``gpu``) first, then the *local* columns of each group (the group level and the levels
nested in it, such as group x workload), one contiguous block per group. A row touches
exactly one column per *slot* (one slot per population parameter and one per (level,
parameter)), so its columns are an integer array of fixed width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .form import PARAMETER_NAMES, PRIOR_SD, WORKLOAD_PARAMETERS, link_from_theta
from .variables import LABEL_COLUMNS

__all__ = ["DEFAULT_LEVELS", "RICH_LEVELS", "RANDOM", "AUTO_RICH_ROWS", "Level", "Design",
           "expand_levels", "resolve_levels", "build_design", "level_keys", "UNSEEN", "SEP",
           "flag_unseen", "IDENTITY_COLUMNS", "check_levels", "choose_specs", "LEVEL_COLUMNS",
           "EXTRA_GROUP_COLUMNS", "group_columns"]

Spec = tuple[tuple[str, ...], tuple[str, ...]]
#: Groups deviate in scale only; the GPU in its shape, the source in its overheads, the
#: model family (dense, mixture-of-experts, hybrid: ``model_family`` of
#: :func:`~energylens.models.hierarchical.variables.row_labels`) in its achieved bandwidth
#: and compute efficiency (routed-expert GEMMs run at a fraction of the dense rate). No
#: GPU x workload level: with a row or two per group it is confounded with the few groups
#: that run a workload and carries their deviations to the others.
DEFAULT_LEVELS: tuple[Spec, ...] = (
    (("source",), ("s", "pi0", "am", "tau1", "nu")),
    (("model_family",), ("s", "am", "ac")),
    (("model",), ("s",)),
    (("gpu",), ("s", "pi0", "am", "ac", "dc", "nu", "tau1")),
    (("precision", "gpu"), ("s",)),
    (("group",), ("s",)),
)
#: Every group also deviates in its shape (step overhead, compute and memory efficiency,
#: host time), every GPU x workload in scale and step overhead, every scenario (group x
#: workload) in its step overhead and static power, every parallel layout (group x GPUs x
#: replicas) in scale and step overhead. The precision (scale, memory and compute
#: efficiency: how much of its nominal speed-up a format's kernels realise) and the workload
#: (scale, step overhead) also deviate on their own, GPU-free: on a one-GPU table the
#: precision x GPU and GPU x workload levels merge into them, so those deviations carry to a
#: new GPU (ML.ENERGY v3, one GPU held out: MAPE 31.3% -> 28.8%; v2 14.7% -> 13.3%).
RICH_LEVELS: tuple[Spec, ...] = (
    (("source",), ("s", "pi0", "am", "tau1", "nu")),
    (("model_family",), ("s", "am", "ac")),
    (("model",), ("s", "am", "ac", "nu")),
    (("precision",), ("s", "am", "ac")),
    (("workload",), ("s", "nu")),
    (("gpu",), ("s", "pi0", "am", "ac", "dc", "nu", "tau1")),
    (("precision", "gpu"), ("s", "am", "ac")),
    (("gpu", "workload"), ("s", "nu")),
    (("group",), ("s", "nu", "ac", "am", "tau1")),
    (("group", "workload"), ("nu", "pi0")),
    (("group", "n_gpus", "dp"), ("s", "nu")),
)
#: Parameters that deviate per group without pooling (``pooling="none"``).
RANDOM: tuple[str, ...] = ("pi0", "am", "ac", "tau1", "nu")
#: ``levels="auto"`` takes RICH_LEVELS when the median group has at least this many rows.
AUTO_RICH_ROWS = 4
#: Label columns that say what runs where: a value (or combination, such as a model on a
#: GPU) not seen in training makes a row zero-shot at that level. Levels crossed with the
#: workload or the parallel layout are not among them: an unmeasured layout of a measured
#: group is what the model is for.
IDENTITY_COLUMNS: frozenset[str] = frozenset({"model", "gpu", "precision", "source",
                                              "model_family"})
#: Columns a custom level may use besides the table's own ("group": the group columns).
LEVEL_COLUMNS: tuple[str, ...] = (*LABEL_COLUMNS, "n_gpus", "dp", "model_family", "group")
#: Column index meaning "a level value not seen in training" (its deviation is 0).
UNSEEN = -1
#: Separator of the values in a level key.
SEP = "\x1f"


@dataclass
class Level:
    """One level of the structure after resolution.

    Attributes
    ----------
    columns : tuple of str
        Label columns (group columns expanded).
    names : tuple of str
        Parameters deviating at this level.
    values : list of str
        Values seen in training (sorted).
    local : bool
        Every value lies inside one group (the level's columns are in group blocks).
    col : ndarray of int, shape (len(values), len(names))
        Column of each (value, parameter).
    """

    columns: tuple[str, ...]
    names: tuple[str, ...]
    values: list[str] = field(default_factory=list)
    local: bool = False
    col: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=int))

    @property
    def label(self) -> str:
        return " x ".join(self.columns)


def level_keys(labels: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """One string per row joining the values of ``cols``."""
    out = labels[cols[0]].to_numpy(dtype=object)
    for c in cols[1:]:
        out = out + SEP + labels[c].to_numpy(dtype=object)
    return np.asarray(out, dtype=object)


#: Label columns that split groups besides ``by`` where the table has several values.
EXTRA_GROUP_COLUMNS: tuple[str, ...] = ("precision", "source")


def group_columns(by: Sequence[str], X: pd.DataFrame) -> list[str]:
    """The columns whose values make a group: ``by`` (each once), then those of
    :data:`EXTRA_GROUP_COLUMNS` that take several values in ``X``.

    Examples
    --------
    >>> X = pd.DataFrame({"model": ["a", "b"], "gpu": ["X", "X"], "precision": ["bf16", "fp8"]})
    >>> group_columns(("model", "gpu", "model"), X)
    ['model', 'gpu', 'precision']
    """
    missing = [c for c in by if c not in X.columns]
    if missing:
        raise ValueError(f"HierarchicalEnergyModel groups by {list(by)}, but the table "
                         f"lacks {missing}; columns are {list(map(str, X.columns))}.")
    cols = list(dict.fromkeys(by))
    for c in EXTRA_GROUP_COLUMNS:
        if c in X.columns and c not in cols and X[c].astype(str).nunique() > 1:
            cols.append(c)
    return cols


def check_levels(levels) -> None:
    """Check a ``levels`` argument: a name, or (columns, parameters) pairs of strings whose
    parameters may deviate by level (``ValueError`` otherwise)."""
    if isinstance(levels, str):
        return
    for lv in levels:
        ok = (isinstance(lv, (tuple, list)) and len(lv) == 2
              and all(isinstance(part, (tuple, list)) and len(part) for part in lv)
              and all(isinstance(c, str) for c in lv[0]) and all(isinstance(n, str) for n in lv[1]))
        if not ok:
            raise ValueError("The 'levels' parameter of HierarchicalEnergyModel must be 'auto', "
                             "'default', 'rich' or a sequence of (columns, parameters) pairs, each "
                             "a non-empty tuple of names (such as (('gpu',), ('s', 'am'))); got "
                             f"{lv!r}.")
        bad = [n for n in lv[1] if n not in PARAMETER_NAMES or n in WORKLOAD_PARAMETERS]
        if bad:
            raise ValueError(f"The 'levels' parameter of HierarchicalEnergyModel names parameters "
                             f"{bad} that cannot deviate by level; parameters are "
                             f"{[p for p in PARAMETER_NAMES if p not in WORKLOAD_PARAMETERS]}.")


def choose_specs(pooling: str, levels, labels: pd.DataFrame,
                 group_cols: list[str]) -> tuple[list[Spec], str]:
    """The levels of a fit (group columns expanded) and the structure's name, from the
    ``pooling`` and ``levels`` settings of
    :class:`~energylens.models.hierarchical.HierarchicalEnergyModel`.

    Examples
    --------
    >>> labels = pd.DataFrame({"model": ["a", "b"], "gpu": ["X", "X"]})
    >>> choose_specs("none", "auto", labels, ["model", "gpu"])[0]
    [(('model', 'gpu'), ('pi0', 'am', 'ac', 'tau1', 'nu'))]
    """
    if pooling == "complete":
        return [], "complete"
    if pooling == "none":
        return [(tuple(group_cols), RANDOM)], "none"
    if isinstance(levels, str):
        name = levels
        if name == "auto":
            per_group = labels.groupby(list(group_cols)).size().median()
            name = "rich" if per_group >= AUTO_RICH_ROWS else "default"
        specs = RICH_LEVELS if name == "rich" else DEFAULT_LEVELS
    else:
        name, specs = "custom", [(tuple(c), tuple(n)) for c, n in levels]
        unknown = sorted({c for cols, _ in specs for c in cols} - set(LEVEL_COLUMNS)
                         - set(labels.columns))
        if unknown:
            raise ValueError(f"The 'levels' parameter of HierarchicalEnergyModel uses columns "
                             f"{unknown} that the table does not have.")
    return expand_levels(specs, group_cols), name


def expand_levels(levels: Sequence[Spec], group: Sequence[str]) -> list[Spec]:
    """Replace the placeholder column ``"group"`` by the group columns (no repeats).

    Examples
    --------
    >>> expand_levels([(("group", "workload"), ("nu",)), (("gpu",), ("s",))], ["model", "gpu"])
    [(('model', 'gpu', 'workload'), ('nu',)), (('gpu',), ('s',))]
    """
    out = []
    for cols, names in levels:
        full: list[str] = []
        for c in cols:
            for x in (group if c == "group" else (c,)):
                if x not in full:
                    full.append(x)
        out.append((tuple(full), tuple(names)))
    return out


def resolve_levels(labels: pd.DataFrame, levels: Sequence[Spec]) -> list[Level]:
    """The levels the rows can tell apart.

    A level with one value is dropped (it is the population); a level that partitions the
    rows exactly as an earlier one does (one GPU: model x GPU = model) is merged into it,
    so that its deviations are attributed to the coarser level, which transfers.

    Examples
    --------
    >>> labels = pd.DataFrame({"model": ["a", "b", "c"], "gpu": ["H100"] * 3})
    >>> [(lv.columns, lv.names) for lv in resolve_levels(
    ...     labels, [(("model",), ("s",)), (("gpu",), ("s",)), (("model", "gpu"), ("nu",))])]
    [(('model',), ('s', 'nu'))]
    """
    out: list[Level] = []
    parts: list[np.ndarray] = []
    for cols, names in levels:
        codes = pd.factorize(level_keys(labels, cols))[0]
        k = int(codes.max()) + 1 if len(codes) else 0
        if k < 2:
            continue
        same = None
        for i, pc in enumerate(parts):
            if pc.max() + 1 == k and len(set(zip(pc.tolist(), codes.tolist()))) == k:
                same = i
                break
        if same is None:
            out.append(Level(tuple(cols), tuple(dict.fromkeys(names))))
            parts.append(codes)
        else:
            lv = out[same]
            lv.names = tuple(dict.fromkeys(lv.names + tuple(names)))
    return out


@dataclass
class Design:
    """The unknowns of a fit and how each row touches them.

    Attributes
    ----------
    levels : list of Level
    workloads : list of str
        Workloads seen in training (one population value each for the workload parameters).
    groups : list of str
        Group keys seen in training, in block order.
    n_global : int
        Global columns (population, workload, crossed levels).
    block_start, block_size : ndarray of int
        First local column and number of local columns of each group.
    kind, level, param : ndarray
        Per column: ``"pop"``, ``"wl"`` or ``"re"``; the level index (-1 for pop/wl); the
        parameter index.
    value : list of str
        Per column: the workload or level value (``""`` for population columns).
    slot_level, slot_param : ndarray of int
        Per slot: level index (-1 for the population/workload slot) and parameter.
    slot_local : ndarray of bool
        Per slot: whether its columns are local.
    prior_mean, prior_sd : ndarray
        Per column: prior mean of the log-value (of the logit for a bounded parameter, see
        :func:`~.form.theta_from_link`) and the fixed prior spread of population and
        workload columns (NaN for deviations: their spread is estimated).
    """

    levels: list[Level]
    workloads: list[str]
    groups: list[str]
    n_global: int
    block_start: np.ndarray
    block_size: np.ndarray
    kind: np.ndarray
    level: np.ndarray
    param: np.ndarray
    value: list[str]
    slot_level: np.ndarray
    slot_param: np.ndarray
    slot_local: np.ndarray
    prior_mean: np.ndarray
    prior_sd: np.ndarray

    @property
    def n_columns(self) -> int:
        return len(self.kind)

    def spread_groups(self) -> dict[tuple[int, str], np.ndarray]:
        """Columns of each (level index, parameter name): they share one spread."""
        out: dict[tuple[int, str], np.ndarray] = {}
        for li, lv in enumerate(self.levels):
            for ni, name in enumerate(lv.names):
                out[(li, name)] = lv.col[:, ni]
        return out

    def row_columns(self, labels: pd.DataFrame, group_cols: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Columns of every row, shape (n_rows, n_slots), :data:`UNSEEN` for a level value
        (or workload) not seen in training; and each row's group index (-1 if unseen)."""
        n = len(labels)
        cols = np.full((n, len(self.slot_param)), UNSEEN, dtype=np.int64)
        wl = labels["workload"].to_numpy(dtype=object)
        w_index = {w: i for i, w in enumerate(self.workloads)}
        w_pos = np.array([w_index.get(w, -1) for w in wl], dtype=np.int64)
        pop_cols = _population_columns(self)
        for m in np.flatnonzero(self.slot_level < 0):
            k = self.slot_param[m]
            base = pop_cols[k]
            if PARAMETER_NAMES[k] in WORKLOAD_PARAMETERS:
                cols[:, m] = np.where(w_pos >= 0, base + np.maximum(w_pos, 0), UNSEEN)
            else:
                cols[:, m] = base
        for li, lv in enumerate(self.levels):
            idx = {v: i for i, v in enumerate(lv.values)}
            pos = np.array([idx.get(v, -1) for v in level_keys(labels, lv.columns)], dtype=np.int64)
            for ni in range(len(lv.names)):
                m = np.flatnonzero(self.slot_level == li)[ni]
                cols[:, m] = np.where(pos >= 0, lv.col[np.maximum(pos, 0), ni], UNSEEN)
        g_index = {g: i for i, g in enumerate(self.groups)}
        groups = np.array([g_index.get(g, -1) for g in level_keys(labels, group_cols)], dtype=np.int64)
        return cols, groups


def _population_columns(design: Design) -> dict[int, int]:
    """First column of each parameter's population (or first workload) value."""
    out: dict[int, int] = {}
    for j in np.flatnonzero(design.kind != "re"):
        out.setdefault(int(design.param[j]), int(j))
    return out


def _global_columns(workloads: list[str]) -> tuple[list, list, list, list]:
    kind, param, value, mean_sd = [], [], [], []
    for k, name in enumerate(PARAMETER_NAMES):
        vals = workloads if name in WORKLOAD_PARAMETERS else [""]
        for w in vals:
            kind.append("wl" if name in WORKLOAD_PARAMETERS else "pop")
            param.append(k)
            value.append(w)
            mean_sd.append(PRIOR_SD[name])
    return kind, param, value, mean_sd


def build_design(labels: pd.DataFrame, specs: Sequence[Spec], group_cols: Sequence[str],
                 inits: np.ndarray) -> Design:
    """Lay out the columns of a training table's structure (see the module docstring).

    Parameters
    ----------
    labels : DataFrame
        Label columns of the training rows (strings; ``workload`` and the group columns
        among them).
    specs : sequence of (columns, parameter names)
        Levels, group columns already expanded.
    group_cols : sequence of str
        Columns of a group.
    inits : ndarray
        Start value of each parameter (the prior mean of its population column).

    Examples
    --------
    >>> labels = pd.DataFrame({"model": ["a", "a", "b"], "gpu": ["X", "Y", "X"],
    ...                        "workload": ["w"] * 3})
    >>> d = build_design(labels, [(("model", "gpu"), ("s",))], ["model", "gpu"],
    ...                  np.ones(len(PARAMETER_NAMES)))
    >>> len(d.groups), int(d.block_size.sum())  # three groups, one scale deviation each
    (3, 3)
    """
    levels = resolve_levels(labels, specs)
    gcodes, groups = pd.factorize(level_keys(labels, group_cols), sort=True)
    workloads = sorted(pd.unique(labels["workload"].astype(str)))
    kind, param, value, sd = _global_columns(workloads)
    level = [-1] * len(kind)
    for li, lv in enumerate(levels):
        codes, vals = pd.factorize(level_keys(labels, lv.columns), sort=True)
        lv.values = [str(v) for v in vals]
        pairs = np.unique(np.stack([codes, gcodes]), axis=1)
        lv.local = pairs.shape[1] == len(vals)
        lv.col = np.full((len(vals), len(lv.names)), -1, dtype=np.int64)
        if lv.local:
            continue
        for vi, v in enumerate(lv.values):
            for ni, name in enumerate(lv.names):
                lv.col[vi, ni] = len(kind)
                kind.append("re"), param.append(PARAMETER_NAMES.index(name)), value.append(v)
                level.append(li), sd.append(np.nan)
    n_global = len(kind)
    block_start = np.zeros(len(groups), dtype=np.int64)
    block_size = np.zeros(len(groups), dtype=np.int64)
    owner = _local_owners(levels, labels, gcodes)
    for g in range(len(groups)):
        block_start[g] = len(kind)
        for li, vi in owner.get(g, []):
            lv = levels[li]
            for ni, name in enumerate(lv.names):
                lv.col[vi, ni] = len(kind)
                kind.append("re"), param.append(PARAMETER_NAMES.index(name))
                value.append(lv.values[vi]), level.append(li), sd.append(np.nan)
        block_size[g] = len(kind) - block_start[g]
    slot_level = [-1] * len(PARAMETER_NAMES) + [li for li, lv in enumerate(levels) for _ in lv.names]
    slot_param = list(range(len(PARAMETER_NAMES))) + [
        PARAMETER_NAMES.index(n) for lv in levels for n in lv.names]
    param_arr, kind_arr = np.asarray(param, dtype=np.int64), np.asarray(kind, dtype=object)
    links = link_from_theta(np.asarray(inits, dtype=float))  # log, or logit of a bounded one
    mean = np.where(kind_arr == "re", 0.0, links[param_arr])
    return Design(levels, workloads, [str(g) for g in groups], n_global, block_start, block_size,
                  kind_arr, np.asarray(level, dtype=np.int64), param_arr, value,
                  np.asarray(slot_level, dtype=np.int64), np.asarray(slot_param, dtype=np.int64),
                  np.array([sl >= 0 and levels[sl].local for sl in slot_level], dtype=bool),
                  mean, np.asarray(sd, dtype=float))


def _local_owners(levels: list[Level], labels: pd.DataFrame,
                  gcodes: np.ndarray) -> dict[int, list[tuple[int, int]]]:
    """For each group, the (level index, value index) pairs of its local level values."""
    owner: dict[int, list[tuple[int, int]]] = {}
    for li, lv in enumerate(levels):
        if not lv.local:
            continue
        codes = pd.factorize(level_keys(labels, lv.columns), sort=True)[0]
        first = np.zeros(len(lv.values), dtype=np.int64)
        first[codes[::-1]] = np.arange(len(codes))[::-1]
        for vi in range(len(lv.values)):
            owner.setdefault(int(gcodes[first[vi]]), []).append((li, vi))
    return owner


def flag_unseen(ext, design: Design, labels: pd.DataFrame, cols: np.ndarray,
                group_cols: Sequence[str]) -> None:
    """Add to the :class:`~energylens.core.domain.Extrapolation` ``ext`` the rows whose
    group, level value (of :data:`IDENTITY_COLUMNS` and the group columns) or workload
    training did not see, which take the population's value there (a single label column
    the training domain already flags is left to it)."""
    identity = IDENTITY_COLUMNS | set(group_cols)
    for li, lv in enumerate(design.levels):
        if not set(lv.columns) <= identity or lv.label in ext.columns:
            continue
        first = int(np.flatnonzero(design.slot_level == li)[0])
        mask = cols[:, first] == UNSEEN
        for c in lv.columns:  # rows whose model (say) is new are flagged for it already
            mask &= ~ext.columns.get(c, np.zeros_like(mask))
        _flag(ext, lv.label, mask, level_keys(labels, lv.columns))
    wl = [m for m in np.flatnonzero(design.slot_level < 0)
          if PARAMETER_NAMES[design.slot_param[m]] in WORKLOAD_PARAMETERS]
    if wl and len(design.workloads) > 1:
        _flag(ext, "workload", cols[:, wl[0]] == UNSEEN, labels["workload"].to_numpy(dtype=object),
              note=": the mean of the trained workloads")


def _flag(ext, label: str, mask: np.ndarray, keys: np.ndarray, note: str = "") -> None:
    if not mask.any():
        return
    unseen = sorted({"(none given)" if k == "-" else str(k).replace(SEP, " / ") for k in keys[mask]})
    shown = ", ".join(u if u == "(none given)" else repr(u) for u in unseen[:3]) + (
        " ..." if len(unseen) > 3 else "")
    ext.mask |= mask
    ext.columns[label] = mask
    ext.reasons[label] = f"{label} {shown} not seen in training{note}"
