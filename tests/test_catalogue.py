"""The hardware and model catalogue: shipped data, name resolution, extension, descriptors and
the one feasibility rule."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import energylens
from energylens.core import catalogue as cat
from energylens.core.catalogue import (
    descriptors,
    gpu_spec,
    gpu_table,
    model_spec,
    model_table,
    register_gpus,
    register_models,
    reset_catalogue,
    resolve_gpu,
    resolve_model,
)
from energylens.exceptions import CatalogueError

REQUIRED_GPUS = ("A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe", "H100-NVL", "H200", "GH200",
                 "B200", "L40S", "L4", "A10G", "V100-16GB", "T4", "RTX-4090", "MI300X", "MI250X")
SIMULATOR_MODELS = ("Llama-3.2-1B", "Llama-3.2-3B", "Mistral-7B", "Llama-3.1-8B", "Qwen2.5-14B",
                    "Llama-3.1-70B", "Mixtral-8x7B")


@pytest.fixture(autouse=True)
def _clean_catalogue():
    reset_catalogue()
    yield
    reset_catalogue()


# --- the shipped data -------------------------------------------------------------------

def test_gpu_table_is_complete_and_sourced():
    g = gpu_table()
    assert set(REQUIRED_GPUS) <= set(g.index)
    assert (g["source"].str.len() > 10).all()
    dc = g.drop(index="Apple-M1-Pro")  # a laptop chip, listed only so that names resolve
    for col in ("memory_gb", "memory_bw_bytes_s", "tdp_w", "idle_w", "link_latency_s"):
        assert (dc[col] > 0).all(), col
    assert (dc["idle_w"] < 0.25 * dc["tdp_w"]).all()
    # Dense FLOP/s: FP8 doubles BF16 where a GPU has both (no sparsity figures slipped in;
    # the L40S datasheet's own figures differ from an exact double by 1.2%).
    both = dc.dropna(subset=["bf16_flop_s", "fp8_flop_s"])
    np.testing.assert_allclose(both["fp8_flop_s"] / both["bf16_flop_s"], 2.0, rtol=0.015)
    assert dc["bf16_flop_s"].isna().sum() == 3  # A10G (unpublished), V100 and T4 (no BF16)
    # Every assumed value is named in the assumed column, and names a real column.
    for r in dc.itertuples():
        assumed = set(r.assumed.split(";"))
        assert {"idle_w", "link_latency_s"} <= assumed and assumed <= set(g.columns), r.name


def _param_count(r) -> tuple[float, float]:
    """Parameters (billions) from the architecture: attention, MLPs and embeddings, with gated
    (three matrices) or plain (two) MLPs and tied or untied embeddings: (lowest, highest)."""
    attn = r.hidden * r.heads * r.head_dim * 2 + 2 * r.hidden * r.kv_heads * r.head_dim
    experts = 1 if np.isnan(r.experts) else r.experts
    emb = r.vocab * r.hidden
    counts = [r.layers * (attn + experts * k * r.hidden * r.intermediate) + e * emb
              for k in (2, 3) for e in (1, 2)]
    return min(counts) / 1e9, max(counts) / 1e9


#: Rows whose count needs more than the plain formula, and why.
_COUNT_EXCEPTIONS = {
    "DeepSeek-V3": "latent attention, dense first layers, a shared expert",
    "Llama-4-Scout-17B-16E": "a shared expert and a vision encoder",
    "Llama-4-Maverick-17B-128E": "dense layers between expert layers, a vision encoder",
    "gemma-3-12b": "vision encoder", "gemma-3-27b": "vision encoder",
}


def test_model_table_is_complete_and_consistent():
    m = model_table()
    assert set(SIMULATOR_MODELS) <= set(m.index)
    assert (m["source"].str.contains("config.json")).all()
    assert (m["active_params_b"] <= m["params_b"]).all()
    assert set(m["architecture"]) == {"dense", "moe", "hybrid"}
    moe = m[m.architecture == "moe"]
    assert (moe["active_experts"] < moe["experts"]).all() and (moe["active_params_b"] < moe["params_b"]).all()
    known = m.dropna(subset=["heads", "kv_heads"])
    assert (known["heads"] % known["kv_heads"] == 0).all()
    # A typo in a layer count or a width shows as a parameter count that does not match.
    checked = 0
    for r in m.dropna(subset=["heads", "intermediate"]).itertuples():
        if r.name in _COUNT_EXCEPTIONS or r.architecture == "hybrid":
            continue
        lo, hi = _param_count(r)
        assert lo * 0.99 <= r.params_b <= hi * 1.01, (r.name, lo, hi, r.params_b)
        checked += 1
    assert checked >= 35


def test_every_name_and_alias_has_one_owner():
    for kind, table, key in (("GPU", gpu_table(), cat.registry._gpu_key),
                             ("model", model_table(), lambda n: cat.registry._model_key(n)[0])):
        owner: dict[str, str] = {}
        for r in table.itertuples():
            names = [r.name, *[a for a in str(r.aliases).split(";") if a]]
            names += [r.hf_id] if kind == "model" else []
            for n in names:
                k = key(n)
                assert owner.setdefault(k, r.name) == r.name, (kind, n, owner[k], r.name)


def test_import_does_not_read_the_catalogue():
    code = ("import sys, energylens; print('energylens.core.catalogue' in sys.modules); "
            "from energylens.core.catalogue import registry; print(registry._GPUS._df is None)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]


# --- names --------------------------------------------------------------------------------

@pytest.mark.parametrize("name, canon", [
    ("H100 80GB HBM3", "H100-SXM"), ("NVIDIA H100 80GB HBM3", "H100-SXM"),
    ("H100-80GB-HBM3", "H100-SXM"), ("H100-SXM", "H100-SXM"), ("H100", "H100-SXM"),
    ("h100-80gb-pcap", "H100-SXM"), ("A100-SXM4-40GB", "A100-40GB"),
    ("A100-40GB (Swing)", "A100-40GB"), ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
    ("a100-80gb", "A100-80GB"), ("V100-16GB (Palmetto)", "V100-16GB"),
    ("Tesla V100-SXM2-16GB", "V100-16GB"), ("H100-NVL-94GB", "H100-NVL"),
    ("NVIDIA H100 PCIe", "H100-PCIe"), ("NVIDIA GeForce RTX 4090", "RTX-4090"),
    ("AMD Instinct MI300X", "MI300X"), ("Tesla T4", "T4"), ("NVIDIA GH200 480GB", "GH200"),
    ("Apple M1 Pro", "Apple-M1-Pro"), ("B200", "B200"),
])
def test_gpu_names_resolve(name, canon):
    assert resolve_gpu(name) == canon


@pytest.mark.parametrize("name, canon, precision", [
    ("meta-llama/Meta-Llama-3.1-8B-Instruct", "Llama-3.1-8B", "bf16"),
    ("Llama-3.1-8B-Instruct", "Llama-3.1-8B", "bf16"),
    ("meta-llama/Llama-3.1-405B-Instruct-FP8", "Llama-3.1-405B", "fp8"),
    ("Qwen/Qwen3-235B-A22B-Thinking-2507-FP8", "Qwen3-235B-A22B", "fp8"),
    ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "Qwen3-30B-A3B", "bf16"),
    ("google/gemma-2-9b-it", "gemma-2-9b", "bf16"),
    ("codellama/CodeLlama-34b-hf", "CodeLlama-34b", "bf16"),
    ("mistralai/Mistral-Large-Instruct-2407", "Mistral-Large-2407", "bf16"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "Mixtral-8x7B", "bf16"),
    ("mistralai/Mistral-7B-Instruct-v0.3", "Mistral-7B-v0.3", "bf16"),
    ("Mistral (7B)", "Mistral-7B", "bf16"), ("Llama-2 (70B)", "Llama-2-70b", "fp16"),
    ("Falcon (40B)", "falcon-40b", "bf16"), ("llama2-70b", "Llama-2-70b", "fp16"),
    ("bloom-176b", "bloom", "bf16"), ("deepseek-ai/DeepSeek-R1-0528", "DeepSeek-V3", "fp8"),
    ("openai/gpt-oss-120b", "gpt-oss-120b", "mxfp4"),
])
def test_model_names_resolve(name, canon, precision):
    assert resolve_model(name) == canon
    assert model_spec(name).precision == precision


def test_fp8_checkpoint_same_architecture_one_byte_per_weight():
    a, b = model_spec("Llama-3.1-70B-Instruct"), model_spec("Llama-3.1-70B-Instruct-FP8")
    assert (a.name, a.layers, a.kv_heads, a.params_b) == (b.name, b.layers, b.kv_heads, b.params_b)
    d = descriptors(pd.DataFrame({"model": ["Llama-3.1-70B-Instruct", "Llama-3.1-70B-Instruct-FP8"],
                                  "gpu": ["H100", "H100"]}))
    assert d["bytes_per_weight"].tolist() == [2.0, 1.0]
    assert d["weight_bytes"].iloc[0] == pytest.approx(2 * d["weight_bytes"].iloc[1])


def test_unknown_names_say_what_is_missing_and_how_to_add_it():
    with pytest.raises(CatalogueError, match=r"Unknown GPU 'TPU-v9'.*register_gpus"):
        gpu_spec("TPU-v9")
    with pytest.raises(ValueError, match=r"Unknown model 'GPT-9'.*register_models\(pd.DataFrame"):
        model_spec("GPT-9")
    with pytest.raises(CatalogueError, match=r"closest: \['A100-40GB', 'A100-80GB'\]"):
        resolve_gpu("A100")  # ambiguous: 40 or 80 GB


# --- extension ----------------------------------------------------------------------------

def test_register_rows_columns_and_aliases(tmp_path):
    register_gpus(pd.DataFrame({"name": ["H100-SXM", "Lab-X1"], "aliases": ["our h100", "X1 card"],
                                "memory_gb": [np.nan, 32.0], "rack": ["A", "B"]}))
    assert resolve_gpu("our H100") == "H100-SXM" and resolve_gpu("NVIDIA H100") == "H100-SXM"
    g = gpu_table()
    assert g.loc["H100-SXM", "memory_gb"] == 80.0  # an empty cell does not overwrite
    assert g.loc["H100-SXM", "rack"] == "A" and g.loc["Lab-X1", "memory_gb"] == 32.0
    assert gpu_spec("x1 card").interconnect == "unknown" and np.isnan(gpu_spec("X1 card").hbm_bw)
    path = tmp_path / "models.csv"
    path.write_text("name,params_b,layers,hidden,heads,kv_heads,head_dim,vocab,my_score\n"
                    "tiny-lm,0.1,4,512,8,8,64,32000,0.5\n"
                    "Llama-3.1-8B,,,,,,,,0.9\n")
    register_models(path)
    m = model_table()
    assert m.loc["Llama-3.1-8B", "my_score"] == 0.9 and m.loc["Llama-3.1-8B", "layers"] == 32
    assert model_spec("org/tiny-lm-Instruct").kv_bytes_per_token() == 2 * 4 * 8 * 64 * 2
    reset_catalogue()
    assert "Lab-X1" not in gpu_table().index and "my_score" not in model_table().columns


def test_bad_rows_are_reported_at_once(tmp_path):
    path = tmp_path / "gpus.csv"
    path.write_text("name,memory_gb,tdp_w\nA,80,700\nB,lots,-3\nA,1,1\n")
    with pytest.raises(CatalogueError) as err:
        register_gpus(path)
    msg = str(err.value)
    assert str(path) in msg and "'memory_gb', lines [3]" in msg and "'tdp_w', lines [3]" in msg
    assert "repeated ['A']" in msg
    with pytest.raises(CatalogueError, match="'layers', rows \\[0\\].*integers"):
        register_models(pd.DataFrame({"name": ["m"], "layers": [2.5]}))
    with pytest.raises(CatalogueError, match="need a 'name' column"):
        register_models(pd.DataFrame({"params_b": [1.0]}))
    assert "A" not in gpu_table().index  # nothing half-registered


def test_a_spelling_of_a_catalogue_name_updates_that_entry():
    n = len(gpu_table())
    register_gpus(pd.DataFrame({"name": ["h100-sxm"], "memory_gb": [96]}))
    assert len(gpu_table()) == n  # no second H100-SXM
    assert {resolve_gpu(s) for s in ("H100 SXM", "H100-SXM", "h100-sxm", "H100")} == {"H100-SXM"}
    assert gpu_spec("H100 SXM").memory_gb == gpu_spec("H100-SXM").memory_gb == 96.0
    m = len(model_table())
    register_models(pd.DataFrame({"name": ["meta-llama/Llama-3.1-8B-Instruct"], "score": [1.0]}))
    assert len(model_table()) == m and model_table().loc["Llama-3.1-8B", "score"] == 1.0
    cases = [
        (register_gpus, {"name": ["h100-sxm", "H100 SXM"], "memory_gb": [96, 94]},
         r"rows \[0, 1\]: \['h100-sxm', 'H100 SXM'\] all name the catalogue's GPU 'H100-SXM'"),
        (register_gpus, {"name": ["Lab X1", "lab-x1"]}, r"all name one new entry"),
        (register_gpus, {"name": ["A100-40GB (lab)"], "tdp_w": [250]},
         r"'A100-40GB \(lab\)' is the catalogue's GPU 'A100-40GB' on a host"),
        (register_gpus, {"name": ["MyCard"], "aliases": ["A100 80GB"]},
         r"'A100 80GB' is the name of the catalogue's GPU 'A100-80GB'"),
        (register_models, {"name": ["org/Llama-3.1-8B-FP8"], "precision": ["fp8"]},
         r"column 'precision', rows \[0\]: 'org/Llama-3.1-8B-FP8' is the catalogue's model "
         r"'Llama-3.1-8B' read in fp8"),
    ]
    for register, rows, match in cases:
        with pytest.raises(CatalogueError, match=match):
            register(pd.DataFrame(rows))
    assert resolve_gpu("A100 80GB") == "A100-80GB" and model_spec("Llama-3.1-8B").precision == "bf16"
    # A new entry may still take over a shipped alias that is no entry's name.
    register_gpus(pd.DataFrame({"name": ["Lab-H100"], "aliases": ["H100"], "memory_gb": [94]}))
    assert resolve_gpu("H100") == "Lab-H100" and resolve_gpu("H100 SXM") == "H100-SXM"


@pytest.mark.parametrize("register, row, match", [
    (register_gpus, {"memory_gb": 0}, r"'memory_gb', rows \[0\] \(values \[0\]\): expected numbers > 0"),
    (register_gpus, {"bf16_flop_s": 0}, r"'bf16_flop_s'.*numbers > 0"),
    (register_gpus, {"memory_bw_bytes_s": 0}, r"'memory_bw_bytes_s'.*numbers > 0"),
    (register_gpus, {"link_bw_bytes_s": 0}, r"'link_bw_bytes_s'.*numbers > 0"),
    (register_gpus, {"tdp_w": 300, "idle_w": 500},
     r"columns 'idle_w' and 'tdp_w', rows \[0\] \('X'\): idle_w=500 is not below tdp_w=300"),
    (register_models, {"heads": 0, "kv_heads": 0},
     r"'heads', rows \[0\] \(values \[0\]\): expected integers >= 1.*'kv_heads'"),
    (register_models, {"layers": 0}, r"'layers'.*integers >= 1"),
    (register_models, {"heads": 8, "kv_heads": 16}, r"kv_heads=16 is above heads=8"),
    (register_models, {"params_b": 1, "active_params_b": 5},
     r"active_params_b=5 is above params_b=1"),
    (register_models, {"layers": 4, "attn_layers": 6}, r"attn_layers=6 is above layers=4"),
])
def test_registration_refuses_impossible_values(register, row, match):
    with pytest.raises(CatalogueError, match=match):
        register(pd.DataFrame([{"name": "X", **row}]))
    assert "X" not in gpu_table().index and "X" not in model_table().index


def test_registration_checks_updates_against_the_values_kept(tmp_path):
    with pytest.raises(CatalogueError, match=r"\('L4'\): idle_w=80 is not below tdp_w=72"):
        register_gpus(pd.DataFrame({"name": ["L4"], "idle_w": [80]}))
    path = tmp_path / "models.csv"
    path.write_text("name,kv_heads\nLlama-3.1-8B,8\nLlama-3.2-1B,64\n")
    with pytest.raises(CatalogueError, match=rf"{path}.*lines \[3\] \('Llama-3.2-1B'\): "
                                             r"kv_heads=64 is above heads=32"):
        register_models(path)
    register_gpus(pd.DataFrame({"name": ["L4"], "idle_w": [0.0]}))  # zero idle power is allowed
    assert gpu_spec("L4").idle_w == 0.0
    # The shipped rows satisfy every rule.
    g, m = gpu_table(), model_table()
    assert not (g.idle_w >= g.tdp_w).any() and not (m.kv_heads > m.heads).any()
    assert not (m.active_params_b > m.params_b).any() and not (m.attn_layers > m.layers).any()


def _docs_gpu_row(r) -> str:
    def f(v, scale=1.0):
        return "–" if pd.isna(v) else f"{v / scale:g}"

    flops = " / ".join(f(r[c], 1e12) for c in ("bf16_flop_s", "fp16_flop_s", "fp8_flop_s"))
    link = r.interconnect + ("" if pd.isna(r.link_bw_bytes_s) else f" {r.link_bw_bytes_s / 1e9:g}")
    return (f"| {r['name']} | {f(r.memory_gb)} | {f(r.memory_bw_bytes_s, 1e12)} | {flops} | "
            f"{f(r.tdp_w)} | {link} | {f(r.idle_w)} | {r.source} |")


def _docs_model_row(r) -> str:
    def f(v):
        return "–" if pd.isna(v) else f"{v:g}"

    params = f(r.params_b) if pd.isna(r.active_params_b) or r.active_params_b == r.params_b \
        else f"{f(r.params_b)}, {f(r.active_params_b)}"
    layers = f(r.layers) + ("" if pd.isna(r.attn_layers) else f" ({f(r.attn_layers)} attention)")
    heads = f"{f(r.heads)} / {f(r.kv_heads)} × {f(r.head_dim)}" + (
        "" if pd.isna(r.kv_dim) else f" (latent KV {f(r.kv_dim)})")
    experts = "" if pd.isna(r.experts) else f"{f(r.experts)} ({f(r.active_experts)})"
    return (f"| {r['name']} | {r.architecture} | {params} | {layers} | {f(r.hidden)} | {heads} | "
            f"{f(r.vocab)} | {experts} | {r.precision} |")


def test_docs_tables_say_what_the_catalogue_files_hold():
    """Each row of the tables in docs/catalogue.md is the shipped CSV row, written out."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "catalogue.md").read_text()
    data = root / "energylens" / "core" / "data"
    wrong = [row for _, r in pd.read_csv(data / "gpus.csv").iterrows()
             if (row := _docs_gpu_row(r)) not in text]
    wrong += [row for _, r in pd.read_csv(data / "models.csv").iterrows()
              if (row := _docs_model_row(r)) not in text]
    assert wrong == []
    columns = {c for f in ("gpus.csv", "models.csv") for c in pd.read_csv(data / f, nrows=0)}
    assert [c for c in sorted(columns) if f"`{c}`" not in text] == []


# --- descriptors --------------------------------------------------------------------------

def test_descriptors_match_specs_row_by_row():
    t = pd.DataFrame({"model": ["Mixtral-8x7B-Instruct-v0.1", "Llama-3.1-8B", "gpt-oss-20b",
                                "Llama-3.1-8B"],
                      "gpu": ["A100-SXM4-40GB", "B200", "H100", "V100"],
                      "precision": ["fp8", None, "", "fp16"]}, index=[10, 11, 12, 13])
    d = descriptors(t)
    assert list(d.index) == [10, 11, 12, 13] and list(d.columns) == list(cat.DESCRIPTOR_COLUMNS)
    assert d["precision"].tolist() == ["fp8", "bf16", "mxfp4", "fp16"]
    for i, r in t.iterrows():
        g, m = gpu_spec(r.gpu), model_spec(r.model)
        assert d.at[i, "gpu_flop_s"] == g.flop_s(d.at[i, "precision"])
        assert d.at[i, "gpu_memory_bw_bytes_s"] == g.hbm_bw
        assert d.at[i, "model_active_params_b"] == m.active_b
        assert d.at[i, "kv_bytes_per_token"] == m.kv_bytes_per_token(2.0)
    assert d.at[10, "gpu_flop_s"] == 312e12  # A100: no FP8 units, BF16 rate
    assert d.at[13, "gpu_flop_s"] == 125e12  # V100: FP16 tensor cores
    assert d.at[12, "model_experts"] == 32 and np.isnan(d.at[11, "model_experts"])
    np.testing.assert_allclose(d["weight_read_s"], d["weight_bytes"] / d["gpu_memory_bw_bytes_s"])


def test_descriptors_special_architectures():
    d = descriptors(pd.DataFrame({"model": ["DeepSeek-V3.1", "NVIDIA-Nemotron-Nano-12B-v2"],
                                  "gpu": ["B200", "H100"]}))
    assert d["kv_bytes_per_token"].tolist() == [61 * 576 * 2, 6 * 2 * 8 * 128 * 2]
    assert d["bytes_per_weight"].tolist() == [1.0, 2.0]  # DeepSeek ships in FP8


def test_descriptors_resolve_each_name_once(monkeypatch):
    calls = []
    real = cat.registry._GPUS.resolve
    monkeypatch.setattr(cat.registry._GPUS, "resolve", lambda n: calls.append(n) or real(n))
    n = 200_000
    t = pd.DataFrame({"model": np.resize(["Llama-3.1-8B", "Qwen/Qwen3-8B"], n),
                      "gpu": np.resize(["H100", "B200", "A100-SXM4-40GB"], n)})
    d = descriptors(t)
    assert sorted(calls) == ["A100-SXM4-40GB", "B200", "H100"]
    assert d["gpu_name"].iloc[:3].tolist() == ["H100-SXM", "B200", "A100-40GB"]


def test_descriptors_errors_name_rows_and_how_to_fix():
    t = pd.DataFrame({"model": ["Llama-3.1-8B", "GPT-9", "Llama-3.1-8B"],
                      "gpu": ["TPU-v9", "H100", "A10G"], "precision": ["bf16", "bf16", "int3"]})
    with pytest.raises(CatalogueError) as err:
        descriptors(t)
    msg = str(err.value)
    assert "column 'gpu', rows [0]" in msg and "column 'model', rows [1]" in msg
    assert "unknown precision 'int3'" in msg and "register_gpus" in msg
    d = descriptors(t, errors="coerce")
    assert d.loc[[0, 1], "weight_read_s"].isna().all() and d.at[2, "gpu_memory_gb"] == 24.0
    ok = t.iloc[[2]].assign(precision="bf16")
    with pytest.raises(CatalogueError, match=r"'gpu_flop_s' is missing for rows \[2\] "
                                             r"\(GPUs \['A10G'\]\).*register_gpus"):
        descriptors(ok, required=["gpu_flop_s", "model_params_b"])
    with pytest.raises(ValueError, match="'errors' parameter of descriptors"):
        descriptors(t, errors="ignore")


# --- the feasibility rule -----------------------------------------------------------------

def test_one_rule_for_simulator_and_selection():
    cfg = dict(model="Llama-3.1-70B", gpu="L4", tp=1, pp=1, batch_size=8.0, input_tokens=512.0,
               output_tokens=128.0)
    sim = energylens.simulate.simulate_configurations(pd.DataFrame([cfg]))["reason"].iloc[0]
    grid = energylens.candidate_grid(model="Llama-3.1-70B", gpu="L4", tp=(1,), batch_size=(8,),
                                     input_tokens=512, output_tokens=128)["reason"].iloc[0]
    direct = cat.feasibility_reason(model_spec("Llama-3.1-70B"), gpu_spec("L4"), 1, 1, 8, 512, 128,
                                    bytes_per_weight=2.0)
    assert sim == grid == direct
    # The precision word of a name sets the weights' bytes; the KV cache stays in 16 bits.
    fp8 = model_spec("Llama-3.1-405B-FP8")
    assert cat.feasibility_reason(fp8, gpu_spec("H100"), 8, 1, 64, 512, 256) == ""
    # What must fit is the weights and the KV cache of *one* sequence at its full length
    # (768 tokens here), not of the whole cap of 64 (a cap the KV memory cannot hold runs
    # memory-limited, see test_a_cap_beyond_the_kv_capacity_runs_memory_limited).
    assert cat.feasibility_reason(fp8, gpu_spec("H100"), 8, 1, 64, 512, 256,
                                  precision="bf16").startswith("needs 101.5 GB")
    kv = fp8.kv_bytes_per_token(2.0) * 1 * 768 / 8 / 1e9
    assert cat.feasibility_reason(fp8, gpu_spec("H100"), 8, 1, 64, 512, 256, share=0.01) \
        .startswith(f"needs {405.85 / 8 + kv:.1f} GB")
    assert cat.cache_bytes_per_value("fp8") == 2.0 and cat.cache_bytes_per_value("fp32") == 4.0
    assert direct.startswith("needs 141.4 GB per GPU for weights and KV cache (one sequence of "
                             "640 tokens)") and "90% of 24 GB" in direct
    # The boundary: weights plus KV cache exactly at 90% fits, a byte more does not.
    assert cat.memory_reason(weight_bytes=72e9, kv_bytes_per_token=0.0, batch=1, tokens=1,
                             gpus=1, memory_gb=80) == ""
    assert cat.memory_reason(weight_bytes=72e9 + 1, kv_bytes_per_token=0.0, batch=1, tokens=1,
                             gpus=1, memory_gb=80) != ""


def test_layout_rule_heads_and_layers():
    llama3b, falcon, gemma = (model_spec(n) for n in ("Llama-3.2-3B", "falcon-7b", "codegemma-1.1-2b"))
    assert "8 KV heads" in cat.layout_reason(llama3b, 3)
    assert cat.layout_reason(llama3b, 8) == "" and cat.layout_reason(llama3b, 16) != ""  # 24 heads
    assert "71 attention heads" in cat.layout_reason(falcon, 2)
    # More GPUs than KV heads: each GPU holds a copy of the single KV head (vLLM replicates).
    assert cat.layout_reason(gemma, 2) == "" and cat.kv_replication(gemma, 2) == 2.0
    assert cat.layout_reason(llama3b, 1, 29) == "pp=29 exceeds the 28 layers"


def test_module_examples_run():
    attempted = 0
    import importlib

    descriptors_module = importlib.import_module("energylens.core.catalogue.descriptors")
    for mod in (cat, cat.specs, cat.registry, cat.rules, descriptors_module):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0, mod.__name__
        attempted += res.attempted
    assert attempted >= 15


# --- the public tables --------------------------------------------------------------------

def _v3_llm_rows(root) -> pd.DataFrame:
    rows = []
    for task in ("gpqa", "lm-arena-chat", "sourcegraph-fim"):
        rows += json.loads((root / "mlenergy_v3" / "tasks" / f"{task}.json").read_text())["configurations"]
    return pd.DataFrame(rows)


@pytest.mark.realdata
def test_every_name_in_the_public_tables_resolves(real_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = [energylens.read_mlenergy_leaderboard(real_data / "mlenergy_v2"),
                  energylens.read_wilkins(real_data / "wilkins2024"),
                  energylens.read_tokenpowerbench(real_data / "tokenpowerbench"),
                  energylens.read_splitwise(real_data / "splitwise" / "perf_model.csv")]
    v3 = _v3_llm_rows(real_data)
    tables.append(v3.rename(columns={"model_id": "model", "gpu_model": "gpu"}))
    names = pd.concat([t[["model", "gpu"]] for t in tables], ignore_index=True).drop_duplicates()
    d = descriptors(names)  # raises, naming every name it cannot resolve
    assert d["model_name"].notna().all() and d["gpu_name"].notna().all()
    assert len(names["model"].unique()) >= 50


@pytest.mark.realdata
def test_measured_configurations_fit_and_match_the_catalogue(real_data):
    v3 = _v3_llm_rows(real_data)
    d = descriptors(v3.rename(columns={"model_id": "model", "gpu_model": "gpu"}))
    # Precision read from the names (-FP8) and the catalogue matches what ML.ENERGY records.
    recorded = v3["weight_precision"].map(cat.normalize_precision)
    assert (d["precision"] == recorded).all()
    # Parameter counts agree with ML.ENERGY's (which rounds them).
    np.testing.assert_allclose(d["model_params_b"], v3["total_params_billions"], rtol=0.08)
    np.testing.assert_allclose(d["model_active_params_b"], v3["activated_params_billions"],
                               rtol=0.15)
    # Every measured configuration holds its weights: over the model-parallel GPUs of a
    # replica, or over all GPUs where experts are spread (expert parallelism).
    width = np.where(v3["expert_parallel"] > 1, v3["num_gpus"],
                     v3["num_gpus"] / v3["data_parallel"])
    per_gpu_gb = d["weight_bytes"] / width / 1e9
    assert (per_gpu_gb < d["gpu_memory_gb"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v2 = energylens.read_mlenergy_leaderboard(real_data / "mlenergy_v2")
    d2 = descriptors(v2)
    assert (d2["weight_bytes"] / (v2["tp"] * v2["pp"]) / 1e9 < d2["gpu_memory_gb"]).all()
    # tp splits the heads of every measured configuration.
    for (m, t), _ in v2.groupby(["model", "tp"]):
        assert cat.layout_reason(model_spec(m), int(t)) == "", (m, t)


def test_docs_list_every_catalogue_row():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "catalogue.md").read_text()
    for name in [*gpu_table().index, *model_table().index]:
        assert f"| {name} |" in text, name
