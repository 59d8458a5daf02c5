"""A griffe extension: the package's plain-text docstrings, rendered as the author laid them out.

The docstrings are written to be read with ``help()``: hard-wrapped prose, one ``name: what``
line per argument, ``Shape (B, T)`` notes, lists without a blank line before them, and math such
as ``s*_i`` or ``pi*``. Markdown would run the argument lines together, italicise the text
between two stars and swallow the lists; Google-style parsing would turn an argument line
followed by an indented continuation into an admonition. This extension rewrites each docstring
(outside its ``Args:``/``Returns:``/... sections, which the Google parser reads) before it is
parsed:

- a line ``name: ...`` (or ``a, b: ...``) whose names are all parameters of the function (or
  fields of the class) becomes a list item with the names as code, its indented continuation
  lines joined to it (in an ``Args:`` section, ``a, b: ...`` becomes one line per name);
- a list that follows a text line gets the blank line Markdown needs;
- a line ending in ``:`` followed by an indented block keeps the block verbatim (code block);
- other indented continuation lines are joined to their paragraph;
- a summary line wrapped onto the next line is joined, so summary tables show it whole;
- a ``*`` or ``_`` that is math, not emphasis, is escaped; ````code```` spans are left alone.

Used by mkdocs.yml (mkdocstrings ``extensions``). Nothing in the package depends on it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns|Return|Yields|Raises|Exceptions|Warns|"
    r"Attributes|Examples?|Notes?|References|See Also|Other Parameters):\s*$"
)
_LIST = re.compile(r"^(?:[-*+]|\d+[.)])\s+\S")
_FIELD = re.compile(r"^(?P<names>[A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_][\w]*)*)\s*:\s+(?P<rest>\S.*)$")
_CODE = re.compile(r"(``.+?``|`[^`]+`)")
_EMPHASIS = re.compile(r"(?<![\w*\\])(\*{1,2})(?=[A-Za-z])([^*\n]*?[A-Za-z.!?)])\1(?![\w*])")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape_text(text: str) -> str:
    """Escape math stars and underscores; keep *emphasis*, **strong** and the rest."""
    kept: list[str] = []

    def keep(m: re.Match[str]) -> str:
        kept.append(m.group(0))
        return f"\x00{len(kept) - 1}\x00"

    text = _EMPHASIS.sub(keep, text)
    text = text.replace("*", r"\*")
    text = re.sub(r"(?<![\w\\])_", r"\_", text)  # word-initial "_" could open emphasis
    text = text.replace("__", r"\_\_")
    text = text.replace("][", r"]\[")  # "pi[S][A]" is a shape, not a reference link
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)


def _escape(line: str) -> str:
    parts = _CODE.split(line)
    return "".join(p if i % 2 else _escape_text(p) for i, p in enumerate(parts))


def _all_names(group: str, names: set[str]) -> bool:
    return all(n.strip() in names for n in group.split(","))


def _field_items(line: str, names: set[str]) -> list[str]:
    """ "a: x. b: y." -> one list item per argument (a sentence may name the next argument)."""
    pieces = re.split(r"(?<=\.)\s+(?=[A-Za-z_][\w, ]*:\s)", line)
    items: list[str] = []
    for piece in pieces:
        field = _FIELD.match(piece)
        if field and _all_names(field.group("names"), names):
            label = ", ".join(f"`{n.strip()}`" for n in field.group("names").split(","))
            items.append(f"- {label}: {_escape(field.group('rest'))}")
        elif items:
            items[-1] += " " + _escape(piece)
        else:
            items.append("- " + _escape(piece))
    return items


def plain_to_markdown(text: str, names: set[str]) -> str:
    """Rewrite one docstring (see the module docstring); ``names`` are the object's parameters."""
    lines = text.splitlines()
    # a summary line wrapped onto the next line(s): join it, so that summary tables show it whole
    while (
        len(lines) > 1
        and lines[0].strip()
        and lines[1].strip()
        and not lines[0].rstrip().endswith((".", ":", "!", "?"))
    ):
        if lines[1].startswith(" ") or _LIST.match(lines[1].strip()) or _SECTION.match(lines[1].strip()):
            break
        lines[:2] = [lines[0].rstrip() + " " + lines[1].strip()]
    out: list[str] = []
    in_section = False  # inside a Google section: left for the Google parser
    block_indent: int | None = None  # inside a verbatim block after a line ending in ":"
    prev = ""  # the previous line of text outside blocks (as it was written)
    for raw in lines:
        line = raw.rstrip()
        stripped = line.strip()
        indent = _indent(line)
        if not stripped:
            out.append("")
            prev = ""
            continue
        if block_indent is not None:
            if indent >= block_indent:
                out.append("    " + line[block_indent:])
                continue
            block_indent = None
        if in_section:
            if indent > 0:  # "name: text" at the section's indent: escape the text only
                field = _FIELD.match(stripped)
                if field and _all_names(field.group("names"), names):  # "a, b: text" -> one line each
                    out.extend(
                        f"{line[:indent]}{n.strip()}: {_escape(field.group('rest'))}"
                        for n in field.group("names").split(",")
                    )
                else:  # "**kwargs: text", or a continuation line
                    head, sep, rest = line.partition(": ")
                    one_name = sep and re.fullmatch(r"\s*\**\w+(\s*\(.*\))?", head)
                    out.append(head + sep + _escape(rest) if one_name else _escape(line))
                continue
            in_section = False
        if _SECTION.match(stripped) and indent == 0:
            in_section = True
            if out and out[-1]:
                out.append("")
            out.append(line)
            prev = line
            continue
        if indent > 0 and prev:
            if prev.rstrip().endswith(":") and not _FIELD.match(prev.strip()):
                # a verbatim block (a layout, an example): Markdown needs a blank line and 4 spaces
                block_indent = indent
                out.append("")
                out.append("    " + line[indent:])
                continue
            out[-1] = out[-1] + " " + _escape(stripped)  # a continuation line: join it
            continue
        field = _FIELD.match(stripped)
        if field and names and _all_names(field.group("names"), names):
            if out and out[-1] and not out[-1].startswith("- "):
                out.append("")
            out.extend(_field_items(stripped, names))
        elif _LIST.match(stripped):
            if out and out[-1] and not _LIST.match(out[-1].strip()):
                out.append("")
            out.append(stripped[:2] + _escape(stripped[2:]))
        else:
            if out and out[-1].startswith("- ") and prev and (_FIELD.match(prev.strip()) or _LIST.match(prev.strip())):
                out.append("")  # prose after a list of arguments starts a new paragraph
            out.append(_escape(line))
        prev = line
    return "\n".join(out)


def _names_of(obj: griffe.Object) -> set[str]:
    if isinstance(obj, griffe.Function):
        return {p.name for p in obj.parameters if p.name not in ("self", "cls")}
    if isinstance(obj, griffe.Class):
        names = {name for name, member in obj.members.items() if not member.is_alias and member.is_attribute}
        init = obj.members.get("__init__")
        if isinstance(init, griffe.Function):
            names |= {p.name for p in init.parameters if p.name != "self"}
        return names
    return set()


class PlainTextDocstrings(griffe.Extension):
    """Rewrite every docstring of the loaded package with ``plain_to_markdown``."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = plain_to_markdown(obj.docstring.value, _names_of(obj))
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)  # type: ignore[arg-type]
