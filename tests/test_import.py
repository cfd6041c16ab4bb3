"""`import energylens` stays light; optional dependencies come through one door with a clear error."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import energylens
from energylens._optional import import_optional
from energylens.exceptions import BackendUnavailableError, EnergyLensError, SchemaError


def _fresh(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (nothing imported yet)."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_import_does_not_load_heavy_optional_modules():
    assert _fresh("import sys, energylens; heavy = ['matplotlib', 'pyoperon', 'pysr', 'xgboost', "
                  "'pynvml', 'torch', 'transformers', 'juliacall']; "
                  "print([m for m in heavy if m in sys.modules])") == "[]"


def test_public_names_resolve():
    for name in energylens.__all__:
        assert getattr(energylens, name) is not None
    with pytest.raises(AttributeError):
        energylens.not_a_name  # noqa: B018


def test_optional_import_error_says_what_to_install():
    with pytest.raises(BackendUnavailableError, match=r"pip install xgboost-cpu .*energylens\[xgboost\]"):
        import_optional("xgboost.nonexistent_submodule_for_test", purpose="test")
    err = BackendUnavailableError("x")
    assert isinstance(err, ImportError) and isinstance(err, EnergyLensError)
    assert issubclass(SchemaError, ValueError)


def test_every_exception_is_exported_at_the_top():
    """CatalogueError, which docs/catalogue.md names as what an unknown name raises, was the
    one class of energylens.exceptions missing from energylens.__all__."""
    import energylens.exceptions as exceptions

    assert set(exceptions.__all__) <= set(energylens.__all__)
    from energylens import CatalogueError
    from energylens.core.catalogue import CatalogueError as from_catalogue
    from energylens.core.catalogue import gpu_spec, model_spec

    assert CatalogueError is exceptions.CatalogueError is from_catalogue
    assert issubclass(CatalogueError, EnergyLensError) and issubclass(CatalogueError, ValueError)
    with pytest.raises(CatalogueError, match="Unknown GPU 'NoSuchGPU-9000'") as info:
        gpu_spec("NoSuchGPU-9000")
    assert type(info.value) is CatalogueError
    with pytest.raises(CatalogueError):
        model_spec("NoSuchModel-1T")


def test_top_level_exceptions_load_no_submodule():
    assert _fresh("import sys, energylens; from energylens import CatalogueError; "
                  "print(sorted(m for m in sys.modules if m.startswith('energylens.')))"
                  ) == "['energylens._version', 'energylens.exceptions']"


def test_reading_a_table_and_the_catalogue_does_not_import_scikit_learn():
    """read_profiles and descriptors check their options (plain strings) without loading
    scikit-learn, which took most of a second of a notebook's first read_profiles call."""
    code = ("import sys, pathlib, energylens as el; "
            "from energylens.core.catalogue.descriptors import descriptors; "
            "df = el.read_profiles(pathlib.Path(el.__file__).parent.parent / 'data' / "
            "'demo_profiles.csv'); descriptors(df.head(3)); print('sklearn' in sys.modules)")
    assert _fresh(code) == "False"


def test_a_bad_plain_option_still_gets_scikit_learns_message():
    from energylens.core.options import InvalidParameterError, check_options

    with pytest.raises(InvalidParameterError, match=r"The 'duplicates' parameter of read_profiles "
                       r"must be a str among \{.*'raise'.*\}\. Got 'bogus' instead"):
        energylens.read_profiles(pd.DataFrame({"model": ["m"]}), duplicates="bogus")
    with pytest.raises(InvalidParameterError, match="'flag' parameter of f must be an instance of 'bool'"):
        check_options("f", {"flag": ["boolean"]}, {"flag": 1})
    check_options("f", {"x": [int, None], "y": [{"a", "b"}], "z": ["boolean"]},
                  {"x": None, "y": "a", "z": False, "unchecked": object()})
