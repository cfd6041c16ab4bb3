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


def test_labels_a_fit_saw_are_read_on_first_use_and_pickled_as_values():
    """A fit keeps its label columns and reads their distinct values only when asked
    (checks, reports, files): the same values as read at once, and a pickle or copy holds the
    values, not the training table's columns."""
    import copy
    import pickle

    import pandas as pd

    from energylens.core.domain import Domain, SeenLabels, seen_labels

    table = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], noise=0.01, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = EnergyLensModel().fit(table)
    labels = m._state_.domain.labels
    assert isinstance(labels, SeenLabels) and labels._distinct is not None  # not read yet
    expected = seen_labels({c: table[c] for c in ("model", "gpu") if c in table})
    assert {k: labels[k] for k in ("model", "gpu")} == {k: expected[k] for k in ("model", "gpu")}
    assert labels._distinct is None  # read once, the columns released
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = EnergyLensModel().fit(table)._state_.domain
    assert pickle.loads(pickle.dumps(again)).labels == dict(again.labels)
    assert type(pickle.loads(pickle.dumps(again.labels))) is dict
    assert copy.deepcopy(again) == again and again == Domain(again.ranges, dict(again.labels),
                                                           again.filled)
    assert repr(again.labels) == repr(dict(again.labels))
    # a new model is still flagged through the lazily read labels
    with pytest.warns(ExtrapolationWarning, match="model 'other' not seen in training"):
        m.predict(table.head(2).assign(model="other"))
    assert seen_labels({"gpu": pd.Series(["a", None, "b", "a"])}) == {"gpu": ["a", "b"]}


def test_labels_read_later_are_those_of_the_fit_and_json_ready():
    """Under pandas 2 a label column is a view of the user's table: a fit that kept it and read
    it later recorded the table as edited after the fit ('model X not seen in training' for
    the model it was trained on)."""
    import json

    import numpy as np
    import pandas as pd

    from energylens.models.design import TrainingData

    names = np.array(["Llama-3.1-8B"] * 4, dtype=object)
    data = TrainingData({}, None, np.ones(4), labels={"model": pd.Series(names, dtype=object, copy=False)})
    seen = data.seen()
    names[:] = "edited"  # the user's table changes in place after the fit
    assert seen["model"] == ["Llama-3.1-8B"]
    table = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], noise=0.01, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = EnergyLensModel().fit(table)
    assert json.loads(json.dumps(m.domain_.labels))["model"] == ["Llama-3.1-8B"]
