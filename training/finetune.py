"""Fine-tune EfficientNet-Lite0 on an image folder and publish the result as a registry version.

The recipe, top to bottom:

1. **Data** — scan + validate the folder, split it (duplicates never cross splits), decode every image
   once to the card's input size.
2. **Features, computed once** — the backbone is cut where the trainable part begins. With BatchNorm and
   the lower layers frozen, that part's output (the "trunk features") is a fixed function of the image, so
   it is computed once per image and per augmented copy and cached. Training then only runs the layers
   above the cut: exact, and seconds instead of minutes.
3. **Stage 1** — a new head, Dropout → Dense(softmax) on the 1280-d embedding (global average pool), is
   trained on cached embeddings with early stopping on validation loss and class weights.
4. **Cross-validation** of that recipe (optional, :mod:`training.crossval`).
5. **Stage 2** (optional) — the last ``trainable_blocks`` MBConv blocks and ``top_conv`` are unfrozen
   (BatchNorm stays frozen) and trained with the head at a lower learning rate, decayed along a half cosine
   over the stage's epochs, on the cached trunk features, with label smoothing (``finetune.label_smoothing``:
   without it the unfrozen blocks grow over-confident within 1–2 epochs, validation loss rises while
   accuracy still improves, and early stopping keeps an early epoch).
6. **Test** metrics, curves and the fit verdict (:mod:`training.diagnosis`); optional pruning table and
   quantization-aware training (:mod:`training.prune`).

The published model has the outputs ``probabilities``, ``embedding``, ``feature_map`` and — only when
stage 2 did not change the backbone — ``imagenet_probabilities`` (tags), with the head's Dense weights in
``head.npz`` so class activation maps can be computed from the ONNX outputs.

With a ``work_dir``, features and per-epoch weights are checkpointed there; running again with the same
data and config resumes (finished stages are loaded, an interrupted one continues at its last epoch;
early stopping and the optimizer start afresh at that point).

With ``distribute.cluster`` in the config, several workers train the head together
(:mod:`training.distribute`); each extracts features of its own shard only, and only the chief publishes.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from models import atomic
from models.preprocess import load_image
from models.registry import Registry
from models.training_config import HeadConfig, TrainConfig
from training import augment, backbone, crossval, data, default_model, diagnosis, distribute
from training.progress import Progress
from training.tf import keras, tf

RECIPE = "finetune/2"  # /2: label smoothing in stage 2
PREDICT_BATCH = 64


@dataclass
class Classifier:
    """The full model and its two halves around the cut (they share layers, so training one trains all)."""
    model: keras.Model  # image → probabilities, [imagenet_probabilities,] embedding, feature_map
    trunk: keras.Model  # image → trunk features (frozen)
    top: keras.Model  # trunk features → probabilities (trained in stage 2)
    to_embedding: keras.Model | None  # trunk features → embedding (None when the cut is the embedding)
    net: keras.Model  # the backbone
    trainable_blocks: int


def build_classifier(input_size: int, n_labels: int, dropout: float, trainable_blocks: int = 0) -> Classifier:
    net = backbone.build_efficientnet_lite0(input_size, include_top=True, trainable_blocks=0)
    imagenet, embedding, feature_map = default_model.named_outputs(net)
    x = keras.layers.Dropout(dropout, name="head_dropout")(embedding)
    probabilities = keras.layers.Dense(n_labels, activation="softmax", name="probabilities")(x)
    model = keras.Model(net.input, [probabilities, imagenet, embedding, feature_map], name="classifier")
    if trainable_blocks:
        first = f"block{backbone.NUM_BLOCKS - trainable_blocks}_"
        cut = next(layer for layer in net.layers if layer.name.startswith(first)).input
        to_embedding = keras.Model(cut, embedding)
    else:
        cut, to_embedding = embedding, None
    return Classifier(model, keras.Model(net.input, cut), keras.Model(cut, probabilities), to_embedding, net,
                      trainable_blocks)


def serving_model(classifier: Classifier, keep_imagenet: bool) -> keras.Model:
    """The published model: drops ``imagenet_probabilities`` when the backbone was fine-tuned."""
    outputs = classifier.model.outputs if keep_imagenet else [classifier.model.outputs[i] for i in (0, 2, 3)]
    return keras.Model(classifier.model.input, outputs, name="classifier")


def head_model(dim: int, n_labels: int, dropout: float) -> keras.Model:
    """Stage 1 on its own: embedding → Dropout → Dense(softmax), named like the classifier's head."""
    inputs = keras.Input((dim,), name="embedding")
    x = keras.layers.Dropout(dropout, name="head_dropout")(inputs)
    return keras.Model(inputs, keras.layers.Dense(n_labels, activation="softmax", name="probabilities")(x))


class _Report(keras.callbacks.Callback):
    """Per epoch: history, progress file + log line, and an atomic checkpoint when a work dir is used."""

    def __init__(self, progress: Progress, epochs: int, history: dict, checkpoint=None):
        super().__init__()
        self.progress, self.epochs, self.checkpoint = progress, epochs, checkpoint
        self.history = {key: list(values) for key, values in history.items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.progress.step(epoch + 1, self.epochs, **(logs or {}))
        if self.checkpoint:
            self.checkpoint.save(self.model, epoch + 1, self.history)


class Checkpoints:
    """Per-stage weights + ``state.json`` in a work dir, valid only for the same data and config (``key``)."""

    def __init__(self, directory: Path, key: str):
        self.dir, self.key = Path(directory), key
        self.dir.mkdir(parents=True, exist_ok=True)
        state_path = self.dir / "state.json"
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        self.state = state if state.get("key") == key else {"key": key, "stages": {}}
        self.stage = None

    def for_stage(self, stage: str):
        self.stage = stage
        return self

    def save(self, model, epoch: int, history: dict, done: bool = False) -> None:
        with atomic.replacing(self.dir / f"{self.stage}.weights.h5") as temp:
            model.save_weights(temp)
        self.state["stages"][self.stage] = {"epoch": epoch, "done": done,
                                            "history": {k: [float(v) for v in vs] for k, vs in history.items()}}
        atomic.write_json(self.dir / "state.json", self.state)

    def restore(self, stage: str, model) -> dict | None:
        """Load the stage's weights into ``model``; returns its saved state or ``None``."""
        saved = self.state["stages"].get(stage)
        if saved:
            model.load_weights(self.dir / f"{stage}.weights.h5")
        return saved

    def cached(self, name: str, compute):
        """``compute()``'s dict of arrays, stored once as ``name.npz`` (put what they depend on in ``name``)."""
        path = self.dir / f"{name}.npz"
        if path.is_file():  # written atomically: present means complete
            with np.load(path) as stored:
                return {k: stored[k] for k in stored.files}
        arrays = compute()
        with atomic.replacing(path) as temp:
            np.savez(temp, **arrays)
        return arrays


def smoothed_crossentropy(smoothing: float):
    """Cross-entropy of integer labels against smoothed targets: ``1 - smoothing`` on the true class, plus
    ``smoothing / classes`` on every class (tf_keras' sparse loss has no smoothing)."""
    def loss(y_true, y_pred):
        targets = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), tf.shape(y_pred)[-1])
        return keras.losses.categorical_crossentropy(targets, y_pred, label_smoothing=smoothing)
    return loss


def fit(model, x, y, validation, *, epochs: int, learning_rate: float, batch_size: int, patience: int,
        class_weight: dict | None, progress: Progress, stage: str, checkpoints: Checkpoints | None = None,
        early_stopping: bool = True, steps_per_epoch: int | None = None, cosine: bool = False,
        label_smoothing: float = 0.0) -> dict:
    """Compile and train ``model``, resuming from ``checkpoints``; returns the full per-epoch history.
    ``x`` is arrays, or with ``steps_per_epoch`` a batched input that carries its own sample weights.
    With ``cosine`` the learning rate follows a half cosine over the ``epochs`` (taken at each epoch's
    middle, so a resumed run gets the same rate for the same epoch). With ``label_smoothing`` the loss (and
    so the curves' loss and early stopping's) is :func:`smoothed_crossentropy`."""
    loss = smoothed_crossentropy(label_smoothing) if label_smoothing else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"])
    progress.stage(stage, epochs)
    saved = checkpoints.restore(stage, model) if checkpoints else None
    history = saved["history"] if saved else {}
    if saved and (saved["done"] or saved["epoch"] >= epochs):
        return history
    monitor = "val_loss" if validation is not None else "loss"
    report = _Report(progress, epochs, history, checkpoints.for_stage(stage) if checkpoints else None)
    callbacks = [report]
    if early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor, patience=patience, restore_best_weights=True))
    if cosine:  # after ``report``: the rate it adds to the logs stays out of the curves
        callbacks.append(keras.callbacks.LearningRateScheduler(
            lambda epoch: learning_rate * 0.5 * (1 + np.cos(np.pi * (epoch + 0.5) / epochs))))
    batching = {"steps_per_epoch": steps_per_epoch} if steps_per_epoch else {
        "batch_size": batch_size, "class_weight": class_weight, "shuffle": True}
    model.fit(x, y, epochs=epochs, initial_epoch=saved["epoch"] if saved else 0, validation_data=validation,
              verbose=0, callbacks=callbacks, **batching)
    if checkpoints:
        checkpoints.for_stage(stage).save(model, len(report.history["loss"]), report.history, done=True)
    return report.history


def best_epoch(history: dict) -> int:
    """0-based epoch early stopping kept (lowest validation loss, else lowest training loss)."""
    losses = history.get("val_loss") or history["loss"]
    return int(np.argmin(losses))


def _features(model, pixels, spec, progress: Progress, label: str, rows: np.ndarray | None = None,
              transform=None) -> np.ndarray:
    """``model``'s output for every image, or only for ``rows`` (the others stay zero), each image augmented
    by ``transform`` first when given, batch by batch (no augmented copy of the whole set in memory).
    Measured on 2 cores: preparing the next batch in a thread while the model runs is slower, not faster
    (TensorFlow already keeps both cores busy)."""
    rows = np.arange(len(pixels)) if rows is None else rows
    outputs = []
    progress.stage(label, len(rows), unit="image")
    for start in range(0, len(rows), PREDICT_BATCH):
        batch = pixels[rows[start:start + PREDICT_BATCH]]
        batch = batch if transform is None else augment.augment_batch(batch, transform)
        outputs.append(model.predict_on_batch(data.model_input(batch, spec)))
        progress.step(min(start + PREDICT_BATCH, len(rows)), len(rows))
    computed = np.concatenate(outputs)
    if len(rows) == len(pixels):
        return computed
    features = np.zeros((len(pixels), *computed.shape[1:]), dtype=computed.dtype)
    features[rows] = computed
    return features


@dataclass
class Result:
    """Everything a run produced, ready to publish."""
    model: keras.Model
    classes: list[str]
    spec: dict
    config: TrainConfig
    card: dict  # the sections training / metrics / optimization
    check_images: list  # a few test images (PIL) to prove the ONNX export is faithful
    keeps_imagenet: bool
    qat_model: keras.Model | None = None
    curves: dict = field(default_factory=dict)
    publishes: bool = True  # False on the workers of a cluster other than the chief


def run_key(dataset: data.Dataset, config: TrainConfig) -> str:
    payload = json.dumps({"dataset": dataset.fingerprint(), "config": config.to_dict(), "recipe": RECIPE},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def train(data_dir: str | Path, config: TrainConfig, work_dir: str | Path | None = None,
          progress: Progress | None = None) -> Result:
    """The whole recipe of the module docstring on ``data_dir``; returns the trained model and card sections."""
    progress = progress or Progress(bars=False)
    started = time.perf_counter()
    seconds = {}
    member = distribute.cluster(config)
    strategy = distribute.strategy(member) if member else None  # before any other TensorFlow op
    keras.utils.set_random_seed(config.seed)

    progress.stage("data")
    dataset = data.scan(data_dir, config.data.min_per_class)
    splits = data.split(dataset, config.data.validation_fraction, config.data.test_fraction, config.seed)
    spec = backbone.input_spec(config.input_size)
    pixels = data.load_pixels(dataset, spec)
    labels, classes = dataset.labels, dataset.classes
    paths = [s.path for s in dataset.samples]
    if member:
        work_dir = member.work_dir(work_dir)
    checkpoints = Checkpoints(Path(work_dir), run_key(dataset, config)) if work_dir else None
    train_ids, val_ids, test_ids = (np.array(splits[k], dtype=int) for k in data.SPLITS)
    rows = None  # features of every image
    if member:  # this worker's training shard; validation on all workers, test on the chief only
        train_ids, test_ids = member.shard(train_ids), test_ids if member.chief else test_ids[:0]
        rows = np.sort(np.concatenate([train_ids, val_ids, test_ids]))
    crossvalidates = bool(config.crossval.folds or config.crossval.leave_one_out)
    copy_rows = None if crossvalidates else train_ids  # augmented copies: training rows only, but CV trains on all
    seconds["data"] = time.perf_counter() - started

    blocks = config.finetune.trainable_blocks if config.finetune.enabled else 0
    classifier = build_classifier(config.input_size, len(classes), config.head.dropout, blocks)

    def compute_features():
        arrays = {"original": _features(classifier.trunk, pixels, spec, progress, "features", rows)}
        for copy in range(config.augment.copies if config.augment.enabled else 0):
            transform = augment.pipeline(config.augment, config.input_size, seed=config.seed * 1000 + copy)
            arrays[f"augmented{copy}"] = _features(classifier.trunk, pixels, spec, progress,
                                                   f"features (augmented copy {copy + 1})", copy_rows, transform)
        return arrays

    stamp = time.perf_counter()
    if checkpoints:  # the features depend on the images, their size, augmentation, seed, the cut and the rows
        depends = json.dumps([dataset.fingerprint(), config.input_size, config.augment.__dict__, config.seed, blocks]
                             + ([member.workers, member.index] if member else []) + [crossvalidates],
                             sort_keys=True)
        features = checkpoints.cached(f"features-{hashlib.sha256(depends.encode()).hexdigest()[:16]}",
                                      compute_features)
    else:
        features = compute_features()
    copies = [features[k] for k in sorted(features) if k.startswith("augmented")]
    if classifier.to_embedding is not None:
        def embed(trunk_features, chosen=None):  # only the rows that were computed; the others stay zero
            if chosen is None:
                return classifier.to_embedding.predict(trunk_features, batch_size=256, verbose=0)
            embedded = np.zeros((len(trunk_features), *classifier.to_embedding.output_shape[1:]), np.float32)
            embedded[chosen] = classifier.to_embedding.predict(trunk_features[chosen], batch_size=256, verbose=0)
            return embedded

        embeddings = embed(features["original"], rows)
        augmented_embeddings = [embed(c, copy_rows) for c in copies]
    else:
        embeddings, augmented_embeddings = features["original"], copies
    seconds["features"] = time.perf_counter() - stamp

    weights = None
    if config.class_weights:  # from the whole training split, so that the workers of a cluster agree
        train_labels = labels[splits["train"]]
        present = np.unique(train_labels)
        balanced = compute_class_weight("balanced", classes=present, y=train_labels)
        weights = {int(c): float(w) for c, w in zip(present, balanced)}

    def training_set(arrays, extra):
        parts = [arrays[train_ids]] + [copy[train_ids] for copy in extra]
        return np.concatenate(parts), np.tile(labels[train_ids], len(parts))

    validation = lambda arrays: (arrays[val_ids], labels[val_ids]) if len(val_ids) else None  # noqa: E731

    # Stage 1: the head on cached embeddings.
    stamp = time.perf_counter()
    head = head_model(embeddings.shape[1], len(classes), config.head.dropout)
    x, y = training_set(embeddings, augmented_embeddings)
    head_cfg: HeadConfig = config.head
    trained, steps = head, None
    if member:  # the same head trained by the cluster: a copy on every worker, gradients all-reduced
        with strategy.scope():
            trained = head_model(embeddings.shape[1], len(classes), head_cfg.dropout)
        total = len(splits["train"]) * (1 + len(augmented_embeddings))  # training rows of all workers
        (x, steps), y = distribute.sharded_input(x, y, weights, head_cfg.batch_size, config.seed, total), None
    with distribute.peers_watched(member) if member else contextlib.nullcontext():
        curves = {"head": fit(trained, x, y, validation(embeddings), epochs=head_cfg.epochs,
                              learning_rate=head_cfg.learning_rate, batch_size=head_cfg.batch_size,
                              patience=head_cfg.patience, class_weight=weights, progress=progress, stage="head",
                              checkpoints=checkpoints, steps_per_epoch=steps)}
    if member:
        head.set_weights(trained.get_weights())  # a plain copy: evaluation and export stay on this worker
    classifier.model.get_layer("probabilities").set_weights(head.get_layer("probabilities").get_weights())
    seconds["head"] = time.perf_counter() - stamp
    metrics = {}
    if len(test_ids):
        metrics["head_only_test"] = _evaluate(head, embeddings, labels, test_ids, classes, paths)
        progress.update(head_only_test_accuracy=metrics["head_only_test"]["accuracy"])  # a partial figure

    if config.crossval.folds or config.crossval.leave_one_out:
        stamp = time.perf_counter()

        def train_fold_head(fx, fy, epochs):
            fold_head = head_model(fx.shape[1], len(classes), head_cfg.dropout)
            fit(fold_head, fx, fy, None, epochs=epochs, learning_rate=head_cfg.learning_rate,
                batch_size=head_cfg.batch_size, patience=head_cfg.patience, class_weight=weights,
                progress=Progress(bars=False), stage="fold", early_stopping=False)
            return fold_head

        metrics["crossval"] = crossval.cross_validate(
            embeddings, augmented_embeddings or None, labels, dataset.groups, paths, classes, train_fold_head,
            best_epoch(curves["head"]) + 1, config.crossval.folds, config.crossval.leave_one_out, config.seed,
            progress)
        seconds["crossval"] = time.perf_counter() - stamp
        progress.update(crossval_accuracy=metrics["crossval"]["out_of_fold"]["accuracy"])

    final = head
    final_inputs = embeddings
    if blocks:
        # Stage 2: the top blocks + head on cached trunk features, lower learning rate, BatchNorm frozen,
        # label smoothing.
        stamp = time.perf_counter()
        backbone.freeze(classifier.net, blocks)
        ft = config.finetune
        x, y = training_set(features["original"], copies)
        curves["finetune"] = fit(classifier.top, x, y, validation(features["original"]), epochs=ft.epochs,
                                 learning_rate=ft.learning_rate, batch_size=ft.batch_size, patience=ft.patience,
                                 class_weight=weights, progress=progress, stage="finetune", checkpoints=checkpoints,
                                 cosine=True, label_smoothing=ft.label_smoothing)
        backbone.freeze(classifier.net, 0)
        final, final_inputs = classifier.top, features["original"]
        seconds["finetune"] = time.perf_counter() - stamp

    last_stage = list(curves)[-1]
    if len(test_ids):
        metrics["test"] = _evaluate(final, final_inputs, labels, test_ids, classes, paths)
        progress.update(test_accuracy=metrics["test"]["accuracy"])
    if len(val_ids):
        metrics["validation"] = _evaluate(final, final_inputs, labels, val_ids, classes, paths)
        metrics["diagnosis"] = {"stage": last_stage,
                                **diagnosis.verdict(curves[last_stage], best_epoch(curves[last_stage]))}
    metrics["curves"] = curves

    model = serving_model(classifier, keep_imagenet=not blocks)
    optimization = {}
    qat_model = None
    if config.pruning.sparsities or config.qat.enabled:
        from training import prune, qat  # tensorflow-model-optimization is imported only when asked for

        stamp = time.perf_counter()
        sets = {name: (pixels[ids], labels[ids]) for name, ids in zip(data.SPLITS, (train_ids, val_ids, test_ids))}
        if config.pruning.sparsities:
            optimization["pruning"] = prune.pruning_table(classifier, sets, spec, config, weights, progress)
            seconds["pruning"] = time.perf_counter() - stamp
        if config.qat.enabled:
            stamp = time.perf_counter()
            qat_model, optimization["qat"] = qat.quantization_aware(model, sets, spec, config, weights, progress)
            seconds["qat"] = time.perf_counter() - stamp

    seconds["total"] = time.perf_counter() - started
    card = {
        "training": {
            "recipe": RECIPE, "trained": True, "config": config.to_dict(),
            "dataset": {k: v for k, v in dataset.report().items() if k != "root"},
            "splits": data.split_hashes(dataset, splits),
            "stages": list(curves), "trainable_blocks": blocks,
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
        },
        "metrics": metrics,
        "optimization": optimization,
    }
    check = [load_image(dataset.root / paths[i]) for i in (test_ids if len(test_ids) else train_ids)[:2]]
    return Result(model, classes, spec, config, card, check, keeps_imagenet=not blocks, qat_model=qat_model,
                  curves=curves, publishes=member is None or member.chief)


def _evaluate(model, inputs, labels, ids, classes, paths) -> dict:
    probabilities = model.predict(inputs[ids], batch_size=256, verbose=0)
    return crossval.summarize(labels[ids], probabilities, classes, [paths[i] for i in ids])


def description(classes: list[str], fingerprint: str) -> dict:
    names = ", ".join(classes)
    return {"es": f"EfficientNet-Lite0 reentrenada con tus imágenes: {names} (datos {fingerprint[:12]}).",
            "en": f"EfficientNet-Lite0 fine-tuned on your images: {names} (data {fingerprint[:12]})."}


def publish(registry: Registry, name: str, result: Result, progress: Progress | None = None) -> str:
    """Write model.keras, head.npz (+ ImageNet labels, curves.png, QAT model) as a new version, not
    promoted: serving needs its ONNX file, which the export step adds before promotion."""
    progress = progress or Progress(bars=False)
    threshold = result.config.unknown_threshold
    card = {
        "schema_version": 1,
        "task": "image-classification",
        "description": description(result.classes, result.card["training"]["dataset"]["fingerprint"]),
        "labels": result.classes,
        "unknown_policy": {
            "rule": "max_probability_below", "threshold": threshold,
            "description": {"es": f"«desconocido» si ninguna clase llega a {threshold} de probabilidad.",
                            "en": f"'unknown' when no class reaches a probability of {threshold}."}},
        "backbone": {**backbone.DESCRIPTION, "parameters": int(result.model.count_params())},
        "input": result.spec,
        "outputs": {name: name for name in result.model.output_names},
        **result.card,
    }
    if result.keeps_imagenet:
        card["tags"] = {"output": "imagenet_probabilities", "top_k": 5, "labels_file": default_model.LABELS_FILE.name}
    with registry.publish(name, card, promote=False) as draft:
        progress.stage("publish")
        files = {"keras": "model.keras", "head": default_model.HEAD_FILE}
        result.model.save(draft.dir / "model.keras")
        default_model.write_head(result.model.get_layer("probabilities"), draft.dir / default_model.HEAD_FILE)
        if result.keeps_imagenet:
            (draft.dir / default_model.LABELS_FILE.name).write_text(default_model.LABELS_FILE.read_text())
            files["imagenet_labels"] = default_model.LABELS_FILE.name
        if diagnosis.plot_curves(result.curves, draft.dir / "curves.png"):
            files["curves"] = "curves.png"
        if result.qat_model is not None:
            # HDF5: the .keras format writes tfmot's quantize-layer variables under names it cannot load back
            result.qat_model.save(draft.dir / "model_qat.h5")
            files["qat_keras"] = "model_qat.h5"
        draft.card["files"] = files
    return draft.version
