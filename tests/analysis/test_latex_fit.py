"""Paper-ready LaTeX tables typeset by a real engine: they fit the column (or text) width of a
two-column article, config_common fits the page height, and cells use display names."""

import pytest
from latex_fit import ENGINE, typeset_sizes
from synthetic_runs import CRL_CURVES, CRL_MATRIX, RL_CURVES, RL_MATRIX, write_run

from sphere_rl.analysis.report import build_report
from sphere_rl.analysis.tables import paper_latex
from sphere_rl.methods import display_name

needs_latex = pytest.mark.skipif(
    ENGINE is None, reason="no pdflatex installed (texlive-latex-base)"
)


@pytest.fixture
def four_methods(tmp_path):
    root = tmp_path / "runs"
    for method in ("ppo", "ppo10x", "topk_moe", "sphere"):
        for seed in (0, 1):
            for protocol, matrix, curves in (("crl", CRL_MATRIX, CRL_CURVES),
                                             ("rl", RL_MATRIX, RL_CURVES)):  # fmt: skip
                write_run(root, method=method, protocol=protocol, seed=seed, matrix=matrix,
                          curves=curves, ranks=list(range(12)))  # fmt: skip
    write_run(root, method="sphere", seed=9, matrix=CRL_MATRIX, curves=CRL_CURVES,
              state="failed", tasks_done=1)  # fmt: skip
    return root


@needs_latex
@pytest.mark.parametrize("width", ["column", "text"])
def test_tables_fit_the_width_and_config_the_height(four_methods, tmp_path, width):
    out = tmp_path / "report"
    build_report(four_methods, out, reps=200, formats=["png"], latex_width=width)
    page, sizes = typeset_sizes(sorted((out / "tables").glob("*.tex")), tmp_path / "tex",
                                f"{width}width")  # fmt: skip
    assert set(sizes) == {"summary", "aggregates", "differences", "per_task", "runs", "partial",
                          "config_common", "config_methods"}  # fmt: skip
    for name, (typeset, _, _) in sizes.items():
        assert typeset <= page[f"{width}width"] + 0.1, (name, typeset, page)
    for name in ("summary", "config_common", "config_methods"):
        assert sizes[name][1] <= page["textheight"], (name, sizes[name], page)


def test_display_names_and_caption_with_n_and_interval_method(four_methods, tmp_path):
    out = tmp_path / "report"
    report = build_report(four_methods, out, reps=200, formats=["png"])
    summary = (out / "tables" / "summary.tex").read_text()
    assert "topk\\_moe" not in summary and "ppo10x" not in summary
    assert "Top-K MoE &" in summary and "PPO (10$\\times$) &" in summary and "SPHERE &" in summary
    assert "n = 2 per cell" in summary and "95\\% t-interval below it" in summary
    methods = (out / "tables" / "config_methods.tex").read_text()
    assert "topk\\_moe" not in methods.split("\\midrule")[1]  # architecture column
    text = paper_latex(report.tables[0], "text")
    assert text.startswith("%") and "\\begin{table*}[t]" in text and "\\textwidth" in text
    with pytest.raises(ValueError, match="column, text"):
        paper_latex(report.tables[0], "page")


def test_display_name():
    assert display_name("topk_moe") == "Top-K MoE"
    assert display_name("sphere (rho=0.01)") == "SPHERE (rho=0.01)"
    assert display_name("sphere+cbp") == "SPHERE + CBP"
    assert display_name("my_method") == "my_method"
