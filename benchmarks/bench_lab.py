"""CNN lab acceptance figures (issue 17), each part a real `riim lab` run in a child process, timed with the
machine's load beside it:

- ``scratch``: the from-scratch CNN (default config) on the full Fashion-MNIST 60,000 / 10,000 split;
- ``transfer``: frozen EfficientNet-Lite0 + a new head on the same split (``--transfer-images`` training
  images, all 10,000 test images), printed beside the from-scratch model;
- ``sweep``: a 20-trial Optuna sweep (TPE + median pruning) at a reduced size: wall time, pruned trials, best vs
  the default configuration (trial 0), both on validation and test accuracy.

Usage: ``nice -n 5 .venv/bin/python benchmarks/bench_lab.py scratch transfer sweep [--lab-dir DIR]``; results are
appended as JSON lines to ``--out`` (default test-artifacts/bench_lab.jsonl).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RIIM = REPO / ".venv" / "bin" / "riim"


def run(argv: list[str], lab_dir: Path, result: Path) -> dict:
    load_before = os.getloadavg()
    started = time.monotonic()
    print(f"$ riim {' '.join(argv)}", flush=True)
    completed = subprocess.run([str(RIIM), *argv, "--lab-dir", str(lab_dir), "--result-file", str(result)],
                               capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    print(completed.stdout.strip(), flush=True)
    if completed.returncode:
        print(completed.stderr[-3000:], file=sys.stderr)
        raise SystemExit(completed.returncode)
    return {"argv": argv, "wall_seconds": round(wall, 1), "load_before": [round(v, 1) for v in load_before],
            "load_after": [round(v, 1) for v in os.getloadavg()], "cpus": os.cpu_count(),
            "result": json.loads(result.read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="+", choices=["scratch", "transfer", "sweep"])
    parser.add_argument("--lab-dir", type=Path, default=REPO / "instance" / "lab")
    parser.add_argument("--models-dir", default=str(REPO / "models" / "store"))
    parser.add_argument("--transfer-images", type=int, default=10000)
    parser.add_argument("--sweep-images", type=int, default=6000)
    parser.add_argument("--sweep-epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=REPO / "test-artifacts" / "bench_lab.jsonl")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scratch_dir = REPO / "test-artifacts"
    for part in args.parts:
        result_file = scratch_dir / f"bench_lab_{part}.json"
        if part == "scratch":
            figures = run(["lab", "train", "--name", "fashion-cnn", "--models-dir", args.models_dir, "--log-json"],
                          args.lab_dir, result_file)
        elif part == "transfer":
            figures = run(["lab", "transfer", "--against", "fashion-cnn", "--models-dir", args.models_dir,
                           "--set", f"data.train_images={args.transfer_images}", "--log-json"], args.lab_dir, result_file)
        else:
            figures = run(["lab", "sweep", "--name", f"bench-{time.strftime('%H%M')}", "--trials", "20",
                           "--set", f"data.train_images={args.sweep_images}", "--set", "data.test_images=2000",
                           "--set", f"train.epochs={args.sweep_epochs}", "--log-json"], args.lab_dir, result_file)
        figures["part"] = part
        with open(args.out, "a") as handle:
            handle.write(json.dumps(figures) + "\n")
        print(json.dumps({k: v for k, v in figures.items() if k != "result"}), flush=True)


if __name__ == "__main__":
    main()
