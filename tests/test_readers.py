"""Readers of the public layouts: on the real files where present, on tiny made-up folders always."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from energylens.exceptions import EnergyLensWarning, SchemaError
from energylens.readers import (
    MLENERGY_NOMINAL_INPUT_TOKENS,
    read_mlenergy_leaderboard,
    read_splitwise,
    read_tokenpowerbench,
    read_wilkins,
)

pytestmark = pytest.mark.filterwarnings("ignore::energylens.exceptions.ImplausibleValueWarning")


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_mlenergy_rows_and_spot_values(real_data):
    root = real_data / "mlenergy_v2"
    df = read_mlenergy_leaderboard(root)
    files = sorted((root / "llm_text_generation").glob("*/*/*/*/bs*+tp*+pp*.json"))
    assert len(df) == len(files)
    f = files[0]
    raw = json.loads(f.read_text())
    row = df[df["file"] == str(f.relative_to(root))].iloc[0]
    assert row.energy_j == pytest.approx(raw["Energy/req (J)"])
    assert row.running_batch == pytest.approx(raw["Avg BS (reqs)"])
    assert row.batch_size == raw["Max BS (reqs)"] and row.batch_kind == "cap"
    assert row.tp == raw["TP"] and row.pp == raw["PP"]
    assert row.tpot_s == pytest.approx(raw["Avg TPOT (s)"])
    assert row.workload == f.parts[-5]
    assert row.input_tokens == MLENERGY_NOMINAL_INPUT_TOKENS[row.workload] and row.input_tokens_assumed
    assert set(df.gpu) == {"A100-SXM4-40GB", "H100-80GB-HBM3"}
    assert (df.pp == 2).any() and df.params_b.notna().all()


@pytest.mark.realdata
def test_wilkins_drops_warmup_and_keeps_inference(real_data):
    root = real_data / "wilkins2024"
    per_query = read_wilkins(root, experiments=("input-test",), aggregate=False)
    raw = pd.read_csv(root / "plots" / "input-test" / "all-input-stats.csv")
    kept = raw[raw["Phase"].astype(str).str.contains("inference") & (raw["Iteration"] != 0)]
    assert len(per_query) == len(kept)
    assert (per_query["iteration"] != 0).all()
    np.testing.assert_allclose(np.sort(per_query.energy_j), np.sort(kept["GPU Energy (J)"]))
    agg = read_wilkins(root, experiments=("input-test",))
    assert agg.n_repeats.sum() == len(kept)
    one = kept[(kept.Model == "Llama-2 (7B)") & (kept.System == "Palmetto Intel+A100")
               & (kept["Number of Input Tokens"] == 512)]
    row = agg[(agg.model == "Llama-2 (7B)") & (agg.gpu == "A100-40GB (Palmetto)")
              & (agg.input_tokens == 512)].iloc[0]
    assert row.energy_j == pytest.approx(one["GPU Energy (J)"].mean())
    both = read_wilkins(root, experiments=("parameter-scale-output-test",))
    assert "argonne-swing" in set(both.host) and "A100-40GB (Swing)" in set(both.gpu)
    assert (both[both.model == "Llama-2 (70B)"].pp == 4).all()


@pytest.mark.realdata
def test_tokenpowerbench_energy_per_request(real_data):
    root = real_data / "tokenpowerbench"
    with pytest.warns(EnergyLensWarning, match="skipped"):
        df = read_tokenpowerbench(root, aggregate=False)
    name = "vllm_models--models--meta-llama--Llama-3.1-8B_256_500_20250418_181529.json"
    run = json.loads((root / name).read_text())["models--meta-llama--Llama-3.1-8B"][0]
    row = df[df.file == name].iloc[0]
    assert row.energy_j == pytest.approx(run["gpu_energy"] / run["responses"])
    assert row.output_tokens == pytest.approx(run["total_output_tokens"] / run["responses"])
    assert row.running_batch == min(run["batch_size"], run["responses"])
    assert row.source == "tokenpowerbench-vllm" and row.model == "Llama-3.1-8B"
    assert {"tokenpowerbench-vllm", "tokenpowerbench-deepspeed"} <= set(df.source)


@pytest.mark.realdata
def test_splitwise_latencies(real_data):
    df = read_splitwise(real_data / "splitwise")
    raw = pd.read_csv(real_data / "splitwise" / "perf_model.csv")
    assert len(df) == len(raw)
    assert df.ttft_s.iloc[0] == pytest.approx(raw.prompt_time.iloc[0] / 1e3)


# --------------------------------------------------------------------------- made-up folders
def _mle_file(root: Path, task="chat", gpu="H100 80GB HBM3", model="org/m", bs=64, tp=2, pp=1,
              energy=100.0, **extra):
    d = root / "llm_text_generation" / task / gpu / model
    d.mkdir(parents=True, exist_ok=True)
    rec = {"Model": model, "GPU": "NVIDIA " + gpu, "TP": tp, "PP": pp, "Energy/req (J)": energy,
           "Avg TPOT (s)": 0.05, "Token tput (tok/s)": 1000.0, "Avg Output Tokens": 200.0,
           "Avg BS (reqs)": bs * 0.6, "Max BS (reqs)": bs}
    rec.update(extra)
    (d / f"bs{bs}+tp{tp}+pp{pp}.json").write_text(json.dumps(rec))
    (root / "llm_text_generation" / task / "models.json").write_text(json.dumps({model: {"params": 8}}))


def test_mlenergy_synthetic_folder(tmp_path):
    _mle_file(tmp_path, bs=64)
    _mle_file(tmp_path, bs=128, energy=80.0)
    df = read_mlenergy_leaderboard(tmp_path)
    assert len(df) == 2 and (df.gpu == "H100-80GB-HBM3").all()
    assert sorted(df.running_batch) == [38.4, 76.8]
    np.testing.assert_allclose(df.power_w, df.energy_j * 1000.0 / 200.0)
    (tmp_path / "llm_text_generation" / "chat" / "H100 80GB HBM3" / "org" / "m" / "bs1+tp1+pp1.json").write_text("{")
    with pytest.warns(EnergyLensWarning, match="skipped 1 unreadable"):
        assert len(read_mlenergy_leaderboard(tmp_path)) == 2


def test_missing_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_mlenergy_leaderboard(tmp_path / "nope")
    with pytest.raises(SchemaError, match="no bs"):
        read_mlenergy_leaderboard(tmp_path)
    with pytest.raises(SchemaError, match="no plots"):
        read_wilkins(tmp_path)
    with pytest.raises(SchemaError, match="no readable result files"):
        read_tokenpowerbench(tmp_path)
    with pytest.raises(FileNotFoundError, match="perf_model.csv"):
        read_splitwise(tmp_path)


def test_wilkins_synthetic_folder(tmp_path):
    d = tmp_path / "plots" / "input-test"
    d.mkdir(parents=True)
    cols = ["Phase", "Runtime (s)", "CPU Energy (J)", "GPU Energy (J)", "Output Token Limit",
            "Number of Input Tokens", "Iteration", "Model", "Number of GPUs", "System"]
    rows = [["model load", 20, 5, 900, 32, 0, 0, "M", 1, "Swing AMD+A100"]]
    for it in range(4):
        rows.append([f"start-inference-A-{it}", 1.0, 2.0, 100.0 + 10 * it + (500 if it == 0 else 0),
                     32, 64, it, "M", 2, "argonne-swing"])
    with open(d / "all-input-stats.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerows(rows)
    df = read_wilkins(tmp_path, experiments=("input-test",))
    assert len(df) == 1
    r = df.iloc[0]
    assert r.energy_j == pytest.approx(120.0) and r.n_repeats == 3
    assert r.gpu == "A100-40GB (Swing)" and r.pp == 2 and r.tp == 1
    cpu = read_wilkins(tmp_path, experiments=("input-test",), include_cpu=True)
    assert cpu.energy_j.iloc[0] == pytest.approx(122.0)


def test_tokenpowerbench_synthetic_folder(tmp_path):
    run = {"duration": 10.0, "total_output_tokens": 5000, "responses": 100, "gpu_avg_power": 300.0,
           "gpu_energy": 3000.0, "batch_size": 32, "gpu0_power_watts": 300.0}
    (tmp_path / "vllm_models--Llama-X_32_128_20250101_000000.json").write_text(json.dumps({"Llama-X": [run, run]}))
    (tmp_path / "vllm_models--Llama-X_64_128_20250101_000001.json").write_text("{}")
    (tmp_path / "notes.json").write_text("[]")
    with pytest.warns(EnergyLensWarning, match="skipped 2"):
        df = read_tokenpowerbench(tmp_path)
    assert len(df) == 1
    r = df.iloc[0]
    assert r.energy_j == pytest.approx(30.0) and r.output_tokens == pytest.approx(50.0)
    assert r.n_repeats == 2 and r.running_batch == 32 and r.source == "tokenpowerbench-vllm"
