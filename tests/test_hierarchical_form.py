"""The hierarchical form on its own: kernel, analytic Jacobian, terms, variables, descriptors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

from energylens.exceptions import CatalogueError
from energylens.models.hierarchical.form import (
    PARAMETER_NAMES,
    PARAMETERS,
    TERMS,
    energy_components,
    energy_jacobian,
    energy_kernel,
    resolve_terms,
)
from energylens.models.hierarchical.variables import example_variables, form_variables

THETA = np.array([p.init for p in PARAMETERS])


def _rows():
    """Rows that use every term: TP, PP, EP, replicas, an MoE model, a hybrid's state,
    latent and recorded prompts, a recorded request count."""
    t = pd.DataFrame({
        "model": ["Mixtral-8x7B", "Llama-3.1-70B", "NVIDIA-Nemotron-Nano-12B-v2", "gpt-oss-20b"],
        "gpu": ["H100-SXM", "A100-80GB", "B200", "H100-SXM"],
        "tp": [2, 4, 1, 1], "pp": [1, 2, 1, 1], "dp": [2, 1, 1, 4], "ep": [2, 1, 1, 1],
        "batch_size": [64.0, 16.0, 256.0, 8.0], "running_batch": [60.0, 16.0, 200.0, 8.0],
        "input_tokens": [512.0, 256.0, 1024.0, 128.0], "output_tokens": [300.0, 200.0, 400.0, 50.0],
        "input_tokens_assumed": [False, True, False, True],
        "n_requests": [np.nan, 500.0, np.nan, np.nan]})
    return form_variables(t)


def test_kernel_is_positive_and_grows_with_output_tokens():
    V = example_variables()
    E = energy_kernel(V, THETA)
    assert E.shape == (4,) and np.all(np.isfinite(E) & (E > 0))
    V2 = {**V, "so": V["so"] * 2}
    assert np.all(energy_kernel(V2, THETA) > E)
    # more requests in flight share the weight reads: energy per request falls with the batch
    assert np.all(np.diff(E) < 0)


@pytest.mark.parametrize("off", [None, *TERMS])
def test_analytic_jacobian_matches_finite_differences(off):
    V = _rows()
    terms = None if off is None else {off: False}
    rng = np.random.default_rng(0)
    for i in range(len(V["B"])):
        Vi = {k: v[i:i + 1] for k, v in V.items()}
        x0 = np.log(THETA) + 0.3 * rng.standard_normal(len(THETA))

        def f(x, Vi=Vi):
            return float(np.log(energy_kernel(Vi, np.exp(x), terms))[0])

        def g(x, Vi=Vi):
            return energy_jacobian(Vi, np.exp(x), terms)[1][0]

        assert check_grad(f, g, x0, epsilon=1e-7) < 1e-5


def test_switched_off_terms_have_no_derivative():
    V = _rows()
    _, D = energy_jacobian(V, THETA, {"drain": False, "ep": False, "gemm": False})
    for name in ("rho", "kappa", "lep", "dc"):
        assert np.all(D[:, PARAMETER_NAMES.index(name)] == 0), name
    # a recorded request count uses kappa, not the workload's rho
    _, D = energy_jacobian(V, THETA)
    rho, kappa = D[:, PARAMETER_NAMES.index("rho")], D[:, PARAMETER_NAMES.index("kappa")]
    assert kappa[1] > 0 and rho[1] == 0 and rho[0] > 0 and kappa[0] == 0
    # a recorded prompt length leaves the latent one unused
    si = D[:, PARAMETER_NAMES.index("si")]
    assert si[0] == 0 and si[1] > 0


def test_components_sum_to_the_energy():
    V = _rows()
    c = energy_components(V, THETA)
    np.testing.assert_allclose(c[["prefill_j", "decode_j", "static_j"]].sum(axis=1),
                               energy_kernel(V, THETA), rtol=1e-12)
    np.testing.assert_allclose(c["decode_memory_j"] + c["decode_compute_j"], c["decode_j"])
    assert (c["step_time_s"] > 0).all()


def test_replicas_and_touched_experts():
    V = _rows()
    # a dp=4 unit streams the dense weights four times per step (the replicas term)
    assert V["n"][3] == 4 and V["dp"][3] == 4 and V["B"][3] == 32.0
    E_on = energy_kernel(V, THETA)
    E_off = energy_kernel(form_variables(pd.DataFrame({
        "model": ["gpt-oss-20b"], "gpu": ["H100-SXM"], "tp": [1], "dp": [4],
        "batch_size": [8.0], "output_tokens": [50.0]}), {"replicas": False}), THETA)
    assert E_on[3] > 1.1 * E_off[0]  # four GPUs of static power and four weight reads
    # at batch 1 an MoE model reads k/E of its experts; at a large batch all of them
    one = {k: v[:1].copy() for k, v in V.items()}
    one["B"] = np.array([1.0])
    many = {**one, "B": np.array([4096.0])}
    comp1, comp2 = energy_components(one, THETA), energy_components(many, THETA)
    per_step1 = comp1["decode_memory_j"].iloc[0] * 1.0 / one["so"][0]
    per_step2 = comp2["decode_memory_j"].iloc[0] * 4096.0 / many["so"][0]
    assert per_step2 > 2 * per_step1


def test_terms_are_checked():
    assert resolve_terms({"drain": False})["drain"] is False
    with pytest.raises(ValueError, match="unknown terms"):
        resolve_terms({"dran": False})
    with pytest.raises(ValueError, match="drain"):
        resolve_terms({"drain": "no"})


def test_variables_from_the_catalogue_and_its_errors():
    t = pd.DataFrame({"model": ["google/gemma-3-27b-it", "nvidia/NVIDIA-Nemotron-Nano-9B-v2"],
                      "gpu": ["H100", "B200"], "tp": [1, 1], "batch_size": [8.0, 8.0],
                      "output_tokens": [100.0, 100.0]})
    V = form_variables(t)
    # sliding-window layers do not grow with the context; the hybrid keeps a state
    assert V["kvb"][0] == 10 * 2 * 16 * 128 * 2
    assert V["state"][0] == 0 and V["state"][1] > 0
    with pytest.raises(CatalogueError, match="register_models"):
        form_variables(t.assign(model=["my-private-llm", "my-private-llm"]))
    with pytest.raises(ValueError, match="output_tokens"):
        form_variables(t.drop(columns="output_tokens"))
    with pytest.raises(ValueError, match="must be > 0"):
        form_variables(t.assign(tp=[0, 1]))
