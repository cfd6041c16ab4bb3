"""Active profiling: suggest_next and the benchmark that compares it with random sampling."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from energylens import EnergyLensModel, simulate_profiles, suggest_next

ROOT = Path(__file__).resolve().parents[1]


class KnownBelief:
    """A predictive distribution given per row: median ``mu`` and relative sd ``rel``."""

    def predict(self, X):
        return X["mu"].to_numpy(dtype=float)

    def predict_interval(self, X, level=0.9):
        z = stats.norm.ppf(0.5 + level / 2)
        mu, rel = X["mu"].to_numpy(dtype=float), X["rel"].to_numpy(dtype=float)
        return pd.DataFrame({"energy_j": mu, "lower": mu * (1 - z * rel), "upper": mu * (1 + z * rel)},
                            index=X.index)


def _cands(n=12, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"model": "m", "gpu": "g", "tp": np.tile([1, 2, 4], n // 3 + 1)[:n],
                         "batch_size": np.arange(n, dtype=float) + 1, "input_tokens": 512.0,
                         "output_tokens": 256.0, "mu": rng.uniform(90, 110, n),
                         "rel": rng.permutation(np.linspace(0.01, 0.3, n))})


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("active_profiling", ROOT / "benchmarks" / "active_profiling.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_uncertainty_prefers_widest_intervals_and_skips_measured():
    c = _cands()
    measured = c.nlargest(2, "rel")
    s = suggest_next(KnownBelief(), c, k=3, measured=measured)
    expected = c.drop(index=measured.index).nlargest(3, "rel").index
    assert list(s.index) == list(expected)
    assert s.index.is_unique and not set(s.index) & set(measured.index)
    np.testing.assert_allclose(s["score"], c.loc[expected, "rel"], rtol=1e-9)
    assert s["reason"].str.contains("relative predictive sd").all()
    # fewer left than asked: all of them, once
    rest = suggest_next(KnownBelief(), c, k=50, measured=c.iloc[:10])
    assert sorted(rest.index) == [10, 11]


@pytest.mark.parametrize("strategy", ["uncertainty", "selection"])
def test_deterministic_by_seed_and_distinct(strategy):
    c = _cands(30, seed=2)
    c["rel"] = 0.05
    a = suggest_next(KnownBelief(), c, k=5, strategy=strategy, random_state=7)
    b = suggest_next(KnownBelief(), c, k=5, strategy=strategy, random_state=7)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 5 and a.index.is_unique
    assert (np.diff(a["score"]) <= 1e-12).all()


def test_selection_scores_are_probabilities_of_the_optimum():
    c = _cands(6)
    c["mu"] = [100.0, 50.0, 101.0, 102.0, 103.0, 104.0]
    c["rel"] = 0.02
    s = suggest_next(KnownBelief(), c, k=6, strategy="selection", scenario=("model",), random_state=0)
    assert s.index[0] == 1 and s["score"].iloc[0] > 0.99
    assert s["score"].sum() == pytest.approx(1.0)
    # two close candidates share the probability; a far one gets none
    c["mu"] = [100.0, 100.0, 200.0, 200.0, 200.0, 200.0]
    s = suggest_next(KnownBelief(), c, k=2, strategy="selection", scenario=("model",), random_state=0)
    assert set(s.index) == {0, 1}
    assert s["score"].to_numpy() == pytest.approx([0.5, 0.5], abs=0.05)
    # a measured incumbent far below every candidate: nothing is likely to beat it
    inc = c.iloc[:0].assign(energy_j=[]).reindex([99])
    inc.loc[99, ["model", "gpu", "tp", "batch_size", "input_tokens", "output_tokens", "energy_j"]] = (
        "m", "g", 8, 99.0, 512.0, 256.0, 10.0)
    s = suggest_next(KnownBelief(), c, k=2, strategy="selection", scenario=("model",), measured=inc)
    assert (s["score"] < 0.01).all()


def test_selection_is_per_scenario():
    c = pd.concat([_cands(6).assign(input_tokens=128.0), _cands(6).assign(input_tokens=4096.0)],
                  ignore_index=True)
    c["mu"] = [10.0, 50, 50, 50, 50, 50, 500, 900, 900, 900, 900, 900]
    c["rel"] = 0.02
    s = suggest_next(KnownBelief(), c, k=2, strategy="selection",
                     scenario=("input_tokens",), random_state=0)
    assert set(s.index) == {0, 6}  # each scenario's own optimum, not the globally lowest energies


def test_blank_scenario_labels_are_a_scenario_of_their_own():
    """A blank workload (a valid table may leave the label empty) is one scenario, apart
    from the named ones, and a measured row with a blank label is matched as measured."""
    from energylens.tables.values import LABEL_DTYPE

    c = pd.concat([_cands(6).assign(workload="chat"), _cands(6).assign(workload=np.nan)],
                  ignore_index=True)
    c["workload"] = c["workload"].astype(LABEL_DTYPE)
    c["mu"] = [10.0, 50, 50, 50, 50, 50, 500, 900, 900, 900, 900, 900]
    c["rel"] = 0.02
    s = suggest_next(KnownBelief(), c, k=2, strategy="selection",
                     scenario=("model", "gpu", "workload"), random_state=0)
    assert set(s.index) == {0, 6}
    measured = c.loc[[6]].assign(energy_j=400.0)
    s = suggest_next(KnownBelief(), c, k=11, strategy="selection", measured=measured,
                     scenario=("model", "gpu", "workload"), random_state=0)
    assert 6 not in s.index and len(s) == 11
    assert (s.loc[s["workload"].isna(), "score"] < 0.01).all()  # none beats the measured 400 J


def test_bad_arguments():
    c = _cands()
    with pytest.raises(ValueError, match="strategy"):
        suggest_next(KnownBelief(), c, strategy="greedy")
    with pytest.raises(ValueError, match="'k' parameter of suggest_next"):
        suggest_next(KnownBelief(), c, k=0)
    with pytest.raises(ValueError, match="No unmeasured candidate"):
        suggest_next(KnownBelief(), c, measured=c)


def test_active_selection_finds_optima_on_simulator():
    sim = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], noise=0.02, seed=1)
    bench = _load_benchmark()
    rec = bench.run_pool(sim, scenario=("input_tokens", "output_tokens"), n_seed=8, k=4, rounds=3,
                         strategy="selection", seed=0)
    assert [r["measured"] for r in rec] == [8, 12, 16, 20]
    assert all(0 <= r["top1"] <= 1 and r["regret"] >= 0 for r in rec)
    assert rec[-1]["regret"] < 0.05
    rnd = bench.run_pool(sim, scenario=("input_tokens", "output_tokens"), n_seed=8, k=4, rounds=1,
                         strategy="random", seed=0)
    assert rnd[0] == {**rec[0], "strategy": "random"}  # same seed set for every strategy


def test_benchmark_writes_report(tmp_path):
    bench = _load_benchmark()
    out = tmp_path / "active.md"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert bench.main(["--quick", "--seeds", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "python benchmarks/active_profiling.py --quick --seeds 1" in text
    assert "Top-1 selection (%)" in text and "## Simulator" in text


def test_suggestions_from_a_fitted_model_are_unmeasured():
    sim = simulate_profiles(models=["Llama-3.1-8B"], gpus=["A100-80GB"], noise=0.02)
    train = sim.sample(12, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = EnergyLensModel().fit(train)
    for strategy in ("uncertainty", "selection"):
        s = suggest_next(m, sim.drop(columns="energy_j"), k=4, strategy=strategy, measured=train,
                         scenario=("input_tokens", "output_tokens"))
        assert len(s) == 4 and not set(s.index) & set(train.index)
