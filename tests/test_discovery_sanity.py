"""Discovered formulas that stay sane: constants counted, poles and non-positive energies
refused over the measured ranges, the cap on distinct configurations, the training domain
of predictions, poor fits said, printed formulas that reproduce the predictions, and the
options checked before a search."""

from __future__ import annotations

import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import sympy

from energylens import select_config
from energylens.cli import main
from energylens.discovery import (
    Engine,
    Operon,
    PySR,
    SymbolicEnergyRegressor,
    TermSearch,
    derive_model,
    discover,
)
from energylens.discovery.engines import Candidate, Front
from energylens.discovery.engines.linear import additive_terms, refit_additive
from energylens.discovery.features import feature_table, target_values
from energylens.exceptions import EnergyLensWarning, ExtrapolationWarning, PoorFitWarning

from .test_discovery import _small_group, planted

B, si, so = sympy.symbols("B si so")
#: A formula a genetic search returned on six ML.ENERGY rows: a pole at B = 292.
POLE = 16.61 - 3.538e4 / (2.34e5 - 2.748 * B**2) + 587.6 / B
SANE = 16.77 + 555.7 / B
#: Batches measured around the pole, none at it.
BATCHES = np.array([64.0, 96, 128, 160, 192, 224, 256, 320, 352, 384, 416, 448, 480, 512])


class _Fixed(Engine):
    """An engine that returns given formulas (to test what every engine's search does)."""

    name = "fixed"

    def __init__(self, formulas=(), selected=None):
        self.formulas = formulas
        self.selected = selected

    def _search(self, F, y, weight, definitions, relative, progress):
        return [(e, i + 1, {}) for i, e in enumerate(self.formulas)], self.selected, {}


def _pole_table(batches=BATCHES) -> pd.DataFrame:
    df = pd.DataFrame({"batch_size": batches, "input_tokens": 256.0, "output_tokens": 300.0})
    df["energy_j"] = sympy.lambdify([B], POLE)(batches)
    return df


# ---- every constant counts; poles and negative energies are refused -------------------------
def test_simplification_counts_the_constants_inside_a_term():
    """The rational term carries three constants: with the constant and 1/B, five on six
    rows, which leaves no row to judge the fit, so it must go, even where it fits best."""
    b = np.array([64.0, 128, 256, 320, 384, 512])
    y = sympy.lambdify([B], POLE)(b) * (1 + 0.005 * np.random.default_rng(0).standard_normal(6))
    out = refit_additive(POLE, {"B": b}, y)
    assert {str(t) for _, t in additive_terms(out)} <= {"1", "1/B"}


def test_a_formula_with_a_pole_between_the_measured_batches_is_refused():
    df = _pole_table()
    F, defs, _ = feature_table(df, ["B"], ["inv_B"], batch_rule="cap")
    front = _Fixed([SANE, POLE]).search(F, target_values(df), definitions=defs)
    assert [c.equation for c in front] == [str(sympy.sympify(SANE))]
    (rejected,) = front.info["rejected"]
    assert "pole" in rejected["reason"] and "234000.0 - 2.748*B**2" in rejected["reason"]
    assert front.chosen().expression == sympy.sympify(SANE)
    # The same through discover: the exact fit is not selected, and it is said why.
    res = discover(df, engine=_Fixed([SANE, POLE]), batch_rule="cap")
    grid = pd.DataFrame({"batch_size": np.linspace(64, 512, 449), "input_tokens": 256.0,
                         "output_tokens": 300.0})
    assert np.all(res.predict(grid) > 15)
    assert "pole" in res.info_["rejected"][0]["reason"]


def test_a_formula_negative_inside_the_box_is_refused_and_nothing_sane_warns():
    from energylens.discovery.engines.sanity import DomainCheck

    df = _pole_table()
    F, defs, _ = feature_table(df, ["B"], ["inv_B"], batch_rule="cap")
    y = target_values(df)
    check = DomainCheck(F[["B"]])
    assert "gives energy" in check.defect(30.0 - 0.06 * B)  # < 0 above B = 500
    assert check.defect(30.0 - 0.05 * B) is None
    with pytest.warns(EnergyLensWarning, match="none of the 1 formulas found is sane"):
        front = _Fixed([30.0 - 0.06 * B]).search(F, y, definitions=defs)
    assert len(front) == 1 and "gives energy" in front[0].extra["defect"]


def test_real_group_gets_no_pole_from_the_genetic_engine(real_data):
    """ML.ENERGY v2, StarCoder2-15B on H100 (6 rows, batch 64 to 512): the default engine
    returned the formula with a pole at B = 292, predicting 6.4 J at batch 290 where the
    neighbours measure about 19 J."""
    pytest.importorskip("pyoperon")
    from energylens import read_mlenergy_leaderboard

    v2 = read_mlenergy_leaderboard(real_data / "mlenergy_v2")
    g = v2[(v2.model == "bigcode/starcoder2-15b") & (v2.gpu == "H100-80GB-HBM3")]
    res = discover(g, engine=Operon(n_threads=1))
    batches = np.arange(64.0, 513.0)
    grid = g.head(1).iloc[[0] * len(batches)].assign(batch_size=batches, running_batch=batches)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        pred = res.predict(grid)
    assert np.all((pred > 0.5 * g.energy_j.min()) & (pred < 2 * g.energy_j.max()))
    assert len(res.equations_) >= 1 and all(r["reason"] for r in res.info_["rejected"])


# ---- the cap counts configurations, not weights ---------------------------------------------
def test_repeated_rows_and_scaled_weights_change_nothing():
    df = _small_group()
    plain = discover(df, engine="terms")
    scaled = discover(df, engine="terms", sample_weight=np.full(len(df), 10.0))
    twice = discover(pd.concat([df, df], ignore_index=True), engine="terms")
    for other in (scaled, twice):
        assert list(other.table(8)["equation"]) == list(plain.table(8)["equation"])
        np.testing.assert_allclose(other.equations_["criterion"], plain.equations_["criterion"])
        np.testing.assert_allclose(other.equations_["loss"], plain.equations_["loss"])
    assert plain.equations_["n_terms"].max() <= 3  # (7 - 1) // 2


def test_real_group_repeated_or_weighted_is_not_overfitted(real_data):
    """gemma-2-27b-it on A100 (7 rows): weights of 10, or the table twice, brought back a
    6-term formula with a constant of -5216 J."""
    from energylens import read_mlenergy_leaderboard

    v2 = read_mlenergy_leaderboard(real_data / "mlenergy_v2")
    g = v2[(v2.model == "google/gemma-2-27b-it") & (v2.gpu == "A100-SXM4-40GB")]
    plain = discover(g, engine="terms")
    for res in (discover(g, engine="terms", sample_weight=np.full(len(g), 10.0)),
                discover(pd.concat([g, g]), engine="terms")):
        assert res.equation(digits=8) == plain.equation(digits=8)
        assert res.equations_["n_terms"].max() <= 3
    lo = g.assign(batch_size=g.batch_size.min(), running_batch=g.running_batch.min(), tp=g.tp.max())
    assert np.all(plain.predict(lo) > 0)  # the smallest batch at the largest tp: inside the box


# ---- predictions say when they extrapolate --------------------------------------------------
@pytest.fixture(scope="module")
def found():
    df = planted("inverse_batch", n=120).assign(tp=2, model="m", gpu="g")
    return df, discover(df, engine="terms")


def test_predict_flags_rows_outside_the_training_data(found):
    df, res = found
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res.predict(df)  # the training rows: no warning
    far = df.head(3).assign(input_tokens=[100.0, 20_000.0, 100.0])
    with pytest.warns(ExtrapolationWarning, match=r"1 of 3 row\(s\).*input_tokens up to 2e\+04"):
        res.predict(far)
    # tp was 2 throughout; the formula does not read it, and tp = 8 is still outside the data
    with pytest.warns(ExtrapolationWarning, match=r"tp up to 8"):
        res.predict(df.head(2).assign(tp=8))
    with pytest.warns(ExtrapolationWarning, match=r"model 'other' not seen"):
        res.predict(df.head(2).assign(model="other"))
    with pytest.warns(ExtrapolationWarning, match=r"2 of 3 row\(s\)"):
        pi = res.predict_interval(far.assign(tp=[2, 2, 8]))
    assert pi["extrapolated"].tolist() == [False, True, True]
    assert pi["extrapolated_by"].iloc[2] == "tp"
    with pytest.warns(ExtrapolationWarning):
        np.testing.assert_allclose(pi["energy_j"], res.predict(far.assign(tp=[2, 2, 8])))
    assert pi[["lower", "upper"]].isna().all().all()


def test_select_config_shows_which_candidates_extrapolate(found):
    df, res = found
    cand = df.head(4)[["tp", "batch_size", "input_tokens", "output_tokens"]].assign(
        tp=[2, 2, 4, 4], batch_size=[4.0, 16.0, 4.0, 16.0])
    with pytest.warns(ExtrapolationWarning):
        ranked = select_config(res, cand)
    assert ranked.sort_index()["extrapolated"].tolist() == [False, False, True, True]


def test_regressor_and_pickles_keep_the_domain(found, tmp_path):
    df, res = found
    reg = SymbolicEnergyRegressor(engine="terms").fit(df)
    with pytest.warns(ExtrapolationWarning, match="tp up to 8"):
        reg.predict(df.head(2).assign(tp=8))
    back = pickle.loads(pickle.dumps(res))
    assert back.domain_.ranges == res.domain_.ranges
    old = pickle.loads(pickle.dumps(res))
    del old.__dict__["domain_"], old.__dict__["scale_"]  # a result pickled before domains
    np.testing.assert_allclose(pickle.loads(pickle.dumps(old)).predict(df.head(2)),
                               res.predict(df.head(2)))


# ---- fit quality is said; printed formulas reproduce the predictions ------------------------
def test_poor_fit_is_warned_and_the_mape_shown():
    rng = np.random.default_rng(0)
    df = planted("linear", n=60).assign(energy_j=lambda d: d.energy_j * rng.lognormal(0, 0.8, 60))
    with pytest.warns(PoorFitWarning, match=r"in-sample MAPE \d+\.\d% exceeds 25%"):
        res = discover(df, engine=TermSearch(max_terms=2))
    assert re.search(r"in-sample MAPE \d+\.\d%", res.summary())
    with warnings.catch_warnings():
        warnings.simplefilter("error", PoorFitWarning)
        good = discover(planted("linear", n=60), engine=TermSearch(max_terms=2))
        discover(df, engine=TermSearch(max_terms=2), poor_fit_mape=500.0)
    assert good.equations_["mape_pct"].iloc[good.best_index_] < 2


class _Cancelling:
    """An engine object returning a formula whose terms nearly cancel on the rows."""

    def search(self, F, y, **kwargs):
        expr = 100.123456 * si - 100.0 * so + 10.0
        return Front((Candidate(expr, 3, 0.0),), 0, {})


def test_printed_formula_reproduces_the_predictions():
    df = pd.DataFrame({"input_tokens": np.linspace(100, 1000, 10)})
    df["output_tokens"] = df["input_tokens"] * 1.001
    df["energy_j"] = 100.123456 * df.input_tokens - 100.0 * df.output_tokens + 10.0
    res = discover(df, engine=_Cancelling(), features=["si", "so"])
    printed = res.summary().splitlines()[1].split(" = ", 1)[1].split("  (")[0]
    shown = sympy.lambdify([si, so], sympy.sympify(printed))(df.input_tokens, df.output_tokens)
    np.testing.assert_allclose(shown, res.predict(df), rtol=1e-3)
    assert "significant digits" in res.summary()
    assert res.table()["equation"].iloc[0] == printed


# ---- inputs and options ---------------------------------------------------------------------
def test_a_missing_value_in_a_default_feature_is_an_error_naming_it():
    df = planted("inverse_batch", n=40)
    df.loc[[3, 5], "input_tokens"] = [np.nan, np.inf]
    with pytest.raises(ValueError, match=r"column 'input_tokens' has 2 missing.*rows \[3, 5\]"):
        discover(df, engine="terms")
    # a column without any value is as if absent
    assert "N" not in discover(planted("inverse_batch", n=40).assign(params_b=np.nan),
                               engine="terms").features_


def test_array_columns_may_have_short_names():
    df = planted("inverse_batch", n=80)
    cols = ["batch_size", "input_tokens", "output_tokens"]
    reg = SymbolicEnergyRegressor(engine="terms", features=["B", "si", "so"], batch_rule="cap")
    reg.fit(df[cols].to_numpy(), df["energy_j"])
    ref = SymbolicEnergyRegressor(engine="terms", batch_rule="cap").fit(df)
    np.testing.assert_allclose(reg.predict(df[cols].to_numpy()), ref.predict(df), rtol=1e-9)
    assert reg.result_.terms_found() == ["si", "so/B"]


def test_engine_class_and_criterion_without_one_are_refused_before_any_search(monkeypatch):
    df = planted("inverse_batch", n=40)

    def no_search(*args, **kwargs):
        raise AssertionError("the search ran")

    monkeypatch.setattr(Operon, "_search", no_search)
    monkeypatch.setattr(PySR, "_search", no_search)
    with pytest.raises(TypeError, match=r"engine=TermSearch is a class.*TermSearch\(\)"):
        discover(df, engine=TermSearch)
    with pytest.raises(TypeError, match=r"engine=TermSearch is a class"):
        derive_model(df.assign(model="m", gpu="g"), engine=TermSearch)
    for engine in ("operon", Operon(), PySR()):
        with pytest.raises(ValueError, match="model_selection='criterion'.*term search"):
            discover(df, engine=engine, model_selection="criterion")


def test_cli_refuses_criterion_with_operon_before_the_search(tmp_path, monkeypatch, capsys):
    def no_search(*args, **kwargs):
        raise AssertionError("the search ran")

    monkeypatch.setattr(Operon, "_search", no_search)
    path = tmp_path / "t.csv"
    planted("inverse_batch", n=40).assign(model="m", gpu="g").to_csv(path, index=False)
    assert main(["discover", str(path), "--engine", "operon", "--selection", "criterion"]) == 2
    assert "model_selection='criterion'" in capsys.readouterr().err


def test_engine_settings_on_an_engine_given_by_name():
    reg = SymbolicEnergyRegressor(engine="terms").set_params(engine__max_terms=2)
    assert isinstance(reg.engine, TermSearch) and reg.engine.max_terms == 2
    df = planted("tp_overhead", n=80)
    assert reg.fit(df).equations_["n_terms"].max() <= 2
    with pytest.raises(ValueError, match="max_terms"):
        SymbolicEnergyRegressor(engine="operon").set_params(engine__max_terms=2)


def test_legacy_keywords_an_engine_lacks_are_not_dropped_silently(monkeypatch):
    df = planted("inverse_batch", n=40)
    with pytest.raises(ValueError, match=r"\['seed'\] do\(es\) not apply to the terms engine"):
        discover(df, engine="terms", seed=3)
    monkeypatch.setattr(PySR, "available", classmethod(lambda cls: (False, "no julia")))
    monkeypatch.setattr(Operon, "available", classmethod(lambda cls: (False, "not installed")))
    with pytest.warns(EnergyLensWarning, match=r"engine='auto' chose here: ignored"), \
            pytest.warns(FutureWarning):
        discover(df, engine="auto", seed=3, max_terms=2)


def test_phases_takes_a_bool():
    with pytest.raises(ValueError, match=r"phases=\.\.\.\) takes True or False, got 'prefill'"):
        discover(planted("inverse_batch", n=40), phases="prefill")
