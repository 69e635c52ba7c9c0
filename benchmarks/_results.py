"""What every benchmark script shares: paired-timing statistics, a text table, and docs/RESULTS.md."""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import statistics
import sys
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "RESULTS.md"
HEADER = "# Results\n\nMeasured results. Each section: command, machine, date.\n"
#: Where the numbers come from, unless a script is told otherwise (--machine).
DEFAULT_MACHINE = "2-core CPU (this dev machine, shared with other jobs)"

if str(REPO) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(REPO))


def command_line() -> str:
    """The command that is running, as one could retype it."""
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def median_spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (readable as plain text too)."""
    fmt = lambda c: (f"{c:.0f}" if abs(c) >= 1000 else f"{c:.4g}") if isinstance(c, float) else str(c)  # noqa: E731
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells[1:]])


def append_section(title: str, body: str, machine: str = DEFAULT_MACHINE, date: str | None = None,
                   path: Path = RESULTS) -> None:
    """Append a dated section (title, command, machine, body) to docs/RESULTS.md, creating it if missing."""
    date = date or os.environ.get("RESULTS_DATE") or _dt.date.today().isoformat()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    section = (f"\n## {title} ({date})\n\n- command: `{command_line()}`\n- machine: {machine}\n"
               f"- date: {date}\n\n{body.rstrip()}\n")
    path.write_text(text.rstrip("\n") + "\n" + section, encoding="utf-8")
    print(f"appended to {path}")
