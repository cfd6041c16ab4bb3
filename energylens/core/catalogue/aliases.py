"""Spellings of a trained model or GPU: the catalogue says when a new name is one of them.

A table names a GPU ``"H100-80GB-HBM3"`` and a notebook ``"H100-SXM"``; a model
``"meta-llama/Meta-Llama-3.1-8B-Instruct"`` and ``"Llama-3.1-8B"``. Models fitted per group or
per level key their parameters by the names they were trained on; :func:`aliased` rewrites
the names of new rows that are spellings of a trained one, so that they get its parameters
instead of being predicted as unseen.
"""

from __future__ import annotations

import pandas as pd

from .registry import entry_key

__all__ = ["aliased"]


def aliased(X: pd.DataFrame, seen: dict) -> pd.DataFrame:
    """``X`` with each model and GPU name that training did not see, but that the catalogue
    resolves to the same entry as exactly one name it did see, spelt as in training (a copy
    where anything changes): ``"H100-SXM"`` after training on ``"H100-80GB-HBM3"`` is that
    GPU, not a new one (``"A100-40GB (Palmetto)"`` is not ``"A100-40GB (Swing)"``: another
    host). A model name is a trained checkpoint when the two share their
    stem and precision, and its checkpoint words or it names none and training measured one
    such checkpoint (:func:`_same`): a Thinking checkpoint is never read as its Instruct
    sibling, nor Llama 3.3 as Llama 3.1. ``seen`` maps ``"model"`` and ``"gpu"`` to the
    training names.

    Examples
    --------
    >>> t = pd.DataFrame({"model": ["Llama-3.1-8B", "Llama-3.1-8B-FP8", "Llama-3.1-8B-Base"],
    ...                   "gpu": ["H100"] * 3})
    >>> aliased(t, {"model": ["meta-llama/Meta-Llama-3.1-8B-Instruct"],
    ...             "gpu": ["H100-80GB-HBM3"]})["model"].tolist()
    ['meta-llama/Meta-Llama-3.1-8B-Instruct', 'Llama-3.1-8B-FP8', 'Llama-3.1-8B-Base']
    """
    out = X
    for col in ("model", "gpu"):
        known = set(seen.get(col) or ())
        if col not in X.columns or not known:
            continue
        new = [v for v in X[col].unique() if not pd.isna(v) and str(v) not in known]
        if not new:
            continue
        keys = {name: entry_key(col, name) for name in known}
        mapping = {}
        for v in new:
            k = entry_key(col, v)
            if k is None:
                continue
            same = [name for name, kn in keys.items() if kn is not None and _same(k, kn)]
            if len(same) == 1:
                mapping[v] = same[0]
        if mapping:
            out = out.copy() if out is X else out
            out[col] = X[col].map(lambda v, m=mapping: m.get(v, v))
    return out


def _same(new: tuple, trained: tuple) -> bool:
    """Whether a name's catalogue key (:func:`~energylens.core.catalogue.entry_key`) may be
    that of a trained name: one row and precision; the same checkpoint words (a GPU: the
    same host), or none named; one stem, up to a leading word (``Meta-Llama-3.1-8B`` is
    ``Llama-3.1-8B``)."""
    (row, prec, words, stem), (row_t, prec_t, words_t, stem_t) = new, trained
    if (row, prec) != (row_t, prec_t) or (words and words != words_t):
        return False
    return stem == stem_t or stem.endswith("-" + stem_t) or stem_t.endswith("-" + stem)
