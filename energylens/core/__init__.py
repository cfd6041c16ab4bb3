"""Concepts every layer of energylens shares, and nothing else.

- :mod:`~energylens.core.variables`: the one mapping from a table to formula variables;
- :mod:`~energylens.core.batch`: effective-batch rules;
- :mod:`~energylens.core.domain`: training domains and extrapolation flags;
- :mod:`~energylens.core.catalogue`: the hardware and model catalogue, and the one
  feasibility rule (memory fit, and the running batch of a memory-limited cap);
- :mod:`~energylens.core.expressions`: safe formula parsing (sympy);
- :mod:`~energylens.core.options`: option checks in scikit-learn's grammar;
- :mod:`~energylens.core.metrics`: percentage errors;
- :mod:`~energylens.core.io`: atomic file writes;
- :mod:`~energylens.core.progress`: the progress bar and the library's logger;
- :mod:`~energylens.core.threads`: one BLAS thread inside small solves;
- :mod:`~energylens.core.blocks`: row-wise formulas evaluated in cache-sized blocks of rows.

Nothing here imports from the rest of energylens (only :mod:`energylens.exceptions`), and
nothing is imported eagerly: each module is loaded when used.
"""
