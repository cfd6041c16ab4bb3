"""derive_model and DerivedEnergyModel: term recovery on planted tables, stability selection,
names, units and bounds of the parameters, persistence, grouped refits and the command line."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import energylens
from energylens import DerivedEnergyModel, GroupedModel, derive_model, load_model
from energylens.core.metrics import mape
from energylens.discovery import Derivation, physical_library
from energylens.exceptions import ModelFileError, PoorFitWarning
from energylens.models.derived import term_info

#: The planted form: term -> coefficient (the group scales multiply all of them).
PLANTED = {"si": 0.01, "si*(t - 1)": 0.004, "so/B": 0.5, "so": 0.03, "p*t/B": 2.0, "1": 4.0}


def planted_table(seed: int = 0, groups: int = 3, rows: int = 30, noise: float = 0.02,
                  terms: dict[str, float] = PLANTED) -> pd.DataFrame:
    """Energy from a known additive form, one scale per group, relative noise."""
    rng = np.random.default_rng(seed)
    n = groups * rows
    df = pd.DataFrame({"model": np.repeat([f"m{i}" for i in range(groups)], rows), "gpu": "g",
                       "tp": rng.choice([1, 2, 4, 8], n), "pp": rng.choice([1, 2], n),
                       "batch_size": rng.choice([2.0, 8.0, 32.0, 128.0], n),
                       "input_tokens": rng.uniform(64, 4096, n),
                       "output_tokens": rng.uniform(32, 1024, n)})
    V = {"t": df.tp.to_numpy(float), "p": df.pp.to_numpy(float), "B": df.batch_size.to_numpy(),
         "si": df.input_tokens.to_numpy(), "so": df.output_tokens.to_numpy()}
    scale = np.repeat(np.exp(rng.normal(0, 1, groups)), rows)
    f = sum(c * DerivedEnergyModel(terms=[t])._basis(V)[:, 0] if t != "1" else c
            for t, c in terms.items())
    df["energy_j"] = scale * f * (1 + noise * rng.standard_normal(n))
    return df


@pytest.fixture(scope="module")
def planted():
    return planted_table()


@pytest.fixture(scope="module")
def derived(planted):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return derive_model(planted, n_resamples=6, batch_rule="cap")


def _same_terms(a, b) -> bool:
    return {term_info(t)["term"] for t in a} == {term_info(t)["term"] for t in b}


# ---- names, units, bounds ------------------------------------------------------------------
@pytest.mark.parametrize("term, name, unit, phase", [
    ("si", "k_si", "J/token", "prefill"),
    ("si**2", "k_si2", "J/token^2", "prefill"),
    ("so/B", "k_so_per_B", "J/token", "decode"),
    ("so*(si + so/2)", "k_so_ctx", "J/token^2", "decode"),
    ("si*(t - 1)", "k_si_tm1", "J/(token*GPU)", "prefill"),
    ("so*(p - 1)", "k_so_pm1", "J/(token*stage)", "decode"),
    ("t*p/B", "k_tp_per_B", "J/GPU", "static"),
    ("p*so*t/B", "k_so_tp_per_B", "J/(token*GPU)", "decode"),
    ("d*so", "k_so_d", "J/(replica*token)", "decode"),
    ("1/B", "k_per_B", "J", "static"),
    ("1", "k_const", "J", "static"),
    ("so**2/B", "k_so2_per_B", "J/token^2", "decode"),
])
def test_term_names_units_and_phases(term, name, unit, phase):
    info = term_info(term)
    assert (info["name"], info["unit"], info["phase"]) == (name, unit, phase)
    assert info["meaning"]


def test_parameters_are_named_non_negative_and_carry_units(derived):
    P = derived.params_
    assert list(P.index) == derived.parameter_names
    assert (P["lower"] == 0).all() and np.isinf(P["upper"]).all()
    assert P.loc["k_si", "unit"] == "J/token" and P.loc["k_so_per_B", "unit"] == "J/token"
    assert "selected in" in P.loc["k_si", "meaning"]
    assert P["stderr"].notna().all()
    report = derived.fit_report()
    assert "k_so_per_B" in report and "si = input tokens per request" in report


def test_terms_are_checked():
    df = planted_table(rows=10)
    with pytest.raises(ValueError, match="terms"):
        DerivedEnergyModel().fit(df)
    with pytest.raises(ValueError, match="repeats"):
        DerivedEnergyModel(terms=["si", "si*1"]).fit(df)
    with pytest.raises(ValueError, match="coefficient"):
        DerivedEnergyModel(terms=["0.5*si"]).fit(df)
    with pytest.raises(ValueError, match="formula rejected"):
        DerivedEnergyModel(terms=["__import__('os')"]).fit(df)


def test_not_identifiable_term_is_fixed_with_its_reason():
    df = planted_table(rows=20)
    df["tp"] = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = DerivedEnergyModel(terms=["si", "si*(t - 1)", "so/B", "1"], batch_rule="cap").fit(df)
    P = m.params_
    assert P.loc["k_si_tm1", "fixed"] and "t" in P.loc["k_si_tm1", "note"]
    assert not P.loc["k_si", "fixed"]


# ---- presentation --------------------------------------------------------------------------
def test_equation_latex_and_legend(derived):
    eq = derived.equation()
    assert eq.startswith("E = ") and "si" in eq
    consts = [c for c in eq.replace("E = ", "").split(" + ")]
    assert all(len(c.split("*")[0].replace(".", "").replace("e-", "").lstrip("0")) <= 6 for c in consts)
    assert "s_i" in derived.latex() and "s_o" in derived.latex()
    assert "where" in derived.formula and "B = effective running batch" in derived.formula
    unfitted = DerivedEnergyModel(terms=["si", "so/B"])
    assert unfitted.equation() == "E = k_si*si + k_so_per_B*so/B"
    table = derived.terms_table()
    assert list(table["parameter"]) == derived.parameter_names
    assert table["frequency"].between(0.5, 1).all()


def test_from_expression_takes_the_additive_terms():
    m = DerivedEnergyModel.from_expression("0.3*so*(t - 1)/B + 2*si + 0.5")
    assert _same_terms(m.terms, ["so*t/B", "so/B", "si", "1"])


# ---- derivation ----------------------------------------------------------------------------
def test_planted_terms_are_recovered(derived):
    assert _same_terms(derived.terms, PLANTED)
    assert isinstance(derived.derivation_, Derivation)
    kept = derived.derivation_.terms[derived.derivation_.terms["kept"]]
    assert (kept["frequency"] > 0.5).all()
    assert "kept" in str(derived.derivation_)


def test_group_scales_are_taken_out(planted):
    """Pooled without group scales, the search confounds the groups' sizes with terms."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_group = derive_model(planted, n_resamples=4, batch_rule="cap")
        pooled = derive_model(planted, n_resamples=4, batch_rule="cap", by=())
    assert _same_terms(per_group.terms, PLANTED)
    assert not _same_terms(pooled.terms, PLANTED)
    scales = per_group.derivation_.scales
    assert len(scales) == 3 and scales["searched"].all() and (scales["scale"] > 0).all()


def test_refit_per_group_recovers_the_coefficients(derived, planted):
    g = GroupedModel(derived, by=["model"]).fit(planted)
    assert mape(planted["energy_j"], g.predict(planted)) < 3.0
    m0 = g.models_[("m0",)]
    ratio = m0.params_["value"] / pd.Series({term_info(t)["name"]: c for t, c in PLANTED.items()})
    assert ratio.std() / ratio.mean() < 0.15  # every coefficient times the group's scale


def test_stability_frequencies_are_reproducible(planted):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = derive_model(planted, n_resamples=4, random_state=3, batch_rule="cap")
        b = derive_model(planted, n_resamples=4, random_state=3, batch_rule="cap")
        c = derive_model(planted, n_resamples=4, random_state=4, batch_rule="cap")
    pd.testing.assert_frame_equal(a.derivation_.terms, b.derivation_.terms)
    assert a.terms == b.terms and a.selection_frequency == b.selection_frequency
    assert np.allclose(a.derivation_.terms["frequency"] * 4 % 1, 0)  # counts out of 4
    assert c.derivation_.random_state == 4


def test_threshold_decides_what_is_kept():
    df = planted_table(noise=0.15, rows=15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strict = derive_model(df, n_resamples=6, threshold=0.9, batch_rule="cap")
        loose = derive_model(df, n_resamples=6, threshold=0.0, batch_rule="cap")
    t = strict.derivation_.terms
    assert set(strict.terms) == set(t.loc[t["frequency"] > 0.9, "term"])
    assert set(loose.terms) == set(t["term"]) - set(t.loc[t["frequency"] == 0, "term"])
    assert len(loose.terms) >= len(strict.terms)


def test_phases_are_searched_apart():
    df = planted_table(rows=75, groups=1)
    rng = np.random.default_rng(1)
    si, so, B, t = df.input_tokens, df.output_tokens, df.batch_size, df.tp
    noise = 1 + 0.01 * rng.standard_normal((2, len(df)))
    df["prefill_energy_j"] = (0.01 * si + 0.004 * si * (t - 1) + 1.0) * noise[0]
    df["decode_energy_j"] = (0.5 * so / B + 0.03 * so) * noise[1]
    df["energy_j"] = df["prefill_energy_j"] + df["decode_energy_j"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = derive_model(df, n_resamples=4, batch_rule="cap", by=())
    assert m.derivation_.phases == ("prefill", "decode")
    assert _same_terms(m.terms, ["si", "si*(t - 1)", "1", "so/B", "so"])
    comp = m.predict_components(df)
    assert np.allclose(comp.sum(axis=1), m.predict(df))
    assert mape(df["decode_energy_j"], comp["decode_j"]) < 2.0
    assert set(m.derivation_.fronts) == {"prefill", "decode"}
    assert m.derivation_.fronts["decode"].table()["selected"].sum() == 1


def test_library_drops_dependent_terms():
    df = planted_table(rows=20)
    df["pp"] = 1
    V = {"t": df.tp.to_numpy(float), "p": np.ones(len(df)), "B": df.batch_size.to_numpy(),
         "si": df.input_tokens.to_numpy(), "so": df.output_tokens.to_numpy()}
    F, defs = physical_library(V, "total")
    assert "si_pm1" not in F and "si_tm1" in F  # p does not vary
    assert "tp_per_B" in F and "tm1_per_B" not in F  # t/B = 1/B + (t-1)/B: one of them
    A = F.to_numpy() / np.linalg.norm(F.to_numpy(), axis=0)
    assert np.linalg.matrix_rank(np.column_stack([np.ones(len(F)), A])) == F.shape[1] + 1
    assert all(str(e) == term_info(str(e))["term"] for e in defs.values())


def test_bad_tables_raise_clear_errors(planted):
    with pytest.raises(ValueError, match=r"output_tokens"):
        derive_model(planted.drop(columns=["output_tokens"]))
    bad = planted.copy()
    bad.loc[[3, 7], "energy_j"] = -1.0
    with pytest.raises(ValueError, match=r"energy_j.*\[3, 7\]"):
        derive_model(bad)
    with pytest.raises(ValueError, match="at least 8 rows"):
        derive_model(planted.head(9).assign(model=[f"m{i}" for i in range(9)]))
    with pytest.raises(ValueError, match="n_resamples"):
        derive_model(planted, n_resamples=0)
    with pytest.raises(ValueError, match="phases=True"):
        derive_model(planted, phases=True)
    # a latency is not an energy: the model would call seconds joules
    with pytest.raises(ValueError, match=r"'latency_s' is not an energy column.*LatencyModel"):
        derive_model(planted.assign(latency_s=1.0), "latency_s")


def test_pooled_fit_of_several_groups_says_to_refit_per_group(planted):
    apart = planted.assign(energy_j=planted["energy_j"] * np.where(planted["model"] == "m0", 20, 1))
    with pytest.warns(PoorFitWarning, match=r"GroupedModel\(model, by=\['model', 'gpu'\]\)"):
        derive_model(apart, n_resamples=2, batch_rule="cap")


# ---- persistence ---------------------------------------------------------------------------
def test_model_file_round_trip(derived, planted, tmp_path):
    path = derived.save(tmp_path / "derived.json")
    back = load_model(path)
    assert type(back) is DerivedEnergyModel
    assert back.terms == derived.terms and back.selection_frequency == derived.selection_frequency
    assert np.array_equal(back.predict(planted), derived.predict(planted))
    pd.testing.assert_frame_equal(back.params_, derived.params_)
    assert back.formula == derived.formula
    again = pickle.loads(pickle.dumps(derived))
    assert np.array_equal(again.predict(planted), derived.predict(planted))
    data = json.loads(path.read_text())
    data["init_params"]["terms"] = ["si", "__import__('os')"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "bad.json")


def test_grouped_model_folder_round_trip(derived, planted, tmp_path):
    g = GroupedModel(derived, by=["model"]).fit(planted)
    back = load_model(g.save(tmp_path / "groups"))
    assert np.allclose(back.predict(planted), g.predict(planted))


# ---- command line --------------------------------------------------------------------------
def test_cli_discover_derive_writes_a_model_predict_and_select_accept(tmp_path):
    """``discover --derive -o model.json``: the pooled form; ``--per-group``: a folder of
    per-group refits with the pooled fit as fallback."""
    from energylens.cli import main

    data = tmp_path / "table.csv"
    planted_table(rows=25).to_csv(data, index=False)
    cands = tmp_path / "candidates.csv"
    planted_table(seed=1, rows=4).drop(columns=["energy_j"]).to_csv(cands, index=False)
    model = tmp_path / "model.json"
    assert main(["discover", str(data), "--derive", "--resamples", "4", "-o", str(model),
                 "--quiet"]) == 0
    assert type(load_model(model)) is DerivedEnergyModel
    # A fresh process, as a user runs it: the model file names its class, found by name.
    for cmd in ("predict", "select"):
        out = tmp_path / f"{cmd}.csv"
        r = subprocess.run([sys.executable, "-m", "energylens", cmd, str(model), str(cands), "-o",
                            str(out)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        table = pd.read_csv(out)
        assert len(table) == 12 and (table["energy_j"] > 0).all()
    assert main(["discover", str(data), "--derive", "-o", str(tmp_path / "x.json"),
                 "--features", "tp"]) == 2
    groups = tmp_path / "groups"
    assert main(["discover", str(data), "--derive", "--per-group", "--resamples", "2", "-o",
                 str(groups), "--quiet"]) == 0
    grouped = load_model(groups)
    assert set(grouped.models_) == {("m0", "g"), ("m1", "g"), ("m2", "g")}
    assert type(grouped.fallback_) is DerivedEnergyModel
    assert main(["predict", str(groups), str(cands), "-o", str(tmp_path / "g.csv")]) == 0


@pytest.mark.realdata
def test_wilkins_sweeps_give_decode_terms(real_data):
    df = energylens.read_wilkins(real_data / "wilkins2024", experiments=("input-test", "output-test"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = derive_model(df, n_resamples=5)
        g = GroupedModel(m, min_rows=2).fit(df)
    assert "so" in m.terms
    assert all(term_info(t)["phase"] in ("decode", "prefill", "static") for t in m.terms)
    assert mape(df["energy_j"], g.predict(df)) < 10.0


def test_any_engine_object_gives_candidates_named_after_their_text(planted):
    """A genetic engine returns formulas over the library's columns; the additive terms of its
    choice become the candidates, named after their text where they are not library terms."""
    import sympy

    from energylens.discovery import Engine

    class Products(Engine):
        name = "products"

        def _search(self, F, y, weight, definitions, relative, progress):
            si, so, so_per_B = (sympy.Symbol(c) for c in ("si", "so", "so_per_B"))
            return [(0.01 * si + 0.5 * so_per_B + 1e-6 * si * so, 9, {})], 0, {}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = derive_model(planted, engine=Products(), n_resamples=2, batch_rule="cap")
    assert _same_terms(m.terms, ["si", "so/B", "si*so"])
    assert "k_si_so" in m.parameter_names and m.derivation_.engine == "products"
    assert m.params_.loc["k_si_so", "unit"] == "J/token^2"


def test_saturating_batch_rule_table():
    """A table of finite request pools under a batch cap (the saturating rule): the search
    takes k = 1 and the model fits its own."""
    df = planted_table(rows=20).assign(batch_kind="cap", n_requests=lambda d: 4 * d["batch_size"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = derive_model(df, n_resamples=2)
    assert m.derivation_.batch_rule == "saturating" and m.batch_rule_ == "saturating"
    assert m.batch_k_ is not None and m.batch_k_ > 0


# ---- what the fronts predict, phases that do not add up, options ----------------------------
def test_fronts_predict_joules_of_the_groups_searched(derived, planted):
    """The fronts' formulas are of energy divided by each group's scale (here 0.4 to 4
    between groups); their predictions were that ratio, labelled energy_j."""
    front = derived.derivation_.fronts["total"]
    ratio = front.predict(planted) / planted["energy_j"]
    assert 0.8 < ratio.min() and ratio.max() < 1.25
    assert "energy_j/scale = " in front.summary()
    with pytest.raises(ValueError, match="groups of .* without a scale"), \
            pytest.warns(energylens.ExtrapolationWarning, match="model 'other' not seen"):
        front.predict(planted.head(2).assign(model="other"))


def _phase_table(rows=40):
    df = planted_table(rows=rows, groups=1)
    df["prefill_energy_j"] = 0.01 * df.input_tokens + 1.0
    df["decode_energy_j"] = 0.5 * df.output_tokens / df.batch_size + 0.03 * df.output_tokens
    df["energy_j"] = df["prefill_energy_j"] + df["decode_energy_j"]
    return df


def test_phases_that_do_not_add_up_to_the_energy_are_named():
    df = _phase_table()
    df.loc[[4, 9], "energy_j"] *= 1.5
    with pytest.raises(ValueError, match=r"differs from prefill_energy_j \+ decode_energy_j by more "
                                         r"than 5% in 2 row\(s\) \(first: 4 \("):
        derive_model(df, phases=True, n_resamples=2, by=())
    with pytest.warns(energylens.EnergyLensWarning, match=r"2 row\(s\).*searching the total"):
        m = derive_model(df, n_resamples=2, by=(), batch_rule="cap")
    assert m.derivation_.phases == ("total",)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert derive_model(_phase_table(), n_resamples=2, by=()).derivation_.phases == (
            "prefill", "decode")


def test_a_by_column_the_table_lacks_is_an_error(planted):
    with pytest.raises(ValueError, match=r"\['modle'\].*did you mean 'model'"):
        derive_model(planted, by=["modle"], n_resamples=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = derive_model(planted.drop(columns="gpu"), n_resamples=2, batch_rule="cap")
    assert list(m.derivation_.scales.columns[:1]) == ["model"]  # the default skips gpu


def test_a_form_of_constants_alone_fits():
    df = planted_table(rows=10, groups=1)
    with pytest.warns(PoorFitWarning):  # a constant does not describe these energies
        m = DerivedEnergyModel(terms=["1"]).fit(df)
    assert m.coef_[0] > 0 and np.allclose(m.predict(df), m.coef_[0])
    assert m.formula == "E = k_const"
