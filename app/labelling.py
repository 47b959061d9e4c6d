"""Labelling stored uploads for a project (a model name and its classes), uncertainty first.

- The queue lists stored uploads with the latest prediction of each (the project's model if it answered,
  else any model), ordered by uncertainty: ``margin`` (1 − (p1 − p2)) or normalised ``entropy``.
- A label is a row in :class:`Label`; rows are never rewritten, so the latest row of an (upload, project)
  pair is its current label and the older ones are its history (who, when). ``status`` is ``labelled``
  (with a class; a new class joins the project), ``skipped`` or ``bad`` (a bad image).
- Every ``LABEL_HOLDOUT_EVERY``-th image labelled with a class is kept aside as the project's fixed
  held-out set (``holdout``): it is never written into a training folder and every new version is
  evaluated on it next to its parent (see :mod:`app.jobs`). The flag stays with the image when relabelled.
- Bulk labelling: k-means (numpy) on the embeddings of the uploads, computed with ONNX Runtime by the
  project's model (or the default model) and stored in :class:`Embedding` the first time they are needed.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
import sqlite3

import numpy as np
from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from sqlalchemy import (JSON, Boolean, DateTime, Integer, LargeBinary, String, UniqueConstraint, case, event,
                        func, select)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from app import params, storage
from app.auth import admin_required, current_user
from app.db import Prediction, db
from app.errors import ApiError
from app.inference import model_cache
from models.card import IMAGE_TASK
from models.preprocess import load_image, preprocess_batch
from models.registry import RegistryError

bp = Blueprint("labelling", __name__)
API = "/api/v1/labelling"
CLASS_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # a class is an image-folder name too
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # the registry's model-name rule
STATUSES = ("labelled", "skipped", "bad")
ORDERS = ("margin", "entropy", "date")
QUEUE_STATUSES = ("unlabelled", "labelled", "skipped", "bad", "all")
MAX_CLASSES = 50
MAX_ITEMS = 500  # labels per request (bulk, import)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Project(db.Model):
    """A model to train from labelled uploads: its registry name and its classes (in order of creation)."""

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    classes: Mapped[list] = mapped_column(JSON)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    def as_json(self) -> dict:
        return {"name": self.name, "classes": self.classes, "created": self.created.isoformat()}


class Label(db.Model):
    """One labelling decision (append-only: the latest row per upload and project is the current one)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    upload_sha256: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(64))
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    user: Mapped[str] = mapped_column(String(64))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    def as_json(self) -> dict:
        return {"sha256": self.upload_sha256, "status": self.status, "label": self.label, "holdout": self.holdout,
                "user": self.user, "created": self.created.isoformat()}


class Embedding(db.Model):
    """The embedding of a stored upload by one model version (float32 bytes), for clustering."""

    __table_args__ = (UniqueConstraint("upload_sha256", "model_name", "model_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upload_sha256: Mapped[str] = mapped_column(String(64), index=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(16))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


# --- reading labels ----------------------------------------------------------------------------------

def current_labels(project: str) -> dict[str, Label]:
    """upload sha256 → its current :class:`Label` row in ``project``."""
    latest = (select(func.max(Label.id)).where(Label.project == project).group_by(Label.upload_sha256)
              .scalar_subquery())
    rows = db.session.scalars(select(Label).where(Label.id.in_(latest)))
    return {row.upload_sha256: row for row in rows}


def labelled_images(project: str) -> list[tuple[storage.Upload, Label]]:
    """(upload, label) of every image of ``project`` currently labelled with a class and still stored."""
    labels = {sha: row for sha, row in current_labels(project).items() if row.status == "labelled"}
    uploads = db.session.scalars(select(storage.Upload).where(storage.Upload.sha256.in_(labels)))
    return sorted(((upload, labels[upload.sha256]) for upload in uploads), key=lambda pair: pair[1].id)


def uncertainty(probabilities: dict, order: str) -> float:
    """0 = sure, 1 = undecided: 1 − (p1 − p2) for ``margin``, entropy / log(n) for ``entropy``."""
    p = sorted(map(float, probabilities.values()), reverse=True)
    if len(p) < 2:
        return 0.0
    if order == "entropy":
        total = sum(p)
        return -sum(q / total * math.log(q / total) for q in p if q > 0) / math.log(len(p))
    return 1.0 - (p[0] - p[1])


def get_project(name: str) -> Project:
    project = db.session.get(Project, name) if PROJECT_NAME.fullmatch(name) else None
    if project is None:
        raise ApiError(404, "unknown_project", project=name[:80])
    return project


# --- writing labels ----------------------------------------------------------------------------------

def _check_class(name) -> str:
    if not isinstance(name, str) or not CLASS_NAME.fullmatch(name):
        raise ApiError(400, "bad_class_name", value=str(name)[:80])
    return name


def add_label(project: Project, sha256: str, status: str, label: str | None, user: str,
              known: dict[str, Label]) -> Label:
    """Add one decision to the session (the caller commits); ``known`` = :func:`current_labels`, kept current."""
    if status not in STATUSES:
        raise ApiError(400, "bad_param", name="status", value=str(status)[:80])
    storage.get_or_404(sha256 if isinstance(sha256, str) else "")
    if status == "labelled":
        label = _check_class(label)
        if label not in project.classes:
            if len(project.classes) >= MAX_CLASSES:
                raise ApiError(400, "too_many_classes", limit=MAX_CLASSES)
            project.classes = [*project.classes, label]
    else:
        label = None
    previous = known.get(sha256)
    if previous is not None and previous.status == "labelled":
        holdout = previous.holdout
    elif status == "labelled":
        every = current_app.config["LABEL_HOLDOUT_EVERY"]
        in_class = sum(1 for row in known.values() if row.status == "labelled" and row.label == label)
        holdout = bool(every) and (in_class + 1) % every == 0
    else:
        holdout = False
    row = Label(project=project.name, upload_sha256=sha256, status=status, label=label, holdout=holdout,
                user=user, created=_now())
    db.session.add(row)
    db.session.flush()
    known[sha256] = row
    return row


def add_labels(project: Project, items) -> list[Label]:
    """Validate and store a list of ``{"sha256", "status", "label"}`` decisions in one transaction."""
    if not isinstance(items, list) or not items:
        raise ApiError(400, "missing_field", field="items")
    if len(items) > MAX_ITEMS:
        raise ApiError(400, "too_many_items", limit=MAX_ITEMS)
    known, user, rows = current_labels(project.name), current_user().username, []
    try:
        for item in items:
            if not isinstance(item, dict):
                raise ApiError(400, "missing_field", field="sha256")
            status = item.get("status", "labelled" if item.get("label") else None)
            rows.append(add_label(project, item.get("sha256"), status, item.get("label"), user, known))
    except ApiError:
        db.session.rollback()
        raise
    db.session.commit()
    return rows


# --- queue -------------------------------------------------------------------------------------------

def _latest_labels(project: str):
    """Subquery: the id of the current :class:`Label` row of each upload in ``project``."""
    return (select(Label.upload_sha256, func.max(Label.id).label("id")).where(Label.project == project)
            .group_by(Label.upload_sha256).subquery())


def _latest_predictions(project: str):
    """Subquery: the id of each upload's latest prediction, preferring the project's model."""
    own = func.max(case((Prediction.model_name == project, Prediction.id)))
    return (select(Prediction.image_sha256, func.coalesce(own, func.max(Prediction.id)).label("id"))
            .group_by(Prediction.image_sha256).subquery())


def _sql_uncertainty(probabilities: str, order: str) -> float:
    """:func:`uncertainty` of a stored (JSON) prediction, registered in SQLite as ``riim_uncertainty`` so that
    the queue is ordered and paged in SQL."""
    return uncertainty(json.loads(probabilities), order)


@event.listens_for(Engine, "connect")
def _register_functions(connection, _record) -> None:
    if isinstance(connection, sqlite3.Connection):
        connection.create_function("riim_uncertainty", 2, _sql_uncertainty, deterministic=True)


def queue_query(project: str, order: str = "margin", wanted: str = "unlabelled", predicted: str | None = None,
                unknown: bool | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None):
    """(Upload, current Label or None, latest Prediction or None) of the queue, filtered and ordered in SQL:
    most uncertain first (uploads without a prediction last), or newest first for ``date``."""
    labels, predictions = _latest_labels(project), _latest_predictions(project)
    query = (select(storage.Upload, Label, Prediction)
             .outerjoin(labels, labels.c.upload_sha256 == storage.Upload.sha256)
             .outerjoin(Label, Label.id == labels.c.id)
             .outerjoin(predictions, predictions.c.image_sha256 == storage.Upload.sha256)
             .outerjoin(Prediction, Prediction.id == predictions.c.id))
    if wanted == "unlabelled":
        query = query.where(Label.id.is_(None))
    elif wanted != "all":
        query = query.where(Label.status == wanted)
    if predicted is not None:
        query = query.where(Prediction.label == predicted)
    if unknown is not None:
        query = query.where(Prediction.unknown == unknown)
    if since:
        query = query.where(storage.Upload.created >= since)
    if until:
        query = query.where(storage.Upload.created <= until)
    if order == "date":
        return query.order_by(storage.Upload.created.desc(), storage.Upload.id)
    return query.order_by(Prediction.id.is_(None), func.riim_uncertainty(Prediction.probabilities, order).desc(),
                          storage.Upload.created, storage.Upload.id)


def _date(name: str) -> dt.datetime | None:
    raw = params.text(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "bad_param", name=name, value=raw[:80]) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _choice(name: str, choices: tuple[str, ...], default: str) -> str:
    return params.choice(name, choices, default)


def _int(name: str, default: int, low: int, high: int) -> int:
    return params.integer(name, default, low, high)


def queue(project: Project) -> dict:
    """One page of the filtered, ordered queue of ``project`` (query: order, status, predicted, unknown, since,
    until, limit, offset), with the total count."""
    order = _choice("order", ORDERS, "margin")
    wanted = _choice("status", QUEUE_STATUSES, "unlabelled")
    predicted, unknown = request.args.get("predicted"), request.args.get("unknown")
    if unknown not in (None, "0", "1"):
        raise ApiError(400, "bad_param", name="unknown", value=unknown[:80])
    since, until = _date("since"), _date("until")
    limit, offset = _int("limit", 50, 1, 500), _int("offset", 0, 0, 10**9)
    query = queue_query(project.name, order, wanted, predicted, None if unknown is None else unknown == "1",
                        since, until)
    page = db.session.execute(query.add_columns(func.count().over()).limit(limit).offset(offset)).all()
    total = page[0][-1] if page else db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = []
    for upload, row, prediction, _ in page:
        items.append({**upload.as_json(), "status": row.status if row else "unlabelled",
                      "label": row.as_json() if row else None,
                      "prediction": None if prediction is None else {
                          "model": prediction.model_name, "version": prediction.model_version,
                          "label": prediction.label, "unknown": prediction.unknown,
                          "confidence": prediction.confidence, "probabilities": prediction.probabilities},
                      "uncertainty": None if prediction is None else uncertainty(prediction.probabilities, order)})
    return {"project": project.as_json(), "order": order, "total": total, "items": items,
            "counts": counts(project.name)}


def counts(project: str) -> dict:
    """Images per class (training / held out) and per status, counted in SQL."""
    per_class: dict[str, dict[str, int]] = {}
    statuses = dict.fromkeys(STATUSES, 0)
    latest = _latest_labels(project)
    rows = db.session.execute(select(Label.status, Label.label, Label.holdout, func.count())
                              .join(latest, Label.id == latest.c.id).group_by(Label.status, Label.label, Label.holdout))
    for status, label, holdout, count in rows:
        statuses[status] += count
        if status == "labelled":
            per_class.setdefault(label, {"train": 0, "holdout": 0})["holdout" if holdout else "train"] += count
    return {"classes": per_class, "statuses": statuses}


# --- embeddings and clusters -------------------------------------------------------------------------

def embeddings(shas: list[str], project: str) -> np.ndarray:
    """(len(shas), d) float32 embeddings by the project's served model (else the default), stored once."""
    registry = model_cache().registry
    name = project if project in registry.models(IMAGE_TASK) and registry.current(project) else \
        current_app.config["DEFAULT_MODEL"]
    try:
        model = model_cache().get(name)
    except RegistryError as error:
        raise ApiError(503, "model_unavailable", model=name, reason=str(error)) from None
    stored = {row.upload_sha256: np.frombuffer(row.vector, dtype=np.float32) for row in db.session.scalars(
        select(Embedding).where(Embedding.model_name == model.name, Embedding.model_version == model.version,
                                Embedding.upload_sha256.in_(shas)))}
    missing = [sha for sha in shas if sha not in stored]
    uploads = {u.sha256: u for u in db.session.scalars(select(storage.Upload).where(storage.Upload.sha256.in_(missing)))}
    output = model.card["outputs"]["embedding"]
    for start in range(0, len(missing), 32):
        batch = missing[start:start + 32]
        images = [load_image(storage.path_for(sha, uploads[sha].extension).read_bytes()) for sha in batch]
        vectors = model.run(preprocess_batch(images, model.card["input"]))[output].astype(np.float32)
        for sha, vector in zip(batch, vectors):
            stored[sha] = vector
            db.session.add(Embedding(upload_sha256=sha, model_name=model.name, model_version=model.version,
                                     vector=vector.tobytes()))
    db.session.commit()
    return np.stack([stored[sha] for sha in shas]) if shas else np.zeros((0, 0), np.float32)


def kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """Cluster index of each row of ``x`` (k-means++ start, Lloyd iterations, cosine geometry)."""
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(len(x))])
    centres = np.stack(centres)
    assignment = np.full(len(x), -1)
    for _ in range(iterations):
        new = ((centres ** 2).sum(1) - 2 * x @ centres.T).argmin(1)  # squared distances, less ‖x‖²
        if np.array_equal(new, assignment):
            break
        assignment = new
        for j in range(k):
            if (assignment == j).any():
                centres[j] = x[assignment == j].mean(0)
    return assignment


# --- export / import ---------------------------------------------------------------------------------

FIELDS = ("sha256", "status", "label", "holdout", "user", "created", "filename")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may read as a formula


def csv_cell(value):
    """``value`` made inert for spreadsheets (OWASP CSV injection): text that could start a formula gets a
    leading single quote. The cells come from uploads' filenames, i.e. from anonymous clients."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def export_rows(project: str) -> list[dict]:
    names = {u.sha256: u.filename for u in db.session.scalars(select(storage.Upload))}
    return [{**row.as_json(), "filename": names.get(sha)} for sha, row in
            sorted(current_labels(project).items(), key=lambda pair: pair[1].id)]


def import_items() -> list:
    """Decisions from a JSON body (a list, or ``{"labels": [...]}``) or a CSV upload (field ``file``)."""
    if request.is_json:
        data = request.get_json(silent=True)
        items = data.get("labels") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ApiError(400, "missing_field", field="labels")
        return [{key: item.get(key) for key in ("sha256", "status", "label")} if isinstance(item, dict) else item
                for item in items]
    part = request.files.get("file")
    if part is None:
        raise ApiError(400, "missing_field", field="file")
    try:
        reader = csv.DictReader(io.StringIO(part.read().decode("utf-8-sig")))
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error):
        raise ApiError(400, "bad_csv") from None
    if not rows or "sha256" not in (reader.fieldnames or []):
        raise ApiError(400, "bad_csv")
    return [{"sha256": row.get("sha256"), "status": row.get("status") or "labelled", "label": row.get("label") or None}
            for row in rows]


# --- routes ------------------------------------------------------------------------------------------

@bp.get("/label")
def page():
    return render_template("label.html")


def _json_body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "missing_field", field="name")
    return data


@bp.get(f"{API}/projects")
@admin_required
def list_projects():
    """Projects, plus registry models that could become one."""
    projects = [p.as_json() | {"counts": counts(p.name)} for p in db.session.scalars(select(Project).order_by(Project.name))]
    return jsonify(projects=projects, models=model_cache().registry.models(IMAGE_TASK))


@bp.post(f"{API}/projects")
@admin_required
def create_project():
    """``{"name", "classes": [...]}``; for an existing model without classes given, its card's labels."""
    data = _json_body()
    name = data.get("name")
    if not isinstance(name, str) or not PROJECT_NAME.fullmatch(name):
        raise ApiError(400, "bad_project_name", value=str(name)[:80])
    if db.session.get(Project, name) is not None:
        raise ApiError(409, "project_exists", project=name)
    classes = data.get("classes")
    if classes is None and name in model_cache().registry.models(IMAGE_TASK) and model_cache().registry.current(name):
        classes = [c for c in model_cache().registry.card(name)["labels"] if CLASS_NAME.fullmatch(c)]
    if not isinstance(classes, list) or len(classes) > MAX_CLASSES:
        raise ApiError(400, "missing_field", field="classes")
    classes = [_check_class(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise ApiError(400, "duplicate_class")
    project = Project(name=name, classes=classes, created=_now())
    db.session.add(project)
    db.session.commit()
    return jsonify(project.as_json()), 201


@bp.get(f"{API}/projects/<name>/queue")
@admin_required
def project_queue(name):
    return jsonify(queue(get_project(name)))


@bp.post(f"{API}/projects/<name>/labels")
@admin_required
def label_images(name):
    """``{"items": [{"sha256", "status", "label"}]}`` or one item at the top level."""
    project = get_project(name)
    data = request.get_json(silent=True)
    items = data.get("items", [data]) if isinstance(data, dict) else None
    rows = add_labels(project, items)
    return jsonify(labels=[row.as_json() for row in rows], project=project.as_json(), counts=counts(name))


@bp.get(f"{API}/projects/<name>/labels/<sha256>/history")
@admin_required
def history(name, sha256):
    get_project(name)
    storage.get_or_404(sha256)
    rows = db.session.scalars(select(Label).where(Label.project == name, Label.upload_sha256 == sha256)
                              .order_by(Label.id.desc()))
    return jsonify(history=[row.as_json() for row in rows])


@bp.get(f"{API}/projects/<name>/labels")
@admin_required
def export_labels(name):
    """The current labels as JSON (default) or ``?format=csv``."""
    get_project(name)
    fmt = _choice("format", ("json", "csv"), "json")
    rows = export_rows(name)
    if fmt == "json":
        return jsonify(project=name, labels=rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS)
    writer.writeheader()
    writer.writerows({key: csv_cell(value) for key, value in row.items()} for row in rows)
    return current_app.response_class(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename={name}-labels.csv"})


@bp.post(f"{API}/projects/<name>/labels/import")
@admin_required
def import_labels(name):
    project = get_project(name)
    rows = add_labels(project, import_items())
    return jsonify(imported=len(rows), counts=counts(name))


@bp.post(f"{API}/projects/<name>/clusters")
@admin_required
def clusters(name):
    """k-means clusters (``k``, default 6) of the first ``MAX_ITEMS`` unlabelled uploads of the queue, for bulk
    labelling. A POST (CSRF): it computes and stores the embeddings it lacks."""
    project = get_project(name)
    k = _int("k", 6, 2, 50)
    shas = list(db.session.scalars(queue_query(project.name).with_only_columns(storage.Upload.sha256)
                                   .limit(MAX_ITEMS)))
    if len(shas) < k:
        return jsonify(k=k, clusters=[{"cluster": 0, "members": shas}] if shas else [])
    assignment = kmeans(embeddings(shas, project.name), k)
    groups = [{"cluster": j, "members": [s for s, a in zip(shas, assignment) if a == j]} for j in range(k)]
    return jsonify(k=k, clusters=sorted((g for g in groups if g["members"]), key=lambda g: -len(g["members"])))


def init_app(app: Flask) -> None:
    app.config.setdefault("LABEL_HOLDOUT_EVERY", 5)
    app.register_blueprint(bp)
