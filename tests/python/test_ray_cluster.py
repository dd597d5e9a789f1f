"""Distributed optimization on a real two-node Ray cluster started on this machine.

The cluster lives in a private network namespace with only loopback (`unshare --net`), so every
Ray process binds 127.0.0.1 and nothing leaves the machine. See ray_cluster_scenarios.py."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

ray = pytest.importorskip("ray", reason="Ray is installed by scripts/setup.sh (requirements-dev.txt)")


def in_private_network(*command, timeout=900):
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to give the Ray cluster a private network")
    script = "ip link set lo up && exec " + " ".join(command)
    return subprocess.run(["unshare", "--user", "--map-root-user", "--net", "sh", "-c", script],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def report():
    proc = in_private_network(sys.executable, "tests/python/ray_cluster_scenarios.py")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_tasks_land_on_both_nodes_and_results_equal_the_local_engine(report):
    assert report["nodes_in_cluster"] == 2
    assert report["plain"]["nodes_used"] == 2
    assert report["plain"]["identical"] == {"results_file": True, "ranking": True}


def test_a_rule_strategy_with_its_own_series_runs_on_both_nodes_as_locally(report):
    assert report["rule_strategy"]["identical"]
    assert report["rule_strategy"]["nodes_used"] == 2
    assert report["rule_strategy"]["rows"] == 1 + 2 * 20 * 296


def test_a_search_of_one_seed_on_both_nodes_chooses_ranks_and_writes_as_locally(report):
    search = report["search"]
    assert search["identical"] and search["same_ranking"] and search["same_search"], search
    assert search["rows"] == 1 + 2 * 1500 and search["nodes_used"] == 2


def test_a_worker_killed_mid_run_is_retried_and_changes_nothing(report):
    assert report["worker_killed"]["killed"] >= 1
    assert report["worker_killed"]["retries"] >= 1
    assert report["worker_killed"]["identical"] == {"results_file": True, "ranking": True}


def test_losing_the_second_node_mid_run_is_retried_and_changes_nothing(report):
    assert report["second_raylet_killed"], (report.get("node_loss_attempts"), report.get("second_node_processes_seen"))
    assert report["node_stopped"]["nodes_alive_after"] == 1
    assert report["node_stopped"]["retries"] >= 1
    assert report["node_stopped"]["identical"] == {"results_file": True, "ranking": True}


def test_workers_on_both_nodes_share_the_redis_cache(report):
    first, second = report["redis_cache"]
    assert first["from_cache"] == 0 and first["computed"] > 0
    assert second["computed"] == 0 and second["from_cache"] == first["computed"]
    assert first["identical"] == second["identical"] == {"results_file": True, "ranking": True}


def test_gtrader_optimize_engine_ray_writes_the_local_engines_file(tmp_path):
    grid = ["--grid", "fast=5:19", "--grid", "slow=20:49", "--grid", "ma_type=0:2", "--grid", "volume_filter=false,true"]
    data = ["--data", "data/orcl-1995-2014.csv", "--data", "data/yhoo-1996-2014.csv"]
    gtrader = os.environ.get("GT_BIN", str(ROOT / "build" / "release" / "gtrader"))
    # With --robustness the tasks also send back every combination's block sums.
    local = subprocess.run([gtrader, "optimize", *data, "--strategy", "ma_cross", *grid, "--out", tmp_path / "local.csv",
                            "--robustness", "--json"], capture_output=True, text=True, check=True)
    proc = in_private_network(gtrader, "optimize", *data, "--strategy", "ma_cross", *grid, "--engine", "ray",
                              "--workers", "2", "--chunk-size", "700", "--out", str(tmp_path / "ray.csv"),
                              "--robustness", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["engine"] == "ray" and summary["tasks"] == 8
    assert summary["best"] == json.loads(local.stdout)["best"]
    assert [r["symbol"] for r in summary["robustness"]] == ["orcl-1995-2014", "yhoo-1996-2014"]
    assert summary["robustness"] == json.loads(local.stdout)["robustness"]
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_gtrader_optimize_portfolio_engine_ray_ranks_the_portfolio_as_the_local_engine(tmp_path):
    # One ranked unit: every task carries both symbols' bars and evaluates a range of the grid on
    # the shared account; the file, the best and the robustness are the local run's.
    args = ["optimize", "--data", "data/orcl-1995-2014.csv", "--data", "data/yhoo-1996-2014.csv", "--strategy",
            "ma_cross", "--grid", "fast=5:19:2", "--grid", "slow=20:50:5", "--portfolio", "--weights", "0.6,0.4",
            "--rebalance", "60", "--robustness", "--pbo-blocks", "6", "--json", "--no-cache"]
    gtrader = os.environ.get("GT_BIN", str(ROOT / "build" / "release" / "gtrader"))
    local = json.loads(subprocess.run([gtrader, *args, "--out", tmp_path / "local.csv"], capture_output=True,
                                      text=True, check=True).stdout)
    proc = in_private_network(gtrader, *args, "--engine", "ray", "--workers", "2", "--chunk-size", "16", "--out",
                              str(tmp_path / "ray.csv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(proc.stdout)
    assert remote["engine"] == "ray" and remote["tasks"] == 4 and remote["portfolio"] == local["portfolio"]
    assert remote["best"] == local["best"] and remote["best"]["symbol"] == "portfolio"
    assert remote["robustness"] == local["robustness"]
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


@pytest.mark.parametrize("method", ["halving", "bayes"])
def test_gtrader_optimize_search_engine_ray_chooses_and_writes_as_the_local_engine(method, tmp_path):
    # Each round's chosen combinations are tasks spread over both nodes; the same seed gives the
    # local run's choices, file and summary.
    args = ["optimize", "--data", "data/orcl-1995-2014.csv", "--data", "data/yhoo-1996-2014.csv", "--strategy",
            "ma_cross", "--grid", "fast=2:61", "--grid", "slow=20:219", "--grid", "ma_type=0:2", "--search", method,
            "--budget", "2000", "--seed", "5", "--robustness", "--json", "--no-cache"]
    gtrader = os.environ.get("GT_BIN", str(ROOT / "build" / "release" / "gtrader"))
    local = json.loads(subprocess.run([gtrader, *args, "--threads", "1", "--out", tmp_path / "local.csv"],
                                      capture_output=True, text=True, check=True).stdout)
    proc = in_private_network(gtrader, *args, "--engine", "ray", "--workers", "2", "--chunk-size", "150", "--out",
                              str(tmp_path / "ray.csv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(proc.stdout)
    assert remote["engine"] == "ray" and remote["tasks"] > 2 * len(local["search"]["rounds"][0])
    for key in ("search", "best", "robustness", "computed"):
        assert remote[key] == local[key], key
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_gtrader_walkforward_engine_ray_runs_every_window_on_the_cluster_with_the_cache(tmp_path):
    # Each training window is a study spread over the cluster's workers; the cache the local run
    # filled serves every window's grid to the cluster run, and every figure is the local run's.
    args = ["walkforward", "--data", "data/orcl-1995-2014.csv", "--strategy", "ma_cross", "--grid", "fast=5:19",
            "--grid", "slow=20:49", "--train", "1500", "--test", "700", "--json"]
    gtrader = os.environ.get("GT_BIN", str(ROOT / "build" / "release" / "gtrader"))
    cache = str(tmp_path / "cache")
    local = json.loads(subprocess.run([gtrader, *args, "--cache-dir", cache], capture_output=True, text=True,
                                      check=True).stdout)
    proc = in_private_network(gtrader, *args, "--engine", "ray", "--workers", "2", "--chunk-size", "100",
                              "--cache", cache, "--out", str(tmp_path / "windows.csv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(proc.stdout)
    assert local["computed"] == 450 * len(local["windows"]) and local["from_cache"] == 0
    assert remote["computed"] == 0 and remote["from_cache"] == local["computed"]
    for key in ("windows", "out_of_sample", "efficiency"):
        assert remote[key] == local[key], key
    assert (tmp_path / "windows.csv").read_text().count("\n") == 1 + len(local["windows"])
    # Without a cache the cluster computes every window itself, with the same result.
    proc = in_private_network(gtrader, *args, "--engine", "ray", "--workers", "2", "--chunk-size", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = json.loads(proc.stdout)
    assert fresh["computed"] == local["computed"] and fresh["windows"] == local["windows"]


def test_without_ray_the_local_engine_works_and_ray_says_how_to_install_it():
    code = """
import sys
sys.modules["ray"] = None  # as if Ray were not installed
import gpt_trader as gt
top, summary = gt.optimize("data/orcl-1995-2014.csv", "ma_cross", {"fast": range(5, 10), "slow": range(20, 25)})
assert summary["computed"] == 25, summary
try:
    gt.RayDistributedEngine().initialize()
except ImportError as e:
    print(e)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'ray>=2.40'" in proc.stdout
