"""Outputs that cannot be written are refused before any work (every command that writes,
through one check), a write that fails names the user's path, not a temporary file, two
outputs of one command never share a path, ``-o -`` writes a table to standard output (and is
refused for anything else), and a plot is written in the format of its suffix."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest

from energylens import simulate_profiles
from energylens.cli import main
from energylens.cli.files import BadInput, Outputs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("outputs")
    table = d / "data.csv"
    simulate_profiles(models=["Llama-3.2-1B"], gpus=["L4"], seed=0).to_csv(table, index=False)
    model, cand = d / "m.json", d / "cand.csv"
    assert main(["fit", str(table), "-o", str(model), "--quiet"]) == 0
    assert main(["grid", "--model", "Llama-3.2-1B", "--gpu", "L4", "--tp", "1", "-o", str(cand),
                 "--quiet"]) == 0
    return {"table": table, "model": model, "cand": cand}


def _run(args, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder that refuses new files (as a read-only file system would; chmod does not stop
    root), and a guard that fails the test if a table is read or a model fitted."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == ro.resolve():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(*args, dir=dir, **kwargs)

    def no_work(*args, **kwargs):
        raise AssertionError("the command worked before checking its output")

    import energylens.simulate
    import energylens.tables

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(energylens.tables, "read_profiles", no_work)
    monkeypatch.setattr(energylens.tables, "read_candidates", no_work)
    monkeypatch.setattr(energylens.simulate, "simulate_profiles", no_work)
    return ro


@pytest.mark.parametrize("args, output", [
    (["report", "{table}", "-o", "{ro}/rep", "--quick"], "{ro}/rep"),
    (["fit", "{table}", "-o", "{ro}/m.json"], "{ro}/m.json"),
    (["fit", "{table}", "--by", "model,gpu", "-o", "{ro}/models"], "{ro}/models"),
    (["validate", "{table}", "-o", "{ro}/x.csv"], "{ro}/x.csv"),
    (["sweetspot", "{table}", "--plot", "{ro}/ss.png"], "{ro}/ss.png"),
    (["sweetspot", "{table}", "-o", "{ro}/ss.csv"], "{ro}/ss.csv"),
    (["discover", "{table}", "-o", "{ro}/f.csv"], "{ro}/f.csv"),
    (["discover", "{table}", "--derive", "-o", "{ro}/d.json"], "{ro}/d.json"),
    (["compare", "{table}", "-o", "{ro}/c.csv"], "{ro}/c.csv"),
    (["predict", "{model}", "{cand}", "-o", "{ro}/p.csv"], "{ro}/p.csv"),
    (["select", "{model}", "{cand}", "-o", "{ro}/s.csv"], "{ro}/s.csv"),
    (["simulate", "-o", "{ro}/sim.csv"], "{ro}/sim.csv"),
    (["grid", "--model", "Llama-3.2-1B", "--gpu", "L4", "-o", "{ro}/g.csv"], "{ro}/g.csv"),
])
def test_unwritable_outputs_are_refused_before_any_work(args, output, data, read_only, capsys):
    names = {**data, "ro": read_only}
    code, err = _run([a.format(**names) for a in args], capsys)
    assert code == 2, err
    assert f"'{output.format(**names)}' cannot be written" in err and "Read-only" in err
    assert "worked before checking" not in err and ".tmp" not in err
    assert list(read_only.iterdir()) == []


def test_an_existing_output_folder_is_checked_itself(data, tmp_path, read_only):
    """A report written into an existing (empty) folder needs that folder to take files."""
    with pytest.raises(BadInput, match="does not take new files"):
        Outputs([data["table"]]).folder(str(read_only), kind="report")
    assert Outputs([data["table"]]).folder(str(tmp_path / "new"), kind="report") == tmp_path / "new"
    assert not (tmp_path / "new").exists() and list(tmp_path.iterdir()) == [read_only]


def test_a_failing_write_names_the_output_not_a_temporary_file(data, tmp_path, capsys,
                                                               monkeypatch):
    """A write that fails after the check (the disk fills, the place turns read-only)."""
    import energylens.core.io as eio

    def refused(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(src))

    monkeypatch.setattr(eio.os, "replace", refused)
    for args, out in ((["validate", data["table"], "-o"], tmp_path / "x.csv"),
                      (["fit", data["table"], "--quiet", "-o"], tmp_path / "m.json"),
                      (["predict", data["model"], data["cand"], "-o"], tmp_path / "p.csv")):
        code, err = _run([*args, out], capsys)
        assert code == 2 and f"Cannot write '{out}': Read-only file system" in err, err
        assert ".tmp" not in err and not out.exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_a_real_folder_that_takes_no_files(data, capsys):
    capsys.readouterr()
    code = main(["validate", str(data["table"]), "-o", "/proc/energylens-x.csv"])
    out, err = capsys.readouterr()
    assert code == 2 and "'/proc/energylens-x.csv' cannot be written" in err
    assert out == ""  # refused before the table was read and summarised


@pytest.mark.parametrize("args", [
    ["simulate", "--models", "Llama-3.2-1B", "--gpus", "L4"],
    ["grid", "--model", "Llama-3.2-1B", "--gpu", "L4", "--tp", "1"],
    ["predict", "{model}", "{cand}"],
    ["select", "{model}", "{cand}"],
    ["discover", "{table}", "--engine", "terms"],
    ["compare", "{table}", "--n-train", "10", "--seeds", "1"],
    ["sweetspot", "{table}", "--where", "tp=1", "--where", "batch_size=32"],
])
def test_dash_writes_the_table_to_standard_output(args, data, tmp_path, monkeypatch, capsys):
    """-o - wrote a file named '-', and the next run was refused: "'-' exists"."""
    monkeypatch.chdir(tmp_path)
    command = [a.format(**data) for a in args]
    for _ in range(2):
        capsys.readouterr()
        code = main([*command, "-o", "-", "--quiet"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert out.count("\n") > 1 and "," in out.splitlines()[0]
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, said", [
    (["fit", "{table}"], "the model file needs a file name"),
    (["fit", "{table}", "--by", "model"], "the grouped model is written to a folder"),
    (["discover", "{table}", "--derive"], "the model file needs a file name"),
    (["discover", "{table}", "--derive", "--per-group"], "the grouped model is written to a folder"),
    (["report", "{table}", "--quick"], "the report is written to a folder"),
    (["validate", "{table}"], "validate prints its summary on standard output"),
])
def test_dash_is_refused_where_no_table_is_written(args, said, data, tmp_path, monkeypatch,
                                                   capsys):
    monkeypatch.chdir(tmp_path)
    code, err = _run([*[a.format(**data) for a in args], "-o", "-"], capsys)
    assert code == 2 and said in err, err
    assert list(tmp_path.iterdir()) == []


def test_two_outputs_of_one_command_never_share_a_path(data, tmp_path, capsys):
    """sweetspot -o ss.png --plot ss.png exited 0 with the table overwritten by the plot."""
    for plot, output in (("ss.png", "ss.png"), ("ss.png", "./ss.png")):
        code, err = _run(["sweetspot", data["table"], "-o", tmp_path / output, "--plot",
                          tmp_path / plot], capsys)
        assert code == 2 and "is also the output of -o/--output" in err, err
        assert list(tmp_path.iterdir()) == []
    with pytest.raises(BadInput, match="is also the output of --plot"):
        outs = Outputs([data["table"]])
        outs.file(str(tmp_path / "a.png"), flag="--plot")
        outs.file(str(tmp_path / "a.png"))


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"),
                                           (".svg", b"<?xml"), (".PDF", b"%PDF")])
def test_the_plot_is_in_the_format_of_its_suffix(suffix, magic, data, tmp_path, capsys):
    """--plot ss.pdf held PNG bytes."""
    plot = tmp_path / f"ss{suffix}"
    code, err = _run(["sweetspot", data["table"], "--where", "tp=1", "--where",
                      "batch_size=32", "--plot", plot, "--quiet"], capsys)
    assert code == 0, err
    assert plot.read_bytes().startswith(magic)


def test_a_plot_name_without_a_known_suffix_is_refused(data, tmp_path, capsys):
    for name in ("ss.jpg", "ss", "-"):
        code, err = _run(["sweetspot", data["table"], "--plot", name], capsys)
        assert code == 2 and "argument --plot: expected a file name ending in .png, .pdf" in err
