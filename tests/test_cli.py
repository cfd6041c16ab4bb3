"""The command line: every subcommand's --help, outputs, and exit codes (0 ok, 2 bad input, 1 internal)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from energylens import simulate_profiles
from energylens.cli import build_parser, main

COMMANDS = ["validate", "simulate", "discover", "fit", "predict", "select", "sweetspot", "compare", "report"]
BAD = Path(__file__).parent / "data" / "bad"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    df = simulate_profiles(models=["Llama-3.2-1B", "Llama-3.1-8B"], gpus=["H100-SXM"], tp=(1, 2),
                           pp=(1,), batch_size=(1, 8, 32, 128), input_tokens=(128, 512, 2048),
                           output_tokens=(32, 256, 1024), seed=0)
    path = d / "t.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    assert "usage: energylens " + command in capsys.readouterr().out


def test_parser_lists_all_commands():
    text = build_parser().format_help()
    for c in COMMANDS:
        assert c in text


def test_validate_ok_and_json(table, capsys):
    assert main(["validate", str(table)]) == 0
    assert "valid profiling table" in capsys.readouterr().out
    assert main(["validate", str(table), "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] > 50 and summary["has_phase_split"]


def test_validate_bad_input_exit_2(capsys):
    path = BAD / "negative_energy.csv"
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "negative_energy.csv" in err and "column 'energy_j'" in err
    assert main(["validate", "/nonexistent/table.csv"]) == 2
    assert main(["validate", str(path), "--units", "energy"]) == 2  # malformed --units
    assert main(["frobnicate"]) == 2


def test_simulate_writes_csv_and_json(tmp_path):
    out = tmp_path / "s.csv"
    assert main(["simulate", "-o", str(out), "--models", "Llama-3.2-1B", "--gpus", "L4", "--seed", "3"]) == 0
    df = pd.read_csv(out)
    assert len(df) > 10 and set(df.gpu) == {"L4"}
    out_j = tmp_path / "s.json"
    assert main(["simulate", "-o", str(out_j), "--format", "json", "--models", "Llama-3.2-1B",
                 "--gpus", "L4"]) == 0
    assert len(json.loads(out_j.read_text())) == len(df)


def test_fit_predict_select_round_trip(table, tmp_path, capsys):
    model = tmp_path / "m.json"
    sub = tmp_path / "one.csv"
    df = pd.read_csv(table)
    df[df.model == "Llama-3.1-8B"].to_csv(sub, index=False)
    assert main(["fit", str(sub), "-o", str(model), "--quiet"]) == 0
    assert "[[EnergyLensModel fit]]" in capsys.readouterr().out
    cand = tmp_path / "cand.csv"
    pd.DataFrame({"TP": [1, 2, 2], "batch_size": [8, 8, 32], "prompt_tokens": [512] * 3,
                  "output_tokens": [256] * 3}).to_csv(cand, index=False)
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(model), str(cand), "-o", str(pred)]) == 0
    p = pd.read_csv(pred)
    assert (p.energy_lower_j <= p.energy_j).all() and (p.energy_j <= p.energy_upper_j).all()
    ranked = tmp_path / "ranked.csv"
    assert main(["select", str(model), str(cand), "-o", str(ranked), "--max-gpus", "1"]) == 0
    r = pd.read_csv(ranked)
    assert r["rank"].iloc[0] == 1 and not r[r.tp == 2].feasible.any()
    assert main(["select", str(model), str(cand), "--max-gpus", "0"]) == 2  # infeasible


def test_candidates_read_like_profiles(table, tmp_path, capsys):
    """Candidates get the profile reader's aliases and unit suffixes, and bad rows exit 2
    with the file, column and row named."""
    model = tmp_path / "m.json"
    sub = tmp_path / "one.csv"
    df = pd.read_csv(table)
    df[df.model == "Llama-3.1-8B"].to_csv(sub, index=False)
    assert main(["fit", str(sub), "-o", str(model), "--quiet"]) == 0
    capsys.readouterr()
    cand = tmp_path / "cand.csv"
    pd.DataFrame({"tensor_parallel": [1, 2], "max_num_seqs": [16, 16],
                  "input_tokens": [512, 512], "output_tokens": [256, 256]}).to_csv(cand, index=False)
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(model), str(cand), "-o", str(pred)]) == 0
    p = pd.read_csv(pred)
    assert p.tp.tolist() == [1, 2] and set(p.batch_kind) == {"cap"} and (p.energy_j > 0).all()
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"tp": [1, 0, 2], "batch_size": [8, 8, 8], "input_tokens": [512] * 3,
                  "output_tokens": [256, 256, -1]}).to_csv(bad, index=False)
    assert main(["predict", str(model), str(bad), "-o", str(pred)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'tp'" in err and "line 3" in err and "'output_tokens'" in err


def test_grouped_fit_directory(table, tmp_path, capsys):
    out = tmp_path / "models"
    assert main(["fit", str(table), "-o", str(out), "--by", "model,gpu", "--quiet"]) == 0
    index = json.loads((out / "groups.json").read_text())
    assert len(index["groups"]) == 2
    assert "Llama-3.2-1B" in capsys.readouterr().out  # the per-group statistics
    cand = tmp_path / "cand.csv"
    pd.DataFrame({"model": ["Llama-3.2-1B", "Llama-3.1-8B"], "gpu": ["H100-SXM"] * 2, "tp": [1, 1],
                  "batch_size": [8, 8], "input_tokens": [512, 512], "output_tokens": [256, 256]}).to_csv(cand, index=False)
    assert main(["predict", str(out), str(cand), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[1]["energy_j"] > rows[0]["energy_j"]  # the 8B model costs more than the 1B
    assert main(["fit", str(table), "-o", str(out), "--by", "nope"]) == 2


def test_sweetspot_and_compare(table, tmp_path, capsys):
    png = tmp_path / "ss.png"
    assert main(["sweetspot", str(table), "--model-name", "Llama-3.1-8B", "--gpu", "H100-SXM",
                 "--plot", str(png)]) == 0
    cap = capsys.readouterr()
    out = pd.read_csv(pd.io.common.StringIO(cap.out))
    assert {"input_tokens", "optimal_output_tokens"} <= set(out.columns)
    assert png.stat().st_size > 1000
    assert "the rows differ in tp (1, 2), batch_size (1, 8, 32, 128)" in cap.err
    # one configuration: only the lengths vary, and the warning is gone
    assert main(["sweetspot", str(table), "--model-name", "Llama-3.1-8B", "--gpu", "H100-SXM",
                 "--where", "tp=1", "--where", "batch_size=32"]) == 0
    assert "differ in" not in capsys.readouterr().err
    assert main(["sweetspot", str(table), "--where", "tp"]) == 2
    assert "COLUMN=VALUE" in capsys.readouterr().err
    assert main(["sweetspot", str(table), "--where", "nope=1"]) == 2
    assert main(["sweetspot", str(table), "--where", "tp=3"]) == 2
    res = tmp_path / "cmp.csv"
    assert main(["compare", str(table), "--n-train", "10", "--seeds", "2", "-o", str(res), "--quiet"]) == 0
    cmp = pd.read_csv(res)
    assert {"EnergyLens", "RandomForest"} <= set(cmp.model) and "mape" in cmp.columns


def test_internal_error_exit_1(monkeypatch, table, capsys):
    import energylens.cli as cli

    def boom(args):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(cli, "cmd_validate", boom)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        if action.prog.endswith("validate"):
            action.set_defaults(func=boom)
    assert cli.main(["validate", str(table)]) == 1
    assert "internal error" in capsys.readouterr().err


def test_module_entry_point(table):
    r = subprocess.run([sys.executable, "-m", "energylens", "validate", str(table)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "valid profiling table" in r.stdout
