"""A report as data: its tables, figures and where each is written.

:mod:`sphere_rl.analysis.report` builds a :class:`Report` and writes its files;
:mod:`sphere_rl.analysis.html` renders it as one page. Both import it from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sphere_rl.analysis.provenance import ProvenanceSummary
from sphere_rl.analysis.summary import Summary
from sphere_rl.analysis.tables import Table

TABLE_FORMATS = ("csv", "md", "tex")


@dataclass(frozen=True)
class Figure:
    path: Path  # the PNG (embedded in the page)
    title: str
    caption: str
    files: tuple[Path, ...] = ()  # every format written, PNG first


@dataclass
class Report:
    runs_dir: Path
    out: Path
    summary: Summary
    tables: list[Table]  # summary, per_task, runs, partial (in page order)
    figures: list[Figure] = field(default_factory=list)
    created: str = ""
    unreadable: list[str] = field(default_factory=list)  # runs left out: "path: problem"
    provenance: ProvenanceSummary = field(default_factory=ProvenanceSummary)
    latex_width: str = "column"  # the .tex tables fit \columnwidth ("column") or \textwidth

    def table_files(self, table: Table) -> list[Path]:
        """Where ``table`` is written, one file per format."""
        return [self.out / "tables" / f"{table.name}.{fmt}" for fmt in TABLE_FORMATS]

    @property
    def n_runs(self) -> int:
        return sum(len(e.runs) for e in self.summary.experiments) + len(self.summary.partial)
