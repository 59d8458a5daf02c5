"""The built site's checks: the link checker (tools/check_links.py) and the browser math check
(tools/check_site_math.py), each on a tiny hand-made site with known good and known broken pages, so
both are seen to pass and to fail. The math check starts headless Chromium once (skipped where the
system has no Chromium or the docs extra's MathJax package is missing); CI builds the real site and
runs both (.ci/checks.sh docs links math)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str):
    key = f"frozenlake_ift_tools_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def _page(path: Path, body: str, head: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!doctype html><html><head>{head}</head><body>{body}</body></html>", encoding="utf-8")


def test_the_link_checker_finds_missing_files_and_anchors_and_ignores_external_links(tmp_path):
    check = _tool("check_links")
    _page(tmp_path / "index.html", '<a href="guide/">guide</a> <a href="https://example.org/x">out</a>')
    _page(
        tmp_path / "guide" / "index.html",
        '<h2 id="usage">Usage</h2><a href="#usage">here</a> <a href="../index.html#top">top</a> '
        '<a href="../notebooks/02_x.ipynb">next notebook</a> <img src="data:image/png;base64,AAAA"> '
        '<a href="mailto:a@b.c">mail</a> <a href="../index.html">home</a>',
    )
    broken, count = check.check_site(tmp_path)
    assert count == 5
    assert sorted((b.page, b.target, b.reason.split(" ")[0]) for b in broken) == [
        ("guide/index.html", "../index.html#top", "no"),
        ("guide/index.html", "../notebooks/02_x.ipynb", "no"),
    ]
    assert "no id 'top'" in str(next(b for b in broken if "#top" in b.target))
    _page(tmp_path / "notebooks" / "02_x.ipynb" / "index.html", "a folder with an index")
    (tmp_path / "index.html").write_text('<a id="top" href="guide/">guide</a>', encoding="utf-8")
    assert check.check_site(tmp_path)[0] == []
    assert check.main([str(tmp_path)]) == 0
    assert check.main([str(tmp_path / "nowhere")]) == 2


def test_the_math_check_passes_typeset_math_and_fails_raw_tex(tmp_path):
    check = _tool("check_site_math")
    browser = check.find_browser()
    if browser is None:
        pytest.skip("no Chromium on this machine (CI installs it: apt-get install -y chromium)")
    pytest.importorskip("mkdocs")
    hooks = _tool("docs_hooks")
    source = hooks.mathjax_source()
    if source is None:
        pytest.skip("jupyter-server-mathjax (the docs extra) is not installed")
    shutil.copytree(source, tmp_path / hooks.MATHJAX_DIR)
    tags = hooks.mathjax_tags("../")  # what the site's pages load
    _page(tmp_path / "index.html", "home")
    _page(tmp_path / "good" / "index.html", r"<p>\(x^2 + \pi\) and <code>$not math$</code></p>", tags)
    _page(tmp_path / "raw" / "index.html", r"<p>\(q_i\) typeset, $q_i$ left raw</p>", tags)
    pages = check.math_pages(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in pages] == ["good/index.html", "raw/index.html"]
    results = {r.page: r for r in check.check_pages(tmp_path, pages, browser, timeout=30)}
    assert results["good/index.html"].problems() == [], results["good/index.html"]
    raw = results["raw/index.html"]
    assert raw.typeset == 1 and any("raw TeX" in p and "$q_i$" in p for p in raw.problems()), raw
