import atexit
import os
import pathlib
import secrets
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

# Every Ray cluster the tests start authenticates with a token of this run, kept in a temporary
# file: without a token path, ray.init() writes ~/.ray/auth_token into the user's home.
_RAY_DIR = tempfile.mkdtemp(prefix="gt-test-ray-")
atexit.register(shutil.rmtree, _RAY_DIR, True)
with open(os.path.join(_RAY_DIR, "token"), "w") as _token:
    _token.write(secrets.token_hex(32))
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=os.path.join(_RAY_DIR, "token"))

# Where GT_REQUIRE_ALL_TESTS is set (CI), a test that would be skipped fails instead: a missing
# library or server must not let the suite pass quietly.
REQUIRE_ALL = os.environ.get("GT_REQUIRE_ALL_TESTS", "") not in ("", "0")


def _fail_skip(report):
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"GT_REQUIRE_ALL_TESTS is set, and this was skipped: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result())


def gtrader_bin():
    return os.environ.get("GT_BIN", str(ROOT / "build" / "release" / "gtrader"))


def run_gtrader(*args, check=True):
    """Runs the CLI; returns the CompletedProcess (text mode)."""
    proc = subprocess.run([gtrader_bin(), *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"gtrader {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture
def gtrader():
    return run_gtrader
