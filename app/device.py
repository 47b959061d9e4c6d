"""What this machine offers for inference, found without TensorFlow (ONNX Runtime, /proc, nvidia-smi)."""
from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess

import onnxruntime as ort


def cpu() -> dict:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "cores": os.cpu_count(), "usable_cores": usable, "machine": platform.machine()}


@functools.cache
def gpus() -> tuple[dict, ...]:
    """NVIDIA GPUs reported by ``nvidia-smi`` (empty when there is none or no driver); probed once per
    process, since running it takes up to seconds and the hardware does not change while serving."""
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    found = []
    for line in out.stdout.strip().splitlines() if out.returncode == 0 else []:
        name, memory, driver = (part.strip() for part in line.split(","))
        found.append({"name": name, "memory_mib": int(float(memory)), "driver": driver})
    return tuple(found)


def describe() -> dict:
    available = ort.get_available_providers()
    found = gpus()
    return {
        "cpu": cpu(),
        "gpus": [dict(gpu) for gpu in found],
        "accelerator": "gpu" if found and "CUDAExecutionProvider" in available else "cpu",
        "onnxruntime_providers": available,
        "serving_provider": "CPUExecutionProvider",
    }
