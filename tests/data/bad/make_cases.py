"""Write the malformed profiling tables of this folder and their manifest, cases.json.

Each table has exactly one defect; the manifest gives the column the error must name, the
rows (0-based positions) it must list, the file lines of those rows (text formats; blank
lines count), a fragment of the expected message and, where it matters, a fragment the
message must not hold (``absent``). Every file here must make ``read_profiles`` raise a
``SchemaError``: the command line is tested over all of them.
Run from this folder: ``python make_cases.py``.
"""

import gzip
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent
GOOD = {
    "model": ["m1", "m1", "m1", "m2"], "gpu": ["H100", "H100", "A100", "A100"],
    "tp": [1, 2, 4, 1], "pp": [1, 1, 2, 1], "batch_size": [8, 16, 32, 64],
    "input_tokens": [128, 256, 512, 1024], "output_tokens": [64, 128, 256, 512],
    "energy_j": [20.0, 35.0, 80.0, 150.0],
}
cases = []


def case(name, column, rows, fragment, edit=None, *, table=None, fmt="csv", text=None,
         lines=None, data=None, absent=None):
    df = pd.DataFrame(GOOD) if table is None else table
    if edit:
        df = edit(df.copy())
    path = HERE / f"{name}.{fmt}"
    if path.is_symlink():
        path.unlink()
    if data is not None:
        path.write_bytes(data)
    elif text is not None:
        path.write_text(text)
    elif fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    elif fmt == "parquet":
        df.to_parquet(path, index=False)
    if lines is None:  # one header line in CSV, none in JSON lines, no lines in parquet
        lines = {"csv": [r + 2 for r in rows], "jsonl": [r + 1 for r in rows]}.get(fmt, [])
    entry = {"file": path.name, "column": column, "rows": rows, "lines": lines,
             "fragment": fragment}
    if absent:
        entry["absent"] = absent
    cases.append(entry)


def setv(col, row, val):
    def f(df):
        df[col] = df[col].astype(object)
        df.loc[row, col] = val
        return df
    return f


case("missing_model", "model", [], "required column is missing", lambda d: d.drop(columns="model"))
case("missing_gpu_typo", "gpu", [], "Did you mean 'gpus'", lambda d: d.rename(columns={"gpu": "gpus"}))
case("missing_tp", "tp", [], "required column is missing", lambda d: d.drop(columns="tp"))
case("missing_batch", "batch_size", [], "required column is missing", lambda d: d.drop(columns="batch_size"))
case("missing_input", "input_tokens", [], "required column is missing", lambda d: d.drop(columns="input_tokens"))
case("missing_output_typo", "output_tokens", [], "Did you mean 'output_tokns'",
     lambda d: d.rename(columns={"output_tokens": "output_tokns"}))
case("missing_energy", "energy_j", [], "Give energy per request", lambda d: d.drop(columns="energy_j"))
case("nan_energy", "energy_j", [2], "missing value", setv("energy_j", 2, None))
case("nan_tp", "tp", [1], "missing value", setv("tp", 1, None))
case("nan_model", "model", [3], "missing value", setv("model", 3, None))
case("empty_gpu_label", "gpu", [0], "missing value", setv("gpu", 0, " "))
case("text_in_energy", "energy_j", [1], "non-numeric value", setv("energy_j", 1, "lots"))
case("text_in_tokens", "input_tokens", [3], "non-numeric value", setv("input_tokens", 3, "1k"))
case("text_in_batch", "batch_size", [0], "non-numeric value", setv("batch_size", 0, "max"))
case("zero_energy", "energy_j", [0], "must be > 0", setv("energy_j", 0, 0.0))
case("negative_energy", "energy_j", [3], "zero or negative energy", setv("energy_j", 3, -5.0))
case("zero_output_tokens", "output_tokens", [2], "must be > 0", setv("output_tokens", 2, 0))
case("negative_input_tokens", "input_tokens", [1], "must be > 0", setv("input_tokens", 1, -128))
case("zero_batch", "batch_size", [2], "must be > 0", setv("batch_size", 2, 0))
case("tp_zero", "tp", [0], "must be >= 1", setv("tp", 0, 0))
case("tp_fraction", "tp", [2], "whole number", setv("tp", 2, 2.5))
case("pp_negative", "pp", [1], "must be >= 1", setv("pp", 1, -1))
case("pp_fraction", "pp", [3], "whole number", setv("pp", 3, 1.5))
case("dp_zero", "dp", [2], "must be >= 1", lambda d: d.assign(dp=[1, 1, 0, 1]))
case("infinite_energy", "energy_j", [1], "infinite value", setv("energy_j", 1, float("inf")))
case("negative_latency", "latency_s", [2], "must be > 0", lambda d: d.assign(latency_s=[1.0, 2.0, -3.0, 4.0]))
case("bad_batch_kind", "batch_kind", [1], "must be 'running' or 'cap'",
     lambda d: d.assign(batch_kind=["cap", "maximum", "cap", "cap"]))
case("duplicate_conflict", "energy_j", [0, 1], "conflicting energies",
     lambda d: pd.concat([d.iloc[[0]], d.iloc[[0]].assign(energy_j=25.0), d.iloc[1:]], ignore_index=True))
case("empty_rows", "", [], "the table is empty", lambda d: d.iloc[0:0])
case("empty_file", "", [], "the file is empty", text="")
case("negative_prefill", "prefill_energy_j", [0], "must be >= 0",
     lambda d: d.assign(prefill_energy_j=[-1.0, 1.0, 1.0, 1.0]))
case("negative_run_energy", "energy_j", [1], "must be > 0",
     lambda d: d.drop(columns="energy_j").assign(run_energy_j=[100.0, -50, 300, 400], n_requests=[10, 10, 10, 10]))
case("jsonl_text_energy", "energy_j", [2], "non-numeric value", setv("energy_j", 2, "n/a"), fmt="jsonl")
case("parquet_negative_tokens", "output_tokens", [0], "must be > 0", setv("output_tokens", 0, -1), fmt="parquet")
case("wrong_extension", "", [], "unknown file type", text="model,gpu\n", fmt="xlsx")
case("running_over_cap", "running_batch", [1], "must not exceed batch_size",
     lambda d: d.assign(batch_kind="cap", running_batch=[8.0, 20.0, 30.0, 60.0]))
case("collision_tp", "tp", [], "'tp' and 'TP' both mean 'tp'", lambda d: d.assign(TP=d["tp"]))
case("collision_cap", "batch_size", [], "rename it to 'running_batch'",
     lambda d: d.assign(max_num_seqs=[64, 64, 64, 64]))
case("collision_energy_units", "energy_j", [], "both mean 'energy_j'",
     lambda d: d.assign(**{"Energy (Wh)": d["energy_j"] / 3600}))
case("ep_fraction", "ep", [2], "whole number", lambda d: d.assign(ep=[1, 1, 1.5, 2]))
case("zero_requests", "n_requests", [3], "must be > 0",
     lambda d: d.drop(columns="energy_j").assign(run_energy_j=[100.0, 200, 300, 400],
                                                  n_requests=[10, 10, 10, 0]))
case("negative_energy_kwh", "energy_j", [0], "zero or negative energy",
     lambda d: d.drop(columns="energy_j").assign(energy_kwh=[-1e-5, 1e-5, 2e-5, 3e-5]))
case("blank_lines_negative_energy", "energy_j", [2], "zero or negative energy", lines=[7],
     text=("model,gpu,tp,batch_size,input_tokens,output_tokens,energy_j\n\n"
           "m,H100,1,8,128,64,20\nm,H100,2,8,128,64,30\n\n   \nm,H100,4,8,128,64,-1\n\n"))
case("jsonl_blank_line_fraction_tp", "tp", [1], "whole number", lines=[3],
     text=('{"model": "m", "gpu": "g", "tp": 1, "batch_size": 8, "input_tokens": 9, '
           '"output_tokens": 9, "energy_j": 5}\n\n'
           '{"model": "m", "gpu": "g", "tp": 1.5, "batch_size": 8, "input_tokens": 9, '
           '"output_tokens": 9, "energy_j": 5}\n'), fmt="jsonl")
case("jsonl_bool_tokens", "output_tokens", [0], "non-numeric value",
     setv("output_tokens", 0, True), fmt="jsonl")
case("pp_huge", "pp", [3], "implausibly large for a parallel degree", setv("pp", 3, 1e300))

# ---- issue 13: malformed files that a lenient parser reads wrongly or with a traceback ----
HEAD = "model,gpu,tp,pp,batch_size,input_tokens,output_tokens,energy_j\n"
ROWS = ["m1,H100,1,1,8,128,64,20.0", "m1,H100,2,1,16,256,128,35.0",
        "m1,A100,4,2,32,512,256,80.0", "m2,A100,1,1,64,1024,512,150.0"]


def text_table(rows=ROWS, head=HEAD):
    return head + "".join(r + "\n" for r in rows)


case("ragged_extra_field", "", [], "do not have the header's 8 fields", lines=[3],
     text=text_table([ROWS[0], ROWS[1] + ",7", *ROWS[2:]]))
case("ragged_every_row", "", [], "line 2 has 9", lines=[2, 3, 4, 5],
     text=text_table(["H100," + r for r in ROWS]))  # would shift every column by one
case("trailing_commas", "", [], "a trailing delimiter", lines=[2, 3, 4, 5],
     text=text_table([r + "," for r in ROWS]))
case("ragged_short_row", "", [], "line 4 has 7", lines=[4],
     text=text_table([*ROWS[:2], ROWS[2].rsplit(",", 1)[0], ROWS[3]]))
case("comment_mid_file", "", [], "line 4 has 1", lines=[4],
     text=text_table([*ROWS[:2], "# the next run used a new driver", *ROWS[2:]]))
case("duplicate_header_energy", "", [], "names a column more than once: 'energy_j'",
     lines=[1], text=text_table([r + ",21.0" for r in ROWS], HEAD.rstrip() + ",energy_j\n"))
case("duplicate_header_wh", "", [], "'Energy (Wh)' (fields 8, 9)", lines=[1],
     text=text_table([r.rsplit(",", 1)[0] + ",0.01,0.02" for r in ROWS],
                     HEAD.replace("energy_j", "Energy (Wh),Energy (Wh)")))
case("empty_header_with_values", "", [], "field 9 of the header (line 1) is empty",
     lines=[1], text=text_table([r + ",x" for r in ROWS], HEAD.rstrip() + ",\n"))
case("batch_denormal", "batch_size", [1], "implausibly small for a batch",
     setv("batch_size", 1, 5e-324))
case("output_tokens_tiny", "output_tokens", [2], "implausibly small for a token count",
     setv("output_tokens", 2, 1e-310))
case("energy_huge", "energy_j", [0], "implausibly large for an energy per request",
     setv("energy_j", 0, 1e308))
case("latency_nanoseconds", "latency_s", [3], "implausibly small for a time",
     lambda d: d.assign(latency_s=[1.0, 2.0, 3.0, 4e-9]))
case("tp_400_digits", "tp", [1], "infinite value",
     text=text_table([ROWS[0], "m1,H100," + "1" * 400 + ",1,16,256,128,35.0", *ROWS[2:]]))
case("jsonl_400_digit_integer", "input_tokens", [1], "infinite value", lines=[2], fmt="jsonl",
     text=('{"model": "m", "gpu": "g", "tp": 1, "batch_size": 8, "input_tokens": 9, '
           '"output_tokens": 9, "energy_j": 5}\n'
           '{"model": "m", "gpu": "g", "tp": 2, "batch_size": 8, "input_tokens": '
           + "9" * 400 + ', "output_tokens": 9, "energy_j": 5}\n'))
case("jsonl_duplicate_key", "", [], "line 1 names the key(s) ['energy_j'] more than once",
     lines=[1], fmt="jsonl",
     text=('{"model": "m", "gpu": "g", "tp": 1, "batch_size": 8, "input_tokens": 9, '
           '"output_tokens": 9, "energy_j": 5, "energy_j": 7}\n'))
case("utf16_without_bom", "", [], "looks like UTF-16 or UTF-32", lines=[1],
     data=text_table().encode("utf-16-le"))
case("latin1_model_name", "", [], "line 4 is not valid UTF-8", lines=[4],
     data=text_table([*ROWS[:2], "Caf\u00e9-7b,A100,4,2,32,512,256,80.0", ROWS[3]]
                     ).encode("latin-1"))
case("gzip_truncated", "", [], "cannot be decompressed",
     data=gzip.compress(text_table().encode())[:40])
case("semicolon_decimal_comma", "energy_j", [0, 1], "decimal comma",
     text=text_table([r.replace(",", ";").rsplit(";", 1)[0] + ";" + r.rsplit(",", 1)[1]
                      .replace(".", ",") for r in ROWS], HEAD.replace(",", ";")))
case("only_comments", "", [], "only 2 comment line(s) and no header",
     text="# exported by the profiler\n# no runs finished\n")
case("unterminated_quote", "", [], "a missing closing quote", lines=[3],
     text=text_table([ROWS[0], 'm1,"H100,2,1,16,256,128,35.0', *ROWS[2:]]))
case("duplicate_unkeyed_column", "power_cap_w", [0, 1], "differ in ['power_cap_w']",
     lambda d: pd.concat([d.iloc[[0]].assign(power_cap_w=700), d.iloc[[0]].assign(
         power_cap_w=400, energy_j=16.0), d.iloc[1:].assign(power_cap_w=700)],
         ignore_index=True), absent="duplicates='mean'")
case("parquet_duplicate_columns", "", [], "names the column(s) ['energy_j'] more than once",
     fmt="parquet", data=b"")
pq.write_table(pa.Table.from_arrays([pa.array(v) for v in GOOD.values()] +
                                    [pa.array(GOOD["energy_j"])],
                                    names=[*GOOD, "energy_j"]),
               HERE / "parquet_duplicate_columns.parquet")
case("symlink_loop", "", [], "symbolic link loop", data=b"")
(HERE / "symlink_loop.csv").unlink()
os.symlink("symlink_loop.csv", HERE / "symlink_loop.csv")

(HERE / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
print(f"wrote {len(cases)} cases")
