"""The hierarchical (partially pooled) energy model: one closed form for a whole table.

- :mod:`.form`: the kernel, its parameters (name, unit, meaning, prior) and its terms;
- :mod:`.variables`: the row variables, from the table and the catalogue's descriptors;
- :mod:`.design`: levels of random effects and the layout of the unknowns;
- :mod:`.chunks` and :mod:`.pooling`: the penalised solver and the empirical-Bayes spreads;
- :mod:`.estimator`: :class:`HierarchicalEnergyModel`;
- :mod:`.uncertainty`, :mod:`.report`, :mod:`.persistence`: intervals, reports, files;
- :mod:`.synthetic`: tables generated from the form with known parameters.
"""

from .design import DEFAULT_LEVELS, RICH_LEVELS
from .estimator import HierarchicalEnergyModel
from .form import PARAMETERS, TERMS, energy_components, energy_jacobian, energy_kernel
from .synthetic import form_table

__all__ = ["HierarchicalEnergyModel", "DEFAULT_LEVELS", "RICH_LEVELS", "PARAMETERS", "TERMS",
           "energy_kernel", "energy_jacobian", "energy_components", "form_table"]
