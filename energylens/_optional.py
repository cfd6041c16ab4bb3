"""The one door through which optional heavy dependencies are imported."""

from __future__ import annotations

import importlib
from types import ModuleType

from .exceptions import BackendUnavailableError

#: import name -> (pip requirement, energylens extra that provides it)
_INSTALL_HINTS: dict[str, tuple[str, str | None]] = {
    "matplotlib": ("matplotlib", None),
    "pyoperon": ("pyoperon", None),
    "pysr": ("pysr", "pysr"),
    "xgboost": ("xgboost-cpu", "xgboost"),
    "pynvml": ("nvidia-ml-py", "profile"),
    "torch": ("torch", "profile"),
    "transformers": ("transformers", "profile"),
    "pyarrow": ("pyarrow", None),
    "nbclient": ("nbclient", "test"),
}


def import_optional(name: str, *, purpose: str | None = None) -> ModuleType:
    """Import an optional dependency or raise :class:`BackendUnavailableError`.

    Parameters
    ----------
    name : str
        Module to import, for example ``"matplotlib.pyplot"``.
    purpose : str, optional
        What the caller needs it for; it goes into the error message.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    BackendUnavailableError
        If the module cannot be imported; the message says what to install.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = name.split(".")[0]
        requirement, extra = _INSTALL_HINTS.get(top, (top, None))
        how = f"pip install {requirement}"
        if extra:
            how += f"  (or: pip install 'energylens[{extra}]')"
        why = f" to {purpose}" if purpose else ""
        raise BackendUnavailableError(
            f"The optional dependency '{top}' is needed{why} but cannot be imported "
            f"({exc.__class__.__name__}: {exc}). Install it with: {how}"
        ) from exc
