"""Command-line options: latency models from ``fit --target`` and their checks in ``select``,
options refused with their own names before any work, the columns ``select`` and
``predict`` write (measured values kept beside the predictions), ``sweetspot``'s grid
options, ``discover``'s options of --derive, and the training sizes ``compare`` reports."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from energylens import GroupedModel, LatencyModel, simulate_profiles
from energylens.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("options")
    table = d / "t.csv"
    df = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], tp=(1, 2), pp=(1,),
                           batch_size=(1, 8, 32, 128), input_tokens=(128, 512, 2048),
                           output_tokens=(32, 256, 1024), seed=0)
    df.to_csv(table, index=False)
    energy, tpot, ttft, cand = d / "energy.json", d / "tpot.json", d / "ttft", d / "cand.csv"
    assert main(["fit", str(table), "-o", str(energy), "--quiet"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LatencyModel(target="tpot_s").fit(df).save(tpot)
        GroupedModel(LatencyModel(target="ttft_s"), by=["model", "gpu"]).fit(df).save(ttft)
    assert main(["grid", "--model", "Llama-3.1-8B", "--gpu", "H100-SXM", "--tp", "1", "2",
                 "--batch-size", "8", "128", "-o", str(cand), "--quiet"]) == 0
    return {"table": table, "energy": energy, "tpot": tpot, "ttft": ttft, "cand": cand, "dir": d}


def _run(args, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("by", [[], ["--by", "model,gpu"]])
def test_fit_target_writes_a_latency_model(by, files, tmp_path, capsys):
    model = tmp_path / ("tpot" if by else "tpot.json")
    code, out, err = _run(["fit", files["table"], "--target", "tpot_s", *by, "-o", model], capsys)
    assert code == 0, err
    saved = json.loads((model / "groups.json" if by else model).read_text())
    if not by:
        assert saved["class"] == "LatencyModel" and saved["init_params"]["target"] == "tpot_s"
    code, out, err = _run(["predict", model, files["cand"]], capsys)
    assert code == 0, err
    pred = pd.read_csv(io.StringIO(out))
    # seconds in columns named after the target, never as energy
    assert {"tpot_s", "tpot_lower_s", "tpot_upper_s"} <= set(pred.columns)
    assert not {"energy_j", "energy_per_output_token_j"} & set(pred.columns)
    assert (pred["tpot_s"] < 1).all()


def test_select_reads_latency_models_of_its_bounds(files, capsys):
    code, out, err = _run(["select", files["energy"], files["cand"], "--latency-model",
                           f"tpot_s={files['tpot']}", f"ttft_s={files['ttft']}",
                           "--tpot-s", "1", "--ttft-s", "10"], capsys)
    assert code == 0, err
    ranked = pd.read_csv(io.StringIO(out))
    assert {"tpot_s", "ttft_s"} <= set(ranked.columns) and ranked["feasible"].all()


@pytest.mark.parametrize("latency, found", [("energy", "energy_j"), ("ttft", "ttft_s")])
def test_select_refuses_a_latency_model_of_another_target(latency, found, files, capsys):
    """An energy model given as --latency-model tpot_s had its joules read as seconds."""
    code, out, err = _run(["select", files["energy"], files["cand"], "--latency-model",
                           f"tpot_s={files[latency]}", "--tpot-s", "0.05"], capsys)
    assert code == 2 and out == ""
    assert f"holds a model of {found}" in err and "not of tpot_s" in err
    assert "--target tpot_s" in err and "internal error" not in err


def test_select_refuses_bad_latency_targets_and_a_latency_model_to_rank(files, capsys):
    code, _, err = _run(["select", files["energy"], files["cand"], "--latency-model",
                         f"energy_j={files['energy']}"], capsys)
    assert code == 2 and "TARGET must be one of ttft_s, tpot_s, latency_s" in err
    code, _, err = _run(["select", files["tpot"], files["cand"]], capsys)
    assert code == 2 and "select ranks by energy" in err
    assert f"--latency-model tpot_s={files['tpot']}" in err


def test_fit_target_refuses_energy_options_and_absent_columns(files, tmp_path, capsys):
    out = tmp_path / "m.json"
    code, _, err = _run(["fit", files["table"], "--target", "tpot_s", "--model", "wilkins",
                         "-o", out], capsys)
    assert code == 2 and "--model wilkins" in err and not out.exists()
    code, _, err = _run(["fit", files["table"], "--target", "ttft_s", "--size-covariate",
                         "params_b", "-o", out], capsys)
    assert code == 2 and "--size-covariate" in err
    no_latency = tmp_path / "no_latency.csv"
    pd.read_csv(files["table"]).drop(columns=["latency_s", "ttft_s", "tpot_s"]).to_csv(
        no_latency, index=False)
    code, _, err = _run(["fit", no_latency, "--target", "tpot_s", "-o", out], capsys)
    assert code == 2 and "has no tpot_s column" in err and not out.exists()
    code, _, err = _run(["fit", files["table"], "--target", "power", "-o", out], capsys)
    assert code == 2 and "argument --target: invalid choice" in err


@pytest.mark.parametrize("args, flag", [
    (["select", "{energy}", "{cand}", "--top", "0"], "--top"),
    (["select", "{energy}", "{cand}", "--max-gpus", "-1"], "--max-gpus"),
    (["select", "{energy}", "{cand}", "--tpot-s", "0"], "--tpot-s"),
    (["predict", "{energy}", "{cand}", "--level", "1.5"], "--level"),
    (["predict", "{energy}", "{cand}", "--level", "nan"], "--level"),
    (["simulate", "--n-requests", "0"], "--n-requests"),
    (["simulate", "--noise", "-0.1"], "--noise"),
    (["simulate", "--noise", "5"], "--noise"),
    (["grid", "--model", "Llama-3.1-8B", "--gpu", "H100-SXM", "--gpus-available", "0"],
     "--gpus-available"),
    (["compare", "{table}", "--seeds", "0"], "--seeds"),
    (["report", "{table}", "-o", "{dir}/r", "--seeds", "0"], "--seeds"),
    (["discover", "{table}", "--derive", "--resamples", "0", "-o", "{dir}/d.json"], "--resamples"),
    (["sweetspot", "{table}", "--tolerance", "1.5"], "--tolerance"),
    (["sweetspot", "{table}", "--tolerance", "0"], "--tolerance"),
    (["sweetspot", "{table}", "--inputs", "-5"], "--inputs"),
    (["sweetspot", "{table}", "--outputs", "0", "64"], "--outputs"),
    (["sweetspot", "{table}", "--plot", "ss.jpg"], "--plot"),
    (["sweetspot", "{table}", "--plot", "ss"], "--plot"),
    (["validate", "{table}", "--encoding", "nosuch"], "--encoding"),
    (["validate", "{table}", "--encoding", "rot13"], "--encoding"),
    (["validate", "{table}", "--encoding", "base64"], "--encoding"),
    (["simulate", "--models"], "--models"),
    (["simulate", "--gpus"], "--gpus"),
    (["compare", "{table}", "--n-train"], "--n-train"),
])
def test_options_out_of_range_are_refused_by_name(args, flag, files, capsys):
    """The library's own wording ("The 'top' parameter of select_config ...") never reaches
    the command line: the option is refused by its flag before anything runs."""
    code, _, err = _run([a.format(**files) for a in args], capsys)
    assert code == 2 and f"argument {flag}:" in err, err
    assert "parameter of" not in err and "_" not in err.split(f"argument {flag}:")[1].split("\n")[0]


def test_messages_name_the_command_line_options(files, capsys):
    code, _, err = _run(["select", files["energy"], files["cand"], "--tpot-s", "0.05"], capsys)
    assert code == 2 and "--latency-model tpot_s=FILE" in err and "latency_model=" not in err
    code, _, err = _run(["validate", files["table"], "--units", "foo=J"], capsys)
    assert code == 2 and "invalid --units: no column 'foo'" in err and "units=" not in err


def test_select_writes_whole_ranks(files, capsys):
    code, out, err = _run(["select", files["energy"], files["cand"], "--max-gpus", "1"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    ranks = [line.split(",")[0] for line in lines[1:]]
    assert ranks[:2] == ["1", "2"] and ranks[-1] == ""  # infeasible rows have no rank
    code, out, _ = _run(["select", files["energy"], files["cand"], "--max-gpus", "1",
                         "--format", "json"], capsys)
    rows = json.loads(out)
    assert rows[0]["rank"] == 1 and isinstance(rows[0]["rank"], int) and rows[-1]["rank"] is None


def test_candidates_are_named_as_candidates(files, tmp_path, capsys):
    code, _, err = _run(["predict", files["energy"], tmp_path / "missing.csv"], capsys)
    assert code == 2 and "Cannot read the candidates" in err and "profiling table" not in err
    empty = tmp_path / "empty.csv"
    empty.write_text("tp,batch_size,input_tokens,output_tokens\n")
    code, _, err = _run(["select", files["energy"], empty], capsys)
    assert code == 2 and "Invalid candidates table" in err


@pytest.mark.parametrize("command", ["predict", "select"])
def test_candidates_take_encoding_and_units(command, files, tmp_path, capsys):
    """The message for a Latin-1 candidates file said "Pass --encoding latin-1", which
    predict and select did not take; nor --units, which every reader of a table takes."""
    given = pd.read_csv(files["table"]).head(4)
    latin = tmp_path / "latin.csv"
    given.drop(columns=["energy_j"]).assign(note="caf\u00e9").to_csv(latin, index=False,
                                                                     encoding="latin-1")
    code, out, err = _run([command, files["energy"], latin], capsys)
    assert code == 2 and "Pass --encoding latin-1" in err, err
    code, out, err = _run([command, files["energy"], latin, "--encoding", "latin-1"], capsys)
    assert code == 0, err
    assert set(_csv(out)["note"]) == {"caf\u00e9"}
    kwh = tmp_path / "kwh.csv"
    given.drop(columns=["energy_j"]).assign(energy=given["energy_j"] / 3.6e6).to_csv(kwh, index=False)
    code, out, err = _run([command, files["energy"], kwh, "--units", "energy=kWh"], capsys)
    assert code == 0, err
    both = _csv(out).merge(given, on=_KEY, suffixes=("", "_given"))
    assert len(both) == len(given)
    assert np.allclose(both["energy_j_measured"], both["energy_j_given"])
    code, out, err = _run([command, files["energy"], kwh, "--units", "energy"], capsys)
    assert code == 2 and "--units expects NAME=VALUE" in err, err


def test_units_option_reads_mega_as_mega(files, tmp_path, capsys):
    """--units energy=MJ is megajoules (not millijoules); a header in capitals that leaves
    the prefix ambiguous is refused with the --units that settle it."""
    given = pd.read_csv(files["table"])
    mj = tmp_path / "mj.csv"
    given.drop(columns=["energy_j"]).assign(energy=given["energy_j"] / 1e6).to_csv(mj, index=False)
    canonical = tmp_path / "canonical.csv"
    code, out, err = _run(["validate", mj, "--units", "energy=MJ", "-o", canonical], capsys)
    assert code == 0, err
    np.testing.assert_allclose(pd.read_csv(canonical)["energy_j"], given["energy_j"], rtol=1e-9)
    shouted = tmp_path / "shouted.csv"
    given.drop(columns=["energy_j"]).assign(ENERGY_MJ=given["energy_j"] / 1e6).to_csv(
        shouted, index=False)
    code, out, err = _run(["validate", shouted], capsys)
    assert code == 2 and "column 'ENERGY_MJ'" in err and "ambiguous" in err, err
    assert "--units ENERGY_MJ=MJ" in err and "units=" not in err
    code, out, err = _run(["validate", shouted, "--units", "ENERGY_MJ=MJ"], capsys)
    assert code == 0, err


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


_KEY = ["tp", "batch_size", "input_tokens", "output_tokens"]


def test_predict_keeps_the_measured_values_it_replaces(files, capsys):
    """A latency model's tpot_s, and an energy model's energy_j, replaced the candidates'
    measured columns of the same name."""
    given = pd.read_csv(files["table"])
    code, out, err = _run(["predict", files["tpot"], files["table"]], capsys)
    assert code == 0, err
    pred = _csv(out)
    assert np.allclose(pred["tpot_s_measured"], given["tpot_s"])
    assert not np.allclose(pred["tpot_s"], given["tpot_s"])  # the prediction, beside it
    assert {"tpot_lower_s", "tpot_upper_s"} <= set(pred.columns)
    assert np.allclose(pred["energy_j"], given["energy_j"])  # not replaced: kept as it was
    assert "energy_j_measured" not in pred.columns and "tpot_s_measured" in err
    code, out, err = _run(["predict", files["energy"], files["table"]], capsys)
    assert code == 0, err
    pred = _csv(out)
    for col in ("energy_j", "energy_per_output_token_j"):
        assert np.allclose(pred[f"{col}_measured"], given[col])
        assert not np.allclose(pred[col], given[col])
    assert len(pred) == len(given)


def test_select_keeps_the_measured_values_it_replaces(files, capsys):
    given = pd.read_csv(files["table"])
    code, out, err = _run(["select", files["energy"], files["table"], "--latency-model",
                           f"tpot_s={files['tpot']}", "--top", "3"], capsys)
    assert code == 0, err
    ranked = _csv(out)
    both = ranked.merge(given, on=_KEY, suffixes=("", "_given"))
    assert len(both) == len(ranked)
    for col in ("energy_j", "energy_per_output_token_j", "tpot_s"):
        assert np.allclose(both[f"{col}_measured"], both[f"{col}_given"]), col
        assert not np.allclose(both[col], both[f"{col}_given"]), col
    assert "energy_j_measured" in err  # said once on standard error


def test_measured_columns_never_overwrite_a_column_of_that_name(files, tmp_path, capsys):
    cand = tmp_path / "cand.csv"
    pd.read_csv(files["table"]).assign(energy_j_measured=1.0).to_csv(cand, index=False)
    for command in ("predict", "select"):
        code, out, err = _run([command, files["energy"], cand], capsys)
        assert code == 2 and out == "", err
        assert "both energy_j and energy_j_measured" in err and "internal error" not in err


def test_help_says_replaced_columns_are_kept():
    from energylens.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("predict", "select"):
        text = " ".join(sub[command].format_help().split())
        assert "kept beside it as COLUMN_measured" in text, command


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A length sweep of one configuration: what the SweetSpot model describes."""
    path = tmp_path_factory.mktemp("sweep") / "sweep.csv"
    simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], tp=(1,), pp=(1,),
                      batch_size=(32,), input_tokens=(64, 256, 1024, 2048),
                      output_tokens=(16, 64, 256, 1024), noise=0.0, seed=0).to_csv(
        path, index=False)
    return path


def test_sweetspot_outputs_and_tolerance_shape_the_table(sweep, capsys):
    """--outputs and --tolerance only fed a log line; now they give the best output length
    of the grid and the near-optimal range per input length."""
    def table(*extra):
        code, out, err = _run(["sweetspot", sweep, "--inputs", "256", "1024", *extra], capsys)
        assert code == 0, err
        return _csv(out)

    base = table("--outputs", "16", "64", "256", "1024", "--tolerance", "0.9")
    cols = ["grid_output_tokens", "grid_tokens_per_joule", "near_optimal_output_min",
            "near_optimal_output_max"]
    assert set(cols) <= set(base.columns) and base[cols].notna().all().all()
    assert set(base["grid_output_tokens"]) <= {16, 64, 256, 1024}
    assert (base["near_optimal_output_min"] <= base["grid_output_tokens"]).all()
    assert (base["grid_output_tokens"] <= base["near_optimal_output_max"]).all()
    loose = table("--outputs", "16", "64", "256", "1024", "--tolerance", "0.3")
    assert (loose["near_optimal_output_max"] - loose["near_optimal_output_min"]
            > base["near_optimal_output_max"] - base["near_optimal_output_min"]).any()
    short = table("--outputs", "16", "--tolerance", "0.9")
    assert (short["grid_output_tokens"] == 16).all()
    assert (short["grid_tokens_per_joule"] < base["grid_tokens_per_joule"]).all()


@pytest.mark.parametrize("extra", [["--resamples", "5"], ["--by", "model"], ["--per-group"]])
def test_discover_refuses_derive_options_without_derive(extra, files, tmp_path, capsys):
    out = tmp_path / "f.csv"
    code, stdout, err = _run(["discover", files["table"], *extra, "-o", out], capsys)
    assert code == 2 and stdout == "" and not out.exists()
    assert f"{extra[0]} applies to 'discover --derive' only" in err and "add --derive" in err


def test_compare_labels_only_sizes_it_trained_on(tmp_path, capsys):
    """--n-train 500 on a table of 24 rows was labelled 500 though it trained on 22 rows."""
    table = tmp_path / "small.csv"
    simulate_profiles(models=["Llama-3.2-1B"], gpus=["L4"], tp=(1, 2), pp=(1,),
                      batch_size=(8, 32, 128), input_tokens=(128, 1024), output_tokens=(64, 512),
                      seed=0).to_csv(table, index=False)
    code, out, err = _run(["compare", table, "--n-train", "6", "500", "--seeds", "1",
                           "--quiet"], capsys)
    assert code == 0, err
    res = _csv(out)
    assert set(res["n_train"]) == {6}
    ok = res[res["fit_failed"] == 0]
    assert (ok["n_fit"] == 6).all() and (ok["n_test"] == 18).all()
    assert "--n-train 500 left out" in err and "at most 22 can train" in err
    code, out, err = _run(["compare", table, "--n-train", "500", "--seeds", "1"], capsys)
    assert code == 2 and out == "" and "--n-train 500" in err
