"""The latency closed form: planted parameters, derivatives, identifiability, public latency data."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import energylens
from energylens import EnergyLensModel, LatencyModel, select_config

FULL = np.array([2e-5, 3e-9, 4e-3, 2e-3, 0.02, 2e-8, 0.3, 1e-4, 5e-4, 0.05, 2e-3])  # a1..a11


def _table(n: int = 240, seed: int = 0, tp=(1, 2, 4, 8)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"tp": rng.choice(tp, n), "pp": rng.choice([1, 2], n),
                         "batch_size": rng.choice([1.0, 4, 16, 64], n),
                         "input_tokens": rng.choice([128.0, 512, 2048, 8192], n),
                         "output_tokens": rng.choice([64.0, 256, 1024], n)})


def _vars(df: pd.DataFrame) -> dict[str, np.ndarray]:
    return {"t": df.tp.to_numpy(float), "p": df.pp.to_numpy(float), "B": df.batch_size.to_numpy(float),
            "si": df.input_tokens.to_numpy(float), "so": df.output_tokens.to_numpy(float)}


def _quiet(model, df):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(df)


def _plant(target: str, df: pd.DataFrame, noise: float, seed: int = 1) -> pd.DataFrame:
    m = LatencyModel(target=target)
    theta = FULL[m._used()]
    out = df.copy()
    out[target] = m._kernel(_vars(df), theta) * np.exp(np.random.default_rng(seed).normal(0, noise, len(df)))
    return out


@pytest.mark.parametrize("target", ["ttft_s", "tpot_s"])
def test_recovers_planted_parameters(target):
    df = _plant(target, _table(), noise=0.01)
    m = LatencyModel(target=target).fit(df)
    truth = FULL[m._used()]
    np.testing.assert_allclose(m.coef_, truth, rtol=0.2)
    assert (m.params_["unit"] != "").all() and (m.params_["meaning"] != "").all()
    assert m.params_["identifiable"].all()
    assert m.fit_stats_["mape_pct"] < 2


def test_request_latency_is_prefill_plus_steps():
    df = _table(60)
    V = _vars(df)
    pre = LatencyModel(target="ttft_s")._kernel(V, FULL[LatencyModel(target="ttft_s")._used()])
    step = LatencyModel(target="tpot_s")._kernel(V, FULL[LatencyModel(target="tpot_s")._used()])
    total = LatencyModel(target="latency_s")._kernel(V, FULL)
    np.testing.assert_allclose(total, pre + df.output_tokens.to_numpy() * step, rtol=1e-12)
    assert np.all(total > 0)


@pytest.mark.parametrize("target", ["ttft_s", "tpot_s", "latency_s"])
def test_jacobian_matches_finite_differences(target):
    m = LatencyModel(target=target)
    V = _vars(_table(40, seed=2))
    th = FULL[m._used()] * 1.3
    J = m._jacobian(V, th)
    for j in range(len(th)):
        h = 1e-4 * max(abs(th[j]), 1e-12)
        up, dn = th.copy(), th.copy()
        up[j] += h
        dn[j] -= h
        fd = (m._kernel(V, up) - m._kernel(V, dn)) / (2 * h)
        np.testing.assert_allclose(J[:, j], fd, rtol=1e-5, atol=1e-12 * np.abs(fd).max())


def test_parameter_without_variation_is_not_identifiable():
    df = _plant("tpot_s", _table(tp=(4,)), noise=0.01)
    m = _quiet(LatencyModel(target="tpot_s"), df)
    assert not m.params_.loc["a8", "identifiable"]  # all-reduce latency needs tp to vary
    assert m.params_.loc["a8", "value"] == 0.0
    assert m.params_.loc["a6", "identifiable"]
    np.testing.assert_allclose(m.predict(df), df["tpot_s"], rtol=0.05)


def test_bad_input():
    df = _plant("tpot_s", _table(30), noise=0.0)
    with pytest.raises(ValueError, match="'target' parameter"):
        LatencyModel(target="energy_j").fit(df)
    with pytest.raises(Exception, match="tpot_s"):
        LatencyModel(target="tpot_s").fit(df.drop(columns="tpot_s"))


def test_predict_interval_covers_noisy_truth():
    df = _plant("tpot_s", _table(300, seed=4), noise=0.03)
    m = LatencyModel(target="tpot_s").fit(df.iloc[:200])
    test = df.iloc[200:]
    pi = m.predict_interval(test, level=0.9)
    truth = LatencyModel(target="tpot_s")._kernel(_vars(test), FULL[m._used()])
    inside = np.mean((pi["lower"] <= truth) & (truth <= pi["upper"]))
    assert inside > 0.8


@pytest.mark.realdata
def test_splitwise_time_per_output_token(real_data):
    df = energylens.read_splitwise(real_data / "splitwise")
    for (model, gpu), g in df.groupby(["model", "gpu"]):
        m = _quiet(LatencyModel(target="tpot_s"), g)
        mape = 100 * np.mean(np.abs(m.predict(g) / g["tpot_s"] - 1))
        assert mape < 6, (model, gpu, mape)
        # decode steps get cheaper with more GPUs per layer: the weight-read term dominates
        assert m.params_.loc["a5", "value"] > 0


@pytest.mark.realdata
def test_mlenergy_lowest_energy_under_tpot_bound(real_data):
    df = energylens.read_mlenergy_leaderboard(real_data / "mlenergy_v2")
    sizes = df.groupby(["model", "gpu", "workload"]).size()
    key = sizes.idxmax()
    g = df[(df.model == key[0]) & (df.gpu == key[1]) & (df.workload == key[2])]
    energy = _quiet(EnergyLensModel(), g)
    lat = _quiet(LatencyModel(target="tpot_s"), g)
    assert 100 * np.mean(np.abs(lat.predict(g) / g["tpot_s"] - 1)) < 15
    bound = float(g["tpot_s"].median())
    # bound on the measured column: every feasible row honours it exactly
    r = select_config(energy, g, constraints={"tpot_s": bound})
    ok = r[r.feasible]
    assert len(ok) and (ok["tpot_s"] <= bound).all()
    assert r[~r.feasible]["reason"].str.startswith("tpot_s").all()
    # bound on the fitted latency model: the pick is measured within 15% of the bound
    cand = g.drop(columns=["energy_j", "tpot_s"])
    r2 = select_config(energy, cand, constraints={"tpot_s": bound}, latency_model=lat)
    pick = r2.index[0]
    assert g.loc[pick, "tpot_s"] <= 1.15 * bound
    assert (r2[r2.feasible]["tpot_s"] <= bound).all()


def test_save_load_and_clone_keep_the_target(tmp_path):
    from sklearn.base import clone

    from energylens.models.persistence import load_model

    df = _plant("ttft_s", _table(80), noise=0.01)
    m = LatencyModel(target="ttft_s").fit(df)
    back = load_model(m.save(tmp_path / "ttft"))
    assert isinstance(back, LatencyModel) and back.target == "ttft_s"
    np.testing.assert_allclose(back.predict(df), m.predict(df))
    assert list(back.params_.index) == ["a1", "a2", "a3", "a4", "a10", "a11"]
    assert clone(m).get_params()["target"] == "ttft_s"
