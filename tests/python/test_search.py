"""Searches beyond grids (docs/SEMANTICS.md "Search") from the command line and from Python: the
summary says which method evaluated how many combinations; every row of the results file is the
metrics `gtrader backtest` gives its parameters (a search chooses combinations, it does not
change what they are worth); the same seed gives the same file from either front end; bad
searches are refused before any work."""
import json

import pandas as pd
import pytest

from conftest import DAILY_FILES, run_gtrader

ORCL = DAILY_FILES[0]
GRID = ["--grid", "fast=2:41", "--grid", "slow=20:99", "--grid", "ma_type=0:2"]


@pytest.mark.parametrize("method", ["random", "halving", "bayes"])
def test_a_search_summarizes_what_it_evaluated_and_writes_only_that(method, tmp_path):
    out = tmp_path / "results.csv"
    summary = json.loads(run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", *GRID, "--search", method,
                                     "--budget", 200, "--seed", 7, "--out", out, "--json", "--no-cache").stdout)
    search = summary["search"]
    assert (search["method"], search["budget"], search["seed"]) == (method, 200, 7)
    rows = pd.read_csv(out)
    if method == "halving":  # the last rung's combinations, run on every bar
        assert search["rounds"][-1]["bars"] == 5036 and len(rows) == search["rounds"][-1]["evaluated"]
        assert search["evaluated"] == search["rounds"][0]["evaluated"] > 200
    else:
        assert search["evaluated"] == search["evaluations"] == len(rows) == summary["computed"] == 200
    assert not rows.duplicated(["fast", "slow", "ma_type"]).any()
    assert (rows["fast"] < rows["slow"]).all(), "only valid combinations are drawn"
    text = run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", *GRID, "--search", method, "--budget",
                       200, "--seed", 7, "--no-cache", "--top", 1).stdout
    assert f"search: {method} evaluated {search['evaluated']} of the 9600 combinations per symbol" in text


def test_every_row_of_a_search_is_what_the_backtest_gives_its_parameters(tmp_path):
    out = tmp_path / "results.csv"
    run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", *GRID, "--search", "bayes", "--budget", 150,
                "--seed", 1, "--out", out, "--no-cache")
    rows = pd.read_csv(out)
    for row in rows.sample(5, random_state=0).itertuples():
        got = json.loads(run_gtrader("backtest", "--data", ORCL, "--strategy", "ma_cross", "--param",
                                     f"fast={row.fast}", "--param", f"slow={row.slow}", "--param",
                                     f"ma_type={row.ma_type}", "--json").stdout)
        assert got["sharpe"] == pytest.approx(row.sharpe, rel=1e-9, abs=1e-12)
        assert got["trades"] == row.trades


def test_python_optimize_searches_as_the_command_line_does(tmp_path):
    import gpt_trader as gt

    top, summary = gt.optimize(str(ORCL), "ma_cross", {"fast": range(2, 42), "slow": "20:99", "ma_type": "0:2"},
                               search="bayes", budget=250, seed=3, top=3, out=str(tmp_path / "py.csv"))
    run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", *GRID, "--search", "bayes", "--budget", 250,
                "--seed", 3, "--top", 3, "--out", tmp_path / "cli.csv", "--no-cache")
    assert (tmp_path / "py.csv").read_bytes() == (tmp_path / "cli.csv").read_bytes()
    assert summary["search"]["method"] == "bayes" and summary["search"]["evaluated"] == 250
    assert len(top) == 3
    with pytest.raises(ValueError, match="seed must be a whole number"):
        gt.optimize(str(ORCL), "ma_cross", {"fast": "2:41"}, search="random", budget=10, seed=1.5)
    with pytest.raises(ValueError, match="budget must be a whole number >= 1"):
        gt.optimize(str(ORCL), "ma_cross", {"fast": "2:41"}, search="random", budget=0)
    with pytest.raises(ValueError, match="draws from ranges"):
        gt.optimize(str(ORCL), "ma_cross", {"fast": [5, 10, 15]}, search="random", budget=2)


@pytest.mark.parametrize("args, words", [
    (["--search", "bayes", "--budget", "0"], "needs a --budget above 0"),
    (["--search", "bayes", "--budget", "10", "--seed", "1.5"], "--seed"),
    (["--search", "annealing", "--budget", "10"], "annealing not in {grid,random,halving,bayes}"),
    (["--budget", "10"], "a --budget is for the random, halving and bayes searches"),
])
def test_bad_searches_are_refused_before_any_work(args, words, tmp_path):
    proc = run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", *GRID, *args, "--out",
                       tmp_path / "r.csv", "--no-cache", check=False)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert not (tmp_path / "r.csv").exists()


def test_a_budget_covering_the_space_runs_the_grid_and_says_so():
    proc = run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", "--grid", "fast=5:9", "--grid",
                       "slow=20:21", "--search", "random", "--budget", 50, "--json", "--no-cache")
    assert "covers the whole space of 10 combinations: the grid is run" in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["search"]["method"] == "grid" and summary["computed"] == 10
