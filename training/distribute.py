"""One model trained by several machines on TensorFlow's own engine: ``tf.distribute.MultiWorkerMirroredStrategy``.

Every worker runs the same command. Each keeps a copy of the model, computes the gradients of its own part of
every batch and all-reduces them with the others (gRPC between the hosts), so the copies stay identical. The
cluster comes from the training config (``distribute: {cluster: [host:port, ...], task_index: N}``, or
``riim train --cluster ... --task-index N``), written to ``TF_CONFIG`` here; with no cluster in the config, a
``TF_CONFIG`` set by the platform (Vertex AI, SageMaker, a Kubernetes Job) is used as it is.

In the fine-tuning recipe (:mod:`training.finetune`) the cluster trains the head: each worker extracts the
features of its own shard of the training images (the expensive part) and feeds only that shard; validation
loss is reduced over all workers, so early stopping stops everyone at the same epoch. Worker 0, the chief,
also evaluates the test split and publishes; the other workers checkpoint to their own folder (TensorFlow's
multi-worker save pattern: never two writers on one path) and publish nothing.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.training_config import TrainConfig


@dataclass(frozen=True)
class Cluster:
    """The workers (``host:port``) and this process's place among them; worker 0 is the chief."""
    workers: tuple[str, ...]
    index: int
    from_platform: bool = False  # TF_CONFIG was set by the platform, not by the config

    @property
    def chief(self) -> bool:
        return self.index == 0

    def tf_config(self) -> dict:
        return {"cluster": {"worker": list(self.workers)}, "task": {"type": "worker", "index": self.index}}

    def shard(self, ids: np.ndarray) -> np.ndarray:
        """This worker's rows of ``ids``: every n-th, starting at its index (sizes differ by at most one)."""
        return ids[self.index::len(self.workers)]

    def work_dir(self, work_dir: Path | None) -> Path | None:
        """Where this worker checkpoints: the chief in ``work_dir``, the others in ``work_dir/worker-N``."""
        if work_dir is None or self.chief:
            return work_dir
        return Path(work_dir) / f"worker-{self.index}"


def cluster(config: TrainConfig) -> Cluster | None:
    """The config's cluster, else the platform's ``TF_CONFIG`` (its ``chief`` task first), else ``None``."""
    if config.distribute.cluster:
        return Cluster(tuple(config.distribute.cluster), config.distribute.task_index)
    if "TF_CONFIG" not in os.environ:
        return None
    spec = json.loads(os.environ["TF_CONFIG"])
    chiefs, workers = spec["cluster"].get("chief", []), spec["cluster"].get("worker", [])
    task = spec["task"]
    if len(chiefs) + len(workers) < 2 or task["type"] not in ("chief", "worker"):
        return None  # a one-machine TF_CONFIG, or an evaluator / parameter server: not ours
    index = task["index"] + (len(chiefs) if task["type"] == "worker" else 0)
    return Cluster(tuple(chiefs + workers), index, from_platform=True)


def strategy(member: Cluster):
    """Join the cluster: sets ``TF_CONFIG`` and creates the strategy, which must come before any other
    TensorFlow op of the process. Blocks until every worker has started."""
    if not member.from_platform:
        os.environ["TF_CONFIG"] = json.dumps(member.tf_config())
    from training.tf import tf

    return tf.distribute.MultiWorkerMirroredStrategy()


class ClusterError(RuntimeError):
    """Another worker of the cluster stopped: TensorFlow aborted the collective ops of this one."""


@contextlib.contextmanager
def peers_watched(member: Cluster):
    """Turn TensorFlow's ``UnavailableError`` — a peer stopped sending heartbeats or refuses connections, seen
    within seconds — into a :class:`ClusterError` that names the peer and says what to do."""
    from training.tf import tf

    try:
        yield
    except tf.errors.UnavailableError as error:
        peers = sorted({int(task) for task in re.findall(r"/job:\w+/(?:replica:\d+/)?task:(\d+)", error.message)}
                       - {member.index})
        who = ", ".join(f"worker {task} ({member.workers[task]})" for task in peers if task < len(member.workers))
        traceback.clear_frames(error.__traceback__)  # TensorFlow's all-reduce thread pool, left open, goes now
        raise ClusterError(f"{who or 'another worker of the cluster'} stopped, so this worker stopped too: start "
                           "every worker again (with the same --work-dir each one resumes from its last "
                           "checkpoint)") from error


def sharded_input(x: np.ndarray, y: np.ndarray, weights: dict | None, batch_size: int, seed: int, total: int):
    """Keras input for this worker's shard (``x``, ``y``) of ``total`` training rows: shuffled every epoch,
    class weights as sample weights, ``batch_size`` split over all replicas. Returns ``(input,
    steps_per_epoch)``; every worker runs the same number of steps (the collective ops need it), about one
    pass over its shard."""
    from training.tf import keras, tf

    sample_weight = (np.array([weights[int(label)] for label in y], dtype=np.float32) if weights
                     else np.ones(len(y), dtype=np.float32))

    def dataset(context):
        rows = tf.data.Dataset.from_tensor_slices((x, y, sample_weight))
        rows = rows.shuffle(len(y), seed=seed, reshuffle_each_iteration=True).repeat()
        return rows.batch(context.get_per_replica_batch_size(batch_size)).prefetch(2)

    return keras.utils.experimental.DatasetCreator(dataset), math.ceil(total / batch_size)
