"""Where GPU energy and power readings come from: NVML, or a replay of recorded traces.

A backend answers four questions per GPU index: its name, its cumulative energy counter in
millijoules (raising :class:`CounterUnavailable` where the GPU has none), and its power draw
in milliwatts. :class:`NvmlBackend` asks the driver through ``nvidia-ml-py``;
:class:`ReplayBackend` replays recorded traces against a clock, so that the meter and the
sweep are tested without hardware (the way Zeus tests its monitor).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .._optional import import_optional
from ..exceptions import NoDeviceError

__all__ = ["CounterUnavailable", "SampleError", "NvmlBackend", "GpuTrace", "ReplayBackend"]

#: NVML's total-energy counter is an unsigned 64-bit number of millijoules.
COUNTER_MODULUS_MJ = 2**64


class CounterUnavailable(Exception):
    """The GPU has no cumulative energy counter (pre-Volta, or not exposed)."""


class SampleError(Exception):
    """One reading failed (a transient driver error); the caller skips it."""


class NvmlBackend:
    """NVIDIA Management Library readings through ``nvidia-ml-py`` (import name ``pynvml``).

    Raises
    ------
    NoDeviceError
        When NVML cannot start (no NVIDIA driver, no GPU) or sees no device.
    """

    def __init__(self):
        nvml = import_optional("pynvml", purpose="measure GPU energy with NVML")
        try:
            nvml.nvmlInit()
            n = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as exc:
            raise NoDeviceError(
                f"NVML could not start ({exc}): no NVIDIA driver or GPU is available on this "
                "machine. Energy can be measured only on a machine with an NVIDIA GPU and driver; "
                "elsewhere use ReplayBackend to replay recorded traces."
            ) from exc
        if n == 0:
            raise NoDeviceError("NVML started but reports no GPU on this machine.")
        self._nvml = nvml
        self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(n)]

    def device_count(self) -> int:
        return len(self._handles)

    def name(self, i: int) -> str:
        name = self._nvml.nvmlDeviceGetName(self._handles[i])
        return name.decode() if isinstance(name, bytes) else str(name)

    def energy_mj(self, i: int) -> int:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handles[i]))
        except self._nvml.NVMLError_NotSupported as exc:
            raise CounterUnavailable(str(exc)) from exc
        except self._nvml.NVMLError as exc:
            raise SampleError(str(exc)) from exc

    def power_mw(self, i: int) -> float:
        try:
            return float(self._nvml.nvmlDeviceGetPowerUsage(self._handles[i]))
        except self._nvml.NVMLError as exc:
            raise SampleError(str(exc)) from exc


@dataclass
class GpuTrace:
    """Recorded readings of one GPU: time (s) -> power (mW), and optionally the counter (mJ).

    ``energy_mj`` of None means the GPU has no counter. ``fail_between`` lists time windows
    during which every reading raises :class:`SampleError`.
    """

    name: str
    power_t: Sequence[float]
    power_mw: Sequence[float]
    energy_t: Sequence[float] | None = None
    energy_mj: Sequence[float] | None = None
    fail_between: list[tuple[float, float]] = field(default_factory=list)
    #: Added (as an exact integer) to the counter readings, e.g. to start near 2**64.
    energy_offset_mj: int = 0


class ReplayBackend:
    """Replays :class:`GpuTrace` recordings: a reading at clock time ``t`` is the trace
    interpolated at ``t`` (the counter wraps modulo 2**64 as NVML's does).

    Parameters
    ----------
    traces : sequence of GpuTrace
        One per GPU.
    clock : callable
        The time source shared with the meter (a fake clock in tests).
    """

    def __init__(self, traces: Sequence[GpuTrace], clock: Callable[[], float] = time.monotonic):
        self.traces = list(traces)
        self.clock = clock
        self.calls = 0

    def _check(self, tr: GpuTrace, t: float):
        self.calls += 1
        for a, b in tr.fail_between:
            if a <= t <= b:
                raise SampleError(f"replayed failure at t={t:.3f}s")

    def device_count(self) -> int:
        return len(self.traces)

    def name(self, i: int) -> str:
        return self.traces[i].name

    def energy_mj(self, i: int) -> int:
        tr = self.traces[i]
        if tr.energy_mj is None:
            raise CounterUnavailable(f"GPU {i} ({tr.name}) has no energy counter")
        t = self.clock()
        self._check(tr, t)
        value = np.interp(t, tr.energy_t, np.asarray(tr.energy_mj, dtype=float))
        return (tr.energy_offset_mj + int(round(value))) % COUNTER_MODULUS_MJ

    def power_mw(self, i: int) -> float:
        tr = self.traces[i]
        t = self.clock()
        self._check(tr, t)
        return float(np.interp(t, tr.power_t, tr.power_mw))
