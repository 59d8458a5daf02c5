"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

The site is built from the repository as it is, with no copied files to keep in step:

- **Repository files at their own paths.** README.md is the home page, and the files it links to
  (figures, notebooks, the sweep spec, CHANGELOG.md, CONTRIBUTING.md) are added to the site at
  the same relative paths, so every README link resolves in the site as it does on GitHub.
  Every page's links are written for GitHub (relative to the page's place in the repository)
  and rewritten to the same file in the site: ``docs/X.md`` from the README, ``../figures/``
  from a page of ``docs/``, and a module's source file to its reference page.
- **One reference page per public module**, generated (``tools/gen_ref_pages.py``): a new
  module gets a page and a removed one loses it; a hand-written ``docs/reference/<name>.md``
  replaces the generated page.
- **A tolerant nav.** A nav entry whose page does not exist is dropped (logged at info level),
  so pages that are still being written can be listed; a page of ``docs/`` that the nav does
  not list is appended to the "Guides" section; a nav entry naming a folder (``notebooks/``,
  ``reference/``) lists that folder's pages.

- **The notebook pages work as pages.** Their links, written for Jupyter and GitHub
  (``02_preference_estimation.ipynb``, ``../docs/cheatsheet.md``), point at the same pages of the
  site, and each opens with a link that downloads the notebook itself.
- **Math renders offline.** MathJax is served from the site itself (copied at build time from the
  ``jupyter-server-mathjax`` package of the ``docs`` extra, never from a CDN and never committed): the
  notebook pages load it where mkdocs-jupyter leaves an empty ``<script src="">``, and Markdown pages
  with math (``pymdownx.arithmatex``) load it too.

Anything else that is broken (a link to a missing file or anchor, a module that fails to
import statically, an unknown cross-reference) is a warning, and ``mkdocs build --strict``
fails on it. ``tools/check_links.py`` checks the built HTML (links the Markdown checks cannot see)
and ``tools/check_site_math.py`` checks in a browser that the math is typeset.
"""

from __future__ import annotations

import html
import importlib.util
import logging
import posixpath
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("mkdocs.hooks.docs_hooks")

# Files outside docs/ that the site carries at the same path (globs relative to the repository root).
MIRRORED = (
    "CHANGELOG.md",
    "CONTRIBUTING.md",
    "notebooks/README.md",
    "notebooks/*.ipynb",
    "figures/*.png",
    "figures/*.svg",
    "figures/*.gif",
    "figures/table1/*.png",
    "figures/sweep/*.png",
    "figures/sweep/report.md",
    "frozenlake_ift/sweeps/*.json",
)
HOME_MARKER = '--8<-- "README.md"'  # the line of docs/index.md that becomes the README
GUIDES = "Guides"  # the nav section that receives unlisted docs/ pages


def _load_gen_ref_pages() -> Any:
    spec = importlib.util.spec_from_file_location("gen_ref_pages", Path(__file__).with_name("gen_ref_pages.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_ref_pages"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


gen_ref_pages = _load_gen_ref_pages()


def _mirrored_paths() -> list[str]:
    paths: set[str] = set()
    for pattern in MIRRORED:
        paths.update(p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern) if p.is_file())
    return sorted(paths)


def _title_of(path: Path) -> str | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


# ----------------------------------------------------------------------------- nav


def _exists(uri: str, docs_dir: Path) -> bool:
    if (docs_dir / uri).is_file():
        return True
    if uri in _mirrored_paths():
        return True
    return uri.startswith("reference/") and uri in {p.uri for p in gen_ref_pages.public_modules()}


def _folder_entries(folder: str, docs_dir: Path) -> list[Any]:
    """The pages of a folder named in the nav: its index first, then its pages in name order."""
    if folder == "reference/":
        entries: list[Any] = ["reference/index.md"]
        sections: dict[str, list[Any]] = {}
        for page in gen_ref_pages.public_modules():
            parts = page.short.split(".")
            if page.is_package:
                sections[page.short] = [page.uri]
                entries.append({page.short: sections[page.short]})
            elif len(parts) > 1 and ".".join(parts[:-1]) in sections:
                sections[".".join(parts[:-1])].append({parts[-1]: page.uri})
            else:
                entries.append({page.short: page.uri})
        return entries
    uris = [p for p in _mirrored_paths() if p.startswith(folder)]
    uris += sorted(p.relative_to(docs_dir).as_posix() for p in (docs_dir / folder).glob("*") if p.is_file())
    index = [u for u in uris if u.rsplit("/", 1)[-1].lower() in ("readme.md", "index.md")]
    return index + sorted(u for u in uris if u not in index and u.endswith((".md", ".ipynb")))


def _prune(items: list[Any], docs_dir: Path, listed: set[str]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        title, value = next(iter(item.items())) if isinstance(item, dict) else (None, item)
        if isinstance(value, list):
            value = _prune(value, docs_dir, listed)
            if not value:
                continue
        elif isinstance(value, str) and value.endswith("/"):
            value = _prune(_folder_entries(value, docs_dir), docs_dir, listed)
        elif isinstance(value, str) and "://" not in value:
            if not _exists(value, docs_dir):
                log.info("nav: %s is not there (yet): left out", value)
                continue
            listed.add(value)
        out.append(value if title is None else {title: value})
    return out


def on_config(config: Any) -> Any:
    docs_dir = Path(config.docs_dir)
    listed: set[str] = set()
    nav = _prune(list(config.nav or []), docs_dir, listed)
    unlisted = sorted(
        p.relative_to(docs_dir).as_posix()
        for p in docs_dir.glob("*.md")
        if p.relative_to(docs_dir).as_posix() not in listed
    )
    if unlisted:
        extra = [{(_title_of(docs_dir / u) or u): u} for u in unlisted]
        for item in nav:
            if isinstance(item, dict) and GUIDES in item:
                item[GUIDES].extend(extra)
                break
        else:
            nav.insert(1, {GUIDES: extra})
    config.nav = nav
    return config


# ----------------------------------------------------------------------------- files


@event_priority(100)  # before mkdocs-jupyter's on_files, so that it turns the notebooks into pages
def on_files(files: Files, config: Any) -> Files:
    for uri in _mirrored_paths():
        if files.get_file_from_path(uri) is None:
            # a real file whose source folder is the repository root (File.generated would do, but
            # mkdocs-jupyter's wrapper loses the path of a generated file)
            files.append(
                File(uri, src_dir=str(ROOT), dest_dir=config.site_dir, use_directory_urls=config.use_directory_urls)
            )
    for page in gen_ref_pages.public_modules():
        if files.get_file_from_path(page.uri) is None:
            files.append(File.generated(config, page.uri, content=page.markdown()))
    return files


# ----------------------------------------------------------------------------- pages

_LINK = re.compile(r"(\]\(|<img [^>]*src=\")([^)\"\s#:]+)(?=[)#\"\s])")  # ](target  and  <img src="target


def _site_path(repo_path: str, mirrored: set[str], modules: dict[str, str]) -> str | None:
    """Where a repository file is in the site: docs/X -> X, a mirrored file -> itself,
    a module's source file -> its reference page; None if the site does not have it."""
    if repo_path.startswith("docs/"):
        return repo_path.removeprefix("docs/")
    if repo_path in mirrored:
        return repo_path
    return modules.get(repo_path)


def _rewrite_links(markdown: str, page_dir_in_repo: str, page_uri: str) -> str:
    """Make links written for GitHub (relative to the page's place in the repository) point at
    the same file in the site. A link to something the site does not carry is left as it is,
    so that the strict build reports it."""
    mirrored = set(_mirrored_paths())
    modules = {p.path.relative_to(ROOT).as_posix(): p.uri for p in gen_ref_pages.public_modules()}
    page_dir = posixpath.dirname(page_uri)

    def fix(m: re.Match[str]) -> str:
        target = m.group(2)
        repo_path = posixpath.normpath(posixpath.join(page_dir_in_repo, target))
        site = None if repo_path.startswith("..") else _site_path(repo_path, mirrored, modules)
        if site is None:
            return m.group(0)
        return m.group(1) + posixpath.relpath(site, page_dir or ".")

    return _outside_code(markdown, lambda text: _SHAPE_REF.sub(r"]\\[\1]", _LINK.sub(fix, text)))


# "[n_evals][E]" (a shape) is no link on GitHub, but autorefs would look for a target "E": escape
# it, unless the target names this package's API ("[f][frozenlake_ift.losses.sft_loss]"), so that
# such cross-references stay checked.
_SHAPE_REF = re.compile(r"\]\[(?!frozenlake_ift[\w.]*\])([^\]\n]*)\]")
_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]+`")


def _outside_code(markdown: str, edit: Any) -> str:
    """Apply ``edit`` to the text outside fenced code blocks and inline code spans."""

    def text_only(chunk: str) -> str:
        parts = _INLINE_CODE.split(chunk)
        codes = _INLINE_CODE.findall(chunk)
        return "".join(edit(p) + (codes[i] if i < len(codes) else "") for i, p in enumerate(parts))

    out, last = [], 0
    for m in _FENCE.finditer(markdown):
        out += [text_only(markdown[last : m.start()]), m.group(0)]
        last = m.end()
    out.append(text_only(markdown[last:]))
    return "".join(out)


def _module_table() -> str:
    rows = ["| module | what it is |", "|---|---|"]
    for page in gen_ref_pages.public_modules():
        link = page.uri.removeprefix("reference/")
        rows.append(f"| [`{page.short}`]({link}) | {page.summary.replace('|', '&#124;')} |")
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    uri = page.file.src_uri
    if uri == "index.md" and HOME_MARKER in markdown:
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        return markdown.replace(HOME_MARKER, _rewrite_links(readme, "", uri))
    if uri == "reference/index.md" and "{{ modules }}" in markdown:
        markdown = markdown.replace("{{ modules }}", _module_table())
    if page.file.generated_by is not None:
        return markdown  # generated reference pages hold no links
    in_repo = (
        posixpath.dirname(uri) if page.file.src_dir == str(ROOT) else posixpath.join("docs", posixpath.dirname(uri))
    )
    return _rewrite_links(markdown, in_repo, uri)


# ----------------------------------------------------------------------------- notebook pages and math

MATHJAX_DIR = "assets/mathjax"  # where the site serves MathJax from
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # a combined configuration the package ships
_HREF = re.compile(r'(<a\s[^>]*?href=")([^"#:]+)(#[^"]*)?(")')
_EMPTY_MATHJAX = re.compile(r'<script src="">\s*</script>')


def _is_notebook(page: Any) -> bool:
    return page.file.src_uri.endswith(".ipynb")


def mathjax_source() -> Path | None:
    """The folder of MathJax.js in the installed ``jupyter-server-mathjax`` package, or None."""
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    return static if (static / "MathJax.js").is_file() else None


def _notebook_link(target: str, page: Any, files: Files) -> str | None:
    """The site URL (relative to ``page``) of a link written in a notebook, or None to leave it as it is."""
    repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), target))
    mirrored = set(_mirrored_paths())
    modules = {p.path.relative_to(ROOT).as_posix(): p.uri for p in gen_ref_pages.public_modules()}
    site = None if repo_path.startswith("..") else _site_path(repo_path, mirrored, modules)
    found = files.get_file_from_path(site) if site else None
    return None if found is None else found.url_relative_to(page.file)


def on_page_content(content: str, page: Any, config: Any, files: Files) -> str:
    """Notebook pages: links to other notebooks and pages rewritten to the site's pages, and a download link."""
    if not _is_notebook(page):
        return content

    def fix(m: re.Match[str]) -> str:
        url = _notebook_link(html.unescape(m.group(2)), page, files)
        return m.group(0) if url is None else f"{m.group(1)}{html.escape(url)}{m.group(3) or ''}{m.group(4)}"

    name = posixpath.basename(page.file.src_uri)
    download = (
        f'<p class="nb-download"><a href="{html.escape(name)}" download>Download this notebook ({html.escape(name)})'
        '</a>, run it with <code>pip install -e ".[notebooks]"</code> in a clone of the repository.</p>'
    )
    return download + _HREF.sub(fix, content)


# The package ships the STIX-Web fonts only (not MathJax's default TeX fonts): without this, formulas
# that need a font file fail with "[Math Processing Error]".
MATHJAX_FONTS = (
    '<script type="text/x-mathjax-config">MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], '
    'preferredFont: null, webFont: "STIX-Web", imageFont: null}, SVG: {font: "STIX-Web"}, '
    'messageStyle: "none"});</script>'
)


def mathjax_tags(root: str) -> str:
    """The tags that load the site's MathJax, for a page whose way up to the site root is ``root`` ("../")."""
    return f'{MATHJAX_FONTS}<script src="{root}{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"></script>'


def _mathjax_tag(page: Any) -> str:
    here = posixpath.dirname(page.url.rstrip("/") + "/x") or "."
    up = posixpath.relpath(".", here)
    return mathjax_tags("" if up == "." else up + "/")


def on_post_page(output: str, page: Any, config: Any) -> str:
    """Load the site's own MathJax on every page that has math (see the module docstring)."""
    if _is_notebook(page):
        output = output.replace('class="clipboard-copy-txt"', 'class="clipboard-copy-txt tex2jax_ignore"')  # code
        return _EMPTY_MATHJAX.sub(_mathjax_tag(page).replace("\\", "\\\\"), output, count=1)
    if 'class="arithmatex"' in output:
        return output.replace("</body>", _mathjax_tag(page) + "\n</body>", 1)
    return output


def on_post_build(config: Any) -> None:
    """Copy MathJax into the site (from the installed package; nothing vendored in the repository)."""
    source = mathjax_source()
    if source is None:
        log.warning("MathJax is not installed, so the site's math would not render: pip install -e '.[docs]'")
        return
    shutil.copytree(source, Path(config.site_dir) / MATHJAX_DIR, dirs_exist_ok=True)
