"""`gtrader walkforward` (docs/SEMANTICS.md "Walk-forward") against a reference loop over the windows
written here: each window's combinations simulated by tests/python/reference.py on the window's bars
alone (the rules read with TA-Lib over every bar before, so no fresh warm-up; an open position closed
at the window's last close), the best in sample by sharpe chosen (ties: the first in grid order), run
on the test window, and the test windows' returns chained."""
import itertools
import json

import numpy as np
import pandas as pd
import pytest

import reference as ref
from conftest import ALL_FILES, run_gtrader

GRID = {"fast": [5, 10, 15], "slow": [30, 50]}


def window_run(frame, events, first, last, options):
    """The window's equity (bars first..last) and its sharpe: flat at the starting cash before it."""
    part = frame.iloc[: last + 1].reset_index(drop=True)
    cut = ref.Events(*(np.where(np.arange(last + 1) >= first, getattr(events, f)[: last + 1], False)
                       for f in ("long_entry", "long_exit", "short_entry", "short_exit")))
    if options.fill == "next_open":  # nothing may fill at the open after the window's last close
        cut.long_entry[last] = cut.short_entry[last] = False
    trades, equity, position = ref.simulate(part, cut, options)
    window = equity[first:]
    before = np.concatenate([[options.cash], window[:-1]])
    r = window / before - 1
    return window, position[first:], r


def sharpe(r, annual):
    std = np.std(r, ddof=1)
    return float(np.mean(r) / std * np.sqrt(annual)) if std > 0 else 0.0


@pytest.mark.parametrize("anchored", [False, True], ids=["rolling", "anchored"])
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_windows_choices_and_stitched_equity_equal_a_reference_loop(path, anchored, tmp_path):
    frame = ref.frame_of(path)
    n = len(frame)
    train, test = n // 4, n // 8
    options = ref.Options()
    annual = ref.periods_per_year(frame)
    combos = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    events = [ref.strategy_events(frame, "ma_cross", dict(c, ma_type=0)) for c in combos]
    equity_path, windows_path = tmp_path / "equity.csv", tmp_path / "windows.csv"
    out = run_gtrader("walkforward", "--data", path, "--strategy", "ma_cross", "--grid", "fast=5,10,15", "--grid",
                      "slow=30,50", "--train", train, "--test", test, *(["--anchored"] if anchored else []),
                      "--equity", equity_path, "--out", windows_path, "--json").stdout
    got = json.loads(out)

    stamps = frame["stamp"].to_numpy()
    stitched, scale, starts, is_sharpes, oos_sharpes = [], 1.0, [], [], []
    for k, start in enumerate(range(train, n - test + 1, test)):
        train_first = 0 if anchored else start - train
        in_sample = [sharpe(window_run(frame, e, train_first, start - 1, options)[2], annual) for e in events]
        best = int(np.argmax(in_sample))
        window, _, r = window_run(frame, events[best], start, start + test - 1, options)
        w = got["windows"][k]
        assert (w["train_start"], w["train_end"], w["test_start"], w["test_end"]) == (
            stamps[train_first], stamps[start - 1], stamps[start], stamps[start + test - 1])
        assert (w["parameters"]["fast"], w["parameters"]["slow"]) == (combos[best]["fast"], combos[best]["slow"])
        assert w["in_sample"]["sharpe"] == pytest.approx(in_sample[best], rel=1e-9, abs=1e-12)
        assert w["out_of_sample"]["sharpe"] == pytest.approx(sharpe(r, annual), rel=1e-9, abs=1e-12)
        is_sharpes.append(in_sample[best])
        oos_sharpes.append(sharpe(r, annual))
        stitched.extend(scale * window / options.cash * options.cash)
        scale = stitched[-1] / options.cash
        starts.append(start)
    assert len(got["windows"]) == len(starts) >= 2
    curve = pd.read_csv(equity_path)
    np.testing.assert_allclose(curve["equity"].to_numpy(), stitched, rtol=1e-9)
    chained = np.array(stitched)
    r = chained / np.concatenate([[options.cash], chained[:-1]]) - 1
    assert got["out_of_sample"]["total_return"] == pytest.approx(chained[-1] / options.cash - 1, rel=1e-9, abs=1e-12)
    assert got["out_of_sample"]["sharpe"] == pytest.approx(sharpe(r, annual), rel=1e-9, abs=1e-12)
    assert got["efficiency"] == pytest.approx(np.mean(oos_sharpes) / np.mean(is_sharpes), rel=1e-9)
    assert len(pd.read_csv(windows_path)) == len(starts)


@pytest.mark.parametrize("args,message", [
    (["--train", "0", "--test", "100"], "train = 0 bars"),
    (["--train", "99999", "--test", "100"], "train = 99999 bars"),
    (["--train", "1000", "--test", "0"], "test = 0 bars"),
    (["--train", "4000", "--test", "600"], "leave 1 whole window(s)"),
])
def test_bad_windows_fail_before_any_work(args, message, tmp_path):
    out = tmp_path / "windows.csv"
    proc = run_gtrader("walkforward", "--data", ALL_FILES[0], "--strategy", "ma_cross", "--grid", "fast=5,10", *args,
                       "--out", out, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not out.exists()


def test_python_walk_forward_gives_the_commands_result():
    import gpt_trader as gt

    path = ALL_FILES[1]
    result = gt.walk_forward(path, "ma_cross", {"fast": [5, 10, 15], "slow": [30, 50]}, train=1200, test=600,
                             commission=0.001)
    got = json.loads(run_gtrader("walkforward", "--data", path, "--strategy", "ma_cross", "--grid", "fast=5,10,15",
                                 "--grid", "slow=30,50", "--train", 1200, "--test", 600, "--commission", 0.001,
                                 "--json").stdout)
    assert len(result.windows) == len(got["windows"])
    assert list(result.windows["fast"]) == [w["parameters"]["fast"] for w in got["windows"]]
    assert list(result.windows["out_of_sample_sharpe"]) == pytest.approx([w["out_of_sample"]["sharpe"]
                                                                         for w in got["windows"]], rel=1e-12)
    assert result.out_of_sample["total_return"] == pytest.approx(got["out_of_sample"]["total_return"], rel=1e-12)
    assert result.efficiency == pytest.approx(got["efficiency"], rel=1e-12)
    assert len(result.equity) == 600 * len(got["windows"])
    assert result.equity.iloc[-1] == pytest.approx(100000 * (1 + got["out_of_sample"]["total_return"]), rel=1e-9)


def test_windows_are_studies_a_second_walk_forward_computes_nothing_new(tmp_path):
    """Every training window is a study with the cache (its bars and window in the cache's
    namespace): run again over the same data and grid, each window's grid comes from the cache and
    every figure is the same; with --no-cache nothing is read."""
    args = ["walkforward", "--data", ALL_FILES[0], "--strategy", "ma_cross", "--grid", "fast=5,10,15", "--grid",
            "slow=30,50", "--grid", "ma_type=0:2", "--train", 1000, "--test", 500, "--json"]
    cache = ["--cache-dir", tmp_path / "cache"]
    first = json.loads(run_gtrader(*args, *cache).stdout)
    second = json.loads(run_gtrader(*args, *cache).stdout)
    assert first["from_cache"] == 0 and first["computed"] == 18 * len(first["windows"])
    assert second["computed"] == 0 and second["from_cache"] == first["computed"]
    for key in ("windows", "out_of_sample", "efficiency"):
        assert second[key] == first[key], key
    fresh = json.loads(run_gtrader(*args, *cache, "--no-cache").stdout)
    assert fresh["computed"] == first["computed"] and fresh["windows"] == first["windows"]
    # Another window length is another study: nothing of the first is reused.
    other = json.loads(run_gtrader(*args[:-5], "--train", 1100, "--test", 500, "--json", *cache).stdout)
    assert other["from_cache"] == 0


def test_walk_forward_refuses_the_cuda_device_plainly(tmp_path):
    proc = run_gtrader("walkforward", "--data", ALL_FILES[0], "--strategy", "ma_cross", "--grid", "fast=5,10",
                       "--train", 1000, "--test", 500, "--device", "cuda", check=False)
    assert proc.returncode == 2 and "windows run on the CPU engines: use the cpu or auto --device" in proc.stderr
