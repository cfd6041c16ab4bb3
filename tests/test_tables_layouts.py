"""Public layouts: detection, read_profiles on a folder, ML.ENERGY v3, and round trips.

Every reader's output must come back unchanged through ``read_profiles``: the command line
and the report read a folder, write a table, and read that table again.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import energylens
from energylens.exceptions import SchemaError
from energylens.tables import (
    LAYOUTS,
    MLENERGY_NOMINAL_INPUT_TOKENS,
    detect_layout,
    read_candidates,
    read_mlenergy_leaderboard,
    read_profiles,
    read_splitwise,
    read_tokenpowerbench,
    read_wilkins,
)

V3_KEYS = {"activated_params_billions": 3.0, "architecture": "MoE", "avg_batch_size": 7.9,
           "avg_output_len": 600.0, "avg_power_watts": 900.0, "data_parallel": 1,
           "energy_per_request_joules": 400.0, "energy_per_token_joules": 0.66,
           "expert_parallel": 1, "gpu_model": "B200", "max_num_seqs": 8,
           "median_itl_ms": 7.5, "model_id": "Qwen/Qwen3-30B-A3B", "num_gpus": 1,
           "output_throughput_tokens_per_sec": 1000.0, "tensor_parallel": 1,
           "total_params_billions": 30.0, "weight_precision": "bfloat16"}


def v3_folder(root: Path, configs: list[dict], task: str = "lm-arena-chat") -> Path:
    (root / "tasks").mkdir(parents=True, exist_ok=True)
    rows = [{**V3_KEYS, **c} for c in configs]
    (root / "tasks" / f"{task}.json").write_text(json.dumps(
        {"task": task, "task_display_name": task, "configurations": rows}))
    (root / "index.json").write_text(json.dumps({"tasks": [task]}))
    return root


def test_v3_mapping_of_parallelism_batch_and_precision(tmp_path):
    v3_folder(tmp_path, [
        {},  # one GPU
        {"num_gpus": 8, "expert_parallel": 8, "max_num_seqs": 256, "avg_batch_size": 250.0},
        {"num_gpus": 8, "expert_parallel": 8, "data_parallel": 8, "weight_precision": "fp8",
         "max_num_seqs": 64, "avg_batch_size": 60.0},
        {"num_gpus": 4, "tensor_parallel": 4, "max_num_seqs": 512, "avg_batch_size": 500.0},
    ])
    df = read_mlenergy_leaderboard(tmp_path)
    assert df.tp.tolist() == [1, 8, 1, 4]  # num_gpus / data_parallel: EP-only is 8 wide
    assert df.ep.tolist() == [1, 8, 8, 1] and df.dp.tolist() == [1, 1, 8, 1]
    assert (df.n_gpus == [1, 8, 8, 4]).all() and (df.pp == 1).all()
    # v3 counts the cap and the running batch over the unit: per replica they are / dp
    assert df.batch_size.tolist() == [8, 256, 8, 512] and (df.batch_kind == "cap").all()
    assert df.running_batch.tolist() == [7.9, 250.0, 7.5, 500.0]
    assert df.precision.tolist() == ["bf16", "bf16", "fp8", "bf16"]
    assert (df.gpu == "B200").all() and (df.source == "mlenergy-v3").all()
    assert (df.workload == "lm-arena-chat").all() and (df.architecture == "MoE").all()
    assert df.input_tokens_assumed.all()
    assert (df.input_tokens == MLENERGY_NOMINAL_INPUT_TOKENS["lm-arena-chat"]).all()
    r = df.iloc[0]
    assert r.energy_j == 400.0 and r.power_w == 900.0 and r.tpot_s == pytest.approx(0.0075)
    assert r.output_tokens == 600.0 and r.params_b == 30.0 and r.active_params_b == 3.0
    assert detect_layout(tmp_path) == "mlenergy-v3"
    pd.testing.assert_frame_equal(read_profiles(tmp_path), df)


def test_v3_defaults_to_the_llm_tasks_and_names_what_is_there(tmp_path):
    v3_folder(tmp_path, [{}], task="image-chat")
    with pytest.raises(SchemaError, match=r"tasks present: \['image-chat'\]"):
        read_mlenergy_leaderboard(tmp_path)
    assert len(read_mlenergy_leaderboard(tmp_path, tasks=["image-chat"])) == 1


def test_layout_detection_of_made_up_folders(tmp_path):
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "perf_model.csv").write_text("model\n")
    (tmp_path / "wk" / "plots" / "input-test").mkdir(parents=True)
    (tmp_path / "wk" / "plots" / "input-test" / "all-input-stats.csv").write_text("Phase\n")
    (tmp_path / "tpb").mkdir()
    (tmp_path / "tpb" / "vllm_models--X_32_128_20250101_000000.json").write_text("{}")
    (tmp_path / "v2" / "llm_text_generation" / "chat").mkdir(parents=True)
    assert detect_layout(tmp_path / "sw") == "splitwise"
    assert detect_layout(tmp_path / "wk") == "wilkins"
    assert detect_layout(tmp_path / "tpb") == "tokenpowerbench"
    assert detect_layout(tmp_path / "v2") == "mlenergy-v2"
    assert detect_layout(tmp_path / "sw" / "perf_model.csv") == "table"
    with pytest.raises(SchemaError) as exc:
        detect_layout(tmp_path)
    msg = str(exc.value)
    for name, lay in LAYOUTS.items():
        assert f"{name}: {lay.looks_like}" in msg
    assert "'sw' (splitwise)" in msg and "'wk' (wilkins)" in msg


def test_read_profiles_of_an_empty_folder_says_what_layouts_look_like(tmp_path):
    """Before: "unknown file type ''"."""
    with pytest.raises(SchemaError, match="holds no known measurement layout"):
        energylens.read_profiles(tmp_path)
    with pytest.raises(ValueError, match="apply to table files"):
        read_profiles(tmp_path, layout="wilkins", units={"energy_j": "Wh"})


def test_a_folder_read_as_a_table_says_how_to_read_it(tmp_path):
    with pytest.raises(SchemaError, match="is a folder, not a table file. Pass layout='auto'"):
        read_profiles(tmp_path, layout="table")


def test_splitwise_is_refused_as_profiles_but_read_as_candidates(tmp_path):
    pd.DataFrame({"model": ["llama2-70b"] * 2, "hardware": ["a100-80gb"] * 2,
                  "tensor_parallel": [2, 4], "batch_size": [1, 8], "prompt_size": [128, 128],
                  "token_size": [32, 32], "prompt_time": [50.0, 40.0],
                  "token_time": [30.0, 20.0], "e2e_time": [980.0, 660.0]}
                 ).to_csv(tmp_path / "perf_model.csv", index=False)
    with pytest.raises(SchemaError, match="records latency, not energy"):
        read_profiles(tmp_path)
    c = read_candidates(tmp_path)
    assert c.tp.tolist() == [2, 4] and c.ttft_s.tolist() == [0.05, 0.04]
    pd.testing.assert_frame_equal(c, read_splitwise(tmp_path))


# --------------------------------------------------------------------------- real data
READERS = {
    "mlenergy_v2": (read_mlenergy_leaderboard, {}),
    "mlenergy_v3": (read_mlenergy_leaderboard, {}),
    "wilkins2024": (read_wilkins, {}),
    "tokenpowerbench": (read_tokenpowerbench, {}),
}


@pytest.mark.realdata
@pytest.mark.parametrize("folder", sorted(READERS))
def test_reader_output_reads_back_unchanged(real_data, folder, tmp_path):
    reader, kwargs = READERS[folder]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = reader(real_data / folder, **kwargs)
        again = read_profiles(out)
        by_folder = read_profiles(real_data / folder)
        out.to_csv(tmp_path / "t.csv", index=False)
        from_csv = read_profiles(tmp_path / "t.csv")
    pd.testing.assert_frame_equal(again, out)
    pd.testing.assert_frame_equal(by_folder, out)
    pd.testing.assert_frame_equal(from_csv, out, check_dtype=False)


@pytest.mark.realdata
def test_per_query_wilkins_and_splitwise_read_back_unchanged(real_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = read_wilkins(real_data / "wilkins2024", aggregate=False)
        pd.testing.assert_frame_equal(read_profiles(q, duplicates="keep"), q)
    sw = read_splitwise(real_data / "splitwise")
    pd.testing.assert_frame_equal(read_candidates(sw), sw)
    assert detect_layout(real_data / "splitwise") == "splitwise"


@pytest.mark.realdata
def test_mlenergy_v3_invariants_on_the_real_files(real_data):
    root = real_data / "mlenergy_v3"
    df = read_mlenergy_leaderboard(root)
    raw = [c for t in ("gpqa", "lm-arena-chat", "sourcegraph-fim")
           for c in json.loads((root / "tasks" / f"{t}.json").read_text())["configurations"]]
    assert len(df) == len(raw)
    assert (df.n_gpus == df.tp * df.pp * df.dp).all()
    assert df.n_gpus.tolist() == [c["num_gpus"] for c in raw]
    assert (df.pp == 1).all() and (df.tp >= 1).all()
    ep_only = df.ep > 1
    assert (df.n_gpus[ep_only] % df.ep[ep_only] == 0).all()  # experts spread over the GPUs
    assert (df.running_batch <= df.batch_size * (1 + 1e-6)).all()
    # energy per request = power x time per request, with the whole system's throughput
    tput = np.array([c["output_throughput_tokens_per_sec"] for c in raw])
    np.testing.assert_allclose(df.energy_j, df.power_w * df.output_tokens / tput, rtol=0.02)
    np.testing.assert_allclose(df.energy_per_output_token_j,
                               [c["energy_per_token_joules"] for c in raw], rtol=0.02)
    assert set(df.gpu) == {"H100", "B200"} and set(df.precision) == {"bf16", "fp8", "mxfp4"}
    assert set(df.workload) == {"gpqa", "lm-arena-chat", "sourcegraph-fim"}
    assert (df.active_params_b <= df.params_b).all()
    assert df.groupby(["model", "gpu"]).ngroups == 47
    assert detect_layout(root) == "mlenergy-v3"


@pytest.mark.realdata
def test_the_shared_data_root_points_to_its_subfolders(real_data):
    with pytest.raises(SchemaError) as exc:
        read_profiles(real_data)
    for sub, name in [("mlenergy_v2", "mlenergy-v2"), ("mlenergy_v3", "mlenergy-v3"),
                      ("wilkins2024", "wilkins"), ("tokenpowerbench", "tokenpowerbench")]:
        assert f"'{sub}' ({name})" in str(exc.value)


def test_a_task_named_but_absent_is_an_error_not_a_smaller_table(tmp_path):
    v3_folder(tmp_path, [{}], task="lm-arena-chat")
    v3_folder(tmp_path, [{}], task="gpqa")
    with pytest.raises(SchemaError, match=r"no task\(s\) \['lm-arena-chta'\].*did you mean "
                                          r"'lm-arena-chat'"):
        read_mlenergy_leaderboard(tmp_path, tasks=["gpqa", "lm-arena-chta"])
    assert len(read_mlenergy_leaderboard(tmp_path, tasks="gpqa")) == 1  # one name, not letters


def test_v3_entries_that_are_not_configurations_are_named(tmp_path):
    v3_folder(tmp_path, [{}], task="lm-arena-chat")
    (tmp_path / "tasks" / "gpqa.json").write_text(json.dumps({"task": "gpqa", "configurations": {}}))
    with pytest.warns(energylens.EnergyLensWarning, match=r"gpqa.json: no 'configurations' list"):
        df = read_mlenergy_leaderboard(tmp_path, tasks=["lm-arena-chat", "gpqa"])
    assert len(df) == 1


@pytest.mark.parametrize("dp", [1.7, True, "2"])
def test_a_data_parallel_degree_that_is_not_a_whole_number_is_not_truncated(tmp_path, dp):
    v3_folder(tmp_path, [{}, {"num_gpus": 2, "data_parallel": dp}])
    with pytest.warns(energylens.EnergyLensWarning, match="data_parallel must be a whole number"):
        df = read_mlenergy_leaderboard(tmp_path)
    assert len(df) == 1


def test_a_corrupt_v2_models_file_is_named(tmp_path):
    task = tmp_path / "llm_text_generation" / "chat"
    f = task / "A100" / "org" / "m" / "bs8+tp1+pp1.json"
    f.parent.mkdir(parents=True)
    f.write_text("{}")
    (task / "models.json").write_text("{not json")
    with pytest.raises(SchemaError, match=r"models.json.*not a JSON object of models"):
        read_mlenergy_leaderboard(tmp_path)


def _wilkins(root: Path, rows: list[list], header=None) -> Path:
    d = root / "plots" / "input-test"
    d.mkdir(parents=True, exist_ok=True)
    cols = header or ["Phase", "Runtime (s)", "CPU Energy (J)", "GPU Energy (J)",
                      "Output Token Limit", "Number of Input Tokens", "Iteration", "Model",
                      "Number of GPUs", "System"]
    lines = [",".join(cols)] + [",".join(map(str, r)) for r in rows]
    (d / "all-input-stats.csv").write_text("\n".join(lines) + "\n")
    return root


def _inference(it, energy=100.0, model="M", system="Swing AMD+A100", tokens=64):
    return [f"start-inference-A-{it}", 1.0, 2.0, energy, 32, tokens, it, model, 1, system]


@pytest.mark.parametrize("field,value,column", [
    ("energy", "", "GPU Energy (J)"), ("energy", "1.2 kJ", "GPU Energy (J)"),
    ("model", "", "Model"), ("system", "", "System"), ("tokens", "", "Number of Input Tokens"),
])
def test_a_blank_or_bad_wilkins_cell_is_named_not_dropped(tmp_path, field, value, column):
    """A blank label dropped the row from the repeats (n_repeats 6 -> 5); a blank energy was
    left out of the mean while n_repeats still counted it; '1.2 kJ' was a bare ValueError."""
    rows = [_inference(it) for it in range(1, 4)]
    rows[1] = _inference(2, **{field: value})
    _wilkins(tmp_path, rows)
    with pytest.raises(SchemaError, match=rf"'{re.escape(column)}'.*file lines \[3\]"):
        read_wilkins(tmp_path)


def test_wilkins_files_that_are_not_csv_or_lack_the_cpu_column_are_named(tmp_path):
    _wilkins(tmp_path, [_inference(1)], header=["Phase", "Runtime (s)", "GPU Energy (J)",
                                                "Output Token Limit", "Number of Input Tokens",
                                                "Iteration", "Model", "Number of GPUs", "System"])
    with pytest.raises(SchemaError, match=r"lacks columns \['CPU Energy \(J\)'\]"):
        read_wilkins(tmp_path, include_cpu=True)
    (tmp_path / "plots" / "input-test" / "all-input-stats.csv").write_text("")
    with pytest.raises(SchemaError, match="all-input-stats.csv.*cannot be read as CSV"):
        read_wilkins(tmp_path)
    with pytest.raises(SchemaError, match=r"no experiment\(s\) \['ouput-test'\]"):
        read_wilkins(tmp_path, experiments=["input-test", "ouput-test"])


def test_tokenpowerbench_runs_that_are_not_a_list_are_named(tmp_path):
    (tmp_path / "vllm_models--Llama-X_32_128_20250101_000000.json").write_text(
        json.dumps({"Llama-X": {"duration": 10.0}}))
    with pytest.warns(energylens.EnergyLensWarning, match="runs of 'Llama-X' are not a list"), \
            pytest.raises(SchemaError, match="no readable result files"):
        read_tokenpowerbench(tmp_path)


def test_a_bad_v3_entry_is_named_by_its_task_file_and_configuration(tmp_path):
    """The error named 'row 1' of the assembled table, which is in no file."""
    v3_folder(tmp_path, [{}, {"num_gpus": 6, "data_parallel": 4}], task="gpqa")
    with pytest.raises(SchemaError, match=r"'tp'.*From: tasks/gpqa.json configuration 1\."):
        read_mlenergy_leaderboard(tmp_path)
