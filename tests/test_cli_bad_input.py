"""No traceback for bad input: every bad table, tiny or degenerate tables, tampered model files,
unknown groups, catalogue names and encodings end in exit 2 with a message, never in 'internal
error'; warnings appear once per kind with the groups they concern; messages name the command
line's options, not the Python API's."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from energylens import simulate_profiles
from energylens.cli import main

BAD = Path(__file__).parent / "data" / "bad"
CASES = json.loads((BAD / "cases.json").read_text())
#: Commands reading a profiling table, with the arguments that follow the table.
TABLE_COMMANDS = {
    "validate": [], "fit": ["-o", "{tmp}/m.json"], "discover": [], "sweetspot": [],
    "compare": ["--seeds", "1", "--n-train", "5"], "report": ["-o", "{tmp}/r", "--quick"],
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("edge")
    df = simulate_profiles(models=["Llama-3.1-8B"], gpus=["H100-SXM"], seed=0)
    out = {"full": d / "full.csv", "one": d / "one.csv", "same": d / "same.csv",
           "two": d / "two.csv"}
    df.to_csv(out["full"], index=False)
    df.head(1).to_csv(out["one"], index=False)
    pd.concat([df.head(1)] * 5).to_csv(out["same"], index=False)
    df.head(2).to_csv(out["two"], index=False)
    model = d / "m.json"
    assert main(["fit", str(out["full"]), "-o", str(model), "--quiet"]) == 0
    grouped = d / "g"
    assert main(["fit", str(out["full"]), "-o", str(grouped), "--by", "model,gpu", "--quiet"]) == 0
    by_tp = d / "gtp"
    assert main(["fit", str(out["full"]), "-o", str(by_tp), "--by", "tp", "--quiet"]) == 0
    out.update(model=model, grouped=grouped, by_tp=by_tp, dir=d)
    return out


def _run(args, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(TABLE_COMMANDS))
def test_every_bad_table_exits_2_with_its_message(command, tmp_path, capsys):
    for case in CASES:
        path = BAD / case["file"]
        extra = [a.format(tmp=tmp_path) for a in TABLE_COMMANDS[command]]
        code, err = _run([command, path, *extra, "--force"] if "-o" in extra
                         else [command, path, *extra], capsys)
        assert code == 2, (command, case["file"], err[-800:])
        assert "internal error" not in err and "Traceback" not in err, (command, case["file"])
        assert case["fragment"].lower() in err.lower().replace("--duplicates ", "duplicates="), \
            (command, case["file"], err[-800:])


@pytest.mark.parametrize("command", ["predict", "select"])
def test_bad_candidate_tables_never_crash(command, files, capsys):
    for case in CASES:
        code, err = _run([command, files["model"], BAD / case["file"]], capsys)
        assert code in (0, 2) and "internal error" not in err, (command, case["file"], err[-800:])


@pytest.mark.parametrize("args, message", [
    (["fit", "{one}", "-o", "{dir}/a.json"], "at least 2 rows"),
    (["fit", "{same}", "-o", "{dir}/b.json"], "at least 2 rows"),
    (["sweetspot", "{one}"], "at least 2 rows"),
    (["sweetspot", "{same}"], "at least 2 rows"),
    (["discover", "{two}"], "discover needs at least 3"),
    (["report", "{two}", "-o", "{dir}/r2"], "report needs at least 3"),
    (["compare", "{two}"], "compare needs at least 6"),
])
def test_tiny_and_degenerate_tables(args, message, files, capsys):
    code, err = _run([a.format(**files) for a in args], capsys)
    assert code == 2 and message in err and "internal error" not in err, err


def _tampered(files, tmp_path) -> dict[str, Path]:
    d = json.loads(files["model"].read_text())
    out = {}

    def write(name, edit):
        x = copy.deepcopy(d)
        edit(x)
        out[name] = tmp_path / f"{name}.json"
        out[name].write_text(json.dumps(x))

    write("nfev_text", lambda x: x["fit"].__setitem__("nfev", "abc"))
    write("summary_list", lambda x: x["fit"].__setitem__("domain", [1, 2]))
    write("negative_k", lambda x: x["fit"].__setitem__("batch_k", -3))
    write("huge_parameter", lambda x: x["parameters"][0].__setitem__("value", 1e308))
    out["deep"] = tmp_path / "deep.json"
    out["deep"].write_text("[" * 5000 + "]" * 5000)
    out["text"] = tmp_path / "text.json"
    out["text"].write_text("hello")
    return out


def test_tampered_model_files(files, tmp_path, capsys):
    cand = tmp_path / "cand.csv"
    pd.DataFrame({"model": ["Llama-3.1-8B"], "gpu": ["H100-SXM"], "tp": [1], "batch_size": [8],
                  "input_tokens": [512], "output_tokens": [256]}).to_csv(cand, index=False)
    for name, path in _tampered(files, tmp_path).items():
        for command in ("predict", "select"):
            code, err = _run([command, path, cand], capsys)
            assert code in (0, 2) and "internal error" not in err, (name, err[-500:])
            if name in ("nfev_text", "huge_parameter", "deep", "text"):
                assert code == 2 and path.name in err, (name, err)


def test_malformed_grouped_indexes(files, tmp_path, capsys):
    import shutil

    cand = tmp_path / "cand.csv"
    pd.DataFrame({"model": ["Llama-3.1-8B"], "gpu": ["H100-SXM"], "tp": [1], "batch_size": [8],
                  "input_tokens": [512], "output_tokens": [256]}).to_csv(cand, index=False)
    bad = {"outside": {"format": "energylens.grouped", "format_version": 1, "by": ["model"],
                       "groups": [{"key": ["x"], "file": "../m.json"}]},
           "no_groups": {"format": "energylens.grouped", "format_version": 1, "by": ["model"]},
           "key_list": {"format": "energylens.grouped", "format_version": 1, "by": ["model"],
                        "groups": [{"key": [["x"]], "file": "a.json"}]},
           "not_json": "{bad"}
    for name, content in bad.items():
        d = tmp_path / name
        shutil.copytree(files["grouped"], d)
        (d / "groups.json").write_text(content if isinstance(content, str) else json.dumps(content))
        code, err = _run(["predict", d, cand], capsys)
        assert code == 2 and "groups.json" in err and "internal error" not in err, (name, err)


def test_unknown_groups_list_the_fitted_ones(files, tmp_path, capsys):
    def cand(**kw):
        row = {"model": "Llama-3.1-8B", "gpu": "H100-SXM", "tp": 1, "batch_size": 8,
               "input_tokens": 512, "output_tokens": 256, **kw}
        path = tmp_path / f"c{len(list(tmp_path.iterdir()))}.csv"
        pd.DataFrame([{k: v for k, v in row.items() if v is not None}]).to_csv(path, index=False)
        return path

    code, err = _run(["predict", files["grouped"], cand(model="llama-3.1-8b")], capsys)
    assert code == 2 and "Did you mean 'Llama-3.1-8B / H100-SXM'" in err and "Fitted groups" in err
    code, err = _run(["predict", files["grouped"], cand(model="Mistral-7B")], capsys)
    assert code == 2 and "Fitted groups: Llama-3.1-8B / H100-SXM" in err
    code, err = _run(["select", files["grouped"], cand(gpu=None)], capsys)
    assert code == 2 and "lack the group column(s) ['gpu']" in err
    code, err = _run(["predict", files["by_tp"], cand(tp=16)], capsys)
    assert code == 2 and "(tp)" in err and "'16'" in err and "Fitted groups: 1, 2, 4, 8" in err
    code, err = _run(["predict", files["model"], cand(model="llama-3.1-8B")], capsys)
    assert code == 2 and "only in case" in err


def test_cli_warnings_match_the_library_and_come_once(files, tmp_path, capsys):
    """The warnings Python shows (parameters not identifiable, at a bound, extrapolated rows)
    appear on the command line, once per kind, with the groups they concern."""
    import warnings

    from energylens import EnergyLensModel, read_profiles

    df = read_profiles(files["full"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        EnergyLensModel().fit(df)
    kinds = {w.category.__name__ for w in caught}
    assert kinds  # this table leaves parameters unidentified or at a bound
    code, err = _run(["fit", files["full"], "-o", tmp_path / "m.json", "--quiet"], capsys)
    assert code == 0
    for kind in kinds:
        assert len(re.findall(rf"^warning: {kind}\b", err, flags=re.M)) == 1, err
    code, err = _run(["fit", files["full"], "-o", tmp_path / "g", "--by", "model,gpu", "--quiet"],
                     capsys)
    assert code == 0 and "in 1 group (Llama-3.1-8B / H100-SXM)" in err
    cand = tmp_path / "far.csv"
    pd.DataFrame({"model": ["Llama-3.1-8B"] * 2, "gpu": ["H100-SXM"] * 2, "tp": [1, 64],
                  "batch_size": [8, 8], "input_tokens": [512, 512],
                  "output_tokens": [256, 256]}).to_csv(cand, index=False)
    pred = tmp_path / "pred.csv"
    code, err = _run(["predict", files["model"], cand, "-o", pred], capsys)
    assert code == 0
    lines = [ln for ln in err.splitlines() if "ExtrapolationWarning" in ln]
    assert len(lines) == 1 and "tp up to 64" in lines[0], err
    p = pd.read_csv(pred, keep_default_na=False)
    assert p["extrapolated"].tolist() == [False, True] and p["extrapolated_by"].tolist() == ["", "tp"]
    code, err = _run(["select", files["model"], cand, "-o", tmp_path / "sel.csv"], capsys)
    assert code == 0 and len([ln for ln in err.splitlines() if "ExtrapolationWarning" in ln]) == 1
    assert "extrapolated" in pd.read_csv(tmp_path / "sel.csv").columns


def test_warning_advice_uses_command_line_spelling(files, capsys):
    code, err = _run(["validate", files["same"]], capsys)
    assert code == 0 and "--duplicates keep" in err and "duplicates='keep'" not in err


@pytest.mark.parametrize("encoding, said", [
    ("utf-16", "not UTF-16 text, as --encoding utf-16 says: it holds no NUL bytes"),
    ("utf-16-le", "not UTF-16-LE text, as --encoding utf-16-le says"),
    ("utf-32", "not UTF-32 text, as --encoding utf-32 says"),
])
def test_a_wrong_wide_encoding_names_the_file_and_the_option(encoding, said, files, capsys):
    """--encoding utf-16 on a UTF-8 file said only "UTF-16 stream does not start with BOM";
    utf-16-le read it as one line of garbage ("the table is empty")."""
    code, err = _run(["validate", files["full"], "--encoding", encoding], capsys)
    assert code == 2 and f"'{files['full']}'" in err and said in err, err
    assert "Pass --encoding utf-8" in err and "internal error" not in err


def test_a_file_the_given_encoding_cannot_read_names_the_option(files, tmp_path, capsys):
    text = files["full"].read_text()
    no_bom = tmp_path / "utf16.csv"
    no_bom.write_bytes(text.encode("utf-16-le"))
    code, err = _run(["validate", no_bom, "--encoding", "utf-16"], capsys)
    assert code == 2 and f"'{no_bom}'" in err and "as --encoding utf-16 says" in err, err
    assert "no byte-order mark" in err and "Pass --encoding utf-16-le" in err
    code, err = _run(["validate", no_bom, "--encoding", "utf-16-le", "--quiet"], capsys)
    assert code == 0, err
    odd = tmp_path / "odd.csv"
    odd.write_bytes(text.replace("synthetic", "synth\u00e9tic\u0081", 1).encode("latin-1"))
    code, err = _run(["validate", odd, "--encoding", "cp1252"], capsys)
    assert code == 2 and "line 2 is not valid cp1252 (as --encoding cp1252 says)" in err, err


def test_the_library_refuses_what_is_not_a_text_encoding(files):
    from energylens import read_profiles

    for name in ("rot13", "nosuch", "hex"):
        with pytest.raises(ValueError, match=f"encoding='{name}' is not a text encoding"):
            read_profiles(files["full"], encoding=name)


def test_an_unknown_catalogue_name_names_the_option_not_python(capsys):
    code, err = _run(["simulate", "--models", "Llama-3.1-8", "--gpus", "H100-SXM"], capsys)
    assert code == 2 and "--models Llama-3.1-8: Unknown model" in err, err
    assert "'Llama-3.1-8B'" in err and "docs/catalogue.md" in err
    assert "register_models" not in err and "pd.DataFrame" not in err
    code, err = _run(["simulate", "--gpus", "H1000"], capsys)
    assert code == 2 and "--gpus H1000: Unknown GPU" in err and "register_gpus" not in err


def test_library_advice_reads_as_command_line_options():
    from energylens.cli.messages import cli_text

    derive = ("derive_model: the model returned is fitted on all 96 rows of the 4 groups (by "
              "['model', 'gpu']) with one set of coefficients, in-sample MAPE 31.0%; refit it "
              "per group with GroupedModel(model, by=['model', 'gpu']).")
    assert cli_text(derive).endswith("refit it per group with --per-group (with --derive).")
    settings = ("Fit one model per value (GroupedModel(by=[..., 'dp'])) or use "
                "HierarchicalEnergyModel")
    assert "(--by ...,dp)" in cli_text(settings) and "GroupedModel" not in cli_text(settings)
    described = ("descriptors: 'gpu_flop_s' is missing for rows [0] (GPUs ['X']): the catalogue "
                 "has no bf16_flop_s for them; add it with energylens.core.catalogue."
                 "register_gpus(pd.DataFrame({'name': ['X'], 'bf16_flop_s': [...]})); "
                 "'model_layers' is missing for rows [1] (models ['y']): the catalogue has no "
                 "layers for them; add it with energylens.core.catalogue.register_models("
                 "pd.DataFrame({'name': ['y'], 'layers': [...]})).")
    text = cli_text(described)
    assert "register_" not in text and "'model_layers' is missing" in text
    assert text.endswith("(docs/catalogue.md lists them and says how to add one from Python).")


def test_a_file_where_a_folder_goes_is_named_as_the_kind_of_output(files, capsys):
    """The message read "the grouped is written to a folder"."""
    code, err = _run(["fit", files["full"], "--by", "model", "-o", files["one"]], capsys)
    assert code == 2 and "the grouped model is written to a folder" in err, err


def _splitwise(folder: Path) -> Path:
    """A small folder in the Splitwise layout (latency only)."""
    folder.mkdir()
    rows = []
    for tp in (2, 4):
        for b in (1, 4, 16):
            for si in (128, 512, 2048):
                for so in (64, 256):
                    ttft = (20 + 0.05 * si * b / tp) * (1 + 0.01 * tp)
                    tpot = 20 + 0.5 * b / tp + 0.002 * b * (si + so / 2) / tp
                    rows.append({"model": "llama2-70b", "hardware": "a100-80gb",
                                 "prompt_size": si, "batch_size": b, "token_size": so,
                                 "peak_power": 1.0, "average_power": 0.7, "prompt_time": ttft,
                                 "token_time": tpot, "e2e_time": ttft + so * tpot,
                                 "tensor_parallel": tp})
    pd.DataFrame(rows).to_csv(folder / "perf_model.csv", index=False)
    return folder


def test_a_latency_folder_fits_latency_as_its_message_says(tmp_path, capsys):
    """The Splitwise message said "Read it with read_splitwise ... to fit latency models",
    and 'fit FOLDER --target tpot_s' was refused."""
    folder = _splitwise(tmp_path / "splitwise")
    code, err = _run(["validate", folder], capsys)
    assert code == 2 and "read_splitwise" not in err and "read_candidates" not in err, err
    assert f"'energylens fit {folder} --target tpot_s --by model,gpu -o tpot'" in err
    code, err = _run(["fit", folder, "-o", tmp_path / "e.json"], capsys)
    assert code == 2 and "'energylens fit' needs energy measurements" in err, err
    model = tmp_path / "tpot"
    code, err = _run(["fit", folder, "--target", "tpot_s", "--by", "model,gpu", "-o", model,
                      "--quiet"], capsys)
    assert code == 0, err
    capsys.readouterr()
    code = main(["predict", str(model), str(folder), "--quiet"])
    out = capsys.readouterr().out
    pred = pd.read_csv(io.StringIO(out))
    assert code == 0 and {"tpot_s", "tpot_s_measured"} <= set(pred.columns)
    assert (abs(pred["tpot_s"] / pred["tpot_s_measured"] - 1) < 0.25).all()
