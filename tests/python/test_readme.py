"""Every Python example of the README runs as written (in a scratch folder that sees data/), so the
first thing a user copies works. The model example trains for fewer epochs here: its text is run
with `epochs=100` replaced by `epochs=2`, the only change."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_readme_example_runs_verbatim(index, tmp_path):
    code = BLOCKS[index].replace("epochs=100", "epochs=2")
    (tmp_path / "data").symlink_to(ROOT / "data")
    (tmp_path / "strategies").symlink_to(ROOT / "strategies")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0, f"README example {index + 1} failed:\n{code}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert not (ROOT / "results.csv").exists() and not (ROOT / "model.pt").exists()
