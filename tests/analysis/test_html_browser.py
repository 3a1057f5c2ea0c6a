"""The report page in a real headless browser (Debian's ``chromium``)."""

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


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    # Without the background-networking flags chromium waits on refused connections.
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]  # fmt: skip
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180, check=True
    )


def test_report_page_renders_in_a_browser(mixed_runs, tmp_path):
    out = tmp_path / "report"
    build_report(mixed_runs, out, reps=200)
    url = (out / "index.html").resolve().as_uri()

    dom = _chromium(tmp_path, "--dump-dom", url).stdout
    assert '<table id="summary">' in dom and '<table id="partial">' in dom
    for text in ("avg success", "forgetting", "forward transfer", "final r_e(K)", "sphere", "ppo",
                 "Partial runs (not in the summary)", "failed"):  # fmt: skip
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
