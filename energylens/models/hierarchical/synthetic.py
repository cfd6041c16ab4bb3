"""Tables generated from the hierarchical form itself, with known parameters.

:func:`form_table` draws configurations for every (model, GPU) pair, gives each group
parameters that deviate from known population values by known amounts, and returns the
energies of the form times lognormal noise, with the truth. Parameter-recovery tests and
the scaling benchmark (a thousand groups) use it; the models and GPUs must be in the
catalogue (register made-up ones with :func:`energylens.core.catalogue.register_gpus`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .form import PARAMETER_NAMES, PARAMETERS, energy_components, energy_kernel
from .variables import form_variables

__all__ = ["TRUE_POPULATION", "GROUP_DEVIATIONS", "form_table"]

#: Population values used by default (close to those fitted on ML.ENERGY v3).
TRUE_POPULATION: dict[str, float] = {
    "s": 1.0, "pi0": 0.35, "pim": 0.3, "pic": 0.8, "am": 1.3, "ac": 4.0, "ap": 3.0, "ak": 2.0,
    "aa": 1.0, "nu": 1e-4, "ltp": 1e-5, "lep": 1e-5, "tau1": 8e-5, "dc": 0.8, "cpp": 0.05,
    "rho": 3e-6, "kappa": 0.5, "si": 300.0}
#: Parameters that deviate per group in the generated tables.
GROUP_DEVIATIONS: tuple[str, ...] = ("s", "nu", "am", "tau1")


def _configs(rng: np.random.Generator, n: int, workloads: Sequence[str],
             pipelined: float = 0.0) -> dict:
    cap = 2.0 ** rng.integers(3, 11, size=n)
    out = {"tp": 2 ** rng.integers(0, 3, size=n), "pp": np.ones(n, dtype=int),
            "dp": np.ones(n, dtype=int), "batch_size": cap, "batch_kind": "cap",
            "running_batch": cap * rng.uniform(0.7, 1.0, size=n),
            "input_tokens": rng.choice([128.0, 512.0, 2048.0], size=n),
            "output_tokens": rng.uniform(100.0, 800.0, size=n),
            "workload": rng.choice(list(workloads), size=n)}
    if pipelined > 0:  # drawn last and only when asked: the other tables stay as they were
        out["pp"] = np.where(rng.uniform(size=n) < pipelined, 2, 1)
    return out


def form_table(models: Sequence[str], gpus: Sequence[str], *, rows_per_group: int | Mapping = 20,
               spread: float = 0.2, noise: float = 0.02, seed: int = 0,
               population: Mapping[str, float] | None = None,
               workloads: Sequence[str] = ("chat", "code"),
               phases: bool = False, pipelined: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A table of every (model, GPU) pair generated from the form, and its true parameters.

    Parameters
    ----------
    models, gpus : sequence of str
        Catalogue names.
    rows_per_group : int or mapping
        Rows of each group, or (model, gpu) -> rows (0 leaves the group out).
    spread : float
        sd of each group's log deviation of the parameters :data:`GROUP_DEVIATIONS`.
    noise : float
        sd of the lognormal measurement noise.
    seed : int
        Seed of the draws.
    population : mapping, optional
        Population values (default :data:`TRUE_POPULATION`).
    workloads : sequence of str
        Workload labels drawn per row.
    phases : bool
        Also record the prefill and decode energy (``prefill_energy_j``, ``decode_energy_j``,
        each with its own noise; static energy belongs to decode), as a profiler that
        splits the phases does; ``energy_j`` is then their sum.
    pipelined : float
        Share of the rows run as a two-stage pipeline (``pp = 2``, twice the GPUs; 0: none).
        With ``population={"cpp": ...}`` above 1 the table holds pipelines slower than one
        stage at a time, beyond the pipeline share's physical range.

    Returns
    -------
    table : DataFrame
        Canonical columns (recorded prompt lengths), ``energy_j`` and ``energy_true_j``.
    truth : DataFrame
        One row per group: ``model``, ``gpu`` and each parameter's true value.

    Examples
    --------
    >>> t, truth = form_table(["Llama-3.1-8B"], ["H100-SXM", "A100-80GB"], rows_per_group=5)
    >>> len(t), sorted(truth["gpu"])
    (10, ['A100-80GB', 'H100-SXM'])
    """
    rng = np.random.default_rng(seed)
    pop = {**TRUE_POPULATION, **(population or {})}
    base = np.log([pop[p.name] for p in PARAMETERS])
    parts, truth = [], []
    for m in models:
        for g in gpus:
            k = rows_per_group.get((m, g), 0) if isinstance(rows_per_group, Mapping) else rows_per_group
            if k <= 0:
                continue
            dev = np.zeros(len(PARAMETERS))
            for name in GROUP_DEVIATIONS:
                dev[PARAMETER_NAMES.index(name)] = spread * rng.standard_normal()
            rows = pd.DataFrame(_configs(rng, int(k), workloads, pipelined))
            rows.insert(0, "gpu", g)
            rows.insert(0, "model", m)
            parts.append((rows, base + dev))
            truth.append({"model": m, "gpu": g, **dict(zip(PARAMETER_NAMES, np.exp(base + dev)))})
    table = pd.concat([p for p, _ in parts], ignore_index=True)
    theta = np.concatenate([np.tile(np.exp(lt), (len(p), 1)) for p, lt in parts])
    E = energy_kernel(form_variables(table), theta)
    table["source"] = "form"
    table["energy_true_j"] = E
    table["energy_j"] = E * np.exp(noise * rng.standard_normal(len(E)))
    if phases:
        c = energy_components(form_variables(table), theta)
        pre = c["prefill_j"].to_numpy()
        dec = (c["decode_j"] + c["static_j"]).to_numpy()
        table["prefill_true_j"] = pre
        table["prefill_energy_j"] = pre * np.exp(noise * rng.standard_normal(len(E)))
        table["decode_energy_j"] = dec * np.exp(noise * rng.standard_normal(len(E)))
        table["energy_j"] = table["prefill_energy_j"] + table["decode_energy_j"]
    return table, pd.DataFrame(truth)
