"""The argument parser: every subcommand, option and positional, each with an example.

Nothing heavy is imported here (no numpy, pandas or scikit-learn), so that
``energylens --help`` answers at once; the commands import what they need when they run.
"""

from __future__ import annotations

import argparse
import codecs
import os

from .._version import __version__
from .files import LAYOUT_CHOICES, BadInput

__all__ = ["build_parser", "check_args", "COMMANDS", "TARGETS", "LATENCY_TARGETS",
           "PLOT_FORMATS"]

#: ``fit --target`` values: energy, then the latency columns a LatencyModel predicts (seconds).
TARGETS = ("energy_j", "ttft_s", "tpot_s", "latency_s")
#: The latency columns, which ``select`` bounds with ``--ttft-s``, ``--tpot-s`` and ``--latency-s``.
LATENCY_TARGETS = TARGETS[1:]

#: ``sweetspot --plot`` file suffixes, each saved in its own format.
PLOT_FORMATS = (".png", ".pdf", ".svg")
#: ``discover`` options that only ``--derive`` reads, with their defaults.
DERIVE_DEFAULTS = {"resamples": 20, "by": ["model,gpu"], "per_group": False}

#: Subcommands, in the order ``--help`` lists them.
COMMANDS = ("validate", "simulate", "grid", "discover", "fit", "predict", "select", "sweetspot",
            "compare", "report")


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("messages")
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="more messages on standard error (debug details), e.g. -v")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="only warnings and errors on standard error, no progress, e.g. --quiet")
    return p


def _integer(text: str, ok, expected: str) -> int:
    """``text`` as an integer that ``ok`` accepts, else argparse's error naming ``expected``."""
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or not ok(n):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return n


def _jobs(text: str) -> int:
    """``--jobs``: a non-zero integer (joblib's count; -1 for all cores)."""
    return _integer(text, lambda n: n != 0, "a non-zero integer (-1 for all cores)")


def _positive_int(text: str) -> int:
    """An integer of at least 1 (``--top``, ``--n-requests``, ``--max-gpus`` ...)."""
    return _integer(text, lambda n: n >= 1, "a positive integer (1, 2, ...)")


def _seed(text: str) -> int:
    """``--seed``: a non-negative integer (numpy's seeds)."""
    return _integer(text, lambda n: n >= 0, "a non-negative integer (0, 1, ...)")


def _number(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        x = float("nan")
    if x != x or x in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    return x


def _positive(text: str) -> float:
    """A finite number above 0 (seconds of a latency bound, billions of parameters)."""
    x = _number(text)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return x


#: ``--noise`` at most: ``energylens.simulate.table.MAX_NOISE`` (kept here so that ``--help``
#: does not import pandas; a test keeps the two in step).
MAX_NOISE = 1.0


def _noise(text: str) -> float:
    """``--noise``: a relative standard deviation from 0 to :data:`MAX_NOISE`."""
    x = _number(text)
    if not 0 <= x <= MAX_NOISE:
        raise argparse.ArgumentTypeError(
            f"expected a relative standard deviation from 0 to {MAX_NOISE:g} (e.g. 0.02 for "
            f"2%; more throws simulated rows out of the physical ranges of a profiling "
            f"table), got {text!r}")
    return x


def _fraction(text: str) -> float:
    """A share above 0 and at most 1 (``--tolerance``)."""
    x = _number(text)
    if not 0 < x <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction above 0 and at most 1, e.g. 0.9, "
                                         f"got {text!r}")
    return x


def _encoding(text: str) -> str:
    """``--encoding``: a text encoding Python's codecs know (not ``rot13`` or ``base64``,
    which are codecs of text to text or bytes to bytes)."""
    try:
        codecs.lookup(text)
        "".encode(text)  # a codec that is not a text encoding raises LookupError here
    except (LookupError, ValueError):
        raise argparse.ArgumentTypeError(
            f"expected a text encoding Python knows, e.g. utf-8, latin-1, cp1252 or utf-16; "
            f"got {text!r}") from None
    return text


def _plot_file(text: str) -> str:
    """``--plot``: a file name whose suffix says the format."""
    suffix = os.path.splitext(text)[1].lower()
    if suffix not in PLOT_FORMATS:
        raise argparse.ArgumentTypeError(
            f"expected a file name ending in {', '.join(PLOT_FORMATS[:-1])} or "
            f"{PLOT_FORMATS[-1]} (the suffix sets the format), got {text!r}")
    return text


def _level(text: str) -> float:
    """``--level``: a coverage strictly between 0 and 1."""
    x = _number(text)
    if not 0 < x < 1:
        raise argparse.ArgumentTypeError(f"expected a coverage between 0 and 1 (exclusive), e.g. "
                                         f"0.9 for 90%, got {text!r}")
    return x


def _force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="replace an existing output that energylens did not write (never an "
                        "input), e.g. --force")


def _table(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", help="profiling table: a CSV, parquet or JSON-lines file, or a "
                                 "folder of public measurements, e.g. data/demo_profiles.csv "
                                 "or ../shared/data/mlenergy_v2")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, default="auto",
                   help="how to read TABLE: auto (default) reads a file as a table and "
                        "detects the layout of a folder, e.g. --layout wilkins")
    _reading(p)


def _reading(p: argparse.ArgumentParser, duplicates: bool = True) -> None:
    """``--units``, ``--encoding`` and (for a profiling table) ``--duplicates``: how to read
    the input table. Candidates take no ``--duplicates``: repeated configurations are kept."""
    p.add_argument("--units", nargs="+", metavar="COLUMN=UNIT",
                   help="units of source columns, e.g. --units energy=kWh latency=ms")
    if duplicates:
        p.add_argument("--duplicates", choices=("raise", "mean", "keep"), default="raise",
                       help="rows repeating a configuration with different energies: raise "
                            "(default), average them or keep them all, e.g. --duplicates mean")
    p.add_argument("--encoding", type=_encoding, default=None,
                   help="text encoding of a CSV (default UTF-8; a byte-order mark wins), e.g. "
                        "--encoding latin-1")


def _output(p: argparse.ArgumentParser, formats=("csv", "json"), what="the table") -> None:
    p.add_argument("-o", "--output", help=f"write {what} to this file instead of standard "
                                          "output ('-' for standard output), e.g. -o out.csv")
    p.add_argument("--format", choices=formats, default=formats[0],
                   help=f"format of {what} (default {formats[0]}), e.g. --format {formats[-1]}")
    _force(p)


def _model_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_file", help="model from 'energylens fit': a JSON file, or the folder "
                                      "written with --by, e.g. model.json or models/")
    p.add_argument("candidates", help="configurations to predict: a CSV, parquet or JSON-lines "
                                      "table (from 'energylens grid' or by hand); a column of "
                                      "it that the output replaces with a prediction (a "
                                      "measured energy_j, tpot_s ...) is kept beside it as "
                                      "COLUMN_measured, e.g. cand.csv")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, default="auto",
                   help="how to read CANDIDATES (a Splitwise folder reads as candidates), "
                        "e.g. --layout splitwise")
    _reading(p, duplicates=False)
    p.add_argument("--level", type=_level, default=0.9,
                   help="coverage of the prediction interval, between 0 and 1 (default 0.9), "
                        "e.g. --level 0.95")


def _add_validate(sub, common) -> None:
    s = sub.add_parser("validate", parents=[common], help="check a profiling table and summarise it",
                       description="Check a profiling table (or a folder of public measurements) "
                                   "and summarise it. Example: energylens validate "
                                   "../shared/data/mlenergy_v2")
    _table(s)
    s.add_argument("-o", "--output", help="also write the canonical table (CSV) here, e.g. "
                                          "-o canonical.csv")
    s.add_argument("--format", choices=("text", "json"), default="text",
                   help="format of the summary (default text), e.g. --format json")
    _force(s)


def _add_simulate(sub, common) -> None:
    s = sub.add_parser("simulate", parents=[common],
                       help="write a synthetic profiling table from the physics simulator",
                       description="Example: energylens simulate --models Llama-3.1-8B "
                                   "--gpus H100-SXM -o synthetic.csv")
    _output(s)
    s.add_argument("--models", nargs="+", help="model names of the catalogue, e.g. --models "
                                               "Llama-3.1-8B Llama-3.2-1B")
    s.add_argument("--gpus", nargs="+", help="GPU names of the catalogue, e.g. --gpus H100-SXM L4")
    s.add_argument("--seed", type=_seed, default=0, help="random seed (default 0), e.g. --seed 3")
    s.add_argument("--noise", type=_noise, default=0.02,
                   help="relative measurement noise, a standard deviation from 0 to 1 "
                        "(default 0.02), e.g. --noise 0")
    s.add_argument("--n-requests", type=_positive_int, default=None,
                   help="finite pool of requests per run (default: saturated), e.g. "
                        "--n-requests 500")


def _add_grid(sub, common) -> None:
    s = sub.add_parser("grid", parents=[common],
                       help="write a table of candidate configurations, with feasibility",
                       description="The cartesian grid of candidate configurations, with "
                                   "feasibility (GPU memory, heads split by tp, GPUs available) "
                                   "and the reason when one is infeasible; a cap whose KV cache "
                                   "does not fit runs memory-limited (columns running_batch, "
                                   "memory_limited). Example: energylens "
                                   "grid --model Llama-3.1-70B --gpu H100-SXM --tp 2 4 8 "
                                   "--batch-size 32 128 -o cand.csv")
    s.add_argument("--model", nargs="+", required=True,
                   help="model name(s) of the catalogue, e.g. --model Llama-3.1-8B")
    s.add_argument("--gpu", nargs="+", required=True, help="GPU name(s), e.g. --gpu H100-SXM A100-80GB")
    s.add_argument("--tp", nargs="+", type=int, default=[1, 2, 4, 8],
                   help="tensor-parallel degrees (default 1 2 4 8), e.g. --tp 1 2")
    s.add_argument("--pp", nargs="+", type=int, default=[1],
                   help="pipeline-parallel degrees (default 1), e.g. --pp 1 2")
    s.add_argument("--dp", nargs="+", type=int, default=[1],
                   help="data-parallel replicas (default 1), e.g. --dp 1 2")
    s.add_argument("--batch-size", nargs="+", type=float, default=[1, 8, 32, 128],
                   help="batch caps, the most sequences run at once (default 1 8 32 128), "
                        "e.g. --batch-size 16 64")
    s.add_argument("--input-tokens", nargs="+", type=float, default=[512],
                   help="input lengths in tokens (default 512), e.g. --input-tokens 256 2048")
    s.add_argument("--output-tokens", nargs="+", type=float, default=[256],
                   help="output lengths in tokens (default 256), e.g. --output-tokens 128 1024")
    s.add_argument("--gpus-available", type=_positive_int, default=None,
                   help="GPUs at hand: configurations needing more are infeasible, e.g. "
                        "--gpus-available 8")
    s.add_argument("--params-b", type=_positive, default=None,
                   help="model size in billions of parameters (default: the catalogue's), "
                        "e.g. --params-b 70")
    s.add_argument("--no-memory-check", action="store_true",
                   help="skip the GPU-memory rule (weights and one sequence's KV cache in "
                        "90%% of memory; the running batch of a cap the KV memory cannot hold), "
                        "e.g. --no-memory-check")
    s.add_argument("--drop-infeasible", action="store_true",
                   help="leave infeasible rows out instead of flagging them, e.g. "
                        "--drop-infeasible")
    s.add_argument("--set", nargs="+", metavar="COLUMN=VALUE", dest="extra",
                   help="constant columns to add, e.g. --set workload=chat precision=bf16")
    _output(s, what="the candidates")


def _add_discover(sub, common) -> None:
    s = sub.add_parser("discover", parents=[common],
                       help="symbolic regression over a table: a Pareto front of formulas",
                       description="Example: energylens discover part.csv --engine terms")
    _table(s)
    _output(s, formats=("csv", "json", "latex"), what="the formulas")
    s.add_argument("--engine", choices=("auto", "terms", "operon", "pysr"), default="auto",
                   help="search engine: terms (deterministic term search), operon (pyoperon, "
                        "offline), pysr (needs Julia), auto (the best installed), e.g. "
                        "--engine terms")
    s.add_argument("--target", default="energy_j",
                   help="column to explain (default energy_j), e.g. --target latency_s")
    s.add_argument("--features", nargs="+",
                   help="variables the formulas may use (default: the engine's), e.g. "
                        "--features input_tokens output_tokens batch_size")
    s.add_argument("--selection", choices=("best", "accuracy", "score", "criterion"),
                   default="best", help="rule choosing the one selected formula (marked in "
                                        "the 'selected' column), e.g. --selection accuracy")
    s.add_argument("--seed", type=_seed, default=0,
                   help="random seed of the genetic engines (default 0), e.g. --seed 1")
    s.add_argument("--derive", action="store_true",
                   help="derive a named closed form instead (stable terms of a physical library, "
                        "pooled over groups) and write it as a model file that predict and "
                        "select read, e.g. --derive -o model.json")
    s.add_argument("--resamples", type=_positive_int, default=None,
                   help="with --derive: bootstrap resamples of the stability selection "
                        "(default 20), e.g. --resamples 50")
    s.add_argument("--by", default=None, nargs="+",
                   help="with --derive: columns whose groups get a scale of their own before the "
                        "pooled search (default model,gpu), e.g. --by model")
    s.add_argument("--per-group", action="store_true",
                   help="with --derive: refit the derived form per group of --by and write the "
                        "grouped model to a folder (the pooled fit as fallback), e.g. "
                        "--derive --per-group -o models/")


def _add_fit(sub, common) -> None:
    s = sub.add_parser("fit", parents=[common], help="fit a closed form and save it as JSON",
                       description="Fit a closed form of energy (or, with --target, of latency) "
                                   "and save it. Examples: energylens fit data.csv --by model,gpu "
                                   "-o models/; energylens fit data.csv --target tpot_s -o "
                                   "tpot.json")
    _table(s)
    s.add_argument("-o", "--output", required=True,
                   help="model file (JSON), or a folder when --by is given, e.g. -o model.json")
    s.add_argument("--model", choices=("energylens", "sweetspot", "wilkins", "hierarchical"),
                   default="energylens",
                   help="model of energy to fit (default energylens, a closed form per table or "
                        "--by group); hierarchical fits one HierarchicalEnergyModel over all the "
                        "table's models and GPUs, the report's model for tables of many groups "
                        "(with --jobs; not with --by, --loss, --batch-rule or "
                        "--size-covariate), e.g. --model hierarchical")
    s.add_argument("--target", choices=TARGETS, default="energy_j",
                   help="column to model: energy_j (default) fits an energy model; a latency "
                        "column (ttft_s, tpot_s or latency_s, in seconds) fits a LatencyModel, "
                        "which 'energylens select --latency-model' reads, e.g. --target tpot_s")
    s.add_argument("--by", default=None, nargs="+",
                   help="fit one model per group of these columns (commas or spaces), e.g. --by "
                        "model,gpu")
    s.add_argument("--loss", choices=("relative", "log", "absolute", "robust"), default=None,
                   help="residuals minimised: relative (default), log, absolute or robust "
                        "(soft-L1 on relative), e.g. --loss log")
    s.add_argument("--batch-rule", choices=("auto", "running", "littles_law", "saturating", "cap"),
                   default=None, help="how the batch column becomes the running batch "
                                      "(default auto: from the table), e.g. --batch-rule cap")
    s.add_argument("--size-covariate", choices=("params_b", "active_params_b"), default=None,
                   help="scale terms by model size (for tables pooling models), e.g. "
                        "--size-covariate params_b")
    s.add_argument("--jobs", type=_jobs, default=None,
                   help="parallel group fits (default 1; -1 for all cores), e.g. --jobs 2")
    s.add_argument("--calibrate-new-models", action="store_true",
                   help="with --model hierarchical: leave each model out once and scale the "
                        "interval of a model the table lacks by those held-out errors (one refit "
                        "per model; at least 10 models), e.g. --model hierarchical "
                        "--calibrate-new-models")
    _force(s)


def _add_predict(sub, common) -> None:
    s = sub.add_parser("predict", parents=[common],
                       help="predict energy (with an interval) for candidate configurations",
                       description="Example: energylens predict model.json cand.csv -o pred.csv")
    _model_inputs(s)
    _output(s, what="the predictions")


def _add_select(sub, common) -> None:
    s = sub.add_parser("select", parents=[common],
                       help="rank candidate configurations by predicted energy",
                       description="Example: energylens select models/ cand.csv --max-gpus 4 "
                                   "--top 5")
    _model_inputs(s)
    _output(s, what="the ranking")
    s.add_argument("--objective", choices=("energy_j", "energy_per_output_token_j"),
                   default="energy_j", help="what to minimise: energy per request (default) or "
                                            "per output token, e.g. --objective "
                                            "energy_per_output_token_j")
    s.add_argument("--latency-model", nargs="+", metavar="TARGET=FILE",
                   help="latency models from 'energylens fit TABLE --target TARGET' (TARGET: "
                        "ttft_s, tpot_s or latency_s), for the bounds below, e.g. "
                        "--latency-model tpot_s=tpot.json ttft_s=ttft.json")
    for col, what, example in (("ttft_s", "time to first token", "0.5"),
                               ("tpot_s", "time per output token", "0.05"),
                               ("latency_s", "request latency", "10")):
        flag = "--" + col.replace("_", "-")
        s.add_argument(flag, dest=col, type=_positive,
                       help=f"bound on {what} in seconds (needs --latency-model {col}=FILE or a "
                            f"{col} column in CANDIDATES), e.g. {flag} {example}")
    s.add_argument("--max-gpus", type=_positive_int, help="GPUs available (bounds tp*pp*dp), e.g. --max-gpus 4")
    s.add_argument("--top", type=_positive_int, default=None,
                   help="keep only the best N feasible rows (infeasible ones follow), e.g. --top 5")


def _add_sweetspot(sub, common) -> None:
    s = sub.add_parser("sweetspot", parents=[common],
                       help="fit the SweetSpot length model; optimal output lengths",
                       description="Example: energylens sweetspot data.csv --model-name "
                                   "Llama-3.1-8B --gpu H100-SXM --where workload=sweep "
                                   "--plot ss.png")
    _table(s)
    _output(s)
    s.add_argument("--model-name", default=None,
                   help="keep rows of this model, e.g. --model-name Llama-3.1-8B")
    s.add_argument("--gpu", default=None, help="keep rows of this GPU, e.g. --gpu H100-SXM")
    s.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                   help="keep rows where COLUMN equals VALUE (repeatable; the model describes "
                        "one configuration), e.g. --where tp=1 --where batch_size=32")
    s.add_argument("--inputs", nargs="+", type=_positive,
                   help="input lengths (tokens) to tabulate, one row each (default: the first "
                        "8 measured), e.g. --inputs 128 1024")
    s.add_argument("--outputs", nargs="+", type=_positive,
                   help="output lengths (tokens) searched at each input length: the best of "
                        "them is grid_output_tokens, with its efficiency grid_tokens_per_joule "
                        "(default: those measured), e.g. --outputs 64 256 1024")
    s.add_argument("--tolerance", type=_fraction, default=0.9,
                   help="share of the best efficiency on the --outputs grid at an input length "
                        "that counts as near-optimal: near_optimal_output_min and _max bound "
                        "the output lengths reaching it (default 0.9), e.g. --tolerance 0.95")
    s.add_argument("--plot", type=_plot_file, default=None,
                   help="save sweet-spot curves to this file, in the format of its suffix "
                        "(.png, .pdf or .svg), e.g. --plot ss.png")


def _add_compare(sub, common) -> None:
    s = sub.add_parser("compare", parents=[common],
                       help="compare closed forms and ensembles by training-set size",
                       description="Trains every model of the comparison list on n random rows "
                                   "per group and tests on the rest. Example: energylens compare "
                                   "data.csv --n-train 10 20 --seeds 3")
    _table(s)
    _output(s)
    s.add_argument("--n-train", nargs="+", type=_positive_int, default=[10, 20, 50],
                   help="training rows per group (default 10 20 50); a group too small to keep "
                        "two rows to test trains on all but two of its rows (n_fit gives the "
                        "rows each fit used, all groups together), and a size that leaves no "
                        "group two rows to test is left out with a warning, e.g. --n-train 5 10")
    s.add_argument("--seeds", type=_positive_int, default=3,
                   help="random draws per size (default 3), e.g. --seeds 5")
    s.add_argument("--long", action="store_true",
                   help="write every (model, n, seed, metric) row, e.g. --long")
    s.add_argument("--jobs", type=_jobs, default=None,
                   help="worker processes for the fits (default 1; -1 for all cores), e.g. --jobs 2")


def _add_report(sub, common) -> None:
    s = sub.add_parser("report", parents=[common],
                       help="fit, compare and select: a self-contained HTML report",
                       description="Example: energylens report data/demo_profiles.csv -o report")
    _table(s)
    s.add_argument("-o", "--output", required=True,
                   help="output folder (created; holds index.html and the CSV tables), e.g. "
                        "-o report")
    s.add_argument("--title", default="energylens report",
                   help="title of the report, e.g. --title 'H100 sweep'")
    s.add_argument("--seeds", type=_positive_int, default=None,
                   help="random draws of the baseline comparison (default 3; 2 with --quick), "
                        "e.g. --seeds 5")
    s.add_argument("--max-latency", type=_positive, default=None,
                   help="latency limit in seconds for the energy-latency choice: on request "
                        "latency (latency_s) where the table has it, else on time per output "
                        "token (tpot_s); default twice the fastest measured, e.g. --max-latency 20")
    s.add_argument("--quick", action="store_true",
                   help="a smaller comparison (2 seeds, 10 and 20 rows, smaller ensembles), "
                        "e.g. --quick")
    s.add_argument("--jobs", type=_jobs, default=None,
                   help="worker processes of the comparison (default: the cores, at most 4; 1 "
                        "runs it in this process), e.g. --jobs 1")
    _force(s)


def build_parser() -> argparse.ArgumentParser:
    """The ``energylens`` argument parser."""
    p = argparse.ArgumentParser(
        prog="energylens",
        description="Fit interpretable closed-form energy models of LLM inference, predict "
                    "unmeasured configurations and pick the most energy-efficient one.",
        epilog="Exit codes: 0 ok, 2 bad input, 1 internal error. Start with: energylens report "
               "data/demo_profiles.csv -o report",
    )
    p.add_argument("--version", action="version", version=f"energylens {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()
    for add in (_add_validate, _add_simulate, _add_grid, _add_discover, _add_fit, _add_predict,
                _add_select, _add_sweetspot, _add_compare, _add_report):
        add(sub, common)
    return p


def check_args(args: argparse.Namespace) -> None:
    """Checks between options, after parsing: ``discover`` options that only ``--derive``
    reads are refused without it (they would be ignored), and get their defaults with it."""
    if getattr(args, "command", None) != "discover":
        return
    given = [f"--{k.replace('_', '-')}" for k in DERIVE_DEFAULTS
             if getattr(args, k) not in (None, False)]
    if given and not args.derive:
        one = len(given) == 1
        names = given[0] if one else f"{', '.join(given[:-1])} and {given[-1]}"
        raise BadInput(f"{names} appl{'ies' if one else 'y'} to 'discover "
                       f"--derive' only and would be ignored without it: add --derive (it writes "
                       f"a model file, e.g. --derive -o model.json) or leave "
                       f"{'it' if one else 'them'} out.")
    for k, v in DERIVE_DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, list(v) if isinstance(v, list) else v)
