"""Run every examples/*.py under stock asyncio and under `python -m asyncloop`.

Each example prints deterministic output, so asyncloop must reproduce the
stock asyncio stdout exactly, exit 0 and write nothing to stderr.
Examples that need a newer Python declare it with a line such as
`# requires-python: >=3.11` and are skipped on older interpreters.
"""
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT = 60  # hang guard only; every example takes well under a second
REQUIRES = re.compile(r"^# requires-python: >=(\d+)\.(\d+)\s*$", re.M)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


@functools.cache
def run(*args):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(),
        capture_output=True, text=True, timeout=TIMEOUT,
    )


def run_stock(script, *argv):
    return run(script, *argv)


def run_asyncloop(script, *argv):
    return run("-m", "asyncloop", script, *argv)


def _param(path):
    marks = []
    m = REQUIRES.search(path.read_text())
    if m and sys.version_info < (int(m[1]), int(m[2])):
        marks.append(pytest.mark.skip(reason=f"{path.name} needs Python >= {m[1]}.{m[2]}"))
    return pytest.param(f"examples/{path.name}", marks=marks, id=path.stem)


PARAMS = [_param(path) for path in EXAMPLES]


def _check_clean(proc, label):
    assert "Traceback" not in proc.stderr, f"{label} traceback:\n{proc.stderr}"
    assert proc.returncode == 0, f"{label} exited {proc.returncode}:\n{proc.stderr}"


def test_examples_found():
    assert len(EXAMPLES) >= 12, [p.name for p in EXAMPLES]


@pytest.mark.parametrize("script", PARAMS)
def test_example_stock_asyncio(script):
    stock = run_stock(script)
    _check_clean(stock, "stock asyncio")
    assert stock.stdout.strip(), "example printed nothing"
    assert stock.stderr == "", f"example writes to stderr under stock asyncio:\n{stock.stderr}"


@pytest.mark.parametrize("script", PARAMS)
def test_example_asyncloop_matches_asyncio(script):
    stock = run_stock(script)
    _check_clean(stock, "stock asyncio")
    loop = run_asyncloop(script)
    _check_clean(loop, "asyncloop")
    assert loop.stdout == stock.stdout
    assert loop.stderr == stock.stderr


def test_main_passes_argv_and_runs_as_main():
    script = "tests/argv_echo.py"
    args = ("a", "b c", "--flag")
    stock = run_stock(script, *args)
    loop = run_asyncloop(script, *args)
    _check_clean(stock, "stock asyncio")
    _check_clean(loop, "asyncloop")
    got, want = json.loads(loop.stdout), json.loads(stock.stdout)
    assert got["argv"] == [script, *args]
    assert got["name"] == "__main__"
    assert got["loop_module"].split(".")[0] == "asyncloop"
    assert want["loop_module"].split(".")[0] == "asyncio"
    for key in ("argv", "name", "path0", "file"):
        assert got[key] == want[key], key
