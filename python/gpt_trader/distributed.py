"""Distributed grid optimization on Ray, with the seed system's API.

The work is split into tasks of (symbol, range of grid indices); the market data is put into the
object store once, as canonical CSV bytes that every task parses back to the same bits; tasks run
the same C++ evaluator as the local engine and are retried by Ray when a worker or a node dies.
The driver merges the ranges in grid order, so the results file is byte-identical to
`gtrader optimize --out` and the ranking follows SPEC §6 (metric, then symbol, then grid index).
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Optional, Union

import numpy as np

from . import _core
from .data import DataLike, as_bars
from .engine import grid_specs

RAY_MISSING = ("Ray is not installed: install it with `pip install 'ray>=2.40'` "
               "(or `pip install 'gpt-trader[ray]'`); the local engine (gpt_trader.optimize) needs no Ray")
METRICS = _core.metric_names()


def _ray():
    try:
        import ray  # noqa: PLC0415
    except ImportError as exc:  # Ray is optional: say how to get it
        raise ImportError(RAY_MISSING) from exc
    return ray


def _require_reachable(address: str, timeout: float = 3.0):
    """A cluster that does not answer fails within seconds, naming the address, instead of
    leaving ray.init() to wait on it."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--address {address}: expected HOST:PORT (the head node's GCS port, 6379 by default)") from None
    import socket  # noqa: PLC0415
    try:
        socket.create_connection((host or "127.0.0.1", number), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                              "start one with `ray start --head` or check the address") from None


@dataclass
class DistributedConfig:
    """How a study is spread: `num_workers` concurrent tasks ("auto": every CPU of the cluster),
    `address` of an existing cluster (None starts a local one), `max_retries` per task after a
    worker or node failure, `chunk_size` combinations per task (None: sized so that each worker
    gets about four tasks per symbol and no task is tiny)."""

    num_workers: Union[int, str] = 4
    memory_gb: Optional[float] = None
    address: Optional[str] = None
    max_retries: int = 3
    chunk_size: Optional[int] = None


@dataclass
class OptimizationResult:
    """One ranked combination: its parameters and every metric of SPEC §4."""

    symbol: str
    parameters: dict
    metrics: dict
    index: int = 0

    def __getattr__(self, name):
        if name == "sharpe_ratio":
            return self.metrics["sharpe"]
        if name == "sortino_ratio":
            return self.metrics["sortino"]
        if name in self.__dict__.get("metrics", {}):
            return self.metrics[name]
        raise AttributeError(name)


@dataclass
class RunReport:
    tasks: int = 0
    attempts: int = 0
    retries: int = 0
    nodes: list = field(default_factory=list)
    seconds: float = 0.0


def _rank(metric_values, symbol_ids, indices, metric, trades, min_trades, top, final_equity):
    """SPEC §6 order as in the C++ engine, per symbol (symbols in input order): ruined
    combinations (final equity 0) last, better metric first (lower for max_drawdown), NaN last,
    ties by grid index; `top` per symbol."""
    value = metric_values.copy()
    if metric != "max_drawdown":
        value = -value
    value = np.where(np.isnan(value), np.inf, value)
    ruined = final_equity <= 0
    keep = np.flatnonzero(trades >= min_trades)
    order = keep[np.lexsort((indices[keep], value[keep], ruined[keep], symbol_ids[keep]))]
    if top is None:
        return order
    ranks = np.zeros(len(order), dtype=np.int64)
    if len(order):
        starts = np.r_[True, symbol_ids[order][1:] != symbol_ids[order][:-1]]
        group = np.cumsum(starts) - 1
        first_of_group = np.flatnonzero(starts)
        ranks = np.arange(len(order)) - first_of_group[group]
    return order[ranks < top]


class RayDistributedEngine:
    """The seed's engine: `initialize()`, `optimize_distributed(strategy, param_grid, data)`,
    `benchmark(...)`, `shutdown()`."""

    def __init__(self, config: DistributedConfig | None = None):
        self.config = config or DistributedConfig()
        self._ray = None
        self._started_cluster = False
        self.last_run = RunReport()

    # -- lifecycle -------------------------------------------------------------------------
    def initialize(self):
        ray = _ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "logging_level": "ERROR", "log_to_driver": False}
            if self.config.address:
                _require_reachable(self.config.address)
                kwargs["address"] = self.config.address
            else:
                if self.config.num_workers != "auto":
                    kwargs["num_cpus"] = int(self.config.num_workers)
                if self.config.memory_gb:
                    kwargs["object_store_memory"] = int(self.config.memory_gb * 1024**3)
                self._started_cluster = True
            ray.init(**kwargs)
        self._ray = ray
        return self

    def _attempt_counter(self):
        """One per engine, started once (an actor is a process) and reset for each run; on the
        head node, which outlives any worker node lost during a run."""
        if getattr(self, "_counter", None) is None:
            self._counter = _remote().attempt_counter.options(num_cpus=0, resources={"node:__internal_head__": 0.001}).remote()
        self._ray.get(self._counter.reset.remote())
        return self._counter

    def shutdown(self):
        self._counter = None
        if self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._ray = None

    def __enter__(self):
        return self.initialize()

    def __exit__(self, *exc):
        self.shutdown()

    @property
    def num_workers(self) -> int:
        if self.config.num_workers == "auto":
            return max(1, int(self._ray.cluster_resources().get("CPU", 1)))
        return int(self.config.num_workers)

    # -- optimization ----------------------------------------------------------------------
    def optimize_distributed(self, strategy: str, param_grid: Mapping[str, Any], data: DataLike, *,
                             fixed: Mapping[str, Any] | None = None, metric: str = "sharpe",
                             top: Optional[int] = None, min_trades: int = 0, out: Optional[str] = None,
                             workers: Optional[int] = None, cache: Optional[str] = None,
                             **options) -> list[OptimizationResult]:
        """Every combination of `param_grid` on every symbol of `data`, on the cluster; returns the
        ranked combinations, symbol by symbol, best first (`top` per symbol, or all), and writes
        every combination's metrics to `out` exactly as the local engine does. `cache`:
        redis://... shared by every worker (or a folder every node can reach); None: no cache."""
        if self._ray is None:
            self.initialize()
        ray = self._ray
        if metric not in METRICS:
            raise ValueError(f"unknown metric '{metric}' (allowed: {', '.join(METRICS)})")
        specs = grid_specs(param_grid) if not isinstance(param_grid, list) else list(param_grid)
        fixed = dict(fixed or {})
        size = _core.grid_size(strategy, specs, fixed)  # validates the grid before any work
        symbols = as_bars(data)
        names = [b.symbol for b in symbols]
        concurrency = workers or self.num_workers
        # About four tasks per worker per symbol, and none so small that the scheduler's ~5 ms per
        # task would cost more than a few percent.
        chunk = self.config.chunk_size or max(100_000, math.ceil(size / (4 * concurrency)))

        started = time.perf_counter()
        payloads = [ray.put(_core.bars_to_csv(b)) for b in symbols]  # once; shared by every task
        counter = self._attempt_counter()
        task = _remote().evaluate_range.options(max_retries=self.config.max_retries, retry_exceptions=True)
        ranges = [(s, first, min(chunk, size - first)) for s in range(len(symbols)) for first in range(0, size, chunk)]
        # Each task ranks its own range and sends back its best `top` (the overall best are among
        # the ranges' best) and, when a results file is wanted, its rows as CSV text.
        request = {"metric": metric, "top": top, "min_trades": min_trades, "csv": out is not None,
                   "symbols": names, "cache": cache}
        pending, results, nodes = [], {}, set()
        queue = list(ranges)
        while queue or pending:
            while queue and len(pending) < concurrency:  # `workers` tasks at a time, exactly
                s, first, count = queue.pop(0)
                pending.append(task.remote(payloads[s], strategy, specs, fixed, options, s, first, count, request,
                                           counter))
            done, pending = ray.wait(pending, num_returns=1)
            result = ray.get(done[0])
            results[(result["symbol"], result["first"])] = result
            nodes.add(result["node"])
        attempts = ray.get(counter.total.remote())

        if out is not None:
            header = _core.format_results(strategy, specs, fixed, names, 0, 0, np.zeros(0), np.zeros((0, len(_schema(strategy)))),
                                          np.zeros((0, len(METRICS))), header=True)
            _core.write_file_atomically(str(out), header + "".join(results[(s, f)]["csv"] for s, f, _ in ranges))

        keys = [(s, f) for s, f, _ in ranges]
        params = np.concatenate([results[k]["params"] for k in keys])
        metrics = np.concatenate([results[k]["metrics"] for k in keys])
        symbol_ids = np.concatenate([results[k]["symbol_ids"] for k in keys])
        indices = np.concatenate([results[k]["indices"] for k in keys])
        m = METRICS.index(metric)
        order = _rank(metrics[:, m], symbol_ids, indices, metric, metrics[:, METRICS.index("trades")], min_trades, top,
                      metrics[:, METRICS.index("final_equity")])
        valid_count = sum(results[k]["valid"] for k in keys)
        from_cache = sum(results[k]["from_cache"] for k in keys)
        bar_combinations = sum(len(symbols[k[0]]) * (results[k]["valid"] - results[k]["from_cache"]) for k in keys)
        self.last_run = RunReport(tasks=len(ranges), attempts=attempts, retries=attempts - len(ranges),
                                  nodes=sorted(nodes), seconds=time.perf_counter() - started)
        self.last_summary = {"combinations": size, "symbols": len(symbols), "valid": valid_count,
                             "invalid": size * len(symbols) - valid_count, "computed": valid_count - from_cache,
                             "from_cache": from_cache, "seconds": self.last_run.seconds,
                             "combos_per_sec": (valid_count - from_cache) / self.last_run.seconds,
                             "bar_combos_per_sec": bar_combinations / self.last_run.seconds, "engine": "ray",
                             "tasks": len(ranges), "retries": self.last_run.retries, "nodes": len(nodes)}
        schema = _schema(strategy)
        return [OptimizationResult(symbol=names[int(symbol_ids[i])], parameters=_params(schema, params[i]),
                                   metrics=_metrics(metrics[i]), index=int(indices[i])) for i in order]

    # -- measurement -----------------------------------------------------------------------
    def benchmark(self, data: DataLike, strategy: str = "ma_cross", sizes=(24000, 240000, 1440000),
                  workers=(1, 2)) -> dict:
        """Throughput and scaling efficiency of `ma_cross` grids of several sizes on 1..N workers,
        the local engine's rate beside them, and Ray's per-task overhead (a no-op task's round
        trip through the scheduler)."""
        if self._ray is None:
            self.initialize()
        ray = self._ray
        grids = {24000: {"fast": "2:41", "slow": "42:141"}, 240000: {"fast": "2:101", "slow": "102:501"},
                 1440000: {"fast": "2:201", "slow": "202:1401"}}
        from .engine import optimize as local_optimize  # noqa: PLC0415
        # Start every worker process first: their start-up is not the throughput being measured.
        self.optimize_distributed(strategy, {**grids[24000], "ma_type": "0", "volume_filter": "false"}, data, top=1,
                                  workers=max(workers))
        rows = []
        for size in sizes:
            grid = {**grids[size], "ma_type": "0:2", "volume_filter": "false,true"}
            _, local = local_optimize(data, strategy, grid, top=1, threads=1)
            base = None
            for w in workers:
                start = time.perf_counter()
                self.optimize_distributed(strategy, grid, data, top=1, workers=w)
                seconds = time.perf_counter() - start
                rate = local["computed"] / seconds
                base = base or rate / w
                rows.append({"combinations": local["computed"], "workers": w, "tasks": self.last_run.tasks,
                             "seconds": seconds, "combos_per_sec": rate, "scaling_efficiency": rate / (base * w),
                             "local_one_thread_combos_per_sec": local["computed"] / local["seconds"]})
        noop = _remote().noop
        ray.get(noop.remote())
        start = time.perf_counter()
        ray.get([noop.remote() for _ in range(200)])
        return {"results": rows, "task_overhead_seconds": (time.perf_counter() - start) / 200}


def _schema(strategy):
    return next(s for s in _core.strategies() if s["name"] == strategy)["params"]


def _params(schema, values):
    out = {}
    for spec, v in zip(schema, values):
        out[spec["name"]] = bool(v) if spec["type"] == "bool" else int(v) if spec["type"] == "int" else float(v)
    return out


def _metrics(values):
    out = dict(zip(METRICS, (float(v) for v in values)))
    out["trades"] = int(out["trades"])
    return out


# Per worker process: the evaluator of the study it last worked on (indicators and tables are
# built once per worker, not once per task).
_WORKER_EVALUATOR: dict = {}


def _define_remote():
    ray = _ray()

    @ray.remote
    class AttemptCounter:
        """Counts task attempts (a killed attempt counts too), so that retries can be reported."""

        def __init__(self):
            self.count = 0

        def begin(self):
            self.count += 1

        def reset(self):
            self.count = 0

        def total(self):
            return self.count

    @ray.remote(num_cpus=1)
    def evaluate_range(payload, strategy, specs, fixed, options, symbol_index, first, count, request, counter):
        ray.get(counter.begin.remote())
        symbol = request["symbols"][symbol_index]
        key = (hashlib.blake2b(payload, digest_size=16).digest(), symbol, strategy, tuple(specs),
               tuple(sorted(fixed.items())), tuple(sorted(options.items())), request["cache"])
        evaluator = _WORKER_EVALUATOR.get(key)
        if evaluator is None:  # this worker's first range of this study: build once, keep for the next
            _WORKER_EVALUATOR.clear()
            bars = _core.parse_csv(payload, f"{symbol}.csv")
            evaluator = _WORKER_EVALUATOR[key] = _core.RangeEvaluator(bars, strategy, specs, fixed, options, threads=1,
                                                                      cache=request["cache"])
        valid, params, metrics, from_cache = evaluator.evaluate_range(first, count)
        csv = ""
        if request["csv"]:
            csv = _core.format_results(strategy, specs, fixed, request["symbols"], symbol_index, first, valid, params,
                                       metrics)
        keep = valid.astype(bool)
        indices = np.arange(first, first + count)[keep]
        params, metrics = params[keep], metrics[keep]
        symbol_ids = np.full(len(indices), symbol_index)
        best = _rank(metrics[:, METRICS.index(request["metric"])], symbol_ids, indices, request["metric"],
                     metrics[:, METRICS.index("trades")], request["min_trades"], request["top"],
                     metrics[:, METRICS.index("final_equity")])
        return {"symbol": symbol_index, "first": first, "valid": int(keep.sum()), "from_cache": from_cache, "csv": csv,
                "params": params[best], "metrics": metrics[best], "symbol_ids": symbol_ids[best],
                "indices": indices[best], "node": ray.get_runtime_context().get_node_id()}

    @ray.remote(num_cpus=0)
    def noop():
        return None

    return _RemoteDefinitions(AttemptCounter, evaluate_range, noop)


class _RemoteDefinitions(NamedTuple):
    attempt_counter: Any
    evaluate_range: Any
    noop: Any


@functools.cache
def _remote() -> _RemoteDefinitions:
    """The Ray actor and tasks, defined on first use: importing Ray takes seconds, which
    `import gpt_trader` should not cost anyone who does not distribute."""
    return _define_remote()
