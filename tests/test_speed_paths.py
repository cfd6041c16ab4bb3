"""The fast paths of fitting and prediction give the same numbers as the plain ones.

Speed itself is measured in ``benchmarks/speed.py``, never here; these tests pin down that
the shortcuts taken for it (row blocks, the reused Gram matrix, the unconstrained start
kept where it is feasible) change no result.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from energylens.core.blocks import ROW_BLOCK, in_row_blocks
from energylens.models import EnergyLensModel, energylens_kernel
from energylens.models.start import lstsq_linear

from .test_models import THETA, make_table, quiet_fit


def test_row_blocks_are_exact_and_cover_every_row():
    rng = np.random.default_rng(0)
    n = 2 * ROW_BLOCK + 1234  # three blocks, the last one partial
    V = {"t": rng.choice([1.0, 2, 4], n), "p": rng.choice([1.0, 2], n),
         "B": rng.choice([1.0, 8, 64], n), "si": rng.uniform(10, 4000, n),
         "so": rng.uniform(10, 2000, n)}
    whole = energylens_kernel(V, THETA)
    blocks = in_row_blocks(energylens_kernel, V, THETA)
    np.testing.assert_array_equal(blocks, whole)  # bit for bit: the kernel is row-wise
    small = in_row_blocks(energylens_kernel, V, THETA, block=1000)
    np.testing.assert_array_equal(small, whole)


def test_in_row_blocks_broadcasts_a_constant_form():
    n = 3 * 100 + 7
    out = in_row_blocks(lambda V, c: c, {"x": np.zeros(n)}, 2.5, block=100)
    assert out.shape == (n,) and np.all(out == 2.5)


def test_prediction_of_a_large_table_matches_the_kernel():
    m = quiet_fit(EnergyLensModel(), make_table(400))
    big = make_table(2 * ROW_BLOCK + 10, seed=3)
    V = {"t": big.tp.to_numpy(float), "p": big.pp.to_numpy(float),
         "B": big.batch_size.to_numpy(), "si": big.input_tokens.to_numpy(),
         "so": big.output_tokens.to_numpy()}
    np.testing.assert_array_equal(m.predict(big), energylens_kernel(V, m.coef_))
    part = big.head(ROW_BLOCK * 2 + 5)
    iv = m.predict_interval(part)
    np.testing.assert_array_equal(iv["energy_j"].to_numpy(), m.predict(part))


@pytest.mark.parametrize("seed", range(6))
def test_linear_start_matches_nnls_and_lstsq(seed):
    """Through the Gram matrix, with or without a given Gram matrix and column subset, the
    start equals scipy's NNLS (and least squares) on the selected columns."""
    rng = np.random.default_rng(seed)
    A = np.abs(rng.normal(size=(60, 7))) * rng.uniform(0.1, 100, 7)
    truth = np.where(rng.random(7) < 0.3, 0.0, rng.uniform(0.5, 2, 7))
    b = A @ truth + (rng.normal(0, 0.5, 60) if seed % 2 else 0.0)
    cols = [0, 2, 3, 5, 6]
    sub = A[:, cols]
    ref = optimize.nnls(sub, b)[0]
    for gram in (None, sub.T @ sub):
        got = lstsq_linear(A, b, True, columns=cols, gram=gram)
        keep = ref > 0  # zeros become small positive values (positive_start)
        np.testing.assert_allclose(got[keep], ref[keep], rtol=1e-6, atol=1e-9)
        assert np.all(got > 0)
    free = lstsq_linear(A, b, False, columns=cols)
    np.testing.assert_allclose(free, np.linalg.lstsq(sub, b, rcond=None)[0], rtol=1e-6, atol=1e-9)


def test_training_domain_reuses_the_read_ranges_and_equals_a_fresh_one():
    from energylens.core.domain import Domain

    df = make_table(300, seed=5)
    m = quiet_fit(EnergyLensModel(), df)
    V, y, _ = m._train_
    fresh = Domain.from_training(V, df, filled={})
    assert m.domain_.ranges == fresh.ranges
    assert m.domain_.ranges["t"] == (float(df.tp.min()), float(df.tp.max()))
    assert m.domain_.ranges["B"] == (float(df.batch_size.min()), float(df.batch_size.max()))


def _at_bound_reference(theta, lo, hi, free, cov, names):
    """The rule written on whole arrays (the form it had before it moved to scalars)."""
    se = np.full(len(theta), np.nan)
    if cov is not None and cov.size and free.sum() == cov.shape[0]:
        se[free] = np.sqrt(np.maximum(np.diag(cov), 0))
    slack = np.where(np.isfinite(se), 1e-3 * se, 0.0)
    with np.errstate(invalid="ignore"):
        near = [np.isfinite(b) & (np.abs(theta - b) <= np.maximum(
            1e-6 * np.maximum(np.abs(theta), np.abs(b)), slack) + 1e-300) for b in (lo, hi)]
    return [names[i] for i in np.flatnonzero(free & (near[0] | near[1]))]


@pytest.mark.parametrize("seed", range(20))
def test_at_bound_matches_the_array_rule(seed):
    from energylens.models.least_squares import at_bound

    rng = np.random.default_rng(seed)
    k = 12
    lo = np.where(rng.random(k) < 0.7, 0.0, -np.inf)
    hi = np.where(rng.random(k) < 0.3, 5.0, np.inf)
    theta = rng.uniform(0, 5, k)
    pick = rng.random(k)
    theta[pick < 0.3] = lo[pick < 0.3].clip(0)  # exactly at the lower bound (or 0)
    theta[(pick > 0.85) & np.isfinite(hi)] = 5.0 - 1e-9
    theta[(pick > 0.6) & (pick < 0.7)] = 1e-4  # near 0: at the bound only within its slack
    free = rng.random(k) < 0.8
    A = rng.normal(size=(k, int(free.sum())))
    cov = (A.T @ A) * 10.0 ** rng.uniform(-12, -2) if seed % 4 else None
    names = [f"c{i}" for i in range(k)]
    assert at_bound(theta, lo, hi, free, cov, names) == _at_bound_reference(theta, lo, hi, free, cov, names)
