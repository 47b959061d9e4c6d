"""The browser half of the cross-language contract: contract.js in headless Chromium on the golden cases
that models/decision.py wrote (tests/test_contract.py), against a REALLY calibrated and exported model
served by the app; and one OOD photo that is "unknown" on both sides of the Analyze page."""
from __future__ import annotations

import json

import pytest

from tests.browser_support import chromium, guard_loopback, live_server
from tests.conftest import serving_app
from tests.test_browser import analyze, open_analyze
from tests.test_contract import TOLERANCE, close, score_tolerance, write_golden

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# Runs in the page: every golden case through contract.js; OOD arrays from the version's card-listed files.
RUN_CONTRACT_JS = """async (golden) => {
  const c = await import('/static/js/contract.js');
  const { oodParameters } = await import('/static/js/edge.js');
  const { name, version } = golden.model;
  const card = golden.card;
  const withRule = (score) => ({ ...card, unknown_policy: { ...card.unknown_policy, ood: { score, threshold: 0 } } });
  const params = { ...await oodParameters(name, version, withRule('mahalanobis')),
                   ...await oodParameters(name, version, withRule('energy')) };
  const f32 = (values) => Float32Array.from(values);
  const rule = card.unknown_policy.ood.score;
  return {
    decide: golden.decide.map((k) => c.decide(k.card, f32(k.probabilities), k.ood_score)),
    ood: golden.ood.map((k) => {
      const scores = Object.fromEntries(Object.keys(k.scores).map((method) =>
        [method, c.oodScore(method, card, f32(k.embedding), f32(k.probabilities), params)]));
      const oodOnly = { ...card, unknown_policy: { ...card.unknown_policy, threshold: 0 } };
      return { scores, decision: c.decide(card, f32(k.probabilities), scores[rule]),
               ood_only: c.decide(oodOnly, f32(k.probabilities), scores[rule]) };
    }),
    tags: golden.tags.map((k) => c.topKTags(card, f32(k.scores), k.expected.reduce(
      (names, tag) => Object.assign(names, { [tag.index]: tag.label }), {}))),
    top_k: golden.top_k.map((k) => c.topK(f32(k.scores), k.k)),
    normalise: golden.normalise.map((k) => Array.from(c.normaliseMap(f32(k.values)))),
    table: Array.from(c.COLOURS),
    samples: golden.colours.samples.map((k) => Array.from(c.colourise([k.value]).slice(0, 3))),
    tiles: c.selectTiles(f32(golden.tiles.values), ...golden.tiles.shape, golden.tiles.count).map(({ channel, mean }) => {
      const [, height, width] = golden.tiles.shape;
      const area = height * width;
      const values = golden.tiles.values.slice(channel * area, (channel + 1) * area);
      return { channel, mean, tile: Array.from(c.tile(f32(values), height, width).values) };
    }),
  };
}"""


@pytest.fixture(scope="module")
def calibrated_exported(calibrated_registry):
    """The exported default model (TF.js float16 + uint8), calibrated: the OOD rule is in its card."""
    return calibrated_registry


@pytest.fixture(scope="module")
def golden(calibrated_exported, photos, tmp_path_factory):
    return write_golden(calibrated_exported, photos, tmp_path_factory.mktemp("golden") / "contract.json")


@pytest.fixture(scope="module")
def base_url(calibrated_exported, tmp_path_factory):
    instance = tmp_path_factory.mktemp("contract-instance")
    app = serving_app({"MODELS_DIR": str(calibrated_exported.root), "RATELIMIT_ENABLED": False, "STORE_UPLOADS": False,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'riim.sqlite3'}"})
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def context(base_url):
    with chromium() as browser:
        context = browser.new_context(locale="es-ES")
        outside = guard_loopback(context)
        errors: list[str] = []
        context.on("weberror", lambda error: errors.append(str(error.error)))
        yield context
        context.close()
    assert outside == [] and errors == [], (outside, errors)


def assert_close(got, want, what: str, relative: float = TOLERANCE["relative"]):
    assert len(got) == len(want), what
    worst = max((abs(g - w) / max(abs(w), 1e-30) for g, w in zip(got, want) if g != w), default=0.0)
    assert all(close(g, w, {"relative": relative}) or abs(w) < 1e-30 and abs(g) < 1e-30 for g, w in zip(got, want)), \
        f"{what}: worst relative difference {worst:.2e}"


def test_contract_js_reproduces_the_golden_vectors(context, base_url, golden):
    page = context.new_page()
    page.goto(base_url + "/")
    got = page.evaluate(RUN_CONTRACT_JS, json.loads(json.dumps(golden)))
    assert got["decide"] == [case["expected"] for case in golden["decide"]]
    for case, answer in zip(golden["ood"], got["ood"]):
        assert case["borderline"] or answer["decision"] == case["expected"], case["photo"]
        assert case["borderline"] or answer["ood_only"] == case["expected_ood_only"], case["photo"]
        for method, score in case["scores"].items():
            assert close(answer["scores"][method], score, {"relative": score_tolerance(method)}), \
                (case["photo"], method, answer["scores"][method], score)
    for case, tags in zip(golden["tags"], got["tags"]):
        assert [(t["index"], t["label"]) for t in tags] == [(t["index"], t["label"]) for t in case["expected"]]
        assert_close([t["probability"] for t in tags], [t["probability"] for t in case["expected"]], case["photo"])
    assert got["top_k"] == [case["expected"] for case in golden["top_k"]]
    for index, (case, values) in enumerate(zip(golden["normalise"], got["normalise"])):
        assert_close(values, case["expected"], f"normalise case {index} {case.get('photo', '')}")
    table = golden["colours"]["table"]
    assert max(abs(a - b) for a, b in zip(got["table"], table)) <= TOLERANCE["colour"] and len(got["table"]) == 768
    for case, colour in zip(golden["colours"]["samples"], got["samples"]):
        assert max(abs(a - b) for a, b in zip(colour, case["expected"])) <= TOLERANCE["colour"], case["value"]
    expected = golden["tiles"]["expected"]
    assert [tile["channel"] for tile in got["tiles"]] == [tile["channel"] for tile in expected]
    for mine, theirs in zip(got["tiles"], expected):
        assert close(mine["mean"], theirs["mean"]), mine["channel"]
        assert_close(mine["tile"], theirs["tile"], f"tile {mine['channel']}")


def test_ood_photos_are_unknown_on_server_and_edge(context, base_url, golden, photos):
    """Real out-of-distribution photos are "unknown" on both sides of the Analyze page, and both sides
    computed the calibrated OOD score (float16 TF.js vs float32 ONNX: within 2 %) above its threshold;
    a cat stays a cat on both, below it."""
    rule = golden["card"]["unknown_policy"]["ood"]
    page = open_analyze(context, base_url)
    for name, label in (("skimage/astronaut", "unknown"), ("skimage/coffee", "unknown"), ("skimage/chelsea", "cat")):
        panels = analyze(page, name, photos[name].png_bytes())
        assert panels["server"]["label"] == panels["edge"]["label"] == label, (name, panels)
        server, edge = (float(page.get_attribute(f"#{side}-result", "data-ood-score")) for side in ("server", "edge"))
        print(f"{name}: {rule['score']} server {server:.4f} edge {edge:.4f} threshold {rule['threshold']:.4f}")
        assert abs(edge - server) <= 0.02 * abs(server), (name, server, edge)
        assert (edge > rule["threshold"]) == (server > rule["threshold"]) == (label == "unknown"), name
    page.close()
