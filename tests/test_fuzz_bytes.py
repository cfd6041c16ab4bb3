"""A byte-level fuzzer for table files: a valid table or a SchemaError, nothing else.

Hypothesis writes a small profiling table as bytes, then damages it the ways real files
are damaged: another delimiter, a byte-order mark or another encoding, gzip, CRLF line
ends, comment and blank lines, quotes, a row with one field more or fewer, a trailing
delimiter on every row, a repeated header, an unclosed quote, stray bytes, and numbers
that are huge, tiny, infinite or 400 digits long. ``read_profiles`` must either raise a
:class:`~energylens.SchemaError` naming the file, or return a table whose every value is
the one written in its own column: never another exception, never a shifted column.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energylens.exceptions import SchemaError
from energylens.tables import COLUMNS, read_profiles

HEADER = ["model", "gpu", "tp", "batch_size", "input_tokens", "output_tokens", "energy_j"]
NUMERIC = HEADER[3:]
SAFE = {"batch_size": ["1", "8", "64.5", " 12 "], "input_tokens": ["16", "512", "4096"],
        "output_tokens": ["1", "128", "2048.25"], "energy_j": ["0.5", "20", "1500"]}
WILD = ["1e308", "5e-324", "1e-310", "7" * 400, "-1", "0", "inf", "nan", "1,5", "1e400", "",
        "abc", "0x10", "1_000"]
LABELS = ["m1", "m2", "Llama-3.1-8B", "a,b", 'q"x', "Caf\u00e9", "m;1", "h|100"]
STRUCTURAL = {"extra_field", "missing_field", "trailing_delimiter", "repeated_header",
              "comment_mid", "unclosed_quote"}


@st.composite
def damaged_files(draw):
    n = draw(st.integers(1, 5))
    rows = []
    for i in range(n):
        row = {"model": draw(st.sampled_from(LABELS)), "gpu": draw(st.sampled_from(LABELS)),
               "tp": str(i + 1)}  # distinct configurations: nothing may be merged
        for c in NUMERIC:
            wild = draw(st.booleans()) and draw(st.booleans())
            row[c] = draw(st.one_of(st.sampled_from(WILD), st.floats(width=64).map(repr))
                          if wild else st.sampled_from(SAFE[c]))
        rows.append(row)
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=sep, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows([[r[c] for c in HEADER] for r in rows])
    lines = buf.getvalue().split("\n")[:-1]
    ops = draw(st.lists(st.sampled_from(
        ["extra_field", "missing_field", "trailing_delimiter", "repeated_header", "comment_mid",
         "comment_before", "blank_lines", "crlf", "unclosed_quote", "stray_bytes"]),
        max_size=3, unique=True))
    if "unclosed_quote" in ops and any('"' in line for line in lines):
        ops.remove("unclosed_quote")  # a quote that may pair with another is not damage
    # Field damage first, then the trailing delimiter (which nothing may undo), then the
    # inserted lines (so that line 1 is still the header when rows are damaged).
    order = ["extra_field", "missing_field", "repeated_header", "unclosed_quote",
             "trailing_delimiter", "comment_mid", "blank_lines", "comment_before", "crlf",
             "stray_bytes"]
    ops.sort(key=order.index)
    if {"extra_field", "missing_field"} <= set(ops) and n == 1:
        ops.remove("missing_field")  # on the same row they would cancel out
    data_at = lambda: draw(st.integers(1, len(lines) - 1))  # noqa: E731
    for op in ops:
        if op == "extra_field":
            lines[1] += sep + draw(st.sampled_from(["x", "1", ""]))
        elif op == "missing_field":
            i = draw(st.integers(2 if "extra_field" in ops else 1, len(lines) - 1))
            lines[i] = lines[i].rsplit(sep, 1)[0] if '"' not in lines[i] else lines[i] + sep
        elif op == "trailing_delimiter":
            lines = [lines[0]] + [line + sep for line in lines[1:]]
        elif op == "repeated_header":
            j = draw(st.integers(1, len(HEADER) - 1))
            lines[0] = sep.join(HEADER[:j] + [HEADER[j - 1]] + HEADER[j + 1:])
        elif op == "comment_mid":
            lines.insert(data_at(), "# the next runs used a new driver")
        elif op == "comment_before":
            lines.insert(0, "# exported by the profiler")
        elif op == "blank_lines":
            lines.insert(data_at(), "")
        elif op == "unclosed_quote":
            i = data_at()
            fields = lines[i].split(sep)
            k = draw(st.integers(0, len(fields) - 1))
            fields[k] = '"' + fields[k]
            lines[i] = sep.join(fields)
    text = ("\r\n" if "crlf" in ops else "\n").join(lines) + "\n"
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-32",
                                     "latin-1", "utf-16-le"]))
    data = text.encode(encoding, errors="replace")
    if "stray_bytes" in ops:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    if draw(st.booleans()) and not draw(st.booleans()):
        data = gzip.compress(data)
    name = draw(st.sampled_from(["t.csv", "t.txt"] + (["t.tsv"] if sep == "\t" else [])))
    return data, name, rows, set(ops), encoding, text


def _number(text: str) -> float:
    if "_" in text:
        return math.nan
    try:
        return float(text.strip())
    except ValueError:
        return math.nan


def _in_bounds(col: str, v: float) -> bool:
    c = COLUMNS[col]
    return (np.isfinite(v) and v > (c.lower or 0) and (c.floor is None or v >= c.floor)
            and (c.ceiling is None or v <= c.ceiling))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_files())
def test_damaged_bytes_give_the_written_table_or_a_schema_error(case):
    data, name, rows, ops, encoding, text = case
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            out = read_profiles(path)
        except SchemaError as exc:
            assert str(path) in str(exc)
            clean = not (ops & (STRUCTURAL | {"stray_bytes"})) and encoding != "utf-16-le" \
                and not (encoding == "latin-1" and not text.isascii())
            valid = all(_in_bounds(c, _number(r[c])) for r in rows for c in NUMERIC)
            assert not (clean and valid), f"a clean, valid file was refused: {exc}"
            return
    # Read: then the file was whole, and every value sits in its own column.
    assert not ops & STRUCTURAL, f"damage {ops & STRUCTURAL} was read as a table"
    if "stray_bytes" in ops:
        assert {"model", "energy_j", "n_gpus"} <= set(out.columns)
        return
    assert len(out) == len(rows)
    assert out.model.tolist() == [r["model"].strip() for r in rows]
    assert out.gpu.tolist() == [r["gpu"].strip() for r in rows]
    assert out.tp.tolist() == [int(r["tp"]) for r in rows]
    for c in NUMERIC:
        np.testing.assert_allclose(out[c].to_numpy(dtype=float),
                                   [_number(r[c]) for r in rows], rtol=1e-12, err_msg=c)


@st.composite
def damaged_json_lines(draw):
    n = draw(st.integers(1, 4))
    values = st.one_of(st.integers(-10, 10**6), st.sampled_from(["7" * 400, "1e308", "-0",
                                                                  "true", "null", '"12"',
                                                                  "[1]", "{}", "NaN"]),
                       st.floats(width=64).map(repr))
    lines = []
    for i in range(n):
        fields = [f'"model": "m{i}"', '"gpu": "g"', f'"tp": {i + 1}']
        fields += [f'"{c}": {draw(values)}' for c in NUMERIC]
        if draw(st.booleans()) and not draw(st.booleans()):
            fields.append(f'"energy_j": {draw(values)}')  # a repeated key
        lines.append("{" + ", ".join(fields) + "}")
    data = "\n".join(lines).encode()
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=3)) + data[at:]
    return data


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_json_lines())
def test_damaged_json_lines_give_a_table_or_a_schema_error(data):
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "t.jsonl"
        path.write_bytes(data)
        try:
            out = read_profiles(path)
        except SchemaError as exc:
            assert str(path) in str(exc)
            return
    assert (out.energy_j > 0).all() and np.isfinite(out.energy_per_output_token_j).all()
