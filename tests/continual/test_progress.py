"""Progress output: a live bar on a terminal, periodic plain lines in logs."""

import io

from sphere_rl.continual.progress import ProgressDisplay, format_duration, progress_line


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_every_interval_in_a_log():
    stream, clock = io.StringIO(), FakeClock()
    with ProgressDisplay(1000, run_name="cw10-crl-sphere-s0-with-a-long-name", stream=stream,
                         interval=30, clock=clock) as progress:  # fmt: skip
        progress.message("[bold]task 1/2[/bold]: reach-v3")
        for step in range(100, 901, 100):  # one update every 10 s of fake time
            progress.update(step, task="1/2 reach-v3", sps=12345.6, success="0.50")
            if step == 300:
                progress.update(step, rank="17.3")
            clock.now += 10
    lines = stream.getvalue().splitlines()
    assert lines[0] == "task 1/2: reach-v3"  # markup rendered as plain text, no escape codes
    progress_lines = lines[1:]
    # At 0 s, 30 s, 60 s (steps 100, 400, 700), and one last line on exit (step 900).
    assert [line.split(" | ")[1] for line in progress_lines] == [
        "step 100/1,000 (10.0%)", "step 400/1,000 (40.0%)", "step 700/1,000 (70.0%)",
        "step 900/1,000 (90.0%)",
    ]  # fmt: skip
    assert progress_lines[1] == (
        "[cw10-crl-sphere-s0-with-a-long-name] task 1/2 reach-v3 | step 400/1,000 (40.0%)"
        " | 12,346 steps/s | success 0.50 | r_e(K) 17.3 | eta 0s"
    )
    assert "\x1b" not in stream.getvalue()
    assert all(len(line.splitlines()) == 1 for line in lines)  # never wrapped at 80 columns


def test_disabled_and_terminal_modes():
    stream = io.StringIO()
    with ProgressDisplay(100, enabled=False, stream=stream, interval=0) as progress:
        progress.update(50, task="x")
        progress.message("hello")
    assert stream.getvalue() == ""
    tty = Tty()
    with ProgressDisplay(100, stream=tty, interval=0) as progress:
        assert progress.live
        progress.update(50, task="1/1 reach-v3", sps=10.0)
    assert "step 50/100" not in tty.getvalue()  # the bar, not plain lines


def test_progress_line_and_durations():
    assert format_duration(4000) == "1h06m" and format_duration(75) == "1m15s"
    assert format_duration(9.9) == "9s" and format_duration(-3) == "0s"
    line = progress_line("", 0, 200, {"task": "", "sps": 0.0})
    assert line == "starting | step 0/200 (0.0%) | 0 steps/s | success - | r_e(K) -"
    assert progress_line("r", 100, 200, {"task": "1/1 t", "sps": 50.0}).endswith("eta 2s")
