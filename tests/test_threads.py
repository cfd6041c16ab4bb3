"""BLAS thread limiting around small solves (energylens.core.threads)."""

from __future__ import annotations

import pytest

from energylens.core import threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_limits_blas_to_one_thread_and_restores_it():
    before = _blas_threads()
    with threads.single_blas_thread():
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


def test_nested_blocks_reuse_the_outer_limit(monkeypatch):
    """A grouped fit takes the limit once; the fits of its groups do not take it again."""
    calls = []
    with threads.single_blas_thread():
        controller = threads._CONTROLLER
        real = controller.limit
        monkeypatch.setattr(controller, "limit", lambda **kw: calls.append(kw) or real(**kw))
        with threads.single_blas_thread():
            with threads.single_blas_thread():
                assert all(n == 1 for n in _blas_threads())
        assert calls == []
        assert all(n == 1 for n in _blas_threads())  # the outer limit still holds
    with threads.single_blas_thread():
        pass
    assert len(calls) == 1  # a fresh block takes the limit again


def test_an_error_inside_a_nested_block_unwinds_the_depth():
    with pytest.raises(RuntimeError), threads.single_blas_thread(), threads.single_blas_thread():
        raise RuntimeError("boom")
    assert getattr(threads._DEPTH, "n", 0) == 0
