"""gtrader optimize: every combination's metrics equal `gtrader backtest` for that combination,
the JSON summary's keys, YAML grids, and bad grids failing before any work."""
import csv
import io
import json
import random

import pytest

from conftest import DAILY_FILES, DATA, run_gtrader

SEED_GRID = ["--grid", "fast=5:19", "--grid", "slow=20:49", "--grid", "ma_type=0:2", "--grid", "volume_filter=false,true"]
METRICS = ["total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "trades", "win_rate",
           "profit_factor", "exposure", "avg_trade_return", "final_equity"]


def close(a, b):
    if a in ("inf",) or b in ("inf",):
        return a == b
    a, b = float(a), float(b)
    return abs(a - b) <= 1e-9 * abs(b) + 1e-12


@pytest.mark.parametrize("path", DAILY_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("extra", [[], ["--fill", "close", "--commission", "0.001", "--slippage-bps", "3"]],
                         ids=["defaults", "costs"])
def test_sampled_combinations_equal_backtest(path, extra, tmp_path):
    out = tmp_path / "results.csv"
    run_gtrader("optimize", "--data", path, "--strategy", "ma_cross", *SEED_GRID, *extra, "--no-cache", "--out", out)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 2700
    for row in random.Random(7).sample(rows, 12):
        params = [f"{k}={row[k]}" for k in ["fast", "slow", "ma_type", "volume_filter"]]
        single = json.loads(run_gtrader("backtest", "--data", path, "--strategy", "ma_cross",
                                        *sum([["--param", p] for p in params], []), *extra, "--json").stdout)
        for m in METRICS:
            assert close(row[m], single[m]), f"{params} {m}: optimize {row[m]} vs backtest {single[m]}"


def test_json_summary_and_yaml_grid(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("grid:\n  fast: 5:19\n  slow: [20, 30, 40]\n  ma_type: 0:2\n  volume_filter: [false, true]\n")
    summary = json.loads(run_gtrader("optimize", "--data", DAILY_FILES[0], "--strategy", "ma_cross",
                                     "--grid-file", grid, "--no-cache", "--json").stdout)
    for key in ["combinations", "valid", "invalid", "computed", "from_cache", "seconds", "combos_per_sec",
                "bar_combos_per_sec", "best"]:
        assert key in summary
    assert summary["combinations"] == 15 * 3 * 3 * 2
    assert summary["computed"] == summary["valid"] == 270
    assert set(summary["best"]["parameters"]) == {"fast", "slow", "ma_type", "volume_filter", "stop_loss", "take_profit",
                                                  "trailing_stop", "max_bars", "risk"}


def test_results_are_identical_for_any_thread_count(tmp_path):
    texts = []
    for threads in ["1", "2"]:
        out = tmp_path / f"r{threads}.csv"
        run_gtrader("optimize", "--data", DAILY_FILES[1], "--strategy", "ma_cross", *SEED_GRID, "--threads", threads,
                    "--no-cache", "--out", out)
        texts.append(out.read_bytes())
    assert texts[0] == texts[1]


def test_other_strategies_optimize(tmp_path):
    summary = json.loads(run_gtrader("optimize", "--data", DAILY_FILES[0], "--strategy", "rsi_reversion",
                                     "--grid", "period=5:20", "--grid", "lower=20,25,30", "--grid", "upper=70,75",
                                     "--no-cache", "--json").stdout)
    assert summary["computed"] == 16 * 3 * 2
    assert summary["engine"] == "rules compiled"  # long-only: the compiled rules engine
    shorts = json.loads(run_gtrader("optimize", "--data", DAILY_FILES[0], "--strategy", "rsi_reversion",
                                    "--grid", "period=5:20", "--allow-short", "--no-cache", "--json").stdout)
    assert shorts["engine"] == "reference"


@pytest.mark.parametrize("grid,message", [
    (["--grid", "speed=1:3"], "has no parameter 'speed'"),
    (["--grid", "fast=9:5"], "empty range: 9 is above 5"),
    (["--grid", "fast=5:9:0"], "step must be > 0"),
    (["--grid", "fast=a:b"], "fast = 'a' is not a number"),
    (["--grid", "fast"], "--grid 'fast' is not NAME=SPEC"),
])
def test_bad_grids_fail_before_any_work(grid, message):
    proc = run_gtrader("optimize", "--data", DAILY_FILES[0], "--strategy", "ma_cross", *grid, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_unknown_metric(tmp_path):
    proc = run_gtrader("optimize", "--data", DAILY_FILES[0], "--strategy", "ma_cross", "--metric", "alpha",
                       "--out", tmp_path / "x.csv", check=False)
    assert proc.returncode != 0
    assert "unknown metric 'alpha' (allowed: total_return" in proc.stderr
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("metric", ["sharpe", "max_drawdown", "trades", "total_return"])
def test_ties_go_to_the_lower_grid_index(metric, tmp_path):
    """docs/SEMANTICS.md "Ranking": among equal metric values the first combination in grid order ranks first. The ES
    file has no volume, so with the volume filter no combination trades and every one ties."""
    out = tmp_path / "results.csv"
    summary = json.loads(run_gtrader("optimize", "--data", DATA / "es-2006-5min.csv", "--strategy", "ma_cross",
                                     "--grid", "fast=5:9", "--grid", "slow=20:24", "--grid", "ma_type=2,1",
                                     "--param", "volume_filter=true", "--metric", metric, "--no-cache", "--out", out,
                                     "--json").stdout)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 50 and len({r[metric] for r in rows}) == 1  # every combination ties
    assert summary["best"]["parameters"] == {"fast": 5, "slow": 20, "ma_type": 2, "volume_filter": True, "stop_loss": 0.0, "take_profit": 0.0, "trailing_stop": 0.0, "max_bars": 0, "risk": 0.0}
