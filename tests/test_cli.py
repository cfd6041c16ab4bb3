"""The command line: every subcommand's --help, outputs, and exit codes (0 ok, 2 bad input, 1 internal)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from energylens import simulate_profiles
from energylens.cli import COMMANDS, build_parser, main

BAD = Path(__file__).parent / "data" / "bad"
READS_TABLE = ("validate", "discover", "fit", "sweetspot", "compare", "report")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    df = simulate_profiles(models=["Llama-3.2-1B", "Llama-3.1-8B"], gpus=["H100-SXM"], tp=(1, 2),
                           pp=(1,), batch_size=(1, 8, 32, 128), input_tokens=(128, 512, 2048),
                           output_tokens=(32, 256, 1024), seed=0)
    path = d / "t.csv"
    df.to_csv(path, index=False)
    return path


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    assert "usage: energylens " + command in capsys.readouterr().out


def test_parser_lists_all_commands():
    text = build_parser().format_help()
    assert set(_subparsers()) == set(COMMANDS)
    for c in COMMANDS:
        assert c in text


def test_every_option_and_positional_has_help_with_an_example():
    missing = []
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not action.help or "e.g." not in action.help:
                missing.append(f"{name} {action.option_strings or action.dest}")
    assert not missing, missing


def test_layout_option_on_every_command_that_reads_a_table():
    from energylens.tables import LAYOUTS

    subs = _subparsers()
    for name in (*READS_TABLE, "predict", "select"):
        layout = next(a for a in subs[name]._actions if a.dest == "layout")
        assert set(layout.choices) == {"auto", *LAYOUTS}, name


def test_latency_targets_match_the_selection_constraints():
    # kept apart so that --help does not import pandas; this keeps the two lists in step
    from energylens.cli.parser import LATENCY_TARGETS
    from energylens.selection.rank import _LATENCY

    assert set(LATENCY_TARGETS) == set(_LATENCY)


def test_help_imports_nothing_heavy():
    """--help answers without numpy, pandas or scikit-learn (their import is most of a second)."""
    code = ("import sys, contextlib, io\nfrom energylens.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['fit', '--help'])\n"
            "print([m for m in ('numpy', 'pandas', 'sklearn', 'scipy', 'matplotlib') "
            "if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_validate_ok_and_json(table, capsys):
    assert main(["validate", str(table)]) == 0
    assert "valid profiling table" in capsys.readouterr().out
    assert main(["validate", str(table), "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] > 50 and summary["has_phase_split"] and summary["layout"] == "table"


@pytest.mark.realdata
def test_validate_reads_public_layouts(real_data, capsys):
    assert main(["validate", str(real_data / "mlenergy_v2")]) == 0
    out = capsys.readouterr().out
    assert "valid profiling table (ML.ENERGY leaderboard v2" in out
    assert main(["validate", str(real_data / "wilkins2024"), "--layout", "wilkins",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["layout"] == "wilkins"
    assert main(["validate", str(real_data / "wilkins2024"), "--layout", "mlenergy-v3"]) == 2


def test_validate_bad_input_exit_2(capsys):
    path = BAD / "negative_energy.csv"
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "negative_energy.csv" in err and "column 'energy_j'" in err
    assert main(["validate", "/nonexistent/table.csv"]) == 2
    assert main(["validate", str(path), "--units", "energy"]) == 2  # malformed --units
    assert main(["frobnicate"]) == 2


def test_advice_is_spelled_as_command_line_options(capsys):
    assert main(["validate", str(BAD / "duplicate_conflict.csv")]) == 2
    err = capsys.readouterr().err
    assert "--duplicates mean" in err and "duplicates='mean'" not in err


def test_simulate_writes_csv_and_json(tmp_path):
    out = tmp_path / "s.csv"
    assert main(["simulate", "-o", str(out), "--models", "Llama-3.2-1B", "--gpus", "L4", "--seed", "3"]) == 0
    df = pd.read_csv(out)
    assert len(df) > 10 and set(df.gpu) == {"L4"}
    out_j = tmp_path / "s.json"
    assert main(["simulate", "-o", str(out_j), "--format", "json", "--models", "Llama-3.2-1B",
                 "--gpus", "L4"]) == 0
    assert len(json.loads(out_j.read_text())) == len(df)


def test_grid_writes_candidates_with_feasibility(tmp_path, capsys):
    out = tmp_path / "cand.csv"
    assert main(["grid", "--model", "Llama-3.1-70B", "--gpu", "H100-SXM", "--tp", "1", "4",
                 "--batch-size", "32", "--gpus-available", "4", "--set", "workload=chat",
                 "-o", str(out)]) == 0
    c = pd.read_csv(out, keep_default_na=False)
    assert c["tp"].tolist() == [1, 4] and c["feasible"].tolist() == [False, True]
    assert "GB per GPU" in c.loc[0, "reason"] and c.loc[1, "reason"] == ""
    assert set(c["workload"]) == {"chat"}
    assert main(["grid", "--model", "Llama-3.1-8B", "--gpu", "H100-SXM", "--tp", "0"]) == 2
    assert main(["grid", "--model", "Llama-3.1-8B", "--gpu", "H100-SXM", "--set", "tp=2"]) == 2
    capsys.readouterr()
    # the candidates feed predict and select directly
    table = tmp_path / "t.csv"
    simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], seed=1).to_csv(table, index=False)
    model = tmp_path / "m.json"
    assert main(["fit", str(table), "-o", str(model), "--quiet"]) == 0
    cand = tmp_path / "c8.csv"
    assert main(["grid", "--model", "Llama-3.1-8B", "--gpu", "H100-SXM", "--tp", "1", "2",
                 "--batch-size", "8", "32", "-o", str(cand)]) == 0
    assert main(["select", str(model), str(cand), "--top", "2"]) == 0


def test_fit_predict_select_round_trip(table, tmp_path, capsys):
    model = tmp_path / "m.json"
    sub = tmp_path / "one.csv"
    df = pd.read_csv(table)
    df[df.model == "Llama-3.1-8B"].to_csv(sub, index=False)
    assert main(["fit", str(sub), "-o", str(model), "--quiet"]) == 0
    assert "[[EnergyLensModel fit]]" in capsys.readouterr().out
    # a model file energylens wrote may be replaced by a new fit
    assert main(["fit", str(sub), "-o", str(model), "--quiet"]) == 0
    cand = tmp_path / "cand.csv"
    pd.DataFrame({"TP": [1, 2, 2], "batch_size": [8, 8, 32], "prompt_tokens": [512] * 3,
                  "output_tokens": [256] * 3}).to_csv(cand, index=False)
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(model), str(cand), "-o", str(pred)]) == 0
    p = pd.read_csv(pred)
    assert (p.energy_lower_j <= p.energy_j).all() and (p.energy_j <= p.energy_upper_j).all()
    assert "extrapolated" in p.columns and not p["extrapolated"].any()
    assert "wide" in p.columns and not p["wide"].any()  # the interval flag of predict_interval
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
    assert main(["predict", str(model), str(bad), "-o", str(tmp_path / "pred2.csv")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "'tp'" in err and "line 3" in err and "'output_tokens'" in err


def test_grouped_fit_directory(table, tmp_path, capsys):
    out = tmp_path / "models"
    assert main(["fit", str(table), "-o", str(out), "--by", "model,gpu", "--quiet"]) == 0
    index = json.loads((out / "groups.json").read_text())
    assert len(index["groups"]) == 2
    assert {"Llama-3.2-1B__H100-SXM.json", "Llama-3.1-8B__H100-SXM.json"} <= {
        p.name for p in out.iterdir()}  # files named by their group
    assert "Llama-3.2-1B" in capsys.readouterr().out  # the per-group statistics
    # a grouped folder energylens wrote may be written again
    assert main(["fit", str(table), "-o", str(out), "--by", "model,gpu", "--quiet"]) == 0
    cand = tmp_path / "cand.csv"
    pd.DataFrame({"model": ["Llama-3.2-1B", "Llama-3.1-8B"], "gpu": ["H100-SXM"] * 2, "tp": [1, 1],
                  "batch_size": [8, 8], "input_tokens": [512, 512], "output_tokens": [256, 256]}).to_csv(cand, index=False)
    capsys.readouterr()
    assert main(["predict", str(out), str(cand), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[1]["energy_j"] > rows[0]["energy_j"]  # the 8B model costs more than the 1B
    assert main(["fit", str(table), "-o", str(tmp_path / "m2"), "--by", "nope"]) == 2


def test_sweetspot_and_compare(table, tmp_path, capsys):
    png = tmp_path / "ss.png"
    assert main(["sweetspot", str(table), "--model-name", "Llama-3.1-8B", "--gpu", "H100-SXM",
                 "--plot", str(png)]) == 0
    cap = capsys.readouterr()
    out = pd.read_csv(pd.io.common.StringIO(cap.out))
    assert {"input_tokens", "optimal_output_tokens", "extrapolated"} <= set(out.columns)
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
    cmp = pd.read_csv(res, keep_default_na=False)
    assert {"EnergyLens", "RandomForest"} <= set(cmp.model) and "mape" in cmp.columns
    assert "failure_reason" in cmp.columns


def test_compare_and_report_share_one_model_list(monkeypatch):
    """Both commands take their models from evaluation.comparison_models."""
    import energylens.evaluation as ev
    from energylens.evaluation import COMPARISON_MODELS, comparison_models
    from energylens.report import comparison as rc

    assert tuple(comparison_models()) == COMPARISON_MODELS
    seen = []

    def spy(by=("model", "gpu"), *, quick=False):
        seen.append(quick)
        raise ValueError("spy")

    monkeypatch.setattr(ev, "comparison_models", spy)
    df = simulate_profiles(models=["Llama-3.2-1B"], gpus=["L4"], seed=0)
    with pytest.raises(ValueError, match="spy"):
        rc.compare(df, ["model", "gpu"], seeds=1, quick=True, source="t")
    assert seen == [True]


def test_internal_error_exit_1(monkeypatch, table, capsys):
    import energylens.cli.data as data

    def boom(args, summary):
        raise RuntimeError("unexpected")

    monkeypatch.setattr(data, "cmd_validate", boom)
    assert main(["validate", str(table)]) == 1
    err = capsys.readouterr().err
    assert "internal error" in err and "RuntimeError: unexpected" in err


def test_logging_levels(table, capsys):
    assert main(["validate", str(table), "-o", "/nonexistent-folder/x.csv"]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["simulate", "--models", "Llama-3.2-1B", "--gpus", "L4"]) == 0
    assert "simulated" in capsys.readouterr().err  # info goes to standard error
    assert main(["simulate", "--models", "Llama-3.2-1B", "--gpus", "L4", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    import logging

    assert not [h for h in logging.getLogger("energylens").handlers
                if not isinstance(h, logging.NullHandler)]  # the handler is removed again


def test_module_entry_point(table):
    r = subprocess.run([sys.executable, "-m", "energylens", "validate", str(table)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "valid profiling table" in r.stdout


def test_by_takes_commas_or_spaces(table, tmp_path):
    """``--by model gpu`` (as many tools spell it) and ``--by model,gpu`` fit the same groups."""
    import energylens

    for spelling, out in ((["model,gpu"], "a"), (["model", "gpu"], "b")):
        assert main(["fit", str(table), "--by", *spelling, "-o", str(tmp_path / out), "--quiet"]) == 0
    a, b = (energylens.load_model(tmp_path / k) for k in "ab")
    assert a.by_ == b.by_ == ["model", "gpu"] and sorted(a.models_) == sorted(b.models_)


def test_discover_derive_refuses_a_by_column_the_table_lacks(table, tmp_path, capsys):
    """As ``fit`` does: the library would ignore the column and derive without its groups."""
    rc = main(["discover", str(table), "--derive", "--by", "model,nosuch", "-o", str(tmp_path / "m.json")])
    assert rc == 2 and not (tmp_path / "m.json").exists()
    assert "--by names column(s) ['nosuch'] absent from" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["fit", "compare", "report"])
@pytest.mark.parametrize("value", ["0", "two"])
def test_jobs_must_be_a_non_zero_integer(command, value, table, tmp_path, capsys):
    extra = ["--by", "model"] if command == "fit" else []
    out = ["-o", str(tmp_path / "out")] if command in ("fit", "report") else []
    assert main([command, str(table), *extra, *out, "--jobs", value]) == 2
    assert f"--jobs: expected a non-zero integer (-1 for all cores), got '{value}'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_fit_the_hierarchical_model_with_calibrated_intervals_for_new_models(tmp_path, capsys):
    import json

    table = tmp_path / "t.csv"
    models = ["Llama-3.1-8B", "Qwen3-8B", "Mistral-7B", "Qwen3-14B", "gemma-2-9b", "Llama-3.1-70B",
              "Qwen3-32B", "gemma-2-27b", "Llama-3.2-1B", "Llama-3.2-3B"]
    simulate_profiles(models=models, gpus=["H100-SXM"], tp=(1, 2, 4), pp=(1,), batch_size=(8, 64),
                      input_tokens=(512,), output_tokens=(128,), seed=2).to_csv(table, index=False)
    model = tmp_path / "h.json"
    assert main(["fit", str(table), "--model", "hierarchical", "--calibrate-new-models", "-o",
                 str(model), "--quiet"]) == 0
    saved = json.loads(model.read_text())
    assert saved["init_params"]["calibrate"] == "models"
    assert len(saved["fit"]["new_model_scores"]) == len(pd.read_csv(table))
    capsys.readouterr()
    assert main(["fit", str(table), "--calibrate-new-models", "-o", str(tmp_path / "e.json")]) == 2
    assert "--calibrate-new-models calibrates the intervals of --model hierarchical" in (
        capsys.readouterr().err)
    assert not (tmp_path / "e.json").exists()


def test_fit_the_hierarchical_model_and_select_with_it(tmp_path, capsys):
    """The report's model for tables of many groups, from the command line too (fit had only
    closed forms, so select could not reproduce the report's choices)."""
    table = tmp_path / "t.csv"
    simulate_profiles(models=["Llama-3.1-8B", "Qwen2.5-14B"], gpus=["H100-SXM", "A100-80GB"],
                      tp=(1, 2), pp=(1,), batch_size=(8, 64), input_tokens=(512,),
                      output_tokens=(128, 512), seed=2).to_csv(table, index=False)
    model = tmp_path / "h.json"
    assert main(["fit", str(table), "--model", "hierarchical", "-o", str(model), "--quiet"]) == 0
    assert "HierarchicalEnergyModel" in capsys.readouterr().out
    cand = tmp_path / "c.csv"
    assert main(["grid", "--model", "Qwen2.5-14B", "--gpu", "H100-SXM", "--tp", "1", "2",
                 "--batch-size", "8", "64", "--input-tokens", "512", "--output-tokens", "128",
                 "-o", str(cand), "--quiet"]) == 0
    ranked = tmp_path / "r.csv"
    assert main(["select", str(model), str(cand), "-o", str(ranked), "--quiet"]) == 0
    r = pd.read_csv(ranked)
    assert r["rank"].iloc[0] == 1 and (r.energy_lower_j < r.energy_j).all()
    for extra in (["--by", "model"], ["--loss", "log"], ["--size-covariate", "params_b"]):
        assert main(["fit", str(table), "--model", "hierarchical", "-o",
                     str(tmp_path / "x.json"), *extra]) == 2
        assert f"leave out {extra[0]}" in capsys.readouterr().err
