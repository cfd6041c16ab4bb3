"""The configurations of a sweep: expanding a grid, checking it, and one key per configuration.

A configuration's key identifies it in the sweep's file, so that a resumed sweep skips what
is already measured. Numbers are compared by value whatever their Python or numpy type
(``1``, ``1.0``, ``np.int64(1)`` and ``np.float32(1.0)`` are the same configuration), strings
as strings. The key holds the grid's values and the labels the row records (``model``,
``gpu``, ``tp``, ``pp``, ``dp``), so a sweep of another model or GPU into the same file
measures its own configurations.
"""

from __future__ import annotations

import decimal
import itertools
import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..core.options import InvalidParameterError
from ..schema import ALIASES, COLUMNS, UNITS

__all__ = ["Plan", "expand_grid", "normalise_value", "config_key", "plan_sweep", "record_key",
           "sweep_columns", "LABELS", "REQUIRED", "MEASURED", "PREFILL"]

#: What every configuration gives ``run_fn``.
REQUIRED = ("batch_size", "input_tokens", "output_tokens")
#: Labels every row records: from the grid where it sweeps them, else from the arguments.
LABELS = ("model", "gpu", "tp", "pp", "dp")
#: Columns the sweep measures for every configuration.
MEASURED = ("energy_j", "latency_s", "power_w", "n_requests", "run_energy_j", "duration_s",
            "repeats", "energy_rel_sd", "idle_power_w", "n_gpus_measured", "method",
            "failed_samples", "idle_timeouts", "measured_at", "source")
#: Columns of the one-token (prefill) runs.
PREFILL = ("prefill_energy_j", "decode_energy_j", "decode_clipped", "ttft_s", "tpot_s")
#: Columns the sweep writes or the schema derives: a grid may not sweep them.
_RESERVED = frozenset(MEASURED + PREFILL + ("batch_kind", "config_key", "n_gpus",
                                            "energy_per_output_token_j"))
_MAX_DEGREE = 100_000
_DIMENSION = {"_j": "energy", "_s": "time", "_w": "power"}


@dataclass(frozen=True)
class Plan:
    """One configuration to measure: what ``run_fn`` gets and what the row records."""

    config: dict
    labels: dict
    extras: dict
    key: str


def normalise_value(value: object) -> object:
    """The value a configuration is compared by: numbers by value, strings as strings.

    Whole finite numbers become ``int``, other numbers ``float`` (a float32 by its own
    shortest repr, so ``np.float32(0.1)`` is 0.1), booleans stay booleans, anything else
    becomes its ``str``.

    Examples
    --------
    >>> [normalise_value(v) for v in (1, 1.0, np.int64(1), np.float32(1.0))]
    [1, 1, 1, 1]
    >>> normalise_value(np.float32(0.1)), normalise_value("1"), normalise_value(np.True_)
    (0.1, '1', True)
    """
    if value is None or isinstance(value, str):
        return None if value is None else str(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, (numbers.Real, decimal.Decimal)):
        if isinstance(value, np.floating) and np.dtype(type(value)).itemsize < 8:
            f = float(str(value))
        else:
            f = float(value)
        return int(f) if math.isfinite(f) and f.is_integer() and abs(f) < 2**53 else f
    return str(value)


def config_key(config: Mapping) -> str:
    """The key of a configuration: its normalised values as sorted JSON.

    Examples
    --------
    >>> config_key({"tp": np.int64(2), "batch_size": 8.0}) == config_key({"batch_size": 8, "tp": 2})
    True
    """
    return json.dumps({str(k): normalise_value(v) for k, v in config.items()}, sort_keys=True)


def expand_grid(grid: Mapping[str, Iterable] | Iterable[Mapping], *,
                check: bool = True) -> list[dict]:
    """A dict of lists becomes its cartesian product; a list of dicts is taken as it is.

    A value that is a string or a single number counts as one value. Every configuration
    must hold ``batch_size``, ``input_tokens`` and ``output_tokens`` as whole numbers >= 1
    (``check=False`` leaves that to :func:`plan_sweep`, which names every problem at once).

    Raises
    ------
    InvalidParameterError
        A ``ValueError`` naming every offending configuration, column and value.

    Examples
    --------
    >>> expand_grid({"batch_size": [1, 8], "input_tokens": 128, "output_tokens": [16]})
    [{'batch_size': 1, 'input_tokens': 128, 'output_tokens': 16}, \
{'batch_size': 8, 'input_tokens': 128, 'output_tokens': 16}]
    """
    if isinstance(grid, Mapping):
        keys = list(grid)
        values = [list(v) if _is_list(v) else [v] for v in grid.values()]
        empty = [k for k, v in zip(keys, values) if not v]
        if empty:
            raise InvalidParameterError(f"The 'grid' parameter of profile_grid gives no values for "
                                        f"{empty}: the grid would hold no configuration.")
        configs = [dict(zip(keys, combo)) for combo in itertools.product(*values)]
    elif isinstance(grid, Iterable) and not isinstance(grid, (str, bytes)):
        configs = []
        for i, c in enumerate(grid):
            if not isinstance(c, Mapping):
                raise InvalidParameterError(
                    f"The 'grid' parameter of profile_grid must be a dict of lists or a list of "
                    f"dicts; item {i} is a {type(c).__name__} ({c!r}).")
            configs.append(dict(c))
    else:
        raise InvalidParameterError("The 'grid' parameter of profile_grid must be a dict of lists "
                                    f"or a list of dicts. Got {grid!r} instead.")
    if not configs:
        raise InvalidParameterError("The 'grid' parameter of profile_grid holds no configuration.")
    if check:
        _raise(_check_configs(configs))
    return configs


def _is_list(v: object) -> bool:
    return isinstance(v, Iterable) and not isinstance(v, (str, bytes, Mapping))


def _raise(problems: list[str]) -> None:
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise InvalidParameterError(f"The 'grid' parameter of profile_grid has {len(problems)} "
                                    f"problem(s):\n{shown}{more}")


def _whole(value: object, upper: float = math.inf) -> bool:
    """Whether ``value`` is a whole number in [1, upper] (booleans and strings are not)."""
    v = normalise_value(value) if not isinstance(value, (str, bool, np.bool_)) else None
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= upper


def _has_break(value: object) -> bool:
    return isinstance(value, str) and ("\n" in value or "\r" in value)


def _check_configs(configs: list[dict]) -> list[str]:
    problems = []
    for i, c in enumerate(configs):
        missing = [k for k in REQUIRED if k not in c]
        if missing:
            problems.append(f"configuration {i} {c} lacks {missing}; every configuration needs "
                            f"{list(REQUIRED)}")
        for k, v in c.items():
            if not isinstance(k, str) or not k.strip() or _has_break(k):
                problems.append(f"configuration {i}: column name {k!r} must be a non-empty "
                                "string on one line")
            elif k in REQUIRED and not _whole(v):
                problems.append(f"configuration {i}: '{k}' must be a whole number >= 1; got {v!r}")
            elif _has_break(v):
                problems.append(f"configuration {i}: '{k}' = {v!r} holds a line break, which a "
                                "row of the sweep's file cannot record")
    return problems


def canonical_name(name: str) -> str | None:
    """The canonical column a header ``name`` is read as (as ``read_profiles`` reads it)."""
    key = re.sub(r"[^0-9a-zA-Z]+", "_", str(name).strip().lower()).strip("_")
    if key in COLUMNS:
        return key
    if key in ALIASES:
        return ALIASES[key]
    m = re.fullmatch(r"(.+?)_([a-z]+)", key)
    if m:
        canon = ALIASES.get(m.group(1))
        dim = _DIMENSION.get(canon[-2:]) if canon is not None else None
        if dim is not None and m.group(2) in UNITS[dim]:
            return canon
    return None


def _label_sources(configs: list[dict]) -> tuple[dict[str, str], list[str]]:
    """Grid column -> the label it sets (``tensor_parallel_size`` sets ``tp``), and problems."""
    sources: dict[str, str] = {}
    problems = []
    for k in dict.fromkeys(k for c in configs for k in c):
        if k in REQUIRED:
            continue
        canon = canonical_name(k)
        if canon in LABELS:
            other = [s for s, lab in sources.items() if lab == canon]
            if other:
                problems.append(f"columns {other[0]!r} and {k!r} both set '{canon}'; keep one")
            sources[k] = canon
        elif k in _RESERVED or (canon is not None and (canon in _RESERVED or canon in REQUIRED)):
            read_as = f" (read as '{canon}')" if canon not in (None, k) else ""
            problems.append(f"column {k!r}{read_as} is one the sweep records itself; rename it")
    return sources, problems


def _check_label(name: str, value: object) -> str | None:
    if name in ("model", "gpu"):
        ok = isinstance(value, str) and value.strip() != "" and not _has_break(value)
        return None if ok else f"'{name}' must be a non-empty string on one line; got {value!r}"
    if not _whole(value, _MAX_DEGREE):
        return f"'{name}' must be a whole number in [1, {_MAX_DEGREE}]; got {value!r}"
    return None


def plan_sweep(configs: list[dict], fixed: Mapping[str, object],
               defaults: Mapping[str, object]) -> list[Plan]:
    """Resolve each configuration's labels; the grid's values win over the defaults.

    ``fixed`` holds the labels the caller gave as arguments (None where not given): a
    configuration whose grid value differs from a given argument is an error naming both.
    Configurations that are the same after :func:`normalise_value` are measured once.
    """
    sources, problems = _label_sources(configs)
    problems = _check_configs(configs) + problems
    for name, value in fixed.items():
        if value is not None and (msg := _check_label(name, value)):
            problems.append(f"argument {msg}")
    plans: dict[str, Plan] = {}
    conflicts: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(configs):
        labels = {name: fixed.get(name) if fixed.get(name) is not None else defaults[name]
                  for name in LABELS}
        for col, name in sources.items():
            if col not in c:
                continue
            if fixed.get(name) is not None and normalise_value(c[col]) != normalise_value(fixed[name]):
                conflicts.setdefault((col, name), []).append(i)
            if (msg := _check_label(name, c[col])) is not None:
                problems.append(f"configuration {i}: {msg}")
            labels[name] = c[col]
        labels = {k: normalise_value(v) for k, v in labels.items()}
        extras = {k: normalise_value(v) for k, v in c.items() if k not in REQUIRED and k not in sources}
        key = config_key({**c, **labels})
        plans.setdefault(key, Plan(dict(c), labels, extras, key))
    for (col, name), rows in conflicts.items():
        values = sorted({str(normalise_value(configs[i][col])) for i in rows})
        problems.append(f"the grid sweeps {col!r} (values {', '.join(values)} in configurations "
                        f"{rows[:5]}) and the argument {name}={fixed[name]!r} fixes '{name}'; "
                        "sweep it in the grid or fix it with the argument, not both")
    _raise(problems)
    return list(plans.values())


def sweep_columns(plans: list[Plan], measure_prefill: bool) -> list[str]:
    """Columns of the sweep's file, in order."""
    extras = list(dict.fromkeys(k for p in plans for k in p.extras))
    return [*LABELS, "batch_size", "batch_kind", "input_tokens", "output_tokens", *extras,
            *MEASURED, *(PREFILL if measure_prefill else ()), "config_key"]


def _parse_field(text: str) -> object:
    try:
        return normalise_value(float(text))
    except ValueError:
        return text


def record_key(fields: Mapping[str, str]) -> str:
    """The key of a row read back from a sweep's file (all fields as text).

    Keys written by earlier versions (without the labels) take the labels from the row's
    columns. Raises ``ValueError`` when the stored key is not a JSON object, or when a
    label in the key disagrees with the row's column (a row recorded with the wrong value).
    """
    try:
        stored = json.loads(fields.get("config_key", ""))
    except json.JSONDecodeError as exc:
        raise ValueError(f"config_key {fields.get('config_key')!r} is not JSON ({exc.msg})") from None
    if not isinstance(stored, dict):
        raise ValueError(f"config_key {fields.get('config_key')!r} is not a JSON object")
    merged = {}
    for name in LABELS:
        text = fields.get(name, "")
        if text == "":
            continue
        column = text if name in ("model", "gpu") else _parse_field(text)
        if name in stored and normalise_value(stored[name]) != column:
            raise ValueError(f"the row records {name}={text!r} but was measured with "
                             f"{name}={stored[name]!r} (a row written by an energylens that let "
                             "the function's arguments overwrite the grid's values)")
        merged[name] = column
    return config_key({**merged, **stored})
