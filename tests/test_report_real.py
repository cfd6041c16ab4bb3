"""The report on the public measurements, read straight from their folders: the headline
names a configuration with an interval and a held-out accuracy, nothing is left unexplained,
and (for ML.ENERGY v2) the page renders in headless Chromium with every image loaded."""

from __future__ import annotations

import pytest

from energylens.cli import main

from .test_report import check_headline, check_no_unexplained_gaps, render_in_chromium

FOLDERS = ["mlenergy_v2", "mlenergy_v3", "wilkins2024", "tokenpowerbench"]
IN_BROWSER = "mlenergy_v2"


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("name", FOLDERS)
def test_public_table_report(real_data, name, tmp_path):
    folder = real_data / name
    if not folder.is_dir():
        pytest.skip(f"{name} is not among the public measurements in {real_data}")
    target = tmp_path / "report"
    assert main(["report", str(folder), "-o", str(target), "--quick", "--quiet"]) == 0
    page = (target / "index.html").read_text()
    check_headline(page)
    check_no_unexplained_gaps(page)
    if name == IN_BROWSER:
        loaded, total, tables, dom = render_in_chromium(target / "index.html", tmp_path)
        assert total >= 4 and loaded == total and tables >= 5
        check_headline(dom)
        check_no_unexplained_gaps(dom)
