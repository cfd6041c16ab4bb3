"""Measure a random-weight ~1B-parameter Llama on this machine's NVIDIA GPU into data/.

Needs an NVIDIA GPU and driver and ``pip install 'energylens[profile]'`` (nvidia-ml-py, torch,
transformers); no model is downloaded (weights are random, built from the configuration).
Batch sizes 1-64, input tokens 64-4096, output tokens 16-1024; each configuration is
appended to the output file as it finishes, and a rerun resumes where it stopped.

Run::

    python benchmarks/profile_sweep.py [--out data/profile_<gpu>_<date>.csv] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path

from energylens.profile import EnergyMeter, make_hf_run_fn, profile_grid

ROOT = Path(__file__).resolve().parents[1]
GRID = {"batch_size": [1, 4, 16, 64], "input_tokens": [64, 512, 4096], "output_tokens": [16, 128, 1024]}
QUICK = {"batch_size": [1, 16], "input_tokens": [64, 1024], "output_tokens": [16, 256]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gpu-index", type=int, default=0)
    ap.add_argument("--preset", default="llama-1b")
    ap.add_argument("--quick", action="store_true", help="a 2x2x2 grid")
    args = ap.parse_args(argv)
    meter = EnergyMeter(gpus=[args.gpu_index])
    gpu = meter.names[0]
    out = Path(args.out) if args.out else ROOT / "data" / (
        f"profile_{re.sub(r'[^A-Za-z0-9]+', '-', gpu).strip('-')}_{dt.date.today():%Y-%m-%d}.csv")
    run_fn = make_hf_run_fn(args.preset, device=f"cuda:{args.gpu_index}")
    df = profile_grid(run_fn, QUICK if args.quick else GRID, repeats=args.repeats, warmup=1,
                      meter=meter, out=out, model=f"random-{args.preset}", gpu=gpu)
    print(f"{len(df)} configurations measured on {gpu}; table in {out}")


if __name__ == "__main__":
    main()
