"""Long commands say how far they are: plain lines off a terminal, a bar on one (even one that
reports zero columns)."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import termios

import pytest

from ferlab.cli import main
from ferlab.progress import INTERVAL_ENV, LineProgress, format_duration, progress_bar

LINE = re.compile(r"^epoch 1/1: \d+/\d+ step \(\d+%\), [\d.]+ (step/s|s/step), \w+ left")


def test_off_a_terminal_lines_carry_count_rate_and_time_left():
    out = io.StringIO()
    bar = progress_bar(range(4), desc="work", unit="face", file=out)
    assert isinstance(bar, LineProgress)
    bar.interval = 0  # every update writes a line
    for _ in bar:
        bar.set_postfix(loss="0.5", refresh=False)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("work: 1/4 face (25%), ") and "left, loss=0.5" in lines[0]
    assert lines[-1].startswith("work: 4 face in ")  # the closing line: total time and rate
    assert len(lines) == 5


def test_quick_work_prints_nothing_and_disable_prints_nothing():
    out = io.StringIO()
    for _ in progress_bar(range(100), desc="quick", file=out):  # well under the interval
        pass
    with progress_bar(total=3, desc="off", disable=True, file=out) as bar:
        bar.interval = 0
        bar.update(3)
    assert out.getvalue() == ""


def test_unknown_total_reports_count_and_elapsed():
    out = io.StringIO()
    bar = LineProgress(desc="video", unit="frame", file=out, interval=0)
    bar.update(5)
    assert re.match(r"video: 5 frame, [\d.,]+ frame/s, \d+s so far$", out.getvalue().strip())


def test_durations():
    assert [format_duration(s) for s in (4.2, 185, 7620)] == ["4s", "3m05s", "2h07m"]


def test_a_terminal_of_zero_columns_still_gets_a_bar():
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    try:
        with os.fdopen(os.dup(slave), "w") as tty:
            assert tty.isatty() and os.get_terminal_size(tty.fileno()).columns == 0
            for _ in progress_bar(range(3), desc="epoch 1/2", unit="step", file=tty,
                                  mininterval=0):
                pass
        drawn = os.read(master, 65536).decode()
    finally:
        os.close(master)
        os.close(slave)
    assert "epoch 1/2" in drawn and "3/3" in drawn


@pytest.mark.parametrize("tta", [[], ["--tta"]])
def test_evaluate_reports_progress_when_stderr_is_not_a_terminal(tta, eval_run, fer_csv,
                                                                 tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "0")
    assert main(["evaluate", "--model", str(eval_run), "--data", str(fer_csv), "--batch-size",
                 "32", "--out", str(tmp_path / "ev"), *tta]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("ferlab evaluate: scoring 140 faces [PublicTest]")
    assert any(re.match(r"predict: \d+/140 face \(\d+%\), .* left", ln) for ln in err), err
    assert err[-1].startswith("predict: 140 face in ")


def test_train_reports_steps_within_an_epoch(fer_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "0")
    assert main(["train", "--data", str(fer_csv), "--model", "cnn-leaky", "--epochs", "1",
                 "--batch-size", "100", "--limit", "300", "--no-augment",
                 "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err.splitlines()
    steps = [ln for ln in err if LINE.match(ln)]
    assert len(steps) == 3 and "loss=" in steps[0] and "img_s=" in steps[0], err
