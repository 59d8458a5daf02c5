"""Check every internal link of a built site: each must reach a file of the site, and its #anchor an id there.

``mkdocs build --strict`` checks the links written in Markdown, but not the links of the notebook pages
(mkdocs-jupyter writes them as HTML) nor anything a template or a hook adds. This reads the built HTML
instead, every page whole whatever its size: each ``href`` and ``src`` that is not external (no scheme,
not ``//host``, not ``data:``) must resolve, relative to its page, to a file of the site (a folder: its
``index.html``), and a ``#fragment`` on an HTML page must name an ``id`` (or ``<a name>``) of that page.

Usage: ``python tools/check_links.py SITE_DIR`` (``mkdocs build --site-dir SITE_DIR`` first). Prints one
line per broken link (the page, the link, why) and exits 1; exits 0 with a count when all resolve.
"""

from __future__ import annotations

import argparse
import posixpath
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

LINK_ATTRS = {"href", "src"}


@dataclass(frozen=True)
class Link:
    """One link of a page: the attribute's value as written, and the tag it sits on."""

    tag: str
    target: str


@dataclass(frozen=True)
class Broken:
    """A link that does not resolve: the page (relative to the site), the link, and why."""

    page: str
    target: str
    reason: str

    def __str__(self) -> str:
        return f"{self.page}: {self.target} -> {self.reason}"


class _Page(HTMLParser):
    """The links and the anchor names of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[Link] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "id" or (tag == "a" and name == "name"):
                self.ids.add(value)
            elif name in LINK_ATTRS and not (tag == "link" and dict(attrs).get("rel") == "preconnect"):
                self.links.append(Link(tag, value))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    page.close()
    return page


def is_internal(target: str) -> bool:
    """A link into the site: no scheme (http:, mailto:, data:, javascript:) and no //host."""
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc and not target.startswith("//")


def resolve(site: Path, page: Path, target: str) -> tuple[Path | None, str]:
    """The file a link of ``page`` reaches (None if none) and its fragment ('' if none)."""
    parts = urlsplit(target)
    path = unquote(parts.path)
    if not path:
        return page, parts.fragment
    base = "" if path.startswith("/") else posixpath.dirname(page.relative_to(site).as_posix())
    rel = posixpath.normpath(posixpath.join(base, path.lstrip("/")))
    if rel.startswith(".."):
        return None, parts.fragment
    found = site / rel
    if found.is_dir():
        found = found / "index.html"
    return (found if found.is_file() else None), parts.fragment


def check_site(site: Path) -> tuple[list[Broken], int]:
    """Every broken internal link of the site's HTML pages, and how many internal links there are."""
    site = site.resolve()
    pages = sorted(site.rglob("*.html"))
    parsed = {p: _parse(p) for p in pages}
    broken, count = [], 0
    for page, content in parsed.items():
        name = page.relative_to(site).as_posix()
        for link in content.links:
            if not is_internal(link.target):
                continue
            count += 1
            target, fragment = resolve(site, page, link.target)
            if target is None:
                broken.append(Broken(name, link.target, "no such file in the site"))
            elif fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(fragment) not in ids:
                    broken.append(Broken(name, link.target, f"no id {fragment!r} on that page"))
    return broken, count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("site", type=Path, help="the built site (mkdocs build --site-dir SITE)")
    args = ap.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"{args.site} is not a built site (no index.html): run mkdocs build --site-dir {args.site} first")
        return 2
    broken, count = check_site(args.site)
    for b in broken:
        print(b)
    if broken:
        print(f"{len(broken)} of {count} internal links are broken")
        return 1
    print(f"all {count} internal links resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
