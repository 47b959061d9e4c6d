"""Distributed training (training/distribute.py): two `riim train --cluster` workers on 127.0.0.1 train one head
with tf.distribute.MultiWorkerMirroredStrategy, next to a one-worker run of the same config on the same data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from models import training_config
from models.preprocess import load_image, preprocess_batch
from models.registry import Registry
from tests.support import free_ports, wait_until
from training import distribute

CLASSES = ["bag", "sneaker", "trouser"]
CONFIG = {"input_size": 64, "augment": {"enabled": False}, "head": {"epochs": 15, "batch_size": 16, "patience": 15}}
RIIM = [str(Path(sys.executable).with_name("riim"))]


def riim_train(data_dir: Path, store: Path, work: Path, name: str, *extra: str, settings: dict = CONFIG,
               stderr=subprocess.PIPE) -> subprocess.Popen:
    config = work.parent / f"{name}.json"
    config.write_text(json.dumps(settings))
    return subprocess.Popen(RIIM + ["train", "--data", str(data_dir), "--name", name, "--config", str(config),
                                    "--models-dir", str(store), "--work-dir", str(work), "--log-json", *extra],
                            stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env={k: v for k, v in os.environ.items() if k != "TF_CONFIG"})


def feature_rows(stderr: str) -> int:
    """Images this worker extracted features for (its progress line of the 'features' stage)."""
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return max(line.get("epochs", 0) for line in lines if line.get("stage") == "features")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Worker 0 + worker 1 of a cluster and a one-worker run, all started at once (~3 TensorFlow starts)."""
    from training import importers

    root = tmp_path_factory.mktemp("distributed")
    data_dir = importers.fashion_mnist(root / "data", 20, CLASSES)
    cluster = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
    started = {f"worker{i}": riim_train(data_dir, root / "store", root / "work", "together", "--cluster", cluster,
                                        "--task-index", str(i)) for i in range(2)}
    started["single"] = riim_train(data_dir, root / "single-store", root / "single-work", "alone")
    finished = {}
    try:
        for key, process in started.items():
            out, err = process.communicate(timeout=600)
            finished[key] = (process.returncode, out, err)
    finally:  # a worker that failed to start leaves the other waiting for it
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return root, finished


@pytest.mark.tensorflow  # in the child processes
@pytest.mark.slow
def test_two_workers_train_one_model_and_publish_it_once(runs):
    root, finished = runs
    for key, (code, out, err) in finished.items():
        assert code == 0, (key, out, err[-3000:])
    assert "together:v1 published" in finished["worker0"][1]
    assert "chief (worker 0) publishes" in finished["worker1"][1]
    registry = Registry(root / "store")
    assert registry.versions("together") == ["v1"]
    card = registry.card("together")
    assert len(card["training"]["config"]["distribute"]["cluster"]) == 2
    # each worker saw its own shard of the 42 training images; validation on both, test on the chief only
    splits = {name: split["images"] for name, split in card["training"]["splits"].items()}
    assert feature_rows(finished["worker0"][2]) == (splits["train"] + 1) // 2 + splits["validation"] + splits["test"]
    assert feature_rows(finished["worker1"][2]) == splits["train"] // 2 + splits["validation"]
    # one model: the non-chief's last checkpoint (its own folder) holds the published head's weights
    import h5py

    published = np.load(registry.file("together", None, "head"))
    with h5py.File(root / "work" / "worker-1" / "head.weights.h5") as weights:
        arrays = []
        weights.visititems(lambda _, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    assert any(a.shape == published["kernel"].shape and np.allclose(a, published["kernel"]) for a in arrays)


@pytest.mark.tensorflow
@pytest.mark.slow
def test_accuracy_matches_a_single_worker(runs, tmp_path):
    """Both published ONNX models on 90 unseen Fashion-MNIST test images: same accuracy within noise."""
    from training import data, importers

    root, _ = runs
    held_out = data.scan(importers.fashion_mnist(tmp_path / "held", 30, CLASSES, source="test"))
    images = [load_image(held_out.root / s.path) for s in held_out.samples]
    accuracy = {}
    for name, store in (("together", "store"), ("alone", "single-store")):
        registry = Registry(root / store)
        session = ort.InferenceSession(str(registry.file(name, None, "onnx")), providers=["CPUExecutionProvider"])
        batch = preprocess_batch(images, registry.card(name)["input"])
        probabilities = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": batch})))
        accuracy[name] = float(np.mean(probabilities["probabilities"].argmax(1) == held_out.labels))
    assert min(accuracy.values()) >= 0.85, accuracy
    assert abs(accuracy["together"] - accuracy["alone"]) <= 0.1, accuracy


@pytest.mark.tensorflow  # in the child processes
@pytest.mark.slow
def test_a_worker_that_dies_stops_the_other_with_a_clear_error(tmp_path):
    """TensorFlow's heartbeats see the dead peer within seconds: the survivor says who stopped and what to do."""
    from training import importers

    data_dir = importers.fashion_mnist(tmp_path / "data", 10, CLASSES)
    cluster = ",".join(f"127.0.0.1:{port}" for port in free_ports(2))
    endless = {**CONFIG, "head": {"epochs": 1000, "batch_size": 16, "patience": 1000}}
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = []
    for i, log in enumerate(logs):
        with log.open("w") as stderr:  # the child keeps its own copy of the descriptor
            workers.append(riim_train(data_dir, tmp_path / "store", tmp_path / "work", "doomed", "--cluster",
                                      cluster, "--task-index", str(i), settings=endless, stderr=stderr))
    try:
        wait_until(lambda: logs[0].read_text().count('"stage": "head"') > 3 or workers[0].poll() is not None,
                   300, lambda: logs[0].read_text()[-2000:])
        assert workers[0].poll() is None, logs[0].read_text()[-3000:]
        workers[1].kill()
        workers[0].wait(timeout=120)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
            worker.stdout.close()
    log = logs[0].read_text()
    assert workers[0].returncode == 1, log[-3000:]
    assert f"Error: worker 1 ({cluster.split(',')[1]}) stopped, so this worker stopped too" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_cluster_comes_from_the_config_or_the_platform(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.cluster(training_config.TrainConfig()) is None
    member = distribute.cluster(training_config.from_dict(
        {"distribute": {"cluster": ["a:1", "b:2", "c:3"], "task_index": 2}}))
    assert member.tf_config() == {"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker", "index": 2}}
    assert not member.chief and list(member.shard(np.arange(8))) == [2, 5]
    assert member.work_dir(Path("w")) == Path("w/worker-2")
    # Vertex AI style: a chief task plus workers; the chief is worker 0
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    member = distribute.cluster(training_config.TrainConfig())
    assert (member.workers, member.index, member.from_platform) == (("c:1", "w:1", "w:2"), 2, True)


def test_config_rejects_what_a_cluster_cannot_do():
    with pytest.raises(training_config.ConfigError) as error:
        training_config.from_dict({"distribute": {"cluster": ["a:1", "b"], "task_index": 2},
                                   "finetune": {"enabled": True}})
    assert error.value.problems == ["distribute.cluster[1]: must be host:port, got 'b'"]
    with pytest.raises(training_config.ConfigError) as error:
        training_config.from_dict({"distribute": {"cluster": ["a:1", "b:2"], "task_index": 2},
                                   "finetune": {"enabled": True}, "crossval": {"folds": 3}})
    assert error.value.problems == [
        "distribute.task_index: must be < 2 (the number of workers in distribute.cluster), got 2",
        "finetune.enabled: not available with distribute.cluster (a cluster trains the head only)",
        "crossval: not available with distribute.cluster (a cluster trains the head only)"]
