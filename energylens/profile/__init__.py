"""Measure LLM-inference energy on NVIDIA GPUs into the canonical profiling table.

- :class:`EnergyMeter`: NVML energy counters (power integration where a GPU has none),
  several GPUs at once, idle power, waiting for idle.
- :func:`profile_grid`: sweep a user's inference function over configurations, prefill and
  decode measured separately, results appended to a file as they come (resumable).
- :func:`make_hf_run_fn`: a ready inference function for a Hugging Face model built from a
  configuration with random weights (no download).
- :class:`ReplayBackend`: recorded traces instead of a GPU, for tests and dry runs.

``nvidia-ml-py``, ``torch`` and ``transformers`` are optional: ``pip install 'energylens[profile]'``.
"""

from .backends import CounterUnavailable, GpuTrace, NvmlBackend, ReplayBackend, SampleError
from .grid import RunFailedError, expand_grid, profile_grid
from .hf import HF_PRESETS, make_hf_run_fn
from .meter import EnergyMeter, Measurement, counter_delta_mj, integrate_power

__all__ = [
    "EnergyMeter", "Measurement", "integrate_power", "counter_delta_mj",
    "NvmlBackend", "ReplayBackend", "GpuTrace", "CounterUnavailable", "SampleError",
    "profile_grid", "expand_grid", "RunFailedError", "make_hf_run_fn", "HF_PRESETS",
]
