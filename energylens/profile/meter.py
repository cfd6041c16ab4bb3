"""An energy meter over NVML: the cumulative counter where a GPU has one, integrated power otherwise.

Example
-------
>>> from energylens.profile import EnergyMeter  # doctest: +SKIP
>>> meter = EnergyMeter(gpus=[0, 1])  # doctest: +SKIP
>>> with meter.measure() as m:  # doctest: +SKIP
...     run_inference()
>>> m.energy_j, m.per_gpu_j, m.method  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from ..core.options import POSITIVE, Integral, check_options
from ..exceptions import NoDeviceError
from .backends import COUNTER_MODULUS_MJ, CounterUnavailable, NvmlBackend, SampleError

__all__ = ["EnergyMeter", "Measurement", "integrate_power", "counter_delta_mj"]


def integrate_power(t: Sequence[float], power_w: Sequence[float], start: float, end: float) -> float:
    """Energy in joules of a sampled power trace over ``[start, end]`` (trapezoidal rule).

    The first and last samples are held flat to the ends of the interval. Returns NaN when
    there is no sample.
    """
    t = np.asarray(t, dtype=float)
    p = np.asarray(power_w, dtype=float)
    if t.size == 0:
        return float("nan")
    order = np.argsort(t)
    t, p = t[order], p[order]
    inside = (t >= start) & (t <= end)
    t, p = t[inside], p[inside]
    if t.size == 0:
        return float("nan")
    t = np.concatenate([[start], t, [end]])
    p = np.concatenate([[p[0]], p, [p[-1]]])
    return float(np.sum((t[1:] - t[:-1]) * (p[1:] + p[:-1]) / 2))


def counter_delta_mj(start: int, end: int) -> int | None:
    """Millijoules between two readings of NVML's unsigned 64-bit counter.

    A smaller end value is a wrap-around when the start was in the counter's upper half
    (the counter ran past 2**64); otherwise the counter went backwards (a driver reset) and
    None is returned so that the caller falls back to integrated power.
    """
    if end >= start:
        return end - start
    if start >= COUNTER_MODULUS_MJ // 2:
        return end + COUNTER_MODULUS_MJ - start
    return None


@dataclass
class Measurement:
    """One measured interval. Energies in joules, powers in watts, times in seconds."""

    start_time: float = float("nan")
    end_time: float = float("nan")
    started_at: str = ""
    per_gpu_j: list[float] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    samples: int = 0
    failed_samples: int = 0
    gpu_names: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.end_time - self.start_time

    @property
    def energy_j(self) -> float:
        """Energy of all measured GPUs together."""
        return float(np.sum(self.per_gpu_j))

    @property
    def mean_power_w(self) -> float:
        return self.energy_j / self.duration_s if self.duration_s > 0 else float("nan")

    @property
    def method(self) -> str:
        """``"counter"``, ``"power-integration"``, or ``"mixed"`` across GPUs."""
        kinds = set(self.methods)
        return kinds.pop() if len(kinds) == 1 else "mixed"


class EnergyMeter:
    """Measure the energy of several GPUs at once.

    Parameters
    ----------
    gpus : sequence of int, optional
        GPU indices (default: every GPU the backend sees).
    backend : object, optional
        Readings source (default :class:`~energylens.profile.backends.NvmlBackend`, which
        raises :class:`~energylens.NoDeviceError` where no driver is present).
    sample_hz : float, default=20
        Power sampling rate of the background thread (at least 10 Hz is advised); used for
        GPUs without a counter, for a counter that goes backwards, and for mean power.
    sample_power : bool, default=True
        Run the sampling thread. With counters on every GPU it may be turned off.
    clock, sleep : callable
        Time source and sleep (injectable for tests).
    """

    def __init__(self, gpus: Sequence[int] | None = None, *, backend=None, sample_hz: float = 20.0,
                 sample_power: bool = True, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        check_options("EnergyMeter", {"sample_hz": [POSITIVE], "sample_power": ["boolean"],
                                      "gpus": ["array-like", None]},
                      {"sample_hz": sample_hz, "sample_power": sample_power, "gpus": gpus})
        self.backend = backend if backend is not None else NvmlBackend()
        n = self.backend.device_count()
        self.gpus = list(range(n)) if gpus is None else list(gpus)
        bad = [g for g in self.gpus if not (isinstance(g, Integral) and not isinstance(g, bool)
                                            and 0 <= g < n)]
        if bad or not self.gpus:
            raise ValueError(f"gpus must be GPU indices in [0, {n - 1}] (the backend sees {n} "
                             f"GPU(s)); got {self.gpus}, out of range or not whole: {bad}.")
        self.gpus = [int(g) for g in self.gpus]
        repeated = sorted({g for g in self.gpus if self.gpus.count(g) > 1})
        if repeated:
            raise ValueError(f"gpus names GPU(s) {repeated} more than once; each would be "
                             "measured, and counted, twice.")
        self.sample_hz = float(sample_hz)
        self.sample_power = sample_power
        self.clock = clock
        self.sleep = sleep
        self.names = [self.backend.name(g) for g in self.gpus]
        self.has_counter = []
        for g in self.gpus:
            try:
                self.backend.energy_mj(g)
                self.has_counter.append(True)
            except CounterUnavailable:
                self.has_counter.append(False)
            except SampleError:
                self.has_counter.append(True)
        self.failed_samples = 0

    # ---------------------------------------------------------------- sampling
    def _read_counters(self) -> list[int | None]:
        out = []
        for g, has in zip(self.gpus, self.has_counter):
            value = None
            if has:
                for _ in range(3):  # a transient failure is retried twice
                    try:
                        value = self.backend.energy_mj(g)
                        break
                    except SampleError:
                        self.failed_samples += 1
            out.append(value)
        return out

    def _sample_power(self, store: list) -> None:
        t = self.clock()
        row = []
        for g in self.gpus:
            try:
                row.append(self.backend.power_mw(g) / 1e3)
            except SampleError:
                self.failed_samples += 1
                row.append(np.nan)
        store.append((t, row))

    @contextmanager
    def measure(self):
        """Context manager measuring the enclosed block; yields the :class:`Measurement`,
        filled in when the block ends."""
        m = Measurement(gpu_names=list(self.names))
        samples: list = []
        stop = threading.Event()
        need_power = self.sample_power or not all(self.has_counter)
        thread = None
        if need_power:
            interval = 1.0 / self.sample_hz

            def loop():
                while not stop.is_set():
                    self._sample_power(samples)
                    stop.wait(interval)

            thread = threading.Thread(target=loop, name="energylens-power-sampler", daemon=True)
        failed0 = self.failed_samples
        m.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        c0 = self._read_counters()
        m.start_time = self.clock()
        if thread:
            thread.start()
        try:
            yield m
        finally:
            if thread:
                stop.set()
                thread.join()
            m.end_time = self.clock()
            c1 = self._read_counters()
            if need_power:
                self._sample_power(samples)
            ts = np.array([s[0] for s in samples], dtype=float)
            pw = np.array([s[1] for s in samples], dtype=float).reshape(len(samples), len(self.gpus))
            for j in range(len(self.gpus)):
                delta = None
                if c0[j] is not None and c1[j] is not None:
                    delta = counter_delta_mj(c0[j], c1[j])
                if delta is not None:
                    m.per_gpu_j.append(delta / 1e3)
                    m.methods.append("counter")
                else:
                    ok = np.isfinite(pw[:, j]) if len(pw) else np.zeros(0, dtype=bool)
                    m.per_gpu_j.append(integrate_power(ts[ok], pw[ok, j], m.start_time, m.end_time))
                    m.methods.append("power-integration")
            m.samples = len(samples)
            m.failed_samples = self.failed_samples - failed0

    # ---------------------------------------------------------------- idle power
    def power_w(self) -> np.ndarray:
        """Current power of each GPU (W); NaN where the reading failed."""
        store: list = []
        self._sample_power(store)
        return np.asarray(store[0][1], dtype=float)

    def idle_power_w(self, seconds: float = 2.0) -> np.ndarray:
        """Mean power of each GPU over ``seconds`` of sampling (W): run it while the GPUs idle.

        Raises
        ------
        NoDeviceError
            When no power reading of some GPU succeeded (every later wait for idle would
            otherwise time out without a word).
        """
        store: list = []
        end = self.clock() + seconds
        while True:
            self._sample_power(store)
            if self.clock() >= end:
                break
            self.sleep(1.0 / self.sample_hz)
        arr = np.array([s[1] for s in store], dtype=float)
        dead = [f"{g} ({name})" for g, name, ok in zip(self.gpus, self.names,
                                                      np.isfinite(arr).any(axis=0)) if not ok]
        if dead:
            raise NoDeviceError(f"No power reading of GPU {', '.join(dead)} succeeded in "
                                f"{len(arr)} tries over {seconds:g} s; the driver reports errors "
                                "for it, so its idle power (and its energy) cannot be measured.")
        return np.nanmean(arr, axis=0)

    def wait_until_idle(self, idle_w: Sequence[float], *, tolerance: float = 0.15,
                        timeout_s: float = 60.0, poll_s: float = 0.25) -> bool:
        """Wait until every GPU's power is within ``tolerance`` (relative) of its idle power.

        Returns True when idle was reached, False at the timeout.
        """
        idle = np.asarray(idle_w, dtype=float)
        end = self.clock() + timeout_s
        while True:
            p = self.power_w()
            if np.all(np.isfinite(p)) and np.all(p <= idle * (1 + tolerance)):
                return True
            if self.clock() >= end:
                return False
            self.sleep(poll_s)
