"""`optimize --robustness` (docs/SEMANTICS.md "Out-of-sample evidence") against a plain NumPy reading
of the contract written here: every combination's per-bar returns come from its own
`gtrader backtest --equity` (r_t = E_t / E_{t-1} - 1, E_{-1} the starting cash); the test splits
them into blocks, enumerates every choice of half the blocks, ranks, and computes the deflated
Sharpe ratio of the best with scipy-free formulas (the normal quantile by bisection on erfc).
Nothing is stored by hand. Several grids, every data file."""
import itertools
import json
import math

import numpy as np
import pytest

from conftest import ALL_FILES, run_gtrader

GRIDS = {
    "crossover": ("ma_cross", ["fast=5,10,15", "slow=30,45", "ma_type=0,1"]),
    "crossover-stops": ("ma_cross", ["fast=8,12", "slow=30,50", "stop_loss=0,0.03", "take_profit=0,0.08"]),
    "rsi": ("rsi_reversion", ["period=7,14,21", "lower=25,30", "upper=70"]),
}


def grid_values(specs):
    axes = [(name, value.split(",")) for name, value in (s.split("=", 1) for s in specs)]
    return [dict(zip([a for a, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def returns_of(path, strategy, params, tmp_path):
    equity = tmp_path / "equity.csv"
    flags = sum([["--param", f"{k}={v}"] for k, v in params.items()], [])
    summary = json.loads(run_gtrader("backtest", "--data", path, "--strategy", strategy, *flags, "--equity", equity,
                                     "--json").stdout)
    curve = np.loadtxt(equity, delimiter=",", skiprows=1, usecols=1)
    before = np.concatenate([[100000.0], curve[:-1]])
    return summary["sharpe"], curve / before - 1


def sharpe(x):
    std = np.std(x, ddof=1)
    return float(np.mean(x) / std) if std > 0 else 0.0


def normal_quantile(p):
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def plain_reading(returns, blocks, best):
    """The contract's PBO over every combination's returns and the DSR of `best`."""
    n_bars = returns.shape[1]
    sizes = [n_bars // blocks + (1 if b < n_bars % blocks else 0) for b in range(blocks)]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    pieces = [returns[:, bounds[b]:bounds[b + 1]] for b in range(blocks)]
    logits = []
    for inside in itertools.combinations(range(blocks), blocks // 2):
        outside = [b for b in range(blocks) if b not in inside]
        is_sharpe = [sharpe(np.concatenate([pieces[b][j] for b in inside])) for j in range(len(returns))]
        oos_sharpe = [sharpe(np.concatenate([pieces[b][j] for b in outside])) for j in range(len(returns))]
        chosen = int(np.argmax(is_sharpe))  # the first of equals
        w = (1 + sum(s < oos_sharpe[chosen] for s in oos_sharpe)) / (len(returns) + 1)
        logits.append(math.log(w / (1 - w)))
    r = returns[best]
    t = len(r)
    m = r - r.mean()
    g3 = np.mean(m ** 3) / np.mean(m ** 2) ** 1.5
    g4 = np.mean(m ** 4) / np.mean(m ** 2) ** 2
    sr = sharpe(r)
    trials = np.array([sharpe(x) for x in returns])
    n = len(trials)
    gamma = 0.5772156649
    sr0 = math.sqrt(np.var(trials, ddof=1)) * ((1 - gamma) * normal_quantile(1 - 1 / n) +
                                               gamma * normal_quantile(1 - 1 / (n * math.e)))
    dsr = 0.5 * math.erfc(-((sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr * sr))
                          / math.sqrt(2))
    return dict(pbo=float(np.mean(np.array(logits) <= 0)), splits=len(logits), logits=np.array(logits),
                deflated_sharpe=dsr, sharpe_per_bar=sr, expected_max_sharpe=sr0, skewness=g3, kurtosis=g4)


@pytest.mark.parametrize("blocks", [8])
@pytest.mark.parametrize("grid", list(GRIDS))
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_robustness_equals_a_plain_reading(path, grid, blocks, tmp_path):
    strategy, specs = GRIDS[grid]
    combos = grid_values(specs)
    sharpes, returns = zip(*(returns_of(path, strategy, c, tmp_path) for c in combos))
    returns = np.array(returns)
    best = int(np.argmax(sharpes))  # the ranking's best by sharpe, ties to the lower grid index
    want = plain_reading(returns, blocks, best)
    summary = json.loads(run_gtrader("optimize", "--data", path, "--strategy", strategy,
                                     *sum([["--grid", s] for s in specs], []), "--robustness", "--pbo-blocks",
                                     blocks, "--no-cache", "--cache-dir", tmp_path / "cache", "--json").stdout)
    (got,) = summary["robustness"]
    assert got["parameters"] == {**summary["best"]["parameters"]}
    assert got["trials"] == len(combos) and got["splits"] == want["splits"] and got["blocks"] == blocks
    assert got["pbo"] == want["pbo"]
    quartiles = np.percentile(want["logits"], [25, 50, 75])
    assert [got["logit_q1"], got["logit_median"], got["logit_q3"]] == pytest.approx(quartiles, abs=1e-12)
    for name in ("deflated_sharpe", "sharpe_per_bar", "expected_max_sharpe", "skewness", "kurtosis"):
        assert got[name] == pytest.approx(want[name], rel=1e-7, abs=1e-12), name


def test_robustness_with_sixteen_blocks_in_python(tmp_path):
    import gpt_trader as gt

    top, summary = gt.optimize(ALL_FILES[0], "ma_cross", {"fast": [5, 10, 20], "slow": [30, 50]}, robustness=True,
                               report=tmp_path / "report.html")
    (robust,) = summary["robustness"]
    assert robust["splits"] == 12870 and robust["blocks"] == 16
    assert 0 <= robust["pbo"] <= 1 and 0 < robust["deflated_sharpe"] < 1
    assert summary["report"] == str(tmp_path / "report.html")
    assert f"Probability of backtest overfitting {robust['pbo']:.3f}" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("args,message", [
    (["--grid", "fast=10", "--param", "slow=30", "--robustness"], "this grid has one"),
    (["--grid", "fast=5,10", "--robustness", "--pbo-blocks", "7"], "--pbo-blocks = 7 (allowed: an even number"),
    (["--grid", "fast=5,10", "--robustness", "--pbo-blocks", "2"], "--pbo-blocks = 2 (allowed"),
    (["--grid", "fast=5,10", "--pbo-blocks", "8"], "--pbo-blocks sets the blocks of --robustness"),
])
def test_bad_robustness_requests_fail_before_any_work(args, message, tmp_path):
    proc = run_gtrader("optimize", "--data", ALL_FILES[0], "--strategy", "ma_cross", *args, "--no-cache",
                       "--cache-dir", tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
