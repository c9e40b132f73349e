"""Small Markdown + HTML reports with tables and figures (mplhep style).

A :class:`Report` collects headings, paragraphs, tables and matplotlib figures, then writes
``report.md``, ``report.html`` (self-contained but for the PNG files beside it) and
``results.json`` into a directory.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Report", "hep_style"]


def hep_style() -> None:
    """Switch matplotlib to a headless backend and the mplhep ROOT-like style."""
    import matplotlib

    matplotlib.use("Agg")
    import mplhep

    mplhep.style.use("ROOT")


@dataclass
class Report:
    """A report under construction."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def text(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(header), [list(r) for r in rows])))

    def figure(self, fig: Any, name: str, caption: str, directory: str | os.PathLike[str]) -> Path:
        """Save ``fig`` as ``directory/name.png`` and add it with ``caption``."""
        import matplotlib.pyplot as plt

        path = Path(directory) / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.blocks.append(("figure", (path.name, caption)))
        return path

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "h2":
                out += [f"## {value}", ""]
            elif kind == "p":
                out += [value, ""]
            elif kind == "table":
                header, rows = value
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "|".join("---" for _ in header) + "|")
                out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
                out.append("")
            elif kind == "figure":
                name, caption = value
                out += [f"![{caption}]({name})", "", f"*{caption}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        esc = html.escape
        out = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(self.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;}"
            "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em}"
            "th{background:#eee}img{max-width:100%}figure{margin:1em 0}</style>",
            "</head><body>",
            f"<h1>{esc(self.title)}</h1>",
        ]
        for kind, value in self.blocks:
            if kind == "h2":
                out.append(f"<h2>{esc(value)}</h2>")
            elif kind == "p":
                out.append(f"<p>{esc(value)}</p>")
            elif kind == "table":
                header, rows = value
                out.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
                out += [
                    "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>"
                    for row in rows
                ]
                out.append("</table>")
            elif kind == "figure":
                name, caption = value
                out.append(
                    f'<figure><img src="{esc(name)}" alt="{esc(caption)}">'
                    f"<figcaption>{esc(caption)}</figcaption></figure>"
                )
        out.append("</body></html>")
        return "\n".join(out)

    def write(self, directory: str | os.PathLike[str]) -> Path:
        """Write report.md, report.html and results.json; returns the Markdown path."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "report.md").write_text(self.markdown())
        (d / "report.html").write_text(self.html())
        (d / "results.json").write_text(json.dumps(self.results, indent=2, default=float) + "\n")
        return d / "report.md"
