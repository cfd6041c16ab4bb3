"""Is the energy column in joules per request? A physical check per group and per token.

Energy per output token has hard physical limits:

* a floor: a token needs at least two floating-point operations per active parameter, and
  no accelerator does more than about 1e13 FLOP/J, so energy per output token is at least
  ``2e-4 J x active_params_b`` (at least 1e-4 J/token where the table gives no parameter
  count);
* a ceiling: 1e3 J/token per GPU of the configuration (each GPU at 1 kW for a whole
  second per output token, a hundred times slower than batch-1 decoding).

Judging row by row confuses a unit mistake with a few odd rows (in Wh, batched rows fall
below the floor and batch-1 rows do not), so the check looks at the median of each
(model, GPU) group: a group whose median is below the floor but lands inside the
physical range when multiplied by 1e3, 3600 or 3.6e6 "looks like kJ, Wh or kWh" (every
unit that fits is named: the data cannot tell kJ from Wh). One
:class:`~energylens.ImplausibleValueWarning` says so, once, with the groups.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..exceptions import ImplausibleValueWarning
from .values import plain

__all__ = ["warn_implausible", "token_bounds", "FLOP_PER_JOULE_MAX", "PER_TOKEN_FLOOR",
           "PER_TOKEN_CEILING_PER_GPU"]

#: More floating-point operations per joule than any accelerator achieves.
FLOP_PER_JOULE_MAX = 1e13
#: Energy per output token below which no table without parameter counts can be in joules.
PER_TOKEN_FLOOR = 1e-4
#: Energy per output token, per GPU, above which a table is not in joules per request.
PER_TOKEN_CEILING_PER_GPU = 1e3
_UNIT_FIXES = (("kJ", 1e3), ("Wh", 3600.0), ("kWh", 3.6e6))
#: A typical energy per output token of today's serving (J/token), to order the units that fit.
_TYPICAL_PER_TOKEN = 0.3
#: Parameter counts (billions) above any model's: a params_b column in millions.
_PARAMS_B_MAX = 5000.0


def token_bounds(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Physical floor and ceiling of each row's energy per output token (J/token)."""
    floor = np.full(len(df), PER_TOKEN_FLOOR)
    for col in ("active_params_b", "params_b"):
        if col in df.columns:
            na = df[col].to_numpy(dtype=float, na_value=np.nan)
            flops = np.where(np.isfinite(na), 2.0 * na * 1e9 / FLOP_PER_JOULE_MAX, 0.0)
            floor = np.maximum(floor, flops)
            break
    gpus = df["n_gpus"].to_numpy(dtype=float) if "n_gpus" in df.columns else np.ones(len(df))
    return floor, PER_TOKEN_CEILING_PER_GPU * gpus


def _label(key: object) -> str:
    return " / ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _groups_text(labels: list[str]) -> str:
    shown = ", ".join(labels[:5])
    return shown + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")


def warn_implausible(out: pd.DataFrame, where: str) -> None:
    """Warn once if the energies are implausible per token (see the module docstring)."""
    ept = out["energy_per_output_token_j"].to_numpy(dtype=float)
    floor, ceiling = token_bounds(out)
    low, high = ept < floor, ept > ceiling
    if not (low.any() or high.any()):
        return
    keys = [c for c in ("model", "gpu") if c in out.columns]
    frame = pd.DataFrame({"ept": ept, "floor": floor, "ceiling": ceiling})
    grouper = [out[k].to_numpy() for k in keys] if keys else np.zeros(len(out))
    med = frame.groupby(grouper, sort=True, dropna=False).median()
    parts, unit_groups = [], np.zeros(len(med), dtype=bool)
    group_of = ("(" + ", ".join(keys) + ") group") if keys else "table"
    small = med["ept"].to_numpy() < med["floor"].to_numpy()
    fits_by_unit = {name: small & (med["ept"].to_numpy() * f >= med["floor"].to_numpy())
                    & (med["ept"].to_numpy() * f <= med["ceiling"].to_numpy())
                    for name, f in _UNIT_FIXES}
    unit_groups = np.logical_or.reduce(list(fits_by_unit.values()))
    if unit_groups.any():
        # every unit that makes these groups plausible is named: kJ and Wh differ by 3.6x
        # only, and the physical range is wider than that, so the data cannot tell them apart
        factors = dict(_UNIT_FIXES)
        typical = float(np.median(med["ept"][unit_groups]))
        names = sorted((n for n, m in fits_by_unit.items() if m.any()),
                       key=lambda n: abs(np.log(typical * factors[n] / _TYPICAL_PER_TOKEN)))
        labels = [_label(k) for k in med.index[unit_groups]]
        parts.append(
            f"this looks like {' or '.join(names)}, not joules: in {int(unit_groups.sum())} of "
            f"{len(med)} {group_of}s the median energy per output token is "
            f"{float(np.median(med['ept'][unit_groups])):.3g} J/token, below the physical floor, "
            f"and " + " or ".join(f"x{factors[n]:g} ({n})" for n in names)
            + f" gives a plausible value ({_groups_text(labels)}; the units are listed from "
            f"the most typical result, {_TYPICAL_PER_TOKEN:g} J/token). Declare the unit with "
            f"units={{'energy_j': '{names[0]}'}} (or {', '.join(repr(n) for n in names[1:]) or 'another'})"
            f" or a header such as 'energy_{names[0].lower()}'")
    big = (med["ept"].to_numpy() > med["ceiling"].to_numpy()) & ~unit_groups
    if big.any():
        labels = [_label(k) for k in med.index[big]]
        parts.append(f"in {int(big.sum())} {group_of}(s) the median energy per output token is "
                     "above 1e3 J/token per GPU: this looks like the energy of a whole run (or "
                     f"mJ), not joules per request ({_groups_text(labels)})")
    rows = (low | high) & ~np.isin(frame.groupby(grouper, sort=True, dropna=False).ngroup(),
                                   np.flatnonzero(unit_groups | big))
    if rows.any():
        pos = np.flatnonzero(rows)[:5]
        parts.append(f"{int(rows.sum())} row(s) lie outside the physical range of energy per "
                     f"output token, rows {[plain(out.index[p]) for p in pos]} with values "
                     f"{[float(f'{ept[p]:.3g}') for p in pos]} J/token: a unit mistake in "
                     "those rows? Check that energy is in joules per request (not per run, "
                     "not Wh)")
    if "params_b" in out.columns:
        pb = pd.to_numeric(out["params_b"], errors="coerce").to_numpy(dtype=float)
        if np.nanmax(pb, initial=0.0) > _PARAMS_B_MAX:
            parts.append(f"params_b reaches {np.nanmax(pb):.4g}, more parameters than any model "
                         "has (the floor reads params_b in billions): if the column is in "
                         "millions, divide it by 1000 before judging the energy unit")
    warnings.warn(f"Profiling table {where}: implausible energy per output token, the "
                  "signature of a unit mistake; "
                  + "; ".join(parts) + ".", ImplausibleValueWarning, stacklevel=4)
