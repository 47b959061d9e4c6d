"""Benchmark: which decision rule should the default "animals" model use? (issue 22, item 5)

Runs the real default model (ONNX Runtime, fp32, ``riim models default`` in ``--models-dir``) once on every
real labelled photo available offline and scores cat / dog / unknown decision rules on the same outputs; then
the int8 file, whose answers decide whether int8 is served by default (the same rules must give the same
answers as on fp32).
A photo that shows neither a cat nor a dog ("other") is right when the answer is "unknown". Every rule keeps
the card's calibrated out-of-distribution rejection (``unknown_policy.ood``, energy score) on top.

Rules:
- ``sum>=0.5``: the card's rule: unknown when neither summed P(cat) nor P(dog) reaches 0.5;
- ``top1-group``: the group (cat / dog / other) of the top-1 ImageNet class;
- ``sum>=0.5 or top1``: the most probable label when it reaches 0.5 or holds the top-1 ImageNet class;
- ``mass-argmax``: the largest of P(cat), P(dog) and P(other) = 1 - P(cat) - P(dog);
- ``sum>=t (LOO)``: one threshold tuned with leave-one-out;
- ``per-group t (LOO)``: a threshold for cat and one for dog, tuned with leave-one-out;
- ``temperature (LOO)``: softmax(log p / T) over the 1000 classes, then sum>=0.5; T tuned with leave-one-out.

Photos (nothing is downloaded): ``training.real_photos`` (8 cat/dog + 12 other) — the "main" set; foolbox's
ImageNet samples that are neither cat nor dog and darknet's other photos ("extra other"); foolbox's CIFAR-10
and CIFAR-100 32-pixel samples that are neither ("tiny other"); skimage microscopy / stereo photos. darknet's
``person.jpg`` (a woman, a dog and a horse) is shown but not scored. Usage::

    .venv/bin/python benchmarks/bench_decision.py [--models-dir /tmp/md-store] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from models import real_data
from training import real_photos

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CAT, DOG = list(range(281, 286)), list(range(151, 269))
DARKNET = Path("/usr/share/darknet/data")
DARKNET_OTHER = ("eagle", "giraffe", "horses", "kite", "scream")
SKIMAGE_EXTRA = ("retina", "stereo_motorcycle", "immunohistochemistry", "cell")
GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)
TEMPERATURES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)


def photos() -> list[tuple[str, str, str, Image.Image]]:
    """(set, name, label, RGB image) of every real photo found."""
    found = [("main", p.name, p.label, p.image) for p in real_photos.cat_dog_photos() + real_photos.ood_photos()]
    seen = {name for _, name, _, _ in found}
    for p in real_photos.foolbox_photos():
        if p.name not in seen and p.label == "other":
            found.append(("tiny other" if p.name.startswith("foolbox/cifar") else "extra other", p.name, "other", p.image))
    folder = Path(real_data.package_dir("foolbox", "make setup")) / "data"
    for path in sorted(folder.glob("cifar100_*.png")):  # CIFAR-100 has no cat nor dog class
        found.append(("tiny other", f"foolbox/{path.name}", "other", Image.open(path).convert("RGB")))
    for name in DARKNET_OTHER:
        if (DARKNET / f"{name}.jpg").is_file():
            found.append(("extra other", f"darknet/{name}.jpg", "other", Image.open(DARKNET / f"{name}.jpg").convert("RGB")))
    from skimage import data

    for name in SKIMAGE_EXTRA:
        array = getattr(data, name)()
        array = array[0] if name == "stereo_motorcycle" else array  # (left, right, disparity)
        found.append(("extra other", f"skimage/{name}", "other", Image.fromarray(array).convert("RGB")))
    if (DARKNET / "person.jpg").is_file():
        found.append(("mixed", "darknet/person.jpg", "mixed", Image.open(DARKNET / "person.jpg").convert("RGB")))
    return found


def run_model(models_dir: Path, images: list[Image.Image], precision: str):
    """(card, summed probabilities N×2, ImageNet probabilities N×1000, OOD scores N) from one ORT pass of the
    ``precision`` file."""
    from app.inference import LoadedModel
    from models.registry import Registry

    registry = Registry(models_dir)
    model = LoadedModel.load(registry, "animals", registry.resolve("animals"), threads=2, precision=precision)
    summed, imagenet, ood = [], [], []
    for start in range(0, len(images), 16):
        outputs = model.run(_batch(images[start:start + 16], model.card))
        summed.append(outputs["probabilities"])
        imagenet.append(outputs["imagenet_probabilities"])
        ood.append(model.ood_scores(outputs))
    return model.card, np.concatenate(summed).astype(np.float64), np.concatenate(imagenet).astype(np.float64), \
        np.concatenate(ood).astype(np.float64)


def _batch(images, card):
    from models.preprocess import preprocess_batch

    return preprocess_batch(images, card["input"])


# --- rules: each maps the model's outputs to "cat" / "dog" / "unknown" before OOD rejection ----------------
def by_threshold(summed: np.ndarray, t_cat: float, t_dog: float) -> np.ndarray:
    best = np.where(summed[:, 0] >= summed[:, 1], 0, 1)
    top = summed[np.arange(len(summed)), best]
    ok = top >= np.where(best == 0, t_cat, t_dog)
    return np.where(ok, np.array(["cat", "dog"])[best], "unknown")


def top1_group(imagenet: np.ndarray) -> np.ndarray:
    groups = [real_photos.imagenet_label(int(i)) for i in imagenet.argmax(axis=1)]
    return np.array([g if g in ("cat", "dog") else "unknown" for g in groups])


def sum_or_top1(summed: np.ndarray, imagenet: np.ndarray) -> np.ndarray:
    """The most probable label when it reaches 0.5 or when the top-1 ImageNet class is one of its classes."""
    best = np.where(summed[:, 0] >= summed[:, 1], 0, 1)
    names = np.array(["cat", "dog"])[best]
    ok = (summed[np.arange(len(summed)), best] >= 0.5) | (top1_group(imagenet) == names)
    return np.where(ok, names, "unknown")


def mass_argmax(summed: np.ndarray) -> np.ndarray:
    mass = np.column_stack([summed, 1.0 - summed.sum(axis=1)])
    return np.array(["cat", "dog", "unknown"])[mass.argmax(axis=1)]


def tempered(imagenet: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.maximum(imagenet, 1e-30)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return np.column_stack([p[:, CAT].sum(axis=1), p[:, DOG].sum(axis=1)])


def with_ood(answers: np.ndarray, ood: np.ndarray, threshold: float) -> np.ndarray:
    return np.where(ood > threshold, "unknown", answers)


def expected(labels: list[str]) -> np.ndarray:
    return np.array([{"cat": "cat", "dog": "dog"}.get(label, "unknown") for label in labels])


def loo(candidates: list, answers_for, truth: np.ndarray, default) -> tuple[np.ndarray, list]:
    """Leave-one-out: for each photo, the candidate with the best accuracy on the others (ties: the one
    nearest ``default`` in list order distance) decides that photo. Returns (answers, chosen candidates)."""
    table = np.array([answers_for(c) for c in candidates])  # candidates × photos
    right = table == truth[None, :]
    order = sorted(range(len(candidates)), key=lambda k: _distance(candidates[k], default))
    answers, chosen = [], []
    for i in range(len(truth)):
        scores = right.sum(axis=1) - right[:, i]
        best = max(order, key=lambda k: scores[k])  # max keeps the first (nearest default) of equal scores
        answers.append(table[best, i])
        chosen.append(candidates[best])
    return np.array(answers), chosen


def _distance(candidate, default) -> float:
    return float(np.abs(np.subtract(candidate, default)).sum())


def accuracy(answers: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> str:
    right, total = int((answers[mask] == truth[mask]).sum()), int(mask.sum())
    return f"{right}/{total}" if total else "-"


def rule_answers(summed, imagenet, ood, ood_threshold: float, idx: np.ndarray, truth: np.ndarray):
    """(answers of each rule alone, answers with the OOD rejection, LOO choices) for one model's outputs.

    Tuning (LOO) uses every scored photo (``idx``); leave-one-out keeps each photo out of its own tuning.
    Photos that are not scored get the parameters tuned on all scored photos."""
    plain: dict[str, np.ndarray] = {  # the rules alone, before OOD rejection
        "sum>=0.5 (card)": by_threshold(summed, 0.5, 0.5),
        "top1-group": top1_group(imagenet),
        "sum>=0.5 or top1": sum_or_top1(summed, imagenet),
        "mass-argmax": mass_argmax(summed),
    }
    rules = {name: with_ood(answers, ood, ood_threshold) for name, answers in plain.items()}
    tuned = {}
    for name, candidates, answers_for, default in (
            ("sum>=t (LOO)", [(t,) for t in GRID], lambda c: by_threshold(summed, c[0], c[0]), (0.5,)),
            ("per-group t (LOO)", [(a, b) for a in GRID for b in GRID],
             lambda c: by_threshold(summed, *c), (0.5, 0.5)),
            ("temperature (LOO)", [(t,) for t in TEMPERATURES],
             lambda c: by_threshold(tempered(imagenet, c[0]), 0.5, 0.5), (1.0,))):
        for ood_on, table in ((False, plain), (True, rules)):
            full = (lambda c, f=answers_for: with_ood(f(c), ood, ood_threshold)) if ood_on else answers_for
            answers, chosen = loo(candidates, lambda c, f=full: f(c)[idx], truth[idx], default)
            best_all = max(sorted(candidates, key=lambda c: _distance(c, default)),
                           key=lambda c: int((full(c)[idx] == truth[idx]).sum()))
            out = full(best_all).astype(object)
            out[idx] = answers
            table[name] = out.astype(str)
            if ood_on:
                tuned[name] = sorted({tuple(float(x) for x in c) for c in chosen})
    return plain, rules, tuned


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/md-store"))
    parser.add_argument("--json", type=Path, help="Also write the figures as JSON here.")
    args = parser.parse_args()
    subprocess.run([str(BIN / "riim"), "models", "default", "--models-dir", str(args.models_dir)], check=True,
                   stdout=subprocess.DEVNULL)

    found = photos()
    print(f"{len(found)} real photos: " + ", ".join(
        f"{s} {sum(1 for f in found if f[0] == s)}" for s in dict.fromkeys(f[0] for f in found)), flush=True)
    scored = np.array([f[2] != "mixed" for f in found])
    sets = np.array([f[0] for f in found])
    truth = expected([f[2] for f in found])
    idx = np.flatnonzero(scored)
    card, summed, imagenet, ood = run_model(args.models_dir, [f[3] for f in found], "fp32")
    ood_threshold = card["unknown_policy"]["ood"]["threshold"] if "ood" in card["unknown_policy"] else np.inf
    plain, rules, tuned = rule_answers(summed, imagenet, ood, ood_threshold, idx, truth)
    _, int8_summed, int8_imagenet, int8_ood = run_model(args.models_dir, [f[3] for f in found], "int8")
    _, int8_rules, _ = rule_answers(int8_summed, int8_imagenet, int8_ood, ood_threshold, idx, truth)

    masks = {"cat": scored & (truth == "cat"), "dog": scored & (truth == "dog"),
             "other (main)": scored & (truth == "unknown") & (sets == "main"),
             "main (20)": scored & (sets == "main"),
             "extra other": scored & (sets == "extra other"), "tiny other": scored & (sets == "tiny other"),
             "all": scored}
    header = f"{'rule':<20}" + "".join(f"{m:>14}" for m in masks)
    report = {"ood_threshold": ood_threshold, "rules": {}, "rules_without_ood": {}, "tuned": tuned, "photos": []}
    for title, key, table in (("Rule alone (no OOD rejection):", "rules_without_ood", plain),
                              ("Rule + the card's calibrated OOD rejection (what would be served):", "rules", rules)):
        print(f"\n{title}\n{header}")
        for name, answers in table.items():
            row = {m: accuracy(answers, truth, mask) for m, mask in masks.items()}
            report[key][name] = row
            print(f"{name:<20}" + "".join(f"{row[m]:>14}" for m in masks))
    for name, values in tuned.items():
        print(f"  {name}: chosen per fold {values}")
    print("\nThe same rules (+ OOD) on the int8 model's outputs: accuracy, and answers equal to fp32's "
          "(the card serves int8 only when its answers agree with fp32's on ≥ 99 % of the parity photos):")
    report["int8"] = {}
    for name, answers in int8_rules.items():
        row = {"all": accuracy(answers, truth, scored),
               "same_as_fp32": f"{int((answers == rules[name]).sum())}/{len(found)}"}
        report["int8"][name] = row
        print(f"{name:<20}{row['all']:>14}{row['same_as_fp32']:>14}")

    print("\nPer photo, rule + OOD (cat/dog photos, and every photo some rule gets wrong with or without OOD):")
    print(f"{'photo':<34}{'truth':>8}{'P(cat)':>8}{'P(dog)':>8}{'top-1':>7}{'ood':>7}  " +
          "  ".join(n.split()[0] for n in rules))
    for i, (s, name, label, _) in enumerate(found):
        answers = [rules[n][i] for n in rules]
        if label in ("cat", "dog", "mixed") or any(plain[n][i] != truth[i] or rules[n][i] != truth[i] for n in rules):
            top = int(imagenet[i].argmax())
            print(f"{name:<34}{label:>8}{summed[i, 0]:>8.3f}{summed[i, 1]:>8.3f}{top:>7}{ood[i]:>7.2f}  " +
                  "  ".join(answers))
        report["photos"].append({"set": s, "name": name, "label": label, "p_cat": summed[i, 0],
                                 "p_dog": summed[i, 1], "top1": int(imagenet[i].argmax()), "ood": ood[i],
                                 "answers": dict(zip(rules, answers))})
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return report


if __name__ == "__main__":
    main()
