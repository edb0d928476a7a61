"""What the MyST sources say, resolved the way the built site resolves it.

Exercise numbers ("Exercise 7.4"), reference targets (``(label)=`` above a heading), section numbers
("7.2"), citations ("Boffi et al., 2025") and reference-list entries, read from ``book/``,
``_config.yml`` and ``book/references.bib``.
"""

from __future__ import annotations

import codecs
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import latexcodec  # noqa: F401  (registers the "ulatex" codec)
import yaml
from pybtex.database import parse_file

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))

#: ```{name} argument  /  ````{name} argument   (the fence, the directive's name, its argument)
DIRECTIVE_OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}[ \t]*(?P<argument>.*)$")
#: a Markdown code fence opening or closing (three or more backticks or tildes)
FENCE = re.compile(r"^(`{3,}|~{3,})")
TARGET = re.compile(r"^\((?P<label>[\w-]+)\)=\s*$")
HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<title>.+?)\s*$")


@dataclass(frozen=True)
class Target:
    """Something a ``{ref}`` can point at: its displayed name and its address on the site."""

    name: str
    url: str


def source(cell: dict) -> str:
    """A notebook cell's text (nbformat stores it as a string or a list of lines)."""
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def read_notebook(path: Path) -> dict:
    """The notebook at ``path`` as plain JSON (no validation: the generator keeps every field it does not edit)."""
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def config() -> dict:
    """``_config.yml``."""
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def site_url() -> str:
    """The built site's address (``html.baseurl`` in ``_config.yml``), ending in ``/``."""
    return config()["html"]["baseurl"].rstrip("/") + "/"


def repository() -> tuple[str, str]:
    """The repository's GitHub address and branch (``repository`` in ``_config.yml``)."""
    repo = config()["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def chapter_number(path: Path) -> int:
    """7 for ``book/07_self_distillation.ipynb``."""
    return int(path.name[:2])


def page_url(path: Path, anchor: str = "") -> str:
    """The address of the site's page built from ``path`` (optionally at an anchor)."""
    relative = path.relative_to(ROOT).with_suffix(".html").as_posix()
    return site_url() + relative + (f"#{anchor}" if anchor else "")


def prose_lines(text: str):
    """Yield ``(index, line, in_code)`` for each line of Markdown, ``in_code`` inside a fenced code block.

    Directive fences (```` ```{name} ````) are not code: their bodies are Markdown.
    """
    fence: str | None = None  # the open code fence
    directives: list[str] = []  # the fences of the directives open around this line
    for index, line in enumerate(text.split("\n")):
        stripped = line.strip()
        if fence is not None:
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                fence = None
            yield index, line, True
        elif opened_directive := DIRECTIVE_OPEN.match(line):
            directives.append(opened_directive.group("fence"))
            yield index, line, False
        elif directives and stripped == directives[-1]:
            directives.pop()
            yield index, line, False
        elif opened := FENCE.match(line):
            fence = opened.group(1)
            yield index, line, True
        else:
            yield index, line, False


def _markdown_texts(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        return [source(c) for c in read_notebook(path)["cells"] if c["cell_type"] == "markdown"]
    return [path.read_text(encoding="utf-8")]


@functools.cache
def exercises() -> dict[str, tuple[str, str]]:
    """Every exercise of the book: label -> (number such as ``"7.4"``, title), numbered as the site numbers them."""
    found: dict[str, tuple[str, str]] = {}
    for path in CHAPTERS:
        count = 0
        for text in _markdown_texts(path):
            lines = text.split("\n")
            for index, line in enumerate(lines):
                opened = DIRECTIVE_OPEN.match(line)
                if not opened or opened.group("name") != "exercise":
                    continue
                count += 1
                label = next(
                    (m.group(1) for m in (re.match(r"^:label:\s*(\S+)", ln) for ln in lines[index + 1 :]) if m), None
                )
                if label is None:
                    raise ValueError(f"{path.name}: exercise {count} ({opened.group('argument')!r}) has no :label:")
                found[label] = (f"{chapter_number(path)}.{count}", opened.group("argument").strip())
    return found


@functools.cache
def targets() -> dict[str, Target]:
    """Every ``{ref}`` target of the book: exercises ("Exercise 7.4") and labelled headings (their title)."""
    found: dict[str, Target] = {}
    exercise_pages = {}
    for path in CHAPTERS:
        for text in _markdown_texts(path):
            for label in re.findall(r"^:label:\s*(\S+)", text, re.M):
                exercise_pages[label] = path
    for label, (number, _) in exercises().items():
        found[label] = Target(f"Exercise {number}", page_url(exercise_pages[label], label))
    for path in [*CHAPTERS, *sorted(BOOK.glob("*.md"))]:
        for text in _markdown_texts(path):
            lines = text.split("\n")
            for index, line in enumerate(lines):
                target = TARGET.match(line)
                if not target:
                    continue
                following = next((ln for ln in lines[index + 1 :] if ln.strip()), "")
                heading = HEADING.match(following)
                if heading is None:
                    raise ValueError(f"{path.name}: the target ({target.group('label')})= is not above a heading")
                title = re.sub(r"\{\w+\}`([^`]*)`", r"\1", heading.group("title"))
                found[target.group("label")] = Target(title, page_url(path, target.group("label")))
    return found


def solutions(path: Path) -> dict[str, str]:
    """A chapter's solutions: exercise label -> the solution's text (its prose and code, folded or gated)."""
    found: dict[str, str] = {}
    gated: str | None = None
    for cell in read_notebook(path)["cells"]:
        text = source(cell)
        if gated is not None:
            found[gated] += "\n" + text
            if cell["cell_type"] == "markdown" and "{solution-end}" in text:
                gated = None
            continue
        if cell["cell_type"] != "markdown":
            continue
        for match in re.finditer(r"^(`{3,}|:{3,})\{solution\}\s*(\S+)\n(.*?)^\1\s*$", text, re.M | re.S):
            found[match.group(2)] = match.group(3)
        start = re.search(r"\{solution-start\}\s*(\S+)", text)
        if start:
            gated = start.group(1)
            found[gated] = ""
    return found


def chapter_front(path: Path) -> dict[str, str | list[str]]:
    """The chapter's title, its "You will learn" bullets and its prerequisites, from its first cell."""
    first = source(read_notebook(path)["cells"][0])
    title = HEADING.match(first.split("\n", 1)[0]).group("title")
    learn = first.split("**You will learn**", 1)[1].split("**Prerequisites**", 1)[0]
    prerequisites = re.search(r"\*\*Prerequisites\*\*:?\s*(.+)", first)
    return {
        "title": title,
        "objectives": [line[2:].strip() for line in learn.strip().split("\n") if line.startswith("- ")],
        "prerequisites": prerequisites.group(1).strip() if prerequisites else "",
    }


# --------------------------------------------------------------------------------------------------------------
# Citations


@functools.cache
def bibliography():
    """``book/references.bib`` parsed by pybtex (the library Sphinx's bibtex extension uses)."""
    return parse_file(str(BOOK / "references.bib"))


def _plain(text: str) -> str:
    r"""BibTeX text as a reader reads it: LaTeX accents as letters (``N{\o}rsett`` → Nørsett, ``Peyr{\'e}`` →
    Peyré), without braces and ``\url{...}`` wrappers, ``--`` as an en dash.
    """
    text = re.sub(r"\\url\{([^}]*)\}", r"\1", text)
    text = codecs.decode(text, "ulatex").strip()  # latexcodec (a dependency of pybtex) decodes the accents
    return text.replace("{", "").replace("}", "").replace("--", "–")


def _surnames(key: str) -> list[str]:
    entry = bibliography().entries[key]
    return [_plain(" ".join(person.prelast_names + person.last_names)) for person in entry.persons["author"]]


def citation(key: str) -> str:
    """An author-year label: ``"Dieleman, 2026"``, ``"Albergo and Vanden-Eijnden, 2023"``, ``"Boffi et al., 2025"``.

    Raises:
        KeyError: ``key`` is not in ``book/references.bib``.
    """
    if key not in bibliography().entries:
        raise KeyError(f"citation key {key!r} is not in book/references.bib")
    names = _surnames(key)
    year = bibliography().entries[key].fields["year"]
    if len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {year}"


def reference(key: str) -> str:
    """One reference-list entry in Markdown: authors (year). *Title*. Venue. Address."""
    entry = bibliography().entries[key]
    people = []
    for person in entry.persons["author"]:
        initials = " ".join(f"{_plain(name)[0]}." for name in person.first_names + person.middle_names)
        surname = _plain(" ".join(person.prelast_names + person.last_names))
        people.append(f"{surname}, {initials}".strip(", "))
    authors = people[0] if len(people) == 1 else ", ".join(people[:-1]) + " and " + people[-1]
    fields = entry.fields
    venue = fields.get("journal") or fields.get("booktitle") or fields.get("publisher") or ""
    parts = [f"{authors} ({fields['year']}). *{_plain(fields['title'])}*."]
    if venue:
        parts.append(_plain(venue) + ".")
    note = _plain(fields.get("howpublished", ""))
    if note:
        parts.append(note + ("" if note.endswith(".") else "."))
    if "url" in fields and fields["url"] not in note:
        parts.append(fields["url"])
    return " ".join(parts)
