"""Benchmark: supervised vs unsupervised vs reinforcement learning on the served model's embeddings of real
Fashion-MNIST photos — the acceptance table (accuracy at 100 / 500 / 2,000 labels or feedback events, bandit
regret, k-means / GMM ARI and purity; mean ± std over 3 seeds) and what each part costs.

Usage::

    .venv/bin/python benchmarks/bench_paradigms.py [--models-dir models/store] [--pool 4000] [--test 1000]

The embeddings are cached (the app's instance folder/cache, as `riim paradigms` does); the machine's load is
printed with the timings.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli import paradigms as paradigms_cli  # noqa: E402
from models.registry import DEFAULT_ROOT, Registry  # noqa: E402
from training import bandit  # noqa: E402


def step_cost(agent, dim: int = 65, arms: int = 10, steps: int = 2000) -> float:
    """Microseconds per choose + update for ``agent`` on random contexts."""
    rng = np.random.default_rng(0)
    contexts = rng.normal(size=(steps, dim))
    agent.fit_start(arms, dim)
    started = time.perf_counter()
    for x in contexts:
        agent.update(x, agent.choose(x, rng), float(rng.random() < 0.1))
    return (time.perf_counter() - started) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", default=str(DEFAULT_ROOT))
    parser.add_argument("--pool", type=int, default=4000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print(f"load average (1/5/15 min): {os.getloadavg()}  cores: {os.cpu_count()}", flush=True)
    cache = paradigms_cli.instance_path() / "cache"
    with tempfile.TemporaryDirectory() as scratch:
        results = paradigms_cli.run(Registry(args.models_dir), "animals", args.pool, args.test, range(args.seeds),
                                    [20, 50, 100, 200, 500, 1000, 2000], cache, Path(scratch) / "paradigms.json")
    print(paradigms_cli.table(results))
    print(f"embeddings {results['seconds']['embeddings']:.0f} s (0 when cached), total {results['seconds']['total']:.0f} s; "
          f"PCA keeps {results['data']['explained_variance']:.1%} of the embedding variance in {results['data']['components']} dims")
    linucb, greedy = step_cost(bandit.LinUCB()), step_cost(bandit.EpsilonGreedy())
    print(f"bandit step (choose + update, 65-d context, 10 arms): LinUCB {linucb:.0f} µs, epsilon-greedy {greedy:.0f} µs "
          f"(ratio {linucb / greedy:.1f}x)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
