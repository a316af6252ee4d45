"""``ferlab --help`` and argument errors stay fast: the CLI imports no heavy library before a
command runs (the time itself is measured by ``benchmarks/bench_startup.py``, not here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ferlab.cli import COMMANDS, _model_names, main
from ferlab.models import list_models

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("torch", "numpy", "matplotlib", "cv2", "onnxruntime", "sklearn", "captum", "lime",
         "skimage", "scipy", "PIL")

# Runs in a fresh interpreter: every subcommand's --help and an unknown option, then reports
# which heavy top-level packages got imported on the way.
PROBE = f"""
import contextlib, io, sys
from ferlab.cli import COMMANDS, main
for args in [["--help"]] + [[c, h] for c in COMMANDS for h in ("--help", "--bogus")]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(args)
        except SystemExit:
            pass
print(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})))
"""


def test_help_and_argument_errors_import_no_heavy_library():
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC), "PATH": ""}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"imported at start-up: {r.stdout.strip()}"


def test_model_choices_match_the_registry():
    # In-process ferlab.models is loaded, so read the @register_model lines explicitly too.
    saved = sys.modules.pop("ferlab.models")
    try:
        from_source = _model_names()
    finally:
        sys.modules["ferlab.models"] = saved
    assert from_source == list_models() == _model_names()


@pytest.mark.parametrize("command", COMMANDS)
def test_argument_errors_point_to_the_subcommands_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--bogus"])  # unknown, or a required argument missing first
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ferlab {command}: error: ")
    assert err.endswith(f"(run 'ferlab {command} --help')") and "\n" not in err


def test_unrecognized_arguments_are_the_subcommands_error(capsys):
    with pytest.raises(SystemExit):
        main(["models", "--bogus", "x"])
    assert capsys.readouterr().err == ("ferlab models: error: unrecognized arguments: --bogus x "
                                       "(run 'ferlab models --help')\n")
