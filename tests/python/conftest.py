import atexit
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
DAILY_FILES = [DATA / "orcl-1995-2014.csv", DATA / "yhoo-1996-2014.csv"]
ALL_FILES = DAILY_FILES + [DATA / "es-2006-5min.csv"]

# Every gtrader the tests start caches results here, never in the user's ~/.cache.
os.environ["GT_CACHE_DIR"] = tempfile.mkdtemp(prefix="gt-test-cache-")
atexit.register(shutil.rmtree, os.environ["GT_CACHE_DIR"], True)


def gtrader_bin():
    return os.environ.get("GTRADER_BIN", str(ROOT / "build" / "release" / "gtrader"))


def run_gtrader(*args, check=True):
    """Runs the CLI; returns the CompletedProcess (text mode)."""
    proc = subprocess.run([gtrader_bin(), *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"gtrader {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture
def gtrader():
    return run_gtrader
