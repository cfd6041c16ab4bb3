"""Plots for notebooks and reports.

Every function takes ``ax=None`` (a new pyplot figure is made when omitted), returns the
:class:`matplotlib.axes.Axes`, labels its axes in words with units, and never calls
``show()``. Arguments are checked before a figure is made, and a call that fails leaves no
figure open in pyplot. Pass the axes of a :class:`matplotlib.figure.Figure` to stay clear of pyplot
altogether (as the HTML report does). matplotlib is imported on first use, so
``import energylens`` does not load it.

Examples
--------
>>> import energylens.plot as elp  # doctest: +SKIP
>>> ax = elp.parity(df["energy_j"], model.predict(df))  # doctest: +SKIP
"""

from ._accuracy import extrapolation, parity, sample_efficiency
from ._choices import components, discovery_front, pareto
from ._sweetspot import sweetspot_curves, sweetspot_heatmap

__all__ = [
    "sweetspot_curves",
    "sweetspot_heatmap",
    "parity",
    "sample_efficiency",
    "pareto",
    "discovery_front",
    "components",
    "extrapolation",
]
