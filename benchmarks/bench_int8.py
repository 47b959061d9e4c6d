"""fp32 vs int8 ONNX of the served default model, side by side in one run (1 and 2 ORT threads).

    .venv/bin/python benchmarks/bench_int8.py [--models-dir models/store] [--repeats 60]

Two ways, each interleaving the fp32 and int8 sessions so the machine's load hits both:
- "file": the registry's files with ONNX Runtime's default session, every output, a random input;
- "served": the sessions as the server opens them (``app.inference.open_session``: the graph optimised once
  and cached, threads that sleep between runs) on a real photo preprocessed by the card, asking only for the
  outputs a plain predict returns (``LoadedModel.answer_outputs``).
Prints the p50 of each and the int8/fp32 ratio. ``--profile`` adds ONNX Runtime's per-operator time of each
file (1 thread), convolutions split into depthwise and the others; ``--variants`` quantizes the fp32 file again
with other ``quantize_static`` choices (per tensor, reduce_range, QOperator, S8S8, U8U8), calibrated on the
export's calibration images, and times each beside fp32 (1 thread).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.inference import LoadedModel, open_session
from models import preprocess
from models.registry import DEFAULT_ROOT, Registry
from training import real_photos

FORMATS = ("onnx", "onnx_int8")


def file_session(path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def p50s(sessions: dict, feed: dict, outputs: list[str] | None, repeats: int) -> dict[str, float]:
    """The median latency (ms) of each session, runs interleaved after 5 warm-up rounds."""
    times = {fmt: [] for fmt in sessions}
    for round_ in range(5 + repeats):
        for fmt, running in sessions.items():
            started = time.perf_counter()
            running.run(outputs, feed)
            if round_ >= 5:
                times[fmt].append((time.perf_counter() - started) * 1e3)
    return {fmt: statistics.median(samples) for fmt, samples in times.items()}


def profile(path: Path, feed: dict, repeats: int) -> dict[str, float]:
    """Mean ms per run of each operator type, Conv / QLinearConv split into "depthwise" and the rest."""
    import json

    import onnx

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.enable_profiling = 1, True
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # the saved graph is only read back for node names: no hardware warning
    with tempfile.TemporaryDirectory() as scratch:
        options.profile_file_prefix = str(Path(scratch) / "profile")
        options.optimized_model_filepath = str(Path(scratch) / "optimised.onnx")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(repeats):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
        depthwise = {node.name for node in onnx.load(options.optimized_model_filepath).graph.node
                     if any(a.name == "group" and a.i > 1 for a in node.attribute)}
    totals: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            if op.endswith("Conv"):
                op += " depthwise" if event["name"].removesuffix("_kernel_time") in depthwise else " other"
            totals[op] = totals.get(op, 0.0) + event["dur"] / 1e3 / repeats
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def variants(registry: Registry, name: str, version: str, card: dict, feed: dict, repeats: int) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType

    from export import heldout, onnx_export

    choices = {"as exported": {}, "per tensor": {"per_channel": False}, "reduce_range": {"reduce_range": True},
               "QOperator": {"quant_format": QuantFormat.QOperator},
               "S8S8": {"activation_type": QuantType.QInt8}, "U8U8": {"weight_type": QuantType.QUInt8}}
    fp32 = registry.file(name, version, "onnx")
    calibration, _ = heldout.calibration_set(card)
    with tempfile.TemporaryDirectory() as scratch:
        sessions = {"fp32": file_session(fp32, 1)}
        for label, options in choices.items():
            path = onnx_export.quantize_onnx(fp32, Path(scratch) / f"{len(sessions)}.onnx", calibration, **options)
            sessions[label] = file_session(path, 1)
        median = p50s(sessions, feed, None, repeats)
    for label, ms in median.items():
        print(f"variant {label:12s}: p50 {ms:.2f} ms, /fp32 {ms / median['fp32']:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=str(DEFAULT_ROOT))
    parser.add_argument("--model", default="animals")
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--profile", action="store_true", help="per-operator times of each file (1 thread)")
    parser.add_argument("--variants", action="store_true", help="other int8 quantization choices (1 thread)")
    args = parser.parse_args()
    registry = Registry(args.models_dir)
    version = registry.resolve(args.model)
    card = registry.card(args.model, version)
    noise = {"image": np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype(np.float32)}
    photo = {"image": preprocess.preprocess(real_photos.cat_dog_photos()[0].image, card["input"])[None]}
    answer = LoadedModel.load(registry, args.model, version, 1, "fp32").answer_outputs
    with tempfile.TemporaryDirectory() as cache:
        for threads in (1, 2):
            ways = {
                "file": ({fmt: file_session(registry.file(args.model, version, fmt), threads) for fmt in FORMATS},
                         noise, None),
                "served": ({fmt: open_session(registry, args.model, version, fmt, threads, Path(cache))
                            for fmt in FORMATS}, photo, answer),
            }
            for way, (sessions, feed, outputs) in ways.items():
                median = p50s(sessions, feed, outputs, args.repeats)
                fp32, int8 = median["onnx"], median["onnx_int8"]
                print(f"{threads} thread(s), {way:6s}: fp32 p50 {fp32:.2f} ms, int8 p50 {int8:.2f} ms, "
                      f"int8/fp32 {int8 / fp32:.2f}", flush=True)
    if args.profile:
        for fmt in FORMATS:
            times = profile(registry.file(args.model, version, fmt), noise, args.repeats)
            print(f"{fmt} per operator (ms, 1 thread): "
                  + ", ".join(f"{op} {ms:.2f}" for op, ms in times.items() if ms >= 0.01), flush=True)
    if args.variants:
        variants(registry, args.model, version, card, noise, args.repeats)


if __name__ == "__main__":
    main()
