"""Make the demo profiling table ``data/demo_profiles.csv`` with the energylens simulator.

The table is synthetic (see docs/simulator.md): four public models on three GPUs, tensor
parallelism 1-8, pipeline parallelism 1-4, batch caps 1-256, prompts of 64-4096 tokens and
answers of 16-1024 tokens, serving at saturation (workload "chat"); data-parallel runs
over small request pools where the batch cap overstates concurrency (workload "offline");
and a full input-by-output length sweep (4 x 4 lengths at batch cap 32, saturated) of each
model and GPU at the smallest tensor-parallel degree that serves every length at the full cap
(workload "sweep"), the kind of table the sweet-spot model is fitted on. Saturated caps whose
KV cache does not fit beside the weights run memory-limited: their ``running_batch`` is the
number of sequences the memory holds, below the cap.

Run from the repository root::

    python data/make_demo.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from energylens import simulate_profiles

OUT = Path(__file__).with_name("demo_profiles.csv")
MODELS = ("Llama-3.2-1B", "Llama-3.1-8B", "Qwen2.5-14B", "Llama-3.1-70B")
GPUS = ("A100-80GB", "H100-SXM", "L4")


def make() -> pd.DataFrame:
    saturated = simulate_profiles(
        models=MODELS, gpus=GPUS, tp=(1, 2, 4, 8), pp=(1, 2, 4), batch_size=(1, 8, 32, 128, 256),
        input_tokens=(64, 512, 4096), output_tokens=(16, 128, 1024), noise=0.02, seed=1,
        workload="chat", max_rows=1100,
    )
    pooled = simulate_profiles(
        models=MODELS[:3], gpus=GPUS[:2], tp=(1, 2), pp=(1,), dp=(2, 4), batch_size=(32, 128, 256),
        input_tokens=(512, 2048), output_tokens=(128, 512), n_requests=(64, 512), noise=0.02,
        seed=2, workload="offline", max_rows=300,
    )
    sweep = simulate_profiles(
        models=MODELS, gpus=GPUS, tp=(1, 2, 4), pp=(1,), batch_size=(32,),
        input_tokens=(64, 512, 2048, 4096), output_tokens=(16, 128, 512, 1024), noise=0.02,
        seed=3, workload="sweep",
    )
    # Only the lengths may vary in a sweep: keep the tensor-parallel degrees that run every
    # length at the full cap (none memory-limited, where the KV cache would cut the batch).
    full = (sweep["running_batch"] == sweep["batch_size"]).groupby(
        [sweep["model"], sweep["gpu"], sweep["tp"]]).transform("all")
    size = sweep.groupby(["model", "gpu", "tp"])["energy_j"].transform("size")
    sweep = sweep[(size == 16) & full]
    smallest = sweep.groupby(["model", "gpu"])["tp"].transform("min")
    sweep = sweep[sweep["tp"] == smallest]
    return pd.concat([saturated, pooled, sweep], ignore_index=True)


if __name__ == "__main__":
    df = make()
    df.to_csv(OUT, index=False, float_format="%.6g")
    print(f"wrote {OUT} ({len(df)} rows, {df['model'].nunique()} models, {df['gpu'].nunique()} GPUs)")
