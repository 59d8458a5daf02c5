"""One API-reference page per public module of ``frozenlake_ift``, found on disk.

The docs build calls this through ``tools/docs_hooks.py``: every module or subpackage whose
name does not start with ``_`` gets a page ``reference/<dotted path>.md`` holding
``::: frozenlake_ift.<module>`` (mkdocstrings renders it from the docstrings), so a new module
gets its page, and a renamed or deleted one loses it, without editing ``mkdocs.yml``. A
hand-written ``docs/reference/<name>.md`` takes the place of the generated page.

Run it by hand to see what the build will generate::

    python tools/gen_ref_pages.py            # list modules and their summary lines
    python tools/gen_ref_pages.py --write D  # write the generated pages under D/
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "frozenlake_ift"


@dataclass(frozen=True)
class ModulePage:
    """A public module and where its reference page goes."""

    name: str  # dotted, e.g. "frozenlake_ift.methods.registry"
    path: Path  # the .py file (a package's __init__.py)
    is_package: bool
    summary: str  # first line of the module docstring ("" if none)

    @property
    def uri(self) -> str:
        """The page's path inside docs/, e.g. "reference/methods/registry.md"."""
        path = "/".join(self.name.split(".")[1:])
        return f"reference/{path}/index.md" if self.is_package else f"reference/{path}.md"

    @property
    def short(self) -> str:
        """The name without the package prefix, e.g. "methods.registry"."""
        return self.name.removeprefix(PACKAGE + ".")

    def markdown(self) -> str:
        """The generated page: a mkdocstrings directive (submodules get their own pages)."""
        return f"::: {self.name}\n"


def _summary(path: Path) -> str:
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except SyntaxError:  # a file mid-edit: the docs build reports it through griffe
        return ""
    return doc.strip().splitlines()[0] if doc else ""


def public_modules(package_dir: Path | None = None) -> list[ModulePage]:
    """Every public module and subpackage under the package directory, sorted by dotted name.

    Skips names starting with "_" (private modules, ``__main__``) and directories without an
    ``__init__.py``. Where a module and a package share a name (``x.py`` beside ``x/``), the
    package wins, as it does for ``import``.
    """
    package_dir = ROOT / PACKAGE if package_dir is None else package_dir
    found: dict[str, ModulePage] = {}

    def walk(directory: Path, dotted: str) -> None:
        for child in sorted(directory.iterdir()):
            if child.name.startswith(("_", ".")):
                continue
            if child.is_dir() and (child / "__init__.py").is_file():
                name = f"{dotted}.{child.name}"
                init = child / "__init__.py"
                found[name] = ModulePage(name, init, True, _summary(init))
                walk(child, name)
            elif child.suffix == ".py" and child.is_file():
                name = f"{dotted}.{child.stem}"
                if name not in found or not found[name].is_package:
                    if not (directory / child.stem / "__init__.py").is_file():
                        found[name] = ModulePage(name, child, False, _summary(child))

    walk(package_dir, PACKAGE)
    return [found[k] for k in sorted(found)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", metavar="DIR", type=Path, help="write the generated pages under DIR")
    args = ap.parse_args(argv)
    pages = public_modules()
    for page in pages:
        print(f"{page.uri:40s} {page.summary}")
        if args.write is not None:
            out = args.write / page.uri
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(page.markdown(), encoding="utf-8")
    print(f"{len(pages)} public modules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
