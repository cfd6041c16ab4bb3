"""Engines as objects: scikit-learn parameters, defaults in the classes, searches that leave
the engine unchanged, row weights (bootstrap counts), and pyoperon's single threaded-or-not run."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from energylens.discovery import (
    DEFAULT_TRANSFORMS,
    Engine,
    Front,
    Operon,
    PySR,
    TermSearch,
    discover,
    resolve_engine,
)
from energylens.discovery.engines import operon as operon_module
from energylens.discovery.features import feature_table, target_values

from .test_discovery import PLANTED, _structure, planted

FEATURES = ["tp", "pp", "batch_size", "input_tokens", "output_tokens"]


def _search_inputs(name="inverse_batch", n=200, seed=0):
    df = planted(name, n=n, seed=seed)
    F, defs, _ = feature_table(df, FEATURES, DEFAULT_TRANSFORMS)
    return F, target_values(df), defs


@pytest.mark.parametrize("cls", [TermSearch, Operon, PySR])
def test_engines_are_sklearn_objects_with_their_defaults(cls):
    engine = cls()
    params = engine.get_params()
    assert params and all(getattr(engine, k) == v for k, v in params.items())
    assert repr(engine) == f"{cls.__name__}()"
    copy = clone(engine).set_params(**{next(iter(params)): params[next(iter(params))]})
    assert type(copy) is cls and copy is not engine
    assert resolve_engine(cls.name).get_params() == params


def test_defaults_live_in_the_engine():
    assert TermSearch().max_terms == 6 and TermSearch().max_order == 3
    assert TermSearch().exhaustive_max == 3 and TermSearch().criterion == "mdl"
    assert Operon().generations == 100 and Operon().n_threads is None
    assert PySR().niterations == 40
    res = discover(planted("tp_overhead"), engine=TermSearch(max_terms=2))
    assert res.equations_["complexity"].max() == 2


def test_bad_settings_are_reported_in_sklearn_grammar():
    F, y, defs = _search_inputs()
    with pytest.raises(ValueError, match="The 'max_terms' parameter of TermSearch must be an int"):
        TermSearch(max_terms=0).search(F, y)
    with pytest.raises(ValueError, match="The 'criterion' parameter of Operon must be a str among"):
        Operon(criterion="aic").search(F, y)
    with pytest.raises(ValueError, match="must be a str among"):
        resolve_engine("gplearn")


def test_search_returns_a_front_and_leaves_the_engine_unchanged():
    F, y, defs = _search_inputs()
    engine = TermSearch(max_terms=4)
    before = dict(vars(engine))
    front = engine.search(F, y, definitions=defs)
    assert vars(engine) == before
    assert isinstance(front, Front) and len(front) >= 2
    assert [c.complexity for c in front] == sorted(c.complexity for c in front)
    assert all(a.loss > b.loss for a, b in zip(front, front[1:]))
    # With definitions the formulas are in the base variables, without them in the columns.
    assert front.chosen().terms() == ["si", "so/B"]
    raw = engine.search(F, y)
    assert raw.chosen().terms() == ["inv_B*so", "si"]
    assert front.info["library_size"] == raw.info["library_size"] > 10


def test_integer_weights_equal_repeated_rows():
    F, y, defs = _search_inputs(n=120)
    counts = np.random.default_rng(1).multinomial(len(y), np.full(len(y), 1 / len(y)))
    idx = np.repeat(np.arange(len(y)), counts)
    engine = TermSearch(max_terms=3)
    weighted = engine.search(F, y, definitions=defs, sample_weight=counts)
    repeated = engine.search(F.iloc[idx].reset_index(drop=True), y[idx], definitions=defs)
    assert [c.terms() for c in weighted] == [c.terms() for c in repeated]
    np.testing.assert_allclose([c.loss for c in weighted], [c.loss for c in repeated], rtol=1e-9)
    np.testing.assert_allclose([c.extra["criterion"] for c in weighted],
                               [c.extra["criterion"] for c in repeated], rtol=1e-9)
    with pytest.raises(ValueError, match="sample_weight"):
        engine.search(F, y, sample_weight=-counts)


def test_a_stability_loop_reads_each_terms_selection():
    df = planted("tp_overhead", n=200)
    F, defs, _ = feature_table(df, FEATURES, DEFAULT_TRANSFORMS)
    y = target_values(df)
    engine = TermSearch()
    rng = np.random.default_rng(0)
    freq: dict[str, int] = {}
    for _ in range(8):
        counts = rng.multinomial(len(y), np.full(len(y), 1 / len(y)))
        for term in engine.search(F, y, definitions=defs, sample_weight=counts).chosen().terms():
            freq[term] = freq.get(term, 0) + 1
    # Terms come expanded: si*(1 + 0.2*(t - 1)) is si and si*t.
    assert {t for t, k in freq.items() if k >= 6} == set(_structure(PLANTED["tp_overhead"]))


def test_auto_resolution(monkeypatch):
    monkeypatch.setattr(PySR, "available", classmethod(lambda cls: (False, "no julia")))
    monkeypatch.setattr(Operon, "available", classmethod(lambda cls: (True, "")))
    assert isinstance(resolve_engine("auto"), Operon)
    monkeypatch.setattr(Operon, "available", classmethod(lambda cls: (False, "not installed")))
    assert isinstance(resolve_engine("auto"), TermSearch)
    mine = TermSearch(max_terms=2)
    assert resolve_engine(mine) is mine and isinstance(mine, Engine)


# ---- pyoperon -------------------------------------------------------------------------------
SMALL = dict(generations=8, population_size=100, max_evaluations=50_000)


def test_operon_runs_once_on_every_core(monkeypatch):
    sk = pytest.importorskip("pyoperon.sklearn")
    F, y, defs = _search_inputs(n=100)
    calls = []
    fit = sk.SymbolicRegressor.fit

    def counting_fit(self, X, y):
        calls.append(self.get_params())
        return fit(self, X, y)

    monkeypatch.setattr(sk.SymbolicRegressor, "fit", counting_fit)
    front = Operon(**SMALL).search(F, y, definitions=defs)
    assert len(calls) == 1  # no second pass to estimate the noise
    assert calls[0]["n_threads"] == operon_module.default_threads()
    assert calls[0]["uncertainty"][0] == pytest.approx(operon_module.noise_estimate(
        np.asarray(F, float), y))
    assert front.info["noise_sd"] > 0 and len(front) >= 1


def test_operon_front_depends_on_the_seed_not_the_threads():
    pytest.importorskip("pyoperon")
    F, y, defs = _search_inputs(n=100)
    one = Operon(random_state=3, n_threads=1, **SMALL).search(F, y, definitions=defs)
    two = Operon(random_state=3, n_threads=2, **SMALL).search(F, y, definitions=defs)
    again = Operon(random_state=3, n_threads=2, **SMALL).search(F, y, definitions=defs)
    assert [c.equation for c in one] == [c.equation for c in two] == [c.equation for c in again]
    assert one.info["random_state"] == 3 and one.info["objectives"].startswith("[")


def test_operon_weights_are_repeated_rows_and_must_be_counts():
    pytest.importorskip("pyoperon")
    F, y, defs = _search_inputs(n=60)
    counts = np.tile([0, 1, 2], 20)
    idx = np.repeat(np.arange(len(y)), counts)
    engine = Operon(n_threads=1, **SMALL)
    a = engine.search(F, y, sample_weight=counts)
    b = engine.search(F.iloc[idx].reset_index(drop=True), y[idx])
    assert [c.equation for c in a] == [c.equation for c in b]
    with pytest.raises(ValueError, match="whole row counts"):
        engine.search(F, y, sample_weight=np.full(len(y), 0.5))


def test_operon_rejects_unknown_operator():
    F, y, _ = _search_inputs(n=50)
    with pytest.raises(ValueError, match="operator"):
        Operon(operators=("add", "gamma")).search(F, y)


def test_noise_estimate_is_an_upper_bound_of_the_noise():
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 10, (400, 2))
    y = 3 * X[:, 0] + X[:, 0] * X[:, 1] + rng.normal(0, 0.5, 400)
    assert 0.45 < operon_module.noise_estimate(X, y) < 0.6


@pytest.mark.slow
def test_operon_recovers_planted_structure_on_most_seeds():
    pytest.importorskip("pyoperon")
    df = planted("tp_overhead", n=200)
    ok = sum(_structure(discover(df, engine=Operon(random_state=seed, generations=30,
                                                   population_size=300)).energy_expression())
             == _structure(PLANTED["tp_overhead"]) for seed in range(5))
    assert ok >= 4
