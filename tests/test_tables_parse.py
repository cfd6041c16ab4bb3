"""Reading table files: encodings, compression, delimiters, comments, ragged rows, paths.

Each test here pins one behaviour of issue 13 that went wrong before the tables package:
a silently shifted table, a raw codec error, a misleading "no such file".
"""

from __future__ import annotations

import gzip
import logging
import os

import numpy as np
import pandas as pd
import pytest

import energylens
from energylens.exceptions import SchemaError
from energylens.tables import explain, read_candidates, read_profiles

HEAD = "model,gpu,tp,batch_size,input_tokens,output_tokens,energy_j"
ROWS = ["m1,H100,1,8,128,64,20.0", "m1,H100,2,16,256,128,35.0", "m2,A100,4,32,512,256,80.0"]
ENERGY = [20.0, 35.0, 80.0]


def text(rows=ROWS, head=HEAD, sep=","):
    return "".join(line.replace(",", sep) + "\n" for line in [head, *rows])


def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# --------------------------------------------------------------------------- ragged rows
def test_rows_one_field_longer_than_the_header_are_an_error_not_a_shift(tmp_path):
    """Before: pandas made the first column the index; model=H100, gpu=1, ... energy=0.5."""
    path = write(tmp_path, "t.csv", text(["x," + r for r in ROWS]))
    with pytest.raises(SchemaError) as exc:
        read_profiles(path)
    msg = str(exc.value)
    assert "header's 7 fields" in msg and "line 2 has 8, line 3 has 8, line 4 has 8" in msg
    assert exc.value.problems[0]["code"] == "ragged_row"
    assert exc.value.problems[0]["lines"] == [2, 3, 4]


def test_trailing_commas_are_named_as_such(tmp_path):
    path = write(tmp_path, "t.csv", text([r + "," for r in ROWS]))
    with pytest.raises(SchemaError, match="a trailing delimiter"):
        read_profiles(path)


def test_a_ragged_row_deep_in_a_long_file_names_its_line(tmp_path):
    rows = [f"m,H100,1,8,128,64,{10 + i}" for i in range(3000)]
    rows[2500] += ",9"
    path = write(tmp_path, "t.csv", text(rows))
    with pytest.raises(SchemaError, match="line 2502 has 8"):
        read_profiles(path)


def test_a_short_row_is_an_error_rather_than_missing_values(tmp_path):
    rows = [*ROWS[:2], "m2,A100,4,32,512,256"]
    with pytest.raises(SchemaError, match="line 4 has 6"):
        read_profiles(write(tmp_path, "t.csv", text(rows, HEAD)))


@pytest.mark.parametrize("quoted", [False, True])
def test_a_short_row_past_the_sample_is_caught_with_or_without_quotes(tmp_path, quoted):
    """Without quotes the byte count finds it; with quotes (the count cannot tell) the
    empty last field sends the file to the line scan."""
    label = '"m"' if quoted else "m"
    rows = [f"{label},H100,1,8,128,64,{10 + i}" for i in range(500)]
    rows[400] = rows[400].rsplit(",", 1)[0]
    with pytest.raises(SchemaError, match="line 402 has 6"):
        read_profiles(write(tmp_path, "t.csv", text(rows)))


def test_an_empty_optional_last_column_is_not_a_short_row(tmp_path):
    rows = [f"m,H100,1,8,128,64,{10 + i}," + ("" if i % 3 else "0.5") for i in range(300)]
    out = read_profiles(write(tmp_path, "t.csv", text(rows, HEAD + ",ttft_s")), duplicates="keep")
    assert out.ttft_s.isna().sum() == 200
    crlf = text(rows, HEAD + ",ttft_s").replace("\n", "\r\n")
    assert len(read_profiles(write(tmp_path, "u.csv", crlf), duplicates="keep")) == 300


def test_an_empty_trailing_header_field_without_values_is_dropped(tmp_path):
    path = write(tmp_path, "t.csv", text([r + "," for r in ROWS], HEAD + ","))
    out = read_profiles(path)
    assert not any(c.startswith("Unnamed") for c in out.columns)
    np.testing.assert_allclose(out.energy_j, ENERGY)


# --------------------------------------------------------------------------- headers
def test_a_repeated_header_is_an_error_not_energy_j_dot_1(tmp_path):
    path = write(tmp_path, "t.csv", text([r + ",21" for r in ROWS], HEAD + ",energy_j"))
    with pytest.raises(SchemaError, match=r"'energy_j' \(fields 7, 8\)"):
        read_profiles(path)
    df = pd.DataFrame([[1, 2]], columns=["energy_j", "energy_j"])
    with pytest.raises(SchemaError, match=r"names \['energy_j'\] more than once"):
        read_profiles(df)


def test_parquet_with_repeated_columns_names_them_briefly(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])],
                                        names=["energy_j", "energy_j"]), path)
    with pytest.raises(SchemaError) as exc:
        read_profiles(path)
    assert "['energy_j'] more than once" in str(exc.value)
    assert "schema" not in str(exc.value).lower()  # no dump of the parquet schema


def test_a_broken_parquet_file_is_a_schema_error(tmp_path):
    with pytest.raises(SchemaError, match="not a readable parquet file"):
        read_profiles(write(tmp_path, "t.parquet", b"PAR1 not really"))


# --------------------------------------------------------------------------- encodings
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_files_with_a_byte_order_mark_are_read(tmp_path, encoding):
    path = write(tmp_path, "t.csv", text().encode(encoding))
    out = read_profiles(path)
    assert out.model.tolist() == ["m1", "m1", "m2"]
    np.testing.assert_allclose(out.energy_j, ENERGY)


def test_utf16_without_a_mark_is_named(tmp_path):
    path = write(tmp_path, "t.csv", text().encode("utf-16-le"))
    with pytest.raises(SchemaError, match="looks like UTF-16 or UTF-32 text without a byte-order"):
        read_profiles(path)


def test_latin1_gets_the_line_and_an_encoding_way_out(tmp_path):
    rows = [*ROWS[:2], "Caf\u00e9,A100,4,32,512,256,80.0"]
    path = write(tmp_path, "t.csv", text(rows).encode("latin-1"))
    with pytest.raises(SchemaError) as exc:
        read_profiles(path)
    msg = str(exc.value)
    assert "line 4 is not valid UTF-8" in msg and "byte 0xe9" in msg and "Latin-1" in msg
    assert exc.value.problems[0]["advice"][0] == {"option": "encoding", "value": "latin-1",
                                                  "effect": "to read it as Latin-1"}
    assert read_profiles(path, encoding="latin-1").model.iloc[2] == "Caf\u00e9"


def test_bad_bytes_after_the_first_64_kib_are_found_by_line(tmp_path):
    rows = [f"m,H100,1,8,128,64,{10 + i}" for i in range(4000)]
    data = text(rows).encode() + "Caf\u00e9,H100,1,8,128,64,5\n".encode("latin-1")
    with pytest.raises(SchemaError, match="line 4002 is not valid UTF-8"):
        read_profiles(write(tmp_path, "t.csv", data))


def test_gzip_content_is_read_whatever_the_name(tmp_path):
    for name in ("t.csv", "t.csv.gz", "t"):
        out = read_profiles(write(tmp_path, name, gzip.compress(text().encode())))
        np.testing.assert_allclose(out.energy_j, ENERGY)
    with pytest.raises(SchemaError, match="cannot be decompressed"):
        read_profiles(write(tmp_path, "u.csv", gzip.compress(text().encode())[:30]))


def test_a_gz_name_over_plain_text_still_reads(tmp_path):
    np.testing.assert_allclose(read_profiles(write(tmp_path, "t.csv.gz", text())).energy_j,
                               ENERGY)


# --------------------------------------------------------------------------- delimiters
@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_the_delimiter_is_read_from_the_header(tmp_path, sep, caplog):
    with caplog.at_level(logging.INFO, logger="energylens"):
        out = read_profiles(write(tmp_path, "t.csv", text(sep=sep)))
    np.testing.assert_allclose(out.energy_j, ENERGY)
    assert "separated values" in caplog.text


def test_semicolons_with_decimal_commas_get_a_hint(tmp_path):
    rows = [r.replace(",", ";").replace(".", ",") for r in ROWS]  # 20,0 under energy_j
    path = write(tmp_path, "t.csv", text(rows, HEAD.replace(",", ";")))
    with pytest.raises(SchemaError, match=r"row 0 \(value '20,0'\).*decimal comma"):
        read_profiles(path)


# --------------------------------------------------------------------------- comments, lines
def test_comment_lines_before_the_header_are_skipped_and_lines_stay_true(tmp_path):
    content = "# exported 2025-01-01\n\n# by the profiler\n" + text(
        [ROWS[0], ROWS[1], "m2,A100,4,32,512,256,-1"])
    with pytest.raises(SchemaError, match=r"row 2 \(value -1.0\) \(file line 7\)"):
        read_profiles(write(tmp_path, "t.csv", content))
    ok = "# note\n" + text()
    np.testing.assert_allclose(read_profiles(write(tmp_path, "u.csv", ok)).energy_j, ENERGY)


def test_only_comments_is_named(tmp_path):
    with pytest.raises(SchemaError, match="only 1 comment line"):
        read_profiles(write(tmp_path, "t.csv", "# nothing measured\n"))


# --------------------------------------------------------------------------- JSON
def test_json_lines_with_a_400_digit_integer_is_a_schema_error(tmp_path):
    """Before: OverflowError from pandas, a traceback on the command line."""
    big = "7" * 400
    rows = [f'{{"model": "m", "gpu": "g", "tp": 1, "batch_size": 8, "input_tokens": 9, '
            f'"output_tokens": 9, "energy_j": {e}}}' for e in ("5", big)]
    path = write(tmp_path, "t.jsonl", "\n".join(rows) + "\n")
    with pytest.raises(SchemaError, match=r"'energy_j': infinite value.*\(file line 2\)"):
        read_profiles(path)


def test_a_huge_python_integer_in_a_dataframe_is_a_schema_error():
    df = pd.DataFrame({"model": ["m"], "gpu": ["g"], "tp": pd.Series([10**400], dtype=object),
                       "batch_size": [8], "input_tokens": [9], "output_tokens": [9],
                       "energy_j": [5.0]})
    with pytest.raises(SchemaError, match=r"'tp': infinite value.*\(401 digits\)"):
        read_profiles(df)


def test_json_documents_of_records_or_columns(tmp_path):
    df = pd.read_csv(write(tmp_path, "t.csv", text()))
    df.to_json(tmp_path / "records.json", orient="records")
    df.to_json(tmp_path / "columns.json", orient="columns")
    for name in ("records.json", "columns.json"):
        np.testing.assert_allclose(read_profiles(tmp_path / name).energy_j, ENERGY)
    with pytest.raises(SchemaError, match="holds a JSON int"):
        read_profiles(write(tmp_path, "n.json", "42"))


# --------------------------------------------------------------------------- paths
def test_a_symlink_loop_is_not_called_a_missing_file(tmp_path):
    os.symlink("loop.csv", tmp_path / "loop.csv")
    with pytest.raises(SchemaError, match="symbolic link loop"):
        read_profiles(tmp_path / "loop.csv")
    os.symlink("absent.csv", tmp_path / "broken.csv")
    with pytest.raises(SchemaError, match="broken symbolic link"):
        read_profiles(tmp_path / "broken.csv")
    with pytest.raises(SchemaError, match="no such file"):
        read_profiles(tmp_path / "absent.csv")


def test_unknown_suffixes_and_files_without_one(tmp_path):
    with pytest.raises(SchemaError, match="Excel workbook"):
        read_profiles(write(tmp_path, "t.xlsx", b"PK\x03\x04"))
    np.testing.assert_allclose(read_profiles(write(tmp_path, "plain", text())).energy_j, ENERGY)


# --------------------------------------------------------------------------- the error itself
def test_row_labels_in_messages_are_plain_numbers():
    """Before: 'rows [np.int64(1013)]'."""
    df = pd.DataFrame({"model": ["m"] * 3, "gpu": ["g"] * 3, "tp": [1, 2, 0],
                       "batch_size": [8] * 3, "input_tokens": [9] * 3, "output_tokens": [9] * 3,
                       "energy_j": [5.0, 6.0, 7.0]}, index=pd.Index(np.array([7, 1013, 1014])))
    with pytest.raises(SchemaError) as exc:
        read_profiles(df)
    assert "row 1014 (value 0)" in str(exc.value) and "np." not in str(exc.value)
    assert exc.value.problems[0]["rows"] == [1014]
    assert type(exc.value.problems[0]["rows"][0]) is int


def test_explain_spells_options_the_callers_way():
    df = pd.DataFrame({"model": ["m", "m"], "gpu": ["g", "g"], "tp": [1, 1],
                       "batch_size": [8, 8], "input_tokens": [9, 9], "output_tokens": [9, 9],
                       "energy_j": [5.0, 6.0]})
    with pytest.raises(SchemaError) as exc:
        read_profiles(df)
    assert "Pass duplicates='mean' to average repeats" in str(exc.value)
    cli = explain(exc.value, lambda option, value: f"--{option} {value}")
    assert "Pass --duplicates mean to average repeats, or --duplicates keep" in cli
    assert "duplicates='mean'" not in cli
    assert [a["value"] for a in exc.value.problems[0]["advice"]] == ["mean", "keep"]


def test_candidates_files_get_the_same_file_checks(tmp_path):
    path = write(tmp_path, "c.csv", "tp,batch_size,input_tokens,output_tokens\n1,8,9,9,\n")
    with pytest.raises(SchemaError, match="trailing delimiter"):
        read_candidates(path)


def test_top_level_names_still_resolve():
    from energylens import readers, schema

    assert energylens.read_profiles is read_profiles
    assert schema.validate is energylens.tables.validate
    assert readers.read_wilkins is energylens.tables.read_wilkins
    assert schema._resolve_header("TP")[0] == "tp" and "tp" in schema.COLUMNS


def test_labels_in_a_csv_are_read_as_written(tmp_path):
    """pandas' type guessing made model '1.10' the number 1.1 (merged with model '1.1' as the
    same measurement) and '007' the number 7.0; a precision '16' beside a blank became '16.0'."""
    f = tmp_path / "labels.csv"
    f.write_text("model,gpu,precision,tp,batch_size,input_tokens,output_tokens,energy_j\n"
                 "1.10,H100,16,1,8,512,128,40\n1.1,H100,,1,8,512,128,45\n"
                 "007,H100,16,4,8,512,128,50\n")
    df = read_profiles(f)
    assert df.model.tolist() == ["1.10", "1.1", "007"]
    assert df.precision.iloc[0] == "16" and pd.isna(df.precision.iloc[1])


def test_exact_decimals_are_numbers_and_complex_values_are_not():
    from decimal import Decimal

    base = {"model": ["m"] * 3, "gpu": ["H100"] * 3, "tp": [1, 2, 4], "batch_size": [8] * 3,
            "input_tokens": [512] * 3, "output_tokens": [128] * 3}
    df = read_profiles(pd.DataFrame({**base, "energy_j": [Decimal("40.50"), Decimal("45"),
                                                          Decimal("50")]}))
    assert df.energy_j.tolist() == [40.5, 45.0, 50.0]
    with pytest.raises(SchemaError, match="'energy_j': non-numeric value"):
        read_profiles(pd.DataFrame({**base, "energy_j": np.array([40 + 1j, 45, 50])}))


def test_a_late_decode_failure_names_the_encoding_option(tmp_path):
    """Beyond the first 64 KiB, a file read with a given single-byte encoding was 'not valid
    cp1252' without its line or the option that chose the encoding."""
    rows = ["model,gpu,tp,batch_size,input_tokens,output_tokens,energy_j"]
    rows += [f"m,H100,1,{b},512,128,{40 + b}" for b in range(1, 4000)]
    f = tmp_path / "late.csv"
    f.write_bytes(("\n".join(rows) + "\n").encode() + b"m\x81x,H100,1,9999,512,128,40\n")
    with pytest.raises(SchemaError, match=r"line 4001 is not valid cp1252 \(as encoding='cp1252' "
                                          r"says\)"):
        read_profiles(f, encoding="cp1252")
