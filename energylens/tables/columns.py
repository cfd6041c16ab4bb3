"""The canonical columns of a profiling table: names, units, bounds, aliases.

One row of a profiling table is one measured serving configuration. :data:`COLUMNS`
declares every canonical column once, with its type, unit, meaning and the bounds a value
must respect. Two kinds of bound are declared:

* ``lower``: the sign rule (``> 0`` or ``>= 1``); a value that breaks it is meaningless;
* ``floor`` and ``ceiling``: the smallest and largest value that is physically possible,
  with the reason in ``why``. A denormal batch (``5e-324``), an output length of
  ``1e-310`` tokens or an energy of ``1e308`` J pass a sign rule but not these.

:data:`ALIASES` maps other spellings of a header (``TP``, ``prompt_tokens``,
``max_num_seqs`` ...) to canonical names and :data:`UNITS` the unit suffixes
(``energy_kwh``, ``Latency (ms)``) to factors; :mod:`energylens.tables.headers` applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

__all__ = [
    "Column",
    "COLUMNS",
    "ALIASES",
    "UNITS",
    "MEGA",
    "CONFIG_COLUMNS",
    "REQUIRED_COLUMNS",
    "CAP_ALIASES",
    "MAX_DEGREE",
    "describe_schema",
    "config_key",
    "normalise_header",
    "read_unit",
    "unit_spellings",
]


@dataclass(frozen=True)
class Column:
    """One canonical column.

    Attributes
    ----------
    name : str
        Canonical name (units live in the name: ``_j`` joules, ``_s`` seconds, ``_w`` watts).
    dtype : {"str", "int", "float", "bool"}
        Value type after validation.
    unit : str
        Physical unit, ``""`` for labels and counts.
    meaning : str
        One sentence on what the column holds.
    role : {"config", "measurement", "derived"}
        Configuration variable, measured quantity, or computed by ``validate``.
    required : bool
        Whether a table must provide it (``energy_j`` may instead be derived).
    lower : float or None
        Sign rule; ``lower_strict`` says whether it is ``>`` or ``>=``.
    integer : bool
        Whether values must be whole numbers.
    default : object
        Value filled in when the column is absent (``None``: left absent).
    floor, ceiling : float or None
        Smallest and largest physically possible value (inclusive); a value outside is an
        error naming ``why``. The floor applies to values above ``lower`` only.
    what : str
        The quantity in words, for messages ("a parallel degree").
    why : str
        The physical reasoning behind ``floor`` and ``ceiling``.
    """

    name: str
    dtype: Literal["str", "int", "float", "bool"]
    unit: str
    meaning: str
    role: Literal["config", "measurement", "derived"] = "config"
    required: bool = False
    lower: float | None = None
    lower_strict: bool = True
    integer: bool = False
    default: Any = None
    floor: float | None = None
    ceiling: float | None = None
    what: str = ""
    why: str = ""


#: Parallel degrees are GPU counts; the bound keeps n_gpus = tp*pp*dp exact in int64.
MAX_DEGREE = 100_000
_DEGREE = dict(lower=1, lower_strict=False, integer=True, ceiling=MAX_DEGREE,
               what="a parallel degree",
               why="the largest GPU clusters hold about 1e5 GPUs")
_BATCH = dict(lower=0, floor=1e-3, ceiling=1e6, what="a batch (requests per replica)",
              why="a mean concurrency under 0.001 requests is a server idle 99.9% of the time, "
                  "and no replica holds the KV cache of a million concurrent sequences")
_TOKENS = dict(lower=0, floor=1.0, ceiling=1e8, what="a token count per request",
               why="a request holds at least one token, and 1e8 is ten times the longest "
                   "context window of any released model")
_PARAMS = dict(lower=0, floor=1e-6, ceiling=1e5, what="a parameter count in billions",
               why="1e-6 billion is a thousand parameters; 1e5 billion is fifty times the "
                   "largest model trained")
_ENERGY = dict(floor=1e-6, ceiling=1e9, what="an energy per request",
               why="the arithmetic of one token of a 10M-parameter model costs about 2e-6 J "
                   "even at 1e13 FLOP/J, beyond any accelerator; 1e9 J is an 8-GPU server at "
                   "full power for 35 hours on one request")
_TIME = dict(lower=0, floor=1e-6, ceiling=1e8, what="a time",
             why="a microsecond is shorter than one GPU kernel launch; 1e8 s is three years")

_C = Column
COLUMNS: dict[str, Column] = {
    c.name: c
    for c in [
        # ---- configuration -------------------------------------------------
        _C("model", "str", "", "Model name, e.g. 'meta-llama/Llama-3.1-8B'.", required=True),
        _C("gpu", "str", "", "Accelerator name, e.g. 'H100-SXM'.", required=True),
        _C("tp", "int", "", "Tensor-parallel degree (GPUs per layer).", required=True,
           **_DEGREE),
        _C("pp", "int", "", "Pipeline-parallel degree (stages).", default=1, **_DEGREE),
        _C("dp", "int", "", "Data-parallel replicas; GPUs of a configuration = tp * pp * dp.",
           default=1, **_DEGREE),
        _C("ep", "int", "", "Expert-parallel degree, where the source records it.", **_DEGREE),
        _C("batch_size", "float", "requests",
           "Mean concurrent requests per replica, or the batch cap (max_num_seqs) where that is "
           "all the source gives; `batch_kind` says which.", required=True, **_BATCH),
        _C("batch_kind", "str", "",
           "'running' when batch_size is the measured mean concurrency, 'cap' when it is the "
           "configured maximum.", default="running"),
        _C("input_tokens", "float", "tokens", "Mean prompt length per request.", required=True,
           **_TOKENS),
        _C("output_tokens", "float", "tokens", "Mean generated tokens per request.",
           required=True, **_TOKENS),
        _C("precision", "str", "", "Numeric precision of weights, e.g. 'bf16', 'fp8'."),
        _C("workload", "str", "", "Scenario label (dataset or task), e.g. 'chat'."),
        _C("params_b", "float", "1e9 parameters", "Model parameters in billions.", **_PARAMS),
        _C("active_params_b", "float", "1e9 parameters",
           "Parameters active per token in billions (mixture-of-experts models).", **_PARAMS),
        _C("source", "str", "", "Where the row comes from (reader or file)."),
        # ---- measurements --------------------------------------------------
        _C("energy_j", "float", "J", "Energy per request (all GPUs of the configuration).",
           role="measurement", required=True, lower=0, **_ENERGY),
        _C("prefill_energy_j", "float", "J", "Prefill part of the energy per request.",
           role="measurement", lower=0, lower_strict=False,
           **{**_ENERGY, "floor": None}),
        _C("decode_energy_j", "float", "J", "Decode part of the energy per request.",
           role="measurement", lower=0, lower_strict=False,
           **{**_ENERGY, "floor": None}),
        _C("latency_s", "float", "s", "Mean end-to-end latency per request.",
           role="measurement", **_TIME),
        _C("ttft_s", "float", "s", "Mean time to first token.", role="measurement", **_TIME),
        _C("tpot_s", "float", "s", "Mean time per output token (decode step time).",
           role="measurement", **_TIME),
        _C("power_w", "float", "W", "Mean power of all GPUs of the configuration.",
           role="measurement", lower=0, floor=1e-3, ceiling=1e9, what="a power",
           why="no accelerator computes on less than a milliwatt; 1e9 W is a gigawatt "
               "data centre"),
        _C("n_requests", "float", "requests",
           "Requests served in the whole run (all replicas); per replica: n_requests / dp.",
           role="measurement", lower=0, floor=1.0, ceiling=1e12, what="a request count",
           why="a run serves at least one request; 1e12 requests is years of the largest "
               "services"),
        _C("run_energy_j", "float", "J", "Energy of the whole run (all requests, all GPUs).",
           role="measurement", lower=0, floor=1e-6, ceiling=1e13, what="the energy of a run",
           why="1e13 J is 1e5 GPUs at full power for a day"),
        _C("running_batch", "float", "requests",
           "Measured mean concurrency per replica (e.g. ML.ENERGY's 'Avg BS (reqs)').",
           role="measurement", **_BATCH),
        _C("duration_s", "float", "s", "Wall-clock time of the run.", role="measurement",
           **_TIME),
        # ---- derived -------------------------------------------------------
        _C("n_gpus", "int", "", "GPUs of the configuration: tp * pp * dp.", role="derived"),
        _C("energy_per_output_token_j", "float", "J/token", "energy_j / output_tokens.",
           role="derived"),
    ]
}
del _C

REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS.values() if c.required)
#: Columns that identify one configuration (used for duplicate detection and scenarios).
#: ``n_requests`` is part of it: runs over different request pools are different
#: experiments (a small pool leaves the batch cap under-used).
CONFIG_COLUMNS: tuple[str, ...] = (
    "source", "model", "gpu", "precision", "workload", "tp", "pp", "dp", "ep", "batch_size",
    "batch_kind", "input_tokens", "output_tokens", "n_requests",
)

#: Unit factors to the canonical unit, per dimension. Keys are lower-case unit spellings,
#: read in any case (``kWh``, ``KWH``), except those :data:`MEGA` spells with a capital M:
#: there the case of the prefix is the meaning (see :func:`read_unit`).
UNITS: dict[str, dict[str, float]] = {
    "energy": {"j": 1.0, "joule": 1.0, "joules": 1.0, "mj": 1e-3, "kj": 1e3, "wh": 3600.0,
               "kwh": 3.6e6, "uj": 1e-6, "uwh": 3.6e-3, "mwh": 3.6, "gj": 1e9,
               "gwh": 3.6e12},
    "time": {"s": 1.0, "sec": 1.0, "secs": 1.0, "seconds": 1.0, "ms": 1e-3, "us": 1e-6,
             "min": 60.0, "h": 3600.0},
    "power": {"w": 1.0, "watt": 1.0, "watts": 1.0, "mw": 1e-3, "kw": 1e3, "uw": 1e-6,
              "gw": 1e9},
}
#: Units whose prefix means mega as ``M`` and milli as ``m`` (``MJ`` and ``mJ``); their
#: lower-case spellings in :data:`UNITS` are the milli ones.
MEGA: dict[str, dict[str, float]] = {
    "energy": {"MJ": 1e6, "MWh": 3.6e9},
    "time": {},
    "power": {"MW": 1e6},
}


def unit_spellings(dimension: str) -> list[str]:
    """The spellings of ``dimension``'s units, as :func:`read_unit` accepts them.

    >>> unit_spellings("power")
    ['GW', 'kW', 'MW', 'mW', 'uW', 'W', 'watt', 'watts']
    """
    mega = MEGA[dimension]
    milli = {f"m{k[1:]}": k for k in mega}
    out = set(mega) | set(milli)
    for k in UNITS[dimension]:
        if k not in {m.lower() for m in milli}:
            out.add(_spelt(k))
    return sorted(out, key=lambda u: (u.lower(), u))


def _spelt(unit: str) -> str:
    """A lower-case unit as SI writes it (``kwh`` -> ``kWh``)."""
    if unit in ("watt", "watts", "joule", "joules", "sec", "secs", "seconds", "min"):
        return unit
    head, tail = unit[:-1], unit[-1]
    if unit.endswith("wh"):
        head, tail = unit[:-2], "Wh"
    elif tail in ("j", "w"):
        tail = tail.upper()
    return head.replace("g", "G") + tail


def read_unit(dimension: str, spelling: str, *, shouted: bool = False) -> float | None:
    """The factor of the unit ``spelling`` of ``dimension`` to the canonical unit; None for
    a spelling that is no unit of it.

    Case is read only where it changes the meaning: ``M`` is mega and ``m`` milli (``MJ``,
    ``MWh``, ``MW`` against ``mJ``, ``mWh``, ``mW``; a spelling in lower case, ``mj``, is
    milli); every other unit is read in any case (``kWh``, ``KWH``). ``shouted`` says the
    spelling comes from a header written all in capitals, where ``MJ`` may as well be a
    shouted ``mJ``: such a spelling is refused.

    Raises
    ------
    ValueError
        ``MJ``, ``MWh`` or ``MW`` in capitals from a header all in capitals.

    Examples
    --------
    >>> read_unit("energy", "MJ"), read_unit("energy", "mJ"), read_unit("energy", "mj")
    (1000000.0, 0.001, 0.001)
    >>> read_unit("energy", "KWH"), read_unit("energy", "furlong")
    (3600000.0, None)
    >>> read_unit("power", "MW", shouted=True)
    Traceback (most recent call last):
    ...
    ValueError: the unit 'MW' is ambiguous here: ...
    """
    mega = {k.lower(): k for k in MEGA[dimension]}
    low = spelling.lower()
    if low not in mega:
        return UNITS[dimension].get(low)
    if shouted and spelling.isupper():
        milli = "m" + mega[low][1:]
        raise ValueError(f"the unit '{spelling}' is ambiguous here: in a header written all in "
                         f"capitals it may be {mega[low]} (mega) or {milli} (milli)")
    return MEGA[dimension][mega[low]] if spelling[0] == "M" else UNITS[dimension][low]


#: Canonical-name suffix -> dimension of :data:`UNITS`.
DIMENSION = {"_j": "energy", "_s": "time", "_w": "power"}

# Alias spellings (normalised: lower case, non-alphanumerics -> "_") -> canonical name.
# Names with a unit suffix are listed by stem (e.g. "energy" -> energy_j), and the unit is
# then read from the header's own suffix.
_ALIAS_LIST: dict[str, list[str]] = {
    "model": ["model_name", "llm", "model_id", "checkpoint"],
    "gpu": ["gpu_name", "gpu_type", "device", "hardware", "accelerator", "system"],
    "tp": ["tensor_parallel", "tensor_parallel_size", "tp_size", "tp_degree", "tensor_parallelism"],
    "pp": ["pipeline_parallel", "pipeline_parallel_size", "pp_size", "pp_degree",
           "pipeline_parallelism"],
    "dp": ["data_parallel", "data_parallel_size", "dp_size", "replicas", "num_replicas"],
    "ep": ["expert_parallel", "expert_parallel_size", "ep_size"],
    "batch_size": ["batch", "bs", "concurrency", "avg_batch_size", "mean_batch_size"],
    "input_tokens": ["prompt_tokens", "input_len", "input_length", "prompt_len", "prompt_length",
                     "n_input_tokens", "num_input_tokens", "number_of_input_tokens", "isl",
                     "prompt_size"],
    "output_tokens": ["completion_tokens", "output_len", "output_length", "generated_tokens",
                      "n_output_tokens", "num_output_tokens", "number_of_output_tokens", "osl",
                      "avg_output_tokens", "token_size"],
    "params_b": ["parameters_b", "params_billion", "n_params_b", "model_size_b"],
    "active_params_b": ["active_parameters_b"],
    "energy_j": ["energy", "energy_per_request", "energy_req", "energy_per_req",
                 "request_energy", "gpu_energy_per_request"],
    "prefill_energy_j": ["prefill_energy", "prompt_energy"],
    "decode_energy_j": ["decode_energy", "generation_energy"],
    "latency_s": ["latency", "e2e_latency", "e2e_time", "end_to_end_latency", "request_latency"],
    "ttft_s": ["ttft", "time_to_first_token", "prompt_time"],
    "tpot_s": ["tpot", "time_per_output_token", "avg_tpot", "itl", "token_time"],
    "power_w": ["power", "avg_power", "gpu_power", "mean_power"],
    "n_requests": ["num_requests", "requests", "n_reqs", "num_prompts", "responses"],
    "run_energy_j": ["run_energy", "total_energy", "gpu_energy"],
    "running_batch": ["avg_bs_reqs", "avg_bs", "running_batch_size", "mean_running_batch"],
    "duration_s": ["duration", "wall_time", "run_time", "elapsed"],
}
#: Aliases that mean the configured batch cap rather than the measured concurrency.
CAP_ALIASES = ("max_num_seqs", "max_batch_size", "batch_cap", "max_bs", "max_bs_reqs")


def normalise_header(name: object) -> str:
    """Lower-case a header and turn every run of punctuation into one ``_``.

    Examples
    --------
    >>> normalise_header("  Energy (Wh) ")
    'energy_wh'
    >>> normalise_header("TPOT (µs)")  # the micro sign reads as "u", never dropped
    'tpot_us'
    """
    text = str(name).strip().lower().replace("\u00b5", "u").replace("\u03bc", "u")
    s = re.sub(r"[^0-9a-zA-Z]+", "_", text)
    return s.strip("_")


def stem(canonical: str) -> str:
    """A canonical name without its unit suffix (``energy_j`` -> ``energy``)."""
    for suffix in DIMENSION:
        if canonical.endswith(suffix):
            return canonical[: -len(suffix)]
    return canonical


ALIASES: dict[str, str] = {}
for _canon, _spellings in _ALIAS_LIST.items():
    for _sp in [_canon, stem(_canon), *_spellings]:
        ALIASES[normalise_header(_sp)] = _canon
for _sp in CAP_ALIASES:
    ALIASES[_sp] = "batch_size"
del _canon, _spellings, _sp


def describe_schema() -> pd.DataFrame:
    """Return the canonical schema as a DataFrame (one row per column).

    Columns: ``dtype, unit, bounds`` (the sign rule), ``floor, ceiling`` (the physical
    range, NaN where none), ``why`` (its reason), ``role, required, meaning``.

    Examples
    --------
    >>> from energylens.tables import describe_schema
    >>> s = describe_schema()
    >>> s.loc["energy_j", "unit"], s.loc["tp", "bounds"]
    ('J', '>= 1')
    >>> float(s.loc["output_tokens", "floor"])
    1.0
    """
    rows = []
    for c in COLUMNS.values():
        bound = "" if c.lower is None else (">" if c.lower_strict else ">=") + f" {c.lower:g}"
        rows.append({"column": c.name, "dtype": c.dtype, "unit": c.unit, "bounds": bound,
                     "floor": float("nan") if c.floor is None else float(c.floor),
                     "ceiling": float("nan") if c.ceiling is None else float(c.ceiling),
                     "why": c.why, "role": c.role, "required": c.required,
                     "meaning": c.meaning})
    return pd.DataFrame(rows).set_index("column")


def config_key(df: pd.DataFrame) -> list[str]:
    """Columns of ``df`` that identify a configuration (see :data:`CONFIG_COLUMNS`).

    Examples
    --------
    >>> import pandas as pd
    >>> config_key(pd.DataFrame(columns=["gpu", "energy_j", "model", "tp"]))
    ['model', 'gpu', 'tp']
    """
    return [c for c in CONFIG_COLUMNS if c in df.columns]
