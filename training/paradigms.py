"""Supervised, unsupervised and reinforcement learning on the same real data, measured the same way.

The data: Fashion-MNIST photos represented by the served image model's embeddings (``export/embeddings.py``),
projected on their first principal components (fitted without labels) and standardised. Then, for each seed:

1. **Supervised** — a logistic regression trained on ``n`` labelled examples (random, from the pool).
2. **Unsupervised** — k-means and a Gaussian mixture with 10 groups on the whole pool, no labels at all:
   cluster purity and adjusted Rand index against the true classes. To *use* clusters as a classifier a
   person still has to name each one: with ``n`` labels, a cluster takes the most frequent label among its
   labelled members (cluster-then-label).
3. **Reinforcement** — a contextual bandit (``training/bandit.py``): each feedback event shows one pool image,
   the agent answers a class and hears only "right" (1) or "wrong" (0). Its greedy policy's accuracy after
   ``n`` events and its regret (the mistakes it made while learning) are recorded.

Every accuracy is on the same held-out test images. Feedback is counted the same way for all three: one
label or one right/wrong answer per image — but a label says *which* class is right, a reward only whether
the guess was, so the bandit needs more events for the same accuracy.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from training import bandit

SIZES = (100, 500, 2000)  # labels / feedback events in the acceptance table
CURVE = (20, 50, 100, 200, 500, 1000, 2000)  # points of the learning curves
COMPONENTS = 64
CLUSTERS = 10
GRID_IMAGES = 8  # images shown per cluster


@dataclass
class Data:
    """The pool (features without labels for the learners; ``labels`` used only by the environment and the
    evaluation), the held-out test set, the pool's raw pixels for the cluster grids and the class names."""
    pool: np.ndarray
    labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    pixels: np.ndarray
    classes: tuple[str, ...]


def features(pool_embeddings: np.ndarray, components: int = COMPONENTS):
    """PCA (fitted on the pool, no labels) + standardisation: (the function that projects any embeddings the
    same way, the share of the pool's variance kept)."""
    components = min(components, *pool_embeddings.shape)
    pca = PCA(components, random_state=0).fit(pool_embeddings)
    scaler = StandardScaler().fit(pca.transform(pool_embeddings))
    return (lambda e: scaler.transform(pca.transform(e)).astype(np.float64)), float(pca.explained_variance_ratio_.sum())


# --- supervised -------------------------------------------------------------------------------------------
def supervised(data: Data, sizes, rng: np.random.Generator) -> dict[int, float]:
    """Test accuracy of a logistic regression on ``n`` random labelled pool examples, for each ``n``."""
    order = rng.permutation(len(data.pool))
    accuracy = {}
    for n in sizes:
        rows = order[:n]
        model = LogisticRegression(C=1.0, max_iter=500).fit(data.pool[rows], data.labels[rows])
        accuracy[n] = float((model.predict(data.test) == data.test_labels).mean())
    return accuracy


# --- unsupervised -----------------------------------------------------------------------------------------
def purity(clusters: np.ndarray, labels: np.ndarray) -> float:
    """Share of the examples that belong to their cluster's most frequent class."""
    return float(sum(np.bincount(labels[clusters == c]).max() for c in np.unique(clusters)) / len(labels))


def cluster_then_label(clusters: np.ndarray, test_clusters: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                       n_classes: int) -> np.ndarray:
    """Name each cluster by the most frequent label among its labelled members (``rows``); a cluster with
    no labelled member takes the most frequent label overall. Returns the test predictions."""
    fallback = np.bincount(labels[rows], minlength=n_classes).argmax()
    names = np.full(clusters.max() + 1, fallback)
    for c in range(len(names)):
        members = rows[clusters[rows] == c]
        if len(members):
            names[c] = np.bincount(labels[members], minlength=n_classes).argmax()
    return names[test_clusters]


def grid_png(pixels: np.ndarray) -> str:
    """A row of 28×28 grey images as a PNG data URI (the page shows it enlarged, pixelated)."""
    strip = np.concatenate(list(pixels), axis=1)
    buffer = io.BytesIO()
    Image.fromarray(strip.astype(np.uint8), "L").save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def describe_clusters(data: Data, clusters: np.ndarray, centres: np.ndarray) -> list[dict]:
    """Per cluster: size, the most frequent true class and its share, and the images nearest the centre."""
    out = []
    for c in range(len(centres)):
        members = np.flatnonzero(clusters == c)
        if not len(members):
            continue
        counts = np.bincount(data.labels[members], minlength=len(data.classes))
        nearest = members[np.argsort(np.linalg.norm(data.pool[members] - centres[c], axis=1))[:GRID_IMAGES]]
        out.append({"cluster": c, "size": int(len(members)), "top_class": data.classes[int(counts.argmax())],
                    "top_share": round(float(counts.max() / len(members)), 3), "grid": grid_png(data.pixels[nearest])})
    return out


def unsupervised(data: Data, sizes, rng: np.random.Generator, seed: int, grids: bool = False) -> dict:
    """k-means and a diagonal Gaussian mixture with :data:`CLUSTERS` groups: purity, ARI, and the
    cluster-then-label test accuracy with ``n`` labels."""
    kmeans = KMeans(CLUSTERS, n_init=4, random_state=seed).fit(data.pool)
    gmm = GaussianMixture(CLUSTERS, covariance_type="diag", random_state=seed).fit(data.pool)
    order = rng.permutation(len(data.pool))
    result = {}
    for name, clusters, test_clusters in (("kmeans", kmeans.labels_, kmeans.predict(data.test)),
                                          ("gmm", gmm.predict(data.pool), gmm.predict(data.test))):
        result[name] = {
            "purity": round(purity(clusters, data.labels), 4),
            "ari": round(float(adjusted_rand_score(data.labels, clusters)), 4),
            "accuracy": {n: float((cluster_then_label(clusters, test_clusters, data.labels, order[:n],
                                                      len(data.classes)) == data.test_labels).mean())
                         for n in sizes}}
    if grids:
        result["kmeans"]["clusters"] = describe_clusters(data, kmeans.labels_, kmeans.cluster_centers_)
    return result


def group_uploads(projected: np.ndarray, thumbnails: list[str], seed: int = 0) -> list[dict]:
    """The app's own uploads grouped by k-means with no label (about 4 photos a group, at most
    :data:`CLUSTERS` groups): each group's size and its photos' thumbnails (nearest the centre first)."""
    k = int(min(CLUSTERS, max(1, len(projected) // 4)))
    model = KMeans(k, n_init=4, random_state=seed).fit(projected)
    groups = []
    for c in range(k):
        members = np.flatnonzero(model.labels_ == c)
        order = members[np.argsort(np.linalg.norm(projected[members] - model.cluster_centers_[c], axis=1))]
        groups.append({"group": c, "size": int(len(members)), "thumbnails": [thumbnails[i] for i in order[:GRID_IMAGES]]})
    return sorted(groups, key=lambda g: -g["size"])


# --- reinforcement ----------------------------------------------------------------------------------------
AGENTS = {"epsilon_greedy": lambda: bandit.EpsilonGreedy(epsilon=0.1), "linucb": lambda: bandit.LinUCB(alpha=1.0)}


def with_bias(x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1))])


def reinforcement(data: Data, sizes, rng: np.random.Generator, on_step=None) -> dict:
    """Each agent plays a stream of ``max(sizes)`` pool images; reward 1 when its class is right. Greedy test
    accuracy and cumulative regret (mistakes) after each ``n`` in ``sizes``."""
    steps = max(sizes)
    stream = rng.permutation(len(data.pool))[:steps]
    contexts, truth = with_bias(data.pool[stream]), data.labels[stream]
    test = with_bias(data.test)
    result = {}
    for name, make in AGENTS.items():
        played = bandit.run(make(), contexts, lambda t, arm: float(arm == truth[t]), np.ones(steps),
                            len(data.classes), rng, checkpoints=sizes,
                            evaluate=lambda agent: (agent.predict(test) == data.test_labels).mean(), on_step=on_step)
        result[name] = {"accuracy": dict(zip(played.checkpoints, played.accuracy)),
                        "regret": {n: float(played.regret[n - 1]) for n in sizes}}
    return result


# --- the experiment ---------------------------------------------------------------------------------------
def one_seed(data: Data, seed: int, sizes=CURVE, grids: bool = False, on_step=None) -> dict:
    rng = np.random.default_rng(seed)
    return {"seed": seed, "supervised": supervised(data, sizes, rng),
            "unsupervised": unsupervised(data, sizes, rng, seed, grids),
            "reinforcement": reinforcement(data, sizes, rng, on_step)}


def summary(runs: list[dict], sizes=CURVE) -> dict:
    """Mean and standard deviation over the seeds of every figure: ``{method: {metric: {n: [mean, std]}}}``."""
    def stat(values):
        return [round(float(np.mean(values)), 4), round(float(np.std(values)), 4)]

    out = {"supervised": {"accuracy": {n: stat([r["supervised"][n] for r in runs]) for n in sizes}}}
    for name in ("kmeans", "gmm"):
        rows = [r["unsupervised"][name] for r in runs]
        out[name] = {"purity": stat([r["purity"] for r in rows]), "ari": stat([r["ari"] for r in rows]),
                     "accuracy": {n: stat([r["accuracy"][n] for r in rows]) for n in sizes}}
    for name in AGENTS:
        rows = [r["reinforcement"][name] for r in runs]
        out[name] = {key: {n: stat([r[key][n] for r in rows]) for n in sizes} for key in ("accuracy", "regret")}
    return out


def experiment(data: Data, seeds=(0, 1, 2), sizes=CURVE, on_seed=None, on_step=None) -> dict:
    """Every paradigm for each seed (the seed draws the labelled examples, the stream and the cluster
    initialisation); the first seed's k-means clusters come with their image grids."""
    runs = []
    for i, seed in enumerate(seeds):
        runs.append(one_seed(data, seed, sizes, grids=(i == 0), on_step=on_step))
        if on_seed is not None:
            on_seed(i + 1, len(seeds))
    return {"sizes": list(sizes), "seeds": list(seeds), "summary": summary(runs, sizes),
            "clusters": runs[0]["unsupervised"]["kmeans"].pop("clusters", []), "runs": runs}
