"""Typeset LaTeX tables with a real engine and read back their sizes (for the width tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ENGINE = shutil.which("pdflatex")
# Two-column article: \columnwidth is that of a conference paper's column.
_DOCUMENT = r"""\documentclass[twocolumn]{article}
\usepackage{booktabs,graphicx,tabularx}
\makeatletter
\renewenvironment{table}[1][]{}{}
\renewenvironment{table*}[1][]{}{}
% The table's box: what \resizebox makes of it (box 1) and its natural size (box 2).
\let\fit@resizebox\resizebox
\def\resizebox#1#2#3{\global\setbox2=\hbox{#3}\global\setbox1=\hbox{\fit@resizebox{#1}{#2}{#3}}%
  \copy1}
\newcommand\measure[2]{{%
  \def\@captype{table}\setbox0=\vbox{\hsize=#2 \input{#1}}%
  \dimen0=\ht0 \advance\dimen0 by \dp0
  \typeout{SIZE #1 \the\wd1 \space\the\dimen0 \space\the\wd2 \space}}}
\makeatother
\begin{document}
\typeout{PAGE \the\columnwidth\space\the\textwidth\space\the\textheight}
BODY
\end{document}
"""


def typeset_sizes(
    tex_files: list[Path], workdir: Path, width: str = "columnwidth"
) -> tuple[dict[str, float], dict[str, tuple[float, float, float]]]:
    """``(page, sizes)``: the page's ``columnwidth``, ``textwidth`` and ``textheight``, and per
    file stem ``(width, height, natural width)`` in pt: the table as typeset (scaled to fit), its
    height with the caption set ``width`` wide, and its width before scaling."""
    workdir.mkdir(parents=True, exist_ok=True)
    names = []
    for path in tex_files:
        shutil.copy(path, workdir / path.name)
        names.append(path.name)
    body = "\n".join(f"\\measure{{{name}}}{{\\{width}}}" for name in names)
    (workdir / "measure.tex").write_text(_DOCUMENT.replace("BODY", body))
    done = subprocess.run(
        [ENGINE, "-interaction=nonstopmode", "-halt-on-error", "measure.tex"],
        cwd=workdir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    log = (workdir / "measure.log").read_text(errors="replace")
    assert done.returncode == 0, log[-3000:]
    page = re.search(r"PAGE ([\d.]+)pt ([\d.]+)pt ([\d.]+)pt", log)
    sizes = {
        m[1].removesuffix(".tex"): (float(m[2]), float(m[3]), float(m[4]))
        for m in re.finditer(r"SIZE (\S+) ([\d.]+)pt ([\d.]+)pt ([\d.]+)pt", log)
    }
    assert len(sizes) == len(names), log[-3000:]
    keys = ("columnwidth", "textwidth", "textheight")
    return dict(zip(keys, map(float, page.groups()), strict=True)), sizes
