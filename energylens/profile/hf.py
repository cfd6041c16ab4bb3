"""A ready ``run_fn`` for Hugging Face transformers models with random weights (no download)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from .._optional import import_optional
from ..core.options import Integral, StrOptions, check_options

__all__ = ["HF_PRESETS", "make_hf_run_fn"]

#: Llama-architecture configurations: about 1.2 B parameters like Llama-3.2-1B, and a tiny
#: one for checks on a CPU.
HF_PRESETS: dict[str, dict] = {
    "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                     num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                     max_position_embeddings=8192, tie_word_embeddings=True),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1000, max_position_embeddings=4096),
}


def make_hf_run_fn(config: str | Mapping | object = "llama-1b", *, dtype: str = "bfloat16",
                   device: str = "cuda", seed: int = 0) -> Callable[..., tuple[int, int]]:
    """Build a random-weight causal LM from a configuration and return its ``run_fn``.

    Parameters
    ----------
    config : str, dict or transformers config
        A preset name of :data:`HF_PRESETS`, keyword arguments of ``LlamaConfig``, or a
        transformers configuration object.
    dtype : str
        ``"bfloat16"``, ``"float16"`` or ``"float32"``.
    device : str
        ``"cuda"`` (synchronised around each run) or ``"cpu"``.

    Returns
    -------
    callable
        ``run_fn(batch_size, input_tokens, output_tokens, **ignored)``: generates exactly
        ``output_tokens`` tokens (greedy) for ``batch_size`` random prompts of
        ``input_tokens`` tokens, and returns ``(sequences, new tokens per sequence)`` as
        generated, so a caller can check the work done.

    Raises
    ------
    BackendUnavailableError
        torch or transformers is not installed (the message says what to install).
    ValueError
        An unknown preset or dtype (checked before anything is imported).

    Examples
    --------
    >>> run_fn = make_hf_run_fn("tiny", dtype="float32", device="cpu")  # doctest: +SKIP
    >>> run_fn(batch_size=2, input_tokens=8, output_tokens=3)  # doctest: +SKIP
    (2, 3)
    """
    check_options("make_hf_run_fn", {"dtype": [StrOptions({"bfloat16", "float16", "float32"})],
                                     "device": [str], "seed": [Integral]},
                  {"dtype": dtype, "device": device, "seed": seed})
    if isinstance(config, str) and config not in HF_PRESETS:
        raise ValueError(f"Unknown preset {config!r}; presets are {sorted(HF_PRESETS)}.")
    torch = import_optional("torch", purpose="run a Hugging Face model for profiling")
    transformers = import_optional("transformers", purpose="build a Hugging Face model for profiling")
    if isinstance(config, str):
        cfg = transformers.LlamaConfig(**HF_PRESETS[config])
    elif isinstance(config, Mapping):
        cfg = transformers.LlamaConfig(**config)
    else:
        cfg = config
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=getattr(torch, dtype))
    model = model.to(device).eval()
    gen = torch.Generator(device="cpu").manual_seed(seed)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def run_fn(batch_size: int, input_tokens: int, output_tokens: int,
               **_ignored) -> tuple[int, int]:
        ids = torch.randint(3, cfg.vocab_size, (int(batch_size), int(input_tokens)), generator=gen)
        ids = ids.to(device)
        mask = torch.ones_like(ids)
        sync()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask,
                                 max_new_tokens=int(output_tokens),
                                 min_new_tokens=int(output_tokens), do_sample=False,
                                 pad_token_id=0)
        sync()
        return int(out.shape[0]), int(out.shape[1]) - int(input_tokens)

    return run_fn
