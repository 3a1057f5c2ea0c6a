"""The report page in a real headless browser (Debian's ``chromium``)."""

import json
import re
import shutil
import subprocess

import matplotlib.image
import pytest

from sphere_rl.analysis.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: install Debian's package (`apt-get install chromium`);"
    " .ci/run does so when it runs as root",
)

# Injected into a copy of the page: after layout, list every table container whose content is
# wider than the container (a clipped or scrolled table) into an attribute --dump-dom prints.
_OVERFLOW_PROBE = """<script>
const boxes = [...document.querySelectorAll("div.scroll")];
const wide = boxes.filter(b => b.scrollWidth > b.clientWidth + 1 ||
  b.querySelector("table").getBoundingClientRect().right > b.getBoundingClientRect().right + 1);
document.body.setAttribute("data-probe", JSON.stringify({
  containers: boxes.length,
  overflowing: wide.map(b => b.querySelector("table").id),
  width: window.innerWidth}));
</script>"""


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    # Without the background-networking flags chromium waits on refused connections.
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]  # fmt: skip
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180, check=True
    )


def _long_partial_run(runs_dir):
    """Make the failed run as hard to lay out as a real one: a long directory name and a long
    error message without spaces (a path)."""
    (failed,) = [p for p in runs_dir.iterdir() if p.name == "crl-sphere-s2"]
    status = json.loads((failed / "status.json").read_text())
    status["error"] = "FileNotFoundError:" + "/very/long/path" * 30
    (failed / "status.json").write_text(json.dumps(status))
    failed.rename(runs_dir / ("crl-sphere-" + "long-run-directory-name-" * 6 + "s2"))


def test_report_page_renders_in_a_browser(mixed_runs, tmp_path):
    _long_partial_run(mixed_runs)
    out = tmp_path / "report"
    build_report(mixed_runs, out, reps=200, formats=["png"])
    url = (out / "index.html").resolve().as_uri()

    dom = _chromium(tmp_path, "--dump-dom", url).stdout
    assert '<table id="summary">' in dom and '<table id="partial">' in dom
    for text in ("avg success", "forgetting", "forward transfer", "final r_e(K)", "sphere", "ppo",
                 "Partial runs (not in the summary)", "failed", "Hyperparameters per method",
                 "Configuration shared by all runs"):  # fmt: skip
        assert text in dom, text
    assert dom.count("data:image/png;base64,") == 7

    shot = tmp_path / "page.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", url)
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (4000, 1280)
    # Not a blank page: text, table borders and figures make the pixels vary, and a fair share
    # of the page is not background.
    assert pixels.std() > 0.1
    assert (pixels.mean(axis=2) < 0.9).mean() > 0.03


def test_no_table_overflows_its_container_at_1400_px(mixed_runs, tmp_path):
    _long_partial_run(mixed_runs)
    out = tmp_path / "report"
    build_report(mixed_runs, out, reps=200, formats=["png"])
    page = (out / "index.html").read_text()
    probe = out / "probe.html"
    probe.write_text(page.replace("</body>", _OVERFLOW_PROBE + "</body>"))
    dom = _chromium(tmp_path, "--window-size=1400,1000", "--dump-dom", probe.as_uri()).stdout
    (raw,) = re.findall(r'data-probe="([^"]*)"', dom)
    result = json.loads(raw.replace("&quot;", '"'))
    assert result["width"] == 1400
    assert result["containers"] == 8  # summary, aggregates, differences, per-task, runs, ...
    assert result["overflowing"] == []
