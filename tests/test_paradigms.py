"""Supervised / unsupervised / reinforcement on the same data: the bandit agents against a synthetic bandit
whose optimum is known, the measures, and ``riim paradigms`` end to end on real Fashion-MNIST photos
(embedded by the tiny served ONNX model) → the results JSON the API serves."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.base import clone

from training import bandit, paradigms


def random_regret(bandit_env: bandit.LinearBandit, contexts: np.ndarray) -> float:
    means = bandit_env.means(contexts)
    return float((means.max(axis=1) - means.mean(axis=1)).sum())


@pytest.mark.parametrize("agent", [bandit.LinUCB(alpha=0.5), bandit.EpsilonGreedy(epsilon=0.05)])
def test_agents_find_the_known_optimum_of_a_synthetic_bandit(agent):
    env = bandit.LinearBandit(n_arms=5, dim=8, noise=0.1, seed=1)
    contexts = env.contexts(3000)
    fitted = clone(agent)
    played = env.play(contexts, fitted, np.random.default_rng(0))
    learned = played.regret[-1] - played.regret[-1001]
    assert played.regret[999] > learned  # it learns: fewer mistakes in the last 1,000 steps than the first
    assert played.regret[-1] < 0.25 * random_regret(env, contexts)
    fresh = env.contexts(1000)
    best = env.means(fresh).argmax(axis=1)
    assert (fitted.predict(fresh) == best).mean() >= 0.95  # its greedy policy is the optimum


def test_linucb_explores_where_it_knows_least():
    agent = bandit.LinUCB(alpha=2.0).fit_start(2, 2)
    for _ in range(50):
        agent.update(np.array([1.0, 0.0]), 0, 0.5)  # arm 0 tried often, arm 1 never
    counts = np.bincount([agent.choose(np.array([1.0, 0.0]), np.random.default_rng(i)) for i in range(20)],
                         minlength=2)
    assert counts[1] == 20  # the unknown arm's bonus beats a known mediocre reward


def test_purity_and_cluster_then_label():
    labels = np.array([0, 0, 1, 1, 2, 2])
    clusters = np.array([5, 5, 6, 6, 6, 7])
    assert paradigms.purity(clusters, labels) == pytest.approx(5 / 6)
    predicted = paradigms.cluster_then_label(clusters, np.array([5, 6, 7]), labels, np.array([0, 2, 5]), 3)
    assert predicted.tolist() == [0, 1, 2]


@pytest.fixture(scope="module")
def results(tiny_registry, tmp_path_factory):
    from cli.paradigms import paradigms_command

    from training.real_photos import cat_dog_photos, ood_photos

    out = tmp_path_factory.mktemp("paradigms") / "paradigms.json"
    uploads = out.parent / "uploads"
    for i, photo in enumerate(cat_dog_photos()[:4] + ood_photos()[:4]):  # stored as the app stores uploads
        (uploads / f"{i:02d}").mkdir(parents=True)
        (uploads / f"{i:02d}" / f"{i:02d}photo.png").write_bytes(photo.png_bytes())
    (uploads / "00" / "broken.png").write_bytes(b"not an image")
    result = CliRunner().invoke(paradigms_command, ["--models-dir", str(tiny_registry.root), "--pool", "400",
                                                    "--test", "200", "--seeds", "2", "--sizes", "20,100,300",
                                                    "--out", str(out), "--uploads", str(uploads)])
    assert result.exit_code == 0, result.output
    assert "supervised" in result.output and "ARI" in result.output
    return out


def test_riim_paradigms_measures_every_paradigm_on_real_photos(results):
    data = json.loads(results.read_text())
    summary = data["summary"]
    assert data["data"]["pool"] == 400 and data["model"]["name"] == "animals" and len(data["runs"]) == 2
    chance = 0.1
    supervised = [summary["supervised"]["accuracy"][n][0] for n in ("20", "100", "300")]
    assert supervised[-1] > 2 * chance and supervised[-1] >= supervised[0] - 0.05
    assert summary["linucb"]["regret"]["300"][0] <= 300 and summary["linucb"]["accuracy"]["300"][0] > chance
    assert 0 < summary["kmeans"]["purity"][0] <= 1 and -1 <= summary["kmeans"]["ari"][0] <= 1
    assert len(data["clusters"]) >= 2 and data["clusters"][0]["grid"].startswith("data:image/png;base64,")
    assert data["uploads"]["count"] == 8 and data["uploads"]["skipped"] == 1
    assert sum(group["size"] for group in data["uploads"]["groups"]) == 8
    assert data["uploads"]["groups"][0]["thumbnails"][0].startswith("data:image/jpeg;base64,")
    # a second run reuses the cached embeddings
    assert list((results.parent / "cache").glob("embeddings-animals-v1-fashion-*.npz"))


def test_riim_paradigms_refuses_bad_sizes(tiny_registry):
    from cli.paradigms import paradigms_command

    result = CliRunner().invoke(paradigms_command, ["--models-dir", str(tiny_registry.root), "--pool", "100",
                                                    "--sizes", "50,500"])
    assert result.exit_code == 2 and "--sizes" in result.output
