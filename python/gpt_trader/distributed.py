"""Distributed grid optimization on Ray, with the seed system's API.

Ray is an executor here: the library's study runner (the same one the CLI and gt.optimize use)
splits the grid into tasks of (symbol, range of grid indices), and each task runs the library's
range worker on a Ray worker and sends back its range's state (counts and best combinations, as
bytes) and, when a results file is wanted, its rows. Ranking, the results file, the summary and
the cache policy are the library's, so the file is byte-identical to `gtrader optimize --out`.
The market data go into the object store once, as the columns of the validated bars; Ray retries
a task when a worker or a node dies.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Optional, Union

import numpy as np

from . import _core
from .data import DataLike, as_bars, with_series
from .engine import _allocation, _json, study_request

RAY_MISSING = ("Ray is not installed: install it with `pip install 'ray>=2.40'` "
               "(or `pip install 'gpt-trader[ray]'`); the local engine (gpt_trader.optimize) needs no Ray")


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
    """One ranked combination: its parameters and every metric of docs/SEMANTICS.md "Metrics"."""

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
    def optimize_distributed(self, strategy, param_grid: Mapping[str, Any], data: DataLike, *,
                             fixed: Mapping[str, Any] | None = None, metric: str = "sharpe",
                             top: Optional[int] = None, min_trades: int = 0, out: Optional[str] = None,
                             workers: Optional[int] = None, cache: Optional[str] = None,
                             series: Optional[Mapping[str, Any]] = None, portfolio: bool = False, weights=None,
                             rebalance: int = 0, **options) -> list[OptimizationResult]:
        """Every combination of `param_grid` on every symbol of `data`, on the cluster; returns the
        ranked combinations, symbol by symbol, best first (`top` per symbol, or all), and writes
        every combination's metrics to `out` exactly as the local engine does. `cache`:
        redis://... shared by every worker (or a folder every node can reach); None: no cache.
        `strategy`: a name or a gpt_trader.Strategy; `series`, `portfolio`, `weights` and
        `rebalance`: as gpt_trader.optimize takes them (a portfolio is one ranked unit, each task
        evaluating a range of its grid on every symbol)."""
        symbols, names = with_series(as_bars(data), series)
        request = study_request(strategy, param_grid, fixed=fixed, metric=metric, top=top, min_trades=min_trades,
                                threads=1, out=out, cache=cache, series_names=names,
                                portfolio=_allocation(symbols, portfolio, weights, rebalance), **options)
        outcome = self.run_study(symbols, request, workers=workers)
        return [OptimizationResult(symbol=t["symbol"], parameters=t["parameters"], metrics=t["metrics"],
                                   index=t["index"]) for t in outcome["top"]]

    def run_study(self, symbols: list, request: dict, workers: Optional[int] = None) -> dict:
        """The library's study runner with this cluster as its executor: the summary, the ranked
        combinations ("top"), and the summary as text and JSON ("text", "json_text")."""
        if self._ray is None:
            self.initialize()
        executor = _RayExecutor(self, workers or self.num_workers)
        outcome = _core.run_study(symbols, _json(request), executor)
        self.last_run = executor.run_report
        self.last_summary = {k: v for k, v in outcome.items() if k not in ("top", "text", "json_text")}
        return outcome

    def walk_forward(self, data: DataLike, strategy, param_grid: Mapping[str, Any], *, train: int, test: int,
                     workers: Optional[int] = None, **kwargs):
        """gpt_trader.walk_forward with every training window's grid spread over the cluster (each
        window a study of its own; with a `cache` every node reaches, a second walk-forward over the
        same data and grid computes nothing new). Returns what walk_forward returns."""
        from .engine import walk_forward_results, walk_forward_run  # noqa: PLC0415
        if self._ray is None:
            self.initialize()
        executor = _RayExecutor(self, workers or self.num_workers)
        raw = walk_forward_run(data, strategy, param_grid, train=train, test=test, threads=1, executor=executor,
                               **kwargs)
        self.last_run = executor.run_report
        return walk_forward_results(raw)

    def run_walk_forward(self, symbols: list, request: dict, walk_forward: dict,
                         workers: Optional[int] = None) -> dict:
        """The library's walk-forward of a study request with this cluster as every window's
        executor: each symbol's result, and the text and JSON that `gtrader walkforward` prints."""
        from .engine import walk_forward_request  # noqa: PLC0415
        if self._ray is None:
            self.initialize()
        executor = _RayExecutor(self, workers or self.num_workers)
        outcome = walk_forward_request(symbols, request, walk_forward, executor)
        self.last_run = executor.run_report
        return outcome

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


class _RayExecutor:
    """The library's RangeExecutor on Ray: runs the runner's tasks, `workers` at a time."""

    def __init__(self, engine: "RayDistributedEngine", workers: int):
        self.engine, self.workers = engine, workers
        self.run_report = RunReport()

    def name(self) -> str:
        return "ray"

    def task_size(self, grid_size: int) -> int:
        # About four tasks per worker per symbol, and none so small that the scheduler's ~5 ms per
        # task would cost more than a few percent.
        return self.engine.config.chunk_size or max(100_000, math.ceil(grid_size / (4 * self.workers)))

    def run(self, request: str, units: list, tasks: list, rows: bool):
        """`units`: what the study ranks, as (name, [Bars]) pairs (a symbol, or a portfolio's
        symbols together); `tasks`: (unit, first, count, indices), a range of a unit's grid or, with
        indices, the combinations a search chose."""
        ray = self.engine._ray
        # A task holds one CPU (num_cpus=1), so its worker builds and evaluates on one thread.
        request = json.dumps({**json.loads(request), "threads": 1})
        started = time.perf_counter()
        names = [name for name, _ in units]
        # Once per unit, shared by every task: the validated columns, and a digest that tells a
        # worker whether the evaluator it keeps is this study's.
        payloads = [ray.put([_columns(b) for b in symbols]) for _, symbols in units]
        digests = [hashlib.blake2b(request.encode() + str(u).encode()
                                   + b"".join(b.symbol.encode() + np.asarray(b.time).tobytes()
                                              + np.asarray(b.close).tobytes()
                                              + b"".join(n.encode() + np.asarray(v).tobytes()
                                                         for n, v in b.series.items()) for b in symbols),
                                   digest_size=16).hexdigest() for u, (_, symbols) in enumerate(units)]
        counter = self.engine._attempt_counter()
        task = _remote().evaluate_range.options(max_retries=self.engine.config.max_retries, retry_exceptions=True)
        queue, pending, nodes = list(enumerate(tasks)), {}, set()
        while queue or pending:
            while queue and len(pending) < self.workers:  # `workers` tasks at a time, exactly
                i, (s, first, count, indices) = queue.pop(0)
                pending[task.remote(request, payloads[s], digests[s], s, names, first, count, rows, counter,
                                    indices)] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(done[0])
            result = ray.get(done[0])
            nodes.add(result["node"])
            yield i, result["state"], result["rows"]
        attempts = ray.get(counter.total.remote())
        # Over every run of this executor: a walk-forward's windows, a search's rounds.
        before = self.run_report
        self.run_report = RunReport(tasks=before.tasks + len(tasks), attempts=before.attempts + attempts,
                                    retries=before.retries + attempts - len(tasks),
                                    nodes=sorted(set(before.nodes) | nodes),
                                    seconds=before.seconds + time.perf_counter() - started)

    def report(self) -> dict:
        r = self.run_report
        return {"tasks": r.tasks, "retries": r.retries, "nodes": len(r.nodes)}


def _columns(bars) -> dict:
    return {"symbol": bars.symbol, "intraday": bars.intraday, "time": np.asarray(bars.time),
            **{c: np.asarray(getattr(bars, c)) for c in ("open", "high", "low", "close", "volume")},
            "series": {name: np.asarray(values) for name, values in bars.series.items()}}


def _bars(columns: dict):
    bars = _core.bars_from_arrays(columns["symbol"], columns["time"], columns["open"], columns["high"],
                                  columns["low"], columns["close"], columns["volume"], columns["intraday"])
    for name, values in columns["series"].items():
        bars = _core.with_series(bars, name, values)
    return bars


# Per worker process: the range worker of the study it last worked on (indicators and tables are
# built once per worker, not once per task).
_WORKER: dict = {}


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
    def evaluate_range(request, unit_columns, digest, unit, names, first, count, rows, counter, indices=None):
        ray.get(counter.begin.remote())
        worker = _WORKER.get(digest)
        if worker is None:  # this worker's first range of this study: build once, keep for the next
            _WORKER.clear()
            worker = _WORKER[digest] = _core.RangeWorker(request, [_bars(c) for c in unit_columns], unit, names)
        state, text = worker.evaluate(first, count, rows, indices)
        return {"state": state, "rows": text, "node": ray.get_runtime_context().get_node_id()}

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
