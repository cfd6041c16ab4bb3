"""The shipped CSV tables, user rows, and name resolution."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ...exceptions import CatalogueError
from .rows import _TEXT, GPU_NUMERIC, MODEL_NUMERIC, _at, _read_rows, check_order
from .specs import GpuSpec, ModelSpec, normalize_precision

__all__ = ["resolve_gpu", "resolve_model", "gpu_spec", "model_spec", "gpu_table", "model_table",
           "register_gpus", "register_models", "reset_catalogue", "gpu_memory_gb"]

_DATA = Path(__file__).resolve().parents[1] / "data"
_GPU_WORDS = {"nvidia", "tesla", "geforce", "amd", "instinct", "radeon", "apple"}
_VARIANT_WORDS = {"instruct", "it", "chat", "hf", "base", "thinking"}
_PRECISION_WORDS = {"fp8": "fp8", "bf16": "bf16", "fp16": "fp16"}


class _Table:
    """One catalogue (GPUs or models): shipped rows, user rows and the name index."""

    def __init__(self, kind: str, file: str, numeric: tuple[str, ...]):
        self.kind, self.file, self.numeric = kind, file, numeric
        self.user: list[pd.DataFrame] = []
        self._df: pd.DataFrame | None = None
        self._index: dict[str, str] = {}

    def key(self, name) -> str:
        return _gpu_key(name) if self.kind == "GPU" else _model_key(name)[0]

    @property
    def df(self) -> pd.DataFrame:
        if self._df is None:
            self._build()
        return self._df  # type: ignore[return-value]

    def _build(self) -> None:
        df = _read_rows(_DATA / self.file, self.kind, self.numeric)
        for rows in self.user:
            df = _merge(df, rows)
        index: dict[str, str] = {}
        for r in df.itertuples(index=False):
            names = [r.name, *_split(getattr(r, "aliases", ""))]
            if self.kind == "model" and isinstance(getattr(r, "hf_id", None), str):
                names.append(r.hf_id)
            for n in names:
                index[self.key(n)] = r.name
        df = df.set_index("name", drop=False)
        df.index.name = None
        self._df, self._index = df, index

    def resolve(self, name) -> str | None:
        df = self.df
        if isinstance(name, str) and name in df.index:
            return name
        return self._index.get(self.key(name))

    def unknown(self, name) -> CatalogueError:
        key = self.key(name)
        _ = self.df  # builds the index
        wider = [k for k in self._index if k.startswith(key + "-")]  # "a100" -> "a100-40gb"
        close = wider or difflib.get_close_matches(key, list(self._index), n=3, cutoff=0.6)
        hint = sorted({self._index[k] for k in close})
        fn, cols = (("register_gpus", "memory_gb, memory_bw_bytes_s, bf16_flop_s, tdp_w, ...")
                    if self.kind == "GPU" else
                    ("register_models", "params_b, layers, hidden, heads, kv_heads, head_dim, ..."))
        return CatalogueError(
            f"Unknown {self.kind} {name!r} (looked up as {self.key(name)!r}): no row of the "
            f"{self.kind} catalogue has this name or alias"
            + (f"; closest: {hint}" if hint else "") + ". Add it with "
            f"energylens.core.catalogue.{fn}(pd.DataFrame({{'name': [{str(name)!r}], ...}})) "
            f"(columns {cols}; or a CSV path), or make it another name of a known row with "
            f"{fn}(pd.DataFrame({{'name': ['<catalogue name>'], 'aliases': [{str(name)!r}]}})); "
            "see docs/catalogue.md.")

    def get(self, name) -> pd.Series:
        canon = self.resolve(name)
        if canon is None:
            raise self.unknown(name)
        return self.df.loc[canon]

    def register(self, rows) -> None:
        new = _read_rows(rows, self.kind, self.numeric)
        problems: list[str] = []
        new["name"] = self._entries(new, problems)
        if not problems:
            merged = _merge(self.df.reset_index(drop=True), new).set_index("name", drop=False)
            check_order(merged, new, self.kind, problems)
        if problems:
            raise CatalogueError(f"{new.attrs['where']}: bad {self.kind} catalogue rows: "
                                 + "; ".join(problems) + ".")
        self.user.append(new)
        self._df = None

    def _entries(self, new: pd.DataFrame, problems: list[str]) -> list[str]:
        """The entry each row registers: an existing one wherever the catalogue resolves the
        row's name (``"h100-sxm"``, ``"H100 SXM"`` are ``H100-SXM``), else a new one."""
        df = self.df
        own = {self.key(n): n for n in df.index}  # the entries' own names, as keys
        names, target_rows = [], {}
        for i, name in enumerate(new["name"]):
            canon = self.resolve(name)
            names.append(canon if canon is not None else name)
            target_rows.setdefault(canon if canon is not None else ("new", self.key(name)),
                                   []).append(i)
            if canon is None or canon == name:
                continue
            if self.kind == "GPU" and re.search(r"\([^)]*\)", name):
                problems.append(
                    f"column 'name', {_at(new, [i])}: {name!r} is the catalogue's GPU {canon!r} "
                    "on a host named in brackets, and the catalogue keeps one entry per GPU: "
                    f"name it {canon!r} to change that entry, or give a card of its own a name "
                    "without brackets")
            word = _model_key(name)[1] if self.kind == "model" else None
            given = normalize_precision(new["precision"].iat[i]) if word and \
                "precision" in new.columns else None
            if given and given != normalize_precision(df.at[canon, "precision"]):
                problems.append(
                    f"column 'precision', {_at(new, [i])}: {name!r} is the catalogue's model "
                    f"{canon!r} read in {word} (its name's precision word), and the entry's "
                    f"precision is its published checkpoint's ({df.at[canon, 'precision']!r}); "
                    "leave precision empty, or name the row "
                    f"{canon!r} to change the checkpoint's precision")
        for target, rows in target_rows.items():
            if len(rows) > 1:
                what = (f"the catalogue's {self.kind} {target!r}" if isinstance(target, str)
                        else "one new entry")
                problems.append(f"column 'name', {_at(new, rows)}: "
                                f"{[new['name'].iat[i] for i in rows]} all name {what}")
        if "aliases" in new.columns:
            for i, (entry, aliases) in enumerate(zip(names, new["aliases"])):
                for a in _split(aliases):
                    other = own.get(self.key(a))
                    if other is not None and other != entry:
                        problems.append(
                            f"column 'aliases', {_at(new, [i])}: {a!r} is the name of the "
                            f"catalogue's {self.kind} {other!r}, so it cannot be another name "
                            f"of {entry!r}")
        return names

    def reset(self) -> None:
        self.user.clear()
        self._df = None


def _split(aliases) -> list[str]:
    if not isinstance(aliases, str):
        return []
    return [a.strip() for a in aliases.split(";") if a.strip()]


def _merge(df: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows named like an existing row update its given fields (aliases are added);
    other rows are appended; new columns are added."""
    df = df.copy()
    for c in rows.columns:
        if c not in df.columns:
            df[c] = np.nan if pd.api.types.is_numeric_dtype(rows[c]) else None
    pos = {n: i for i, n in enumerate(df["name"])}
    new = []
    for _, r in rows.iterrows():
        if r["name"] not in pos:
            new.append(r)
            continue
        i = pos[r["name"]]
        for c, v in r.items():
            if c == "aliases":
                v = ";".join(dict.fromkeys(_split(df.iat[i, df.columns.get_loc(c)]) + _split(v)))
            if v is not None and not (isinstance(v, float) and np.isnan(v)) and v != "":
                df.iat[i, df.columns.get_loc(c)] = v
    if new:
        df = pd.concat([df, pd.DataFrame(new)], ignore_index=True)
        for c in _TEXT:
            if c in df.columns:
                df[c] = df[c].fillna("")
    return df.reset_index(drop=True)


def _gpu_key(name) -> str:
    s = re.sub(r"\([^)]*\)", " ", str(name)).lower()
    tokens = [t for t in re.split(r"[\s_\-/]+", s) if t and t not in _GPU_WORDS]
    return "-".join(tokens)


def _model_key(name) -> tuple[str, str | None]:
    """Match key of a model name, and the precision its suffix names (or None)."""
    s = str(name).strip().rsplit("/", 1)[-1].lower()
    out, precision = [], None
    for t in re.split(r"[\s_()\[\]\-]+", s):
        if not t:
            continue
        if t in _PRECISION_WORDS:
            precision = _PRECISION_WORDS[t]
        elif t not in _VARIANT_WORDS and not re.fullmatch(r"\d{4}", t):
            out.append(t)
    return "-".join(out), precision


_GPUS = _Table("GPU", "gpus.csv", GPU_NUMERIC)
_MODELS = _Table("model", "models.csv", MODEL_NUMERIC)


def resolve_gpu(name: str) -> str:
    """Catalogue name of a GPU.

    Examples
    --------
    >>> [resolve_gpu(n) for n in ("A100-SXM4-40GB", "A100-40GB (Swing)", "H100")]
    ['A100-40GB', 'A100-40GB', 'H100-SXM']
    """
    canon = _GPUS.resolve(name)
    if canon is None:
        raise _GPUS.unknown(name)
    return canon


def resolve_model(name: str) -> str:
    """Catalogue name of a model.

    Examples
    --------
    >>> [resolve_model(n) for n in ("meta-llama/Meta-Llama-3.1-8B-Instruct", "llama2-70b")]
    ['Llama-3.1-8B', 'Llama-2-70b']
    """
    canon = _MODELS.resolve(name)
    if canon is None:
        raise _MODELS.unknown(name)
    return canon


def entry_key(kind: str, name) -> tuple[str, str | None, tuple[str, ...], str] | None:
    """What the catalogue makes of a name, for telling spellings of one GPU or checkpoint
    apart from different ones: ``(row, precision, checkpoint words or hosts, stem)``; None
    where no row matches.

    For a GPU the row and the host it names in parentheses (``"A100-40GB (Swing)"``: two
    hosts of one GPU are different machines) count. A model's row is its architecture, which checkpoints
    share (Llama 3.1 and 3.3 70B, DeepSeek V3.1 and R1); so its key also holds the
    precision the name states (None where it states none), the checkpoint words it carries
    (``instruct``, ``thinking``, a release date) and the stem of the name (lower case,
    without organisation, checkpoint or precision words).

    Examples
    --------
    >>> entry_key("gpu", "NVIDIA H100 80GB HBM3") == entry_key("gpu", "H100-SXM")
    True
    >>> entry_key("gpu", "A100-SXM4-40GB (Swing)")
    ('A100-40GB', None, ('swing',), '')
    >>> entry_key("model", "meta-llama/Meta-Llama-3.1-8B-Instruct")
    ('Llama-3.1-8B', None, ('instruct',), 'meta-llama-3.1-8b')
    >>> entry_key("model", "Qwen/Qwen3-30B-A3B-Thinking-2507")
    ('Qwen3-30B-A3B', None, ('2507', 'thinking'), 'qwen3-30b-a3b')
    >>> entry_key("model", "Llama-3.1-8B-FP8"), entry_key("model", "no-such-model")
    (('Llama-3.1-8B', 'fp8', (), 'llama-3.1-8b'), None)
    """
    if kind == "gpu":  # the host a name carries in parentheses ("A100-40GB (Swing)") counts
        canon = _GPUS.resolve(name)
        hosts = tuple(sorted(h.strip().lower() for h in re.findall(r"\(([^)]*)\)", str(name))))
        return None if canon is None else (canon, None, hosts, "")
    if kind != "model":
        raise ValueError(f"entry_key: kind must be 'gpu' or 'model'; got {kind!r}.")
    canon = _MODELS.resolve(name)
    if canon is None:
        return None
    stem, precision = _model_key(name)
    s = str(name).strip().rsplit("/", 1)[-1].lower()
    words = {t for t in re.split(r"[\s_()\[\]\-]+", s)
             if t in _VARIANT_WORDS or re.fullmatch(r"\d{4}", t)}
    return canon, precision, tuple(sorted(words)), stem


def _num(row: pd.Series, col: str) -> float:
    v = row.get(col, np.nan)
    return float(v) if v is not None and np.isfinite(v) else float("nan")


def _int(row: pd.Series, col: str) -> int | None:
    v = _num(row, col)
    return None if np.isnan(v) else int(v)


def gpu_spec(name: str) -> GpuSpec:
    """The :class:`GpuSpec` of a GPU name (missing figures are NaN).

    Examples
    --------
    >>> g = gpu_spec("NVIDIA A100-SXM4-80GB")
    >>> g.name, g.memory_gb, g.flop_s("fp8") == g.flops  # no FP8 units: BF16 rate
    ('A100-80GB', 80.0, True)
    """
    r = _GPUS.get(name)
    return GpuSpec(
        str(r["name"]), _num(r, "bf16_flop_s"), _num(r, "memory_bw_bytes_s"),
        _num(r, "memory_gb"), _num(r, "idle_w"), _num(r, "tdp_w"), _num(r, "link_bw_bytes_s"),
        _num(r, "link_latency_s"), str(r.get("interconnect") or "unknown"),
        _num(r, "fp16_flop_s"), _num(r, "fp8_flop_s"))


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a model name; a precision suffix sets ``precision``.

    Examples
    --------
    >>> model_spec("meta-llama/Llama-3.1-405B-Instruct-FP8").precision
    'fp8'
    >>> model_spec("Mixtral-8x7B-Instruct-v0.1").active_b
    12.9
    """
    r = _MODELS.get(name)
    suffix = _model_key(name)[1]
    active = _num(r, "active_params_b")
    return ModelSpec(
        str(r["name"]), _num(r, "params_b"), _int(r, "layers"), _int(r, "hidden"),
        _int(r, "heads"), _int(r, "kv_heads"), _int(r, "head_dim"), _int(r, "vocab"),
        None if np.isnan(active) else active, str(r.get("architecture") or "dense"),
        _int(r, "experts"), _int(r, "active_experts"), _int(r, "attn_layers"),
        _int(r, "kv_dim"), _int(r, "intermediate"),
        suffix or normalize_precision(r.get("precision")) or "bf16")


def gpu_table() -> pd.DataFrame:
    """The GPU catalogue (shipped and registered rows), one row per GPU, indexed by name."""
    return _GPUS.df.copy()


def model_table() -> pd.DataFrame:
    """The model catalogue (shipped and registered rows), one row per model, indexed by name."""
    return _MODELS.df.copy()


def register_gpus(rows: pd.DataFrame | str | os.PathLike) -> None:
    """Add GPUs, or columns, to the catalogue for this process.

    Parameters
    ----------
    rows : DataFrame or path of a CSV file
        A ``name`` column and any of the catalogue's columns (``docs/catalogue.md``) or new
        ones. A row whose ``name`` the catalogue resolves (an entry's name, one of its
        aliases, or another spelling of either: ``"h100-sxm"``, ``"H100 SXM"``) updates
        that entry with the values it gives (its ``aliases`` are added to the entry's);
        any other row is a new GPU. ``aliases`` holds other names separated by ``;``.

    Raises
    ------
    CatalogueError
        All problems at once, with the file, column and rows (CSV lines); nothing is
        registered. A missing name, or two rows naming one entry; a name with a host in
        brackets (``"A100-40GB (lab)"``: the catalogue keeps one entry per GPU); an alias
        that is another entry's name; a value that is not a number in a numeric column, or
        not > 0 where 0 means nothing (memory, bandwidth, FLOP/s, TDP, link bandwidth;
        idle power and link latency may be 0); an idle power not below the TDP.

    Examples
    --------
    >>> import pandas as pd
    >>> register_gpus(pd.DataFrame({"name": ["X1"], "aliases": ["Lab X1 card"],
    ...                             "memory_gb": [32], "memory_bw_bytes_s": [1e12]}))
    >>> gpu_spec("lab x1 card").memory_gb
    32.0
    >>> reset_catalogue()
    """
    _GPUS.register(rows)


def register_models(rows: pd.DataFrame | str | os.PathLike) -> None:
    """Add models, or columns, to the catalogue for this process (as :func:`register_gpus`).

    A row whose name the catalogue resolves updates that entry:
    ``"meta-llama/Llama-3.1-8B-Instruct"`` is ``Llama-3.1-8B`` (one entry per architecture).
    Counts (``layers``, ``heads``, ...) are whole numbers >= 1 and sizes (``params_b``, ...)
    > 0; ``kv_heads`` may not exceed ``heads``, nor ``active_params_b`` ``params_b``, nor
    ``attn_layers`` or ``full_attn_layers`` ``layers``, nor ``active_experts`` ``experts``.
    A name with a precision word (``"org/Llama-3.1-8B-FP8"``) may not change the entry's
    ``precision`` (its published checkpoint's; the word already sets the precision of that
    name).

    Examples
    --------
    >>> import pandas as pd
    >>> register_models(pd.DataFrame({"name": ["tiny-lm"], "params_b": [0.1], "layers": [4],
    ...                               "hidden": [512], "heads": [8], "kv_heads": [8],
    ...                               "head_dim": [64], "vocab": [32000]}))
    >>> model_spec("org/tiny-lm-Instruct").kv_bytes_per_token()
    8192.0
    >>> reset_catalogue()
    """
    _MODELS.register(rows)


def reset_catalogue() -> None:
    """Forget every registered row and column (back to the shipped catalogue)."""
    _GPUS.reset()
    _MODELS.reset()


def gpu_memory_gb(name: str) -> float | None:
    """Memory of a GPU, GB: from the catalogue, else from a size in the name (``"X-48GB"``).

    Examples
    --------
    >>> gpu_memory_gb("H200"), gpu_memory_gb("Custom-48GB"), gpu_memory_gb("Mystery")
    (141.0, 48.0, None)
    """
    canon = _GPUS.resolve(name)
    if canon is not None:
        mem = _num(_GPUS.df.loc[canon], "memory_gb")
        return None if np.isnan(mem) else mem
    for token in re.split(r"[\s_\-]+", str(name)):
        if token.upper().endswith("GB") and token[:-2].isdigit():
            return float(token[:-2])
    return None


