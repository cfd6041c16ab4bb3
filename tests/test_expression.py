"""Tests of ExpressionModel and the safe formula parser."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import sympy
from scipy.optimize import check_grad

from energylens.discovery.sympy_tools import parse_expression
from energylens.models import load_model
from energylens.models.expression import ExpressionModel


def _df(n=60, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"tp": rng.choice([1, 2, 4], n), "batch_size": rng.choice([1.0, 8.0, 32.0], n),
                       "input_tokens": rng.uniform(100, 2000, n), "output_tokens": rng.uniform(20, 800, n)})
    e = 0.01 * df.input_tokens * (1 + 0.1 * (df.tp - 1)) + 0.4 * df.output_tokens / df.batch_size + 2.0
    df["energy_j"] = e * (1 + noise * rng.standard_normal(n))
    return df


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "si.__class__", "(lambda: 1)()", "si[0]", "'a' + si",
    "[x for x in si]", "si if so else B", "si @ so", "si < so", "exec('1')", "open('f')",
    "log(si, base=2)", "f(*si)", "9**99", "2**(3**50)", "1j*si", "True*si", "si; so", "x = si",
])
def test_safe_parser_rejects_code(text):
    with pytest.raises(ValueError, match="formula rejected"):
        parse_expression(text, ["si", "so", "B"])


def test_safe_parser_accepts_formulas():
    e = parse_expression("-a0*si**2 + a1*log(so) - exp(B)/sqrt(abs(si)) + 1.5e-3", ["si", "so", "B", "a0", "a1"])
    si, so, B, a0, a1 = sympy.symbols("si so B a0 a1")
    assert sympy.simplify(e - (-a0 * si**2 + a1 * sympy.log(so) - sympy.exp(B) / sympy.sqrt(sympy.Abs(si)) + 0.0015)) == 0
    with pytest.raises(ValueError, match="unknown name"):
        parse_expression("os", ["si"])
    with pytest.raises(ValueError, match="BitXor"):
        parse_expression("si ^ 2", ["si"])
    assert parse_expression("si ^ 2", ["si"], caret_is_pow=True) == sympy.Symbol("si") ** 2


def test_from_sympy_names_constants_and_refits():
    si, so, B, t = sympy.symbols("si so B t")
    expr = 0.012 * si * (1 + 0.08 * (t - 1)) + 0.35 * so / B + 1.7
    m = ExpressionModel.from_sympy(sympy.expand(expr))
    assert sorted(m.starts) == ["a0", "a1", "a2", "a3"]
    assert sorted(m.starts.values()) == pytest.approx(sorted([0.012 * 0.92, 0.012 * 0.08, 0.35, 1.7]))
    assert set(m._model_variables()) == {"t", "B", "si", "so"}
    df = _df()
    m.fit(df)
    # sympy writes 0.012*si*(1 + 0.08*(t - 1)) as 0.012*si*(0.08*t + 0.92): one constant too
    # many; the fit freezes the redundant one and still reproduces the data.
    from energylens.exceptions import IdentifiabilityWarning

    m5 = ExpressionModel.from_sympy(expr)
    assert len(m5.starts) == 5
    with pytest.warns(IdentifiabilityWarning):
        m5.fit(df)
    np.testing.assert_allclose(m5.predict(df), df["energy_j"], rtol=1e-8)
    np.testing.assert_allclose(m.predict(df), df["energy_j"], rtol=1e-8)
    assert m.params_.loc["a0", "value"] == pytest.approx(m.coef_[0])
    assert "a0" in m.fit_report()
    comp = m.predict_components(df)
    np.testing.assert_allclose(comp.sum(axis=1), m.predict(df), rtol=1e-12)
    assert (comp["static_j"] > 0).all()
    iv = m.predict_interval(df.head(3))
    assert list(iv.columns[:3]) == ["energy_j", "lower", "upper"]


def test_canonical_column_names_and_transforms():
    m = ExpressionModel(expression="a0*input_tokens + a1*output_tokens*inv_B + a2")
    assert set(m._model_variables()) == {"B", "si", "so"}
    df = _df()
    df["energy_j"] = 0.01 * df.input_tokens + 0.4 * df.output_tokens / df.batch_size + 2.0
    m.fit(df)
    np.testing.assert_allclose(m.coef_, [0.01, 0.4, 2.0], rtol=1e-6)


def test_jacobian_matches_finite_differences():
    m = ExpressionModel(expression="a0*si*(1 + a1*t_m1) + a2*so/B**a3 + log(a4*si)",
                        starts={"a0": 0.01, "a1": 0.1, "a2": 0.3, "a3": 1.0, "a4": 2.0})
    df = _df(10)
    from energylens.discovery.features import table_variables

    V = table_variables(df, m._model_variables(), batch_rule="cap")
    th0 = np.array([0.01, 0.1, 0.3, 1.0, 2.0])
    for i in range(len(df)):
        def f(th, i=i):
            return m._kernel(V, th)[i]

        def g(th, i=i):
            return m._jacobian(V, th)[i]

        assert check_grad(f, g, th0) < 1e-5 * (1 + abs(f(th0)))


def test_save_load_and_pickle(tmp_path):
    df = _df(noise=0.01)
    m = ExpressionModel(expression="a0*si*(1 + a1*(t - 1)) + a2*so/B + a3",
                        starts={"a0": 0.01, "a1": 0.1, "a2": 0.4, "a3": 2.0}).fit(df)
    path = m.save(tmp_path / "m.json")
    back = load_model(path)
    assert isinstance(back, ExpressionModel)
    np.testing.assert_allclose(back.predict(df), m.predict(df), rtol=1e-12)
    p2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(p2.predict(df), m.predict(df), rtol=1e-12)
    # A tampered file with code in the formula is refused, not run.
    data = json.loads(path.read_text())
    data["init_params"]["expression"] = "__import__('os').system('echo pwned') + a0"
    path.write_text(json.dumps(data))
    from energylens.exceptions import ModelFileError

    with pytest.raises(ModelFileError, match="formula rejected"):
        load_model(path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="expression"):
        ExpressionModel().fit(_df())
    with pytest.raises(ValueError, match="no parameter"):
        ExpressionModel(expression="si + so").fit(_df())
    with pytest.raises(ValueError, match="starts"):
        ExpressionModel(expression="a0*si", starts={"a9": 1.0}).fit(_df())
    with pytest.raises(ValueError, match="no numeric constant"):
        ExpressionModel.from_sympy(sympy.Symbol("si"))
    with pytest.raises(ValueError, match="needs the column"):
        ExpressionModel(expression="a0*si + a1*params_b").fit(_df())
    with pytest.raises(ValueError, match="must be > 0"):
        bad = _df()
        bad.loc[0, "input_tokens"] = 0.0
        ExpressionModel(expression="a0*si").fit(bad)


def test_sklearn_clone_and_arrays():
    from sklearn.base import clone

    m = ExpressionModel(expression="a0*si + a1*so", starts={"a0": 0.01, "a1": 0.1})
    c = clone(m)
    assert c.get_params()["expression"] == "a0*si + a1*so"
    df = _df()
    df["energy_j"] = 0.02 * df.input_tokens + 0.3 * df.output_tokens
    X = df[["input_tokens", "output_tokens"]].to_numpy()
    c.fit(X, df["energy_j"])  # array columns in _variables order (si, so)
    np.testing.assert_allclose(c.coef_, [0.02, 0.3], rtol=1e-8)


def test_constant_formula_fits_predicts_saves_and_loads(tmp_path):
    df = pd.DataFrame({"input_tokens": [100.0, 200, 300, 400, 500],
                       "output_tokens": [50.0, 80, 50, 80, 50],
                       "energy_j": [10.0, 11, 9, 10, 10.5]})
    m = ExpressionModel(expression="a0").fit(df)
    pred = m.predict(df)
    assert pred.shape == (5,) and np.allclose(pred, pred[0]) and 9.0 < pred[0] < 11.0
    assert np.allclose(m.predict_components(df)["static_j"], pred)
    m.save(tmp_path / "const.json")
    back = load_model(tmp_path / "const.json")
    assert np.allclose(back.predict(df), pred)
    assert np.allclose(pickle.loads(pickle.dumps(m)).predict(df), pred)


def test_constant_row_of_a_discovered_front_refits():
    from energylens.discovery import TermSearch, discover

    df = pd.DataFrame({"input_tokens": [100.0, 200, 300, 400, 500, 600, 700],
                       "output_tokens": [50.0, 80, 50, 80, 50, 80, 50],
                       "energy_j": [10.0, 11, 9, 10, 10.5, 9.5, 10]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = discover(df, engine=TermSearch())
        assert not res.sympy(0).free_symbols
        m = res.to_model(index=0).fit(df)
    assert np.allclose(m.predict(df), res.predict(df, index=0), rtol=1e-3)
