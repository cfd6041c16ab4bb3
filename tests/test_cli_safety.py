"""No user file is lost: outputs never replace an input or a file energylens did not write
(without --force), folder outputs are checked before any work, and every write is atomic."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from energylens import simulate_profiles
from energylens.cli import main
from energylens.cli.files import REPORT_MARKER, BadInput, Outputs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("safety")
    path = d / "data.csv"
    simulate_profiles(models=["Llama-3.2-1B"], gpus=["L4"], seed=0).to_csv(path, index=False)
    return path


def _run(args, capsys):
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_never_writes_over_an_input(data, capsys):
    before = data.read_bytes()
    for args in (["fit", data, "-o", data], ["validate", data, "-o", data, "--force"],
                 ["fit", data, "-o", data, "--force"],
                 ["sweetspot", data, "-o", data, "--force"],
                 ["discover", data, "-o", data, "--force"]):
        code, err = _run(args, capsys)
        assert code == 2 and "is an input of this command" in err, (args, err)
    assert data.read_bytes() == before


def test_existing_files_need_force(data, tmp_path, capsys):
    mine = tmp_path / "notes.csv"
    mine.write_text("my notes\n")
    code, err = _run(["validate", data, "-o", mine], capsys)
    assert code == 2 and "--force" in err and mine.read_text() == "my notes\n"
    code, _ = _run(["validate", data, "-o", mine, "--force"], capsys)
    assert code == 0 and mine.read_text().startswith("model,")
    # a JSON file that is not an energylens model is not replaced by a fit
    other = tmp_path / "config.json"
    other.write_text('{"a": 1}')
    code, err = _run(["fit", data, "-o", other], capsys)
    assert code == 2 and "not an energylens model file" in err and json.loads(other.read_text()) == {"a": 1}
    code, _ = _run(["fit", data, "-o", other, "--force", "--quiet"], capsys)  # --force reaches save
    assert code == 0 and json.loads(other.read_text())["format"] == "energylens.model"
    # a model file energylens wrote is replaced
    model = tmp_path / "m.json"
    assert _run(["fit", data, "-o", model, "--quiet"], capsys)[0] == 0
    assert _run(["fit", data, "-o", model, "--quiet"], capsys)[0] == 0


def test_folder_outputs_are_checked_before_any_work(data, tmp_path, capsys, monkeypatch):
    import energylens.models.grouped as grouped

    def never(*args, **kwargs):
        raise AssertionError("fitted before the output was checked")

    monkeypatch.setattr(grouped.GroupedModel, "fit", never)
    existing = tmp_path / "out.txt"
    existing.write_text("keep me\n")
    code, err = _run(["fit", data, "--by", "model,gpu", "-o", existing], capsys)
    assert code == 2 and "is a file" in err and existing.read_text() == "keep me\n"
    code, err = _run(["report", data, "-o", existing], capsys)
    assert code == 2 and "is a file" in err and existing.read_text() == "keep me\n"
    code, err = _run(["report", data, "-o", existing, "--force"], capsys)
    assert code == 2 and existing.read_text() == "keep me\n"  # never a file, even forced
    full = tmp_path / "photos"
    full.mkdir()
    (full / "index.html").write_text("<p>my page</p>")
    code, err = _run(["report", data, "-o", full], capsys)
    assert code == 2 and "did not write" in err
    assert (full / "index.html").read_text() == "<p>my page</p>"
    code, err = _run(["fit", data, "--by", "model", "-o", full], capsys)
    assert code == 2 and "did not write" in err
    code, err = _run(["report", data, "-o", tmp_path / "missing" / "r"], capsys)
    assert code == 2 and "does not exist" in err


def test_report_folder_refusal_names_the_files_and_the_flag(data, tmp_path, capsys):
    """The command line refuses a folder by the library's rule
    (energylens.report.check_report_folder): the message names the folder, its files and
    --force (never the library's force=True)."""
    mine = tmp_path / "site"
    mine.mkdir()
    for name in ("index.html", "notes.txt"):
        (mine / name).write_text("mine")
    code, err = _run(["report", data, "-o", mine], capsys)
    assert code == 2 and f"'{mine}'" in err and "'index.html', 'notes.txt'" in err, err
    assert "Pass --force" in err and "force=True" not in err
    assert (mine / "index.html").read_text() == "mine"


def test_report_checks_its_folder_again_before_writing(data, tmp_path, capsys, monkeypatch):
    """A file put into the report's folder while the analysis runs is not written over:
    the command goes through the library's check again before it writes."""
    from types import SimpleNamespace

    import energylens.report as report

    out = tmp_path / "rep"

    def meanwhile(*args, **kwargs):
        out.mkdir()
        (out / "index.html").write_text("written meanwhile")
        return SimpleNamespace(warnings=[])

    monkeypatch.setattr(report, "analyse", meanwhile)
    code, err = _run(["report", data, "-o", out, "--quiet"], capsys)
    assert code == 2 and "'index.html'" in err and "--force" in err, err
    assert (out / "index.html").read_text() == "written meanwhile"
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]


def test_report_folders_energylens_wrote_may_be_written_again(data, tmp_path):
    ok = tmp_path / "old_report"
    ok.mkdir()
    (ok / REPORT_MARKER).write_text("energylens report\n")
    (ok / "index.html").write_text("old")
    assert Outputs([data]).folder(str(ok), kind="report") == ok
    empty = tmp_path / "empty"
    empty.mkdir()
    assert Outputs([data]).folder(str(empty), kind="report") == empty
    # never over the table itself, even when it sits in the folder with a report's file name
    table = ok / "headline.csv"
    table.write_text("x\n")
    with pytest.raises(BadInput, match="would replace the input"):
        Outputs([table], force=True).folder(str(ok), kind="report", writes=("headline.csv",))
    with pytest.raises(BadInput, match="inside the input folder"):
        Outputs([tmp_path], force=True).file(str(tmp_path / "x.csv"))


def test_writes_are_atomic(data, tmp_path, capsys, monkeypatch):
    """An interrupted write leaves the old file whole and no temporary file behind."""
    import energylens.core.io as eio

    target = tmp_path / "out.csv"
    target.write_text("old content\n")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(eio.os, "replace", interrupted)
    code, _ = _run(["validate", data, "-o", target, "--force"], capsys)
    assert code == 1  # interrupted
    assert target.read_text() == "old content\n"
    assert sorted(os.listdir(tmp_path)) == ["out.csv"]
    monkeypatch.undo()
    assert _run(["validate", data, "-o", target, "--force"], capsys)[0] == 0
    assert pd.read_csv(target).shape[0] > 10


def test_a_reader_that_stops_early_is_not_an_error(monkeypatch, capsys):
    # `energylens ... | head`: the pipe closes while the command still writes
    import importlib

    cli_main = importlib.import_module("energylens.cli.main")  # the module, not its main()

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    silenced = []
    monkeypatch.setattr(cli_main, "_run", closed)
    monkeypatch.setattr(cli_main, "_silence_stdout", lambda: silenced.append(True))
    assert cli_main.main(["validate", "x.csv"]) == 0
    assert silenced and "error" not in capsys.readouterr().err
