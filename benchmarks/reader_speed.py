"""Speed and memory of reading a large profiling table, against plain ``pandas.read_csv``.

Makes a CSV of ``--rows`` distinct configurations (default 1,000,000; 13 columns: labels,
parallel degrees, batch, lengths, energy and latency), then reads it

* with ``pandas.read_csv`` (the floor: parsing alone), and
* with ``energylens.read_profiles`` (sniffing, strict parsing, header mapping, validation,
  duplicate detection, derived columns, plausibility),

alternately in this process, and prints the best time of each and their ratio. Peak memory
is measured in a fresh process per reader (the growth of the resident set from just before
the read to its high-water mark, ``VmHWM`` in ``/proc/self/status``; Linux only), and printed
as a ratio to the file size.

Goals (issue 13): ``read_profiles`` on 1M rows in <= 3 s and <= 4x the CSV's size in
memory.

Run::

    python benchmarks/reader_speed.py [--rows 1000000] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

MODELS = ["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B", "Qwen/Qwen3-14B",
          "mistralai/Mixtral-8x7B-Instruct-v0.1"]
GPUS = ["H100-SXM", "A100-80GB", "B200", "L40S"]

_CHILD = """
import sys, time
import pandas as pd
import energylens.tables

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

path, which = sys.argv[1], sys.argv[2]
try:  # reset the high-water mark, so that imports do not count
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
except OSError:
    pass
before = status("VmRSS")
t = time.perf_counter()
df = pd.read_csv(path) if which == "pandas" else energylens.tables.read_profiles(path)
elapsed = time.perf_counter() - t
print(status("VmHWM") - before, elapsed, len(df))
"""


def make_table(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` distinct, physically plausible configurations."""
    rng = np.random.default_rng(seed)
    tp = rng.choice([1, 2, 4, 8], n)
    out = np.round(1 + rng.permutation(n) * (2047 / n), 6)  # distinct: every row is new
    return pd.DataFrame({
        "model": rng.choice(MODELS, n), "gpu": rng.choice(GPUS, n),
        "tp": tp, "pp": rng.choice([1, 2], n), "dp": rng.choice([1, 2, 4], n),
        "batch_size": rng.choice([1.0, 8, 32, 128, 512], n),
        "input_tokens": rng.choice([64.0, 256, 1024, 4096], n), "output_tokens": out,
        "precision": rng.choice(["bf16", "fp8"], n), "workload": rng.choice(["chat", "code"], n),
        "energy_j": np.round(out * rng.uniform(0.05, 2.0, n), 4),
        "latency_s": np.round(out * rng.uniform(0.005, 0.05, n), 4),
        "ttft_s": np.round(rng.uniform(0.01, 2.0, n), 4),
    })


def child(path: Path, which: str) -> tuple[int, float]:
    r = subprocess.run([sys.executable, "-c", _CHILD, str(path), which], capture_output=True,
                       text=True, check=True)
    peak, elapsed, _ = r.stdout.split()
    return int(peak), float(elapsed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import energylens.tables

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "profiles.csv"
        make_table(args.rows).to_csv(path, index=False)
        size = path.stat().st_size
        times: dict[str, list[float]] = {"pandas": [], "energylens": []}
        for _ in range(args.repeats):
            t = time.perf_counter()
            pd.read_csv(path)
            times["pandas"].append(time.perf_counter() - t)
            t = time.perf_counter()
            df = energylens.tables.read_profiles(path)
            times["energylens"].append(time.perf_counter() - t)
        assert len(df) == args.rows, "the benchmark table must read back whole"
        mem = {which: child(path, which)[0] for which in ("pandas", "energylens")}
    best = {k: min(v) for k, v in times.items()}
    result = {
        "rows": args.rows, "file_mb": round(size / 1e6, 1),
        "pandas_read_csv_s": round(best["pandas"], 3),
        "read_profiles_s": round(best["energylens"], 3),
        "time_ratio": round(best["energylens"] / best["pandas"], 2),
        "pandas_peak_mb": round(mem["pandas"] / 1e6, 1),
        "read_profiles_peak_mb": round(mem["energylens"] / 1e6, 1),
        "pandas_memory_ratio": round(mem["pandas"] / size, 2),
        "read_profiles_memory_ratio": round(mem["energylens"] / size, 2),
        "machine": f"{platform.machine()}, {platform.python_version()}, pandas {pd.__version__}",
    }
    print(f"{args.rows:,} rows, CSV of {result['file_mb']} MB ({result['machine']})")
    print(f"  pandas.read_csv          {result['pandas_read_csv_s']:7.3f} s   peak "
          f"+{result['pandas_peak_mb']:7.1f} MB  ({result['pandas_memory_ratio']:.2f}x the file)")
    print(f"  energylens.read_profiles {result['read_profiles_s']:7.3f} s   peak "
          f"+{result['read_profiles_peak_mb']:7.1f} MB  "
          f"({result['read_profiles_memory_ratio']:.2f}x the file)")
    print(f"  time ratio read_profiles / read_csv: {result['time_ratio']:.2f}  "
          "(goals: <= 3 s, <= 4x the file in memory)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
