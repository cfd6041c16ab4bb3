"""The training domain: which new rows a closed form flags as outside its data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from energylens import EnergyLensModel, simulate_profiles
from energylens.exceptions import ExtrapolationWarning


@pytest.fixture(scope="module")
def fitted():
    t = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], noise=0.01, seed=0)
    t = t.assign(gpu="H100-80GB-HBM3")  # a table's own spelling of the GPU
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return t, EnergyLensModel().fit(t)


@pytest.mark.parametrize("spelling", ["H100-SXM", "NVIDIA H100 80GB HBM3"])
def test_another_spelling_of_the_trained_gpu_is_not_a_new_gpu(fitted, spelling):
    """A single closed form flagged these as unseen GPUs (NaN interval), while GroupedModel
    and the hierarchical model read them as the trained one."""
    t, m = fitted
    x = t.head(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        pi = m.predict_interval(x.assign(gpu=spelling))
    ref = m.predict_interval(x)
    np.testing.assert_array_equal(pi[["lower", "upper"]], ref[["lower", "upper"]])
    assert not pi.extrapolated.any()


def test_another_gpu_is_still_flagged(fitted):
    t, m = fitted
    with pytest.warns(ExtrapolationWarning, match="gpu 'A100-80GB' not seen in training"):
        pi = m.predict_interval(t.head(2).assign(gpu="A100-80GB"))
    assert pi.extrapolated.all() and (pi.extrapolated_by == "gpu").all()


def test_a_replica_count_outside_the_trained_one_is_flagged(fitted):
    t, m = fitted
    assert (t.dp == 1).all()
    with pytest.warns(ExtrapolationWarning, match=r"dp up to 4"):
        pi = m.predict_interval(t.head(2).assign(dp=4))
    assert (pi.extrapolated_by == "dp").all()


def test_rows_that_differ_in_replicas_warn_at_fit(fitted):
    from energylens.exceptions import EnergyLensWarning

    t, _ = fitted
    two = t.assign(dp=np.where(np.arange(len(t)) % 2, 2, 1))
    with pytest.warns(EnergyLensWarning, match=r"differ in dp \(1 to 2\).*no term for"):
        EnergyLensModel().fit(two)
