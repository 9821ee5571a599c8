"""Read the tables of docs/performance.md, so that its figures are drawn from
the very numbers the page prints (the plot directive runs the scripts of this
folder as the site is built)."""
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "performance.md"


def table(heading, index=0):
    """The ``index``-th Markdown table after the heading that starts with
    ``heading`` (its text after the #'s): a list of rows, each a list of the
    cells' text with the bold markers removed; the header row first."""
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines)
              if re.match(r"#+ ", line) and line.lstrip("#").strip().startswith(heading)]
    if len(starts) != 1:
        raise LookupError(f"{len(starts)} headings start with {heading!r} in {PAGE.name}")
    tables, rows = [], None
    for line in lines[starts[0] + 1:]:
        if line.startswith("|"):
            cells = [c.strip().replace("**", "") for c in line.strip().strip("|").split("|")]
            if rows is None:
                rows = []
                tables.append(rows)
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
        else:
            rows = None
            if len(tables) > index:
                break
    if len(tables) <= index:
        raise LookupError(f"no table {index} after {heading!r}")
    return tables[index]


def numbers(cell):
    """The numbers in a cell: '7.80 / 9.71' -> [7.8, 9.71]; '83%' -> [83.0]."""
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", cell)]
