"""The Python package over the C++ core: the same numbers as the CLI, NumPy views, DataFrames."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import gpt_trader as gt
from conftest import DAILY_FILES, run_gtrader


def test_bars_are_numpy_views_of_the_engine_memory():
    bars = gt.load(DAILY_FILES[0])
    close = bars.close
    assert isinstance(close, np.ndarray) and close.dtype == np.float64 and len(close) == len(bars) == 5036
    assert not close.flags.owndata  # a view, no copy
    assert close[0] == 2.117284


def test_importing_the_package_leaves_ray_and_pandas_unloaded():
    """Ray loads on the first distributed call and pandas on the first call that takes or returns a
    DataFrame: importing them takes seconds (pandas alone 1.2 s of 1.4 s here) that a user of
    Bars, NumPy arrays or the CLI's files should not pay on `import gpt_trader`."""
    code = ("import sys, gpt_trader; loaded = [m for m in ('ray', 'pandas') if m in sys.modules]; "
            "gpt_trader.RayDistributedEngine, gpt_trader.DistributedConfig; "
            "gpt_trader.backtest(gpt_trader.load(sys.argv[1])); print(loaded, 'pandas' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(DAILY_FILES[0])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[] True"  # and a call that returns DataFrames loads it


def test_dataframes_go_through_the_same_validation():
    frame = pd.read_csv(DAILY_FILES[0], parse_dates=["Date"]).set_index("Date")
    (bars,) = gt.as_bars({"ORCL": frame})
    assert bars.symbol == "ORCL" and len(bars) == 5036 and not bars.intraday
    bad = frame.copy()
    bad.iloc[10, bad.columns.get_loc("High")] = 0.001
    with pytest.raises(ValueError, match="field 'High'"):
        gt.as_bars({"BAD": bad})


def test_backtest_and_optimize_equal_the_cli(tmp_path):
    r = gt.backtest(DAILY_FILES[0], "ma_cross", {"fast": 10, "slow": 30, "volume_filter": True})
    (result,) = r.values()
    cli = json.loads(run_gtrader("backtest", "--data", DAILY_FILES[0], "--strategy", "ma_cross", "--param", "fast=10",
                                 "--param", "slow=30", "--param", "volume_filter=true", "--json").stdout)
    for k in ["sharpe", "total_return", "max_drawdown", "trades"]:
        assert result["metrics"][k] == cli[k]
    assert isinstance(result["trades"], pd.DataFrame) and isinstance(result["equity"], pd.Series)

    out = tmp_path / "py.csv"
    grid = {"fast": range(5, 20), "slow": range(20, 50), "ma_type": [0, 1, 2], "volume_filter": [False, True]}
    top, summary = gt.optimize(DAILY_FILES[0], "ma_cross", grid, top=3, out=str(out))
    run_gtrader("optimize", "--data", DAILY_FILES[0], "--strategy", "ma_cross", "--grid", "fast=5:19", "--grid",
                "slow=20:49", "--grid", "ma_type=0:2", "--grid", "volume_filter=false,true", "--out", tmp_path / "cli.csv")
    assert out.read_bytes() == (tmp_path / "cli.csv").read_bytes()
    assert summary["computed"] == 2700 and len(top) == 3 and list(top.columns[:5]) == ["symbol", "fast", "slow", "ma_type", "volume_filter"]


def test_optimize_runs_on_the_device_asked_for():
    grid = {"fast": range(5, 10), "slow": range(20, 25), "ma_type": [0, 1, 2], "volume_filter": [False, True]}
    top_cpu, on_cpu = gt.optimize(DAILY_FILES[0], "ma_cross", grid)
    assert on_cpu["device"] == "cpu"
    top_auto, on_auto = gt.optimize(DAILY_FILES[0], "ma_cross", grid, device="auto")
    if gt.cuda_available():
        assert on_auto["device"].startswith("cuda") and on_auto["engine"] == "ma_cross cuda"
        np.testing.assert_allclose(top_auto["sharpe"], top_cpu["sharpe"], rtol=1e-9)
    else:  # falls back to the CPU engine, and --device cuda says why it cannot run
        assert on_auto["device"] == "cpu" and top_auto.equals(top_cpu)
        with pytest.raises(RuntimeError, match="device cuda"):
            gt.optimize(DAILY_FILES[0], "ma_cross", grid, device="cuda")
    with pytest.raises(ValueError, match="allowed: cpu, cuda, auto"):
        gt.optimize(DAILY_FILES[0], "ma_cross", grid, device="tpu")


def test_indicator_frame():
    frame = gt.indicator("MACD", DAILY_FILES[0])
    assert list(frame.columns) == ["macd", "signal", "hist"]
    assert frame["macd"].isna().sum() == 33


def test_bad_grid_is_a_value_error():
    with pytest.raises(ValueError, match="empty range"):
        gt.optimize(DAILY_FILES[0], "ma_cross", {"fast": "9:5"})


def test_optimize_with_a_cache_folder_serves_a_rerun(tmp_path):
    grid = {"fast": range(5, 20), "slow": range(20, 50), "ma_type": [0, 1, 2], "volume_filter": [False, True]}
    top1, first = gt.optimize(DAILY_FILES[0], "ma_cross", grid, cache=str(tmp_path))
    top2, second = gt.optimize(DAILY_FILES[0], "ma_cross", grid, cache=str(tmp_path))
    assert (first["computed"], first["from_cache"]) == (2700, 0)
    assert (second["computed"], second["from_cache"]) == (0, 2700)
    assert top1.equals(top2)
