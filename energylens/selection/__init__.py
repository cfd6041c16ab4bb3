"""Choosing a configuration: candidate grids, ranking, energy-latency fronts, what to measure next.

- :func:`candidate_grid` builds the configurations to consider, with feasibility (GPU
  memory, GPUs available) and the reason when one is infeasible, and the running batch of a
  cap the KV memory cannot hold (memory-limited);
- :func:`select_config` ranks candidates by predicted energy, with its interval and, where
  latency models are given, predicted latency under bounds;
- :func:`pareto_front` marks the energy-latency trade-off;
- :func:`suggest_next` proposes which configurations to measure next (active profiling).

The rules a configuration must obey (heads split by ``tp``, weights and one sequence's KV
cache in GPU memory) and the running batch of a memory-limited cap are the catalogue's
(:mod:`energylens.core.catalogue`), shared with the simulator.

- :mod:`~energylens.selection.grid`: :func:`candidate_grid`;
- :mod:`~energylens.selection.rank`: :func:`select_config`;
- :mod:`~energylens.selection.pareto`: :func:`pareto_front`;
- :mod:`~energylens.selection.active`: :func:`suggest_next`.
"""

from __future__ import annotations

from .active import suggest_next
from .grid import candidate_grid
from .pareto import pareto_front
from .rank import select_config

__all__ = ["candidate_grid", "select_config", "pareto_front", "suggest_next"]
