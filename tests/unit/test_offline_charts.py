"""The committed chart page (.dvc/plots/offline.html) carries the pinned libraries and loads nothing."""

from __future__ import annotations

import configparser
import hashlib
import importlib.util
import re

from tests.helpers import ROOT

spec = importlib.util.spec_from_file_location("offline_charts", ROOT / ".ci" / "offline_charts.py")
offline_charts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(offline_charts)


def test_the_page_inlines_the_pinned_libraries_and_names_their_licenses():
    page = offline_charts.PAGE.read_text(encoding="utf-8")
    scripts = re.findall(r"<script>\n(.*?)\n</script>", page, flags=re.DOTALL)
    pins = offline_charts.PACKAGES
    assert [hashlib.sha256(code.encode()).hexdigest() for code in scripts] == [p[2] for p in pins.values()]
    for name, (version, build, digest) in pins.items():
        assert f"{name}@{version} ({build}, sha256 {digest}), license BSD-3-Clause:" in page
    assert page.count("Redistribution and use in source and binary forms") == 2  # vega-lite's and vega-embed's
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC puts its CDN tags at {scripts}
    assert not re.search(r"<script[^>]*\bsrc=", page)


def test_dvc_uses_the_page_for_plots_show_and_diff():
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    assert (ROOT / ".dvc" / config["plots"]["html_template"]) == offline_charts.PAGE
