// What the browser must compute exactly like the server: the same functions as models/decision.py (and the
// out-of-distribution scores of models/anomaly.py), proved equal by tests/test_contract_browser.py on golden
// vectors written by Python. Every parameter comes from the card or the version's files; nothing is
// hard-coded here except the inferno colour anchors. Arrays in float32 (Float32Array), as on the server.

const f32 = Math.fround;

/** Index of the largest probability (the first on ties). */
export function bestIndex(probabilities) {
  let best = 0;
  for (let i = 1; i < probabilities.length; i += 1) if (probabilities[i] > probabilities[best]) best = i;
  return best;
}

/** The card's unknown policy (probability threshold, then the calibrated ood rule) → [label, isUnknown]. */
export function decide(card, probabilities, oodScore = null) {
  const policy = card.unknown_policy;
  const best = bestIndex(probabilities.slice(0, card.labels.length));
  if (policy.rule === "max_probability_below" && probabilities[best] < policy.threshold) return ["unknown", true];
  if (policy.ood && oodScore !== null && oodScore > policy.ood.threshold) return ["unknown", true];
  return [card.labels[best], false];
}

// --- out-of-distribution scores (models/anomaly.py): higher = more unusual ----------------------------
/** Squared Mahalanobis distance of one vector to the nearest row of means {data, shape: [K, D]}. */
export function mahalanobis(vector, means, precision) {
  const [classes, size] = means.shape;
  const diff = new Float64Array(size);
  let nearest = Infinity;
  for (let k = 0; k < classes; k += 1) {
    for (let i = 0; i < size; i += 1) diff[i] = f32(vector[i] - means.data[k * size + i]);
    let total = 0;
    for (let j = 0; j < size; j += 1) {
      let projected = 0;
      for (let i = 0; i < size; i += 1) projected += diff[i] * precision.data[i * size + j];
      total += f32(projected) * diff[j];
    }
    nearest = Math.min(nearest, f32(total));
  }
  return nearest;
}

/** The model's classes' head columns (ImageNet classes of each label, sorted), or null for all. */
export function scoreColumns(card) {
  const mapping = card.label_mapping;
  return mapping ? card.labels.flatMap((label) => mapping[label]).sort((a, b) => a - b) : null;
}

/** The head's scores embedding · kernel + bias ({data, shape: [D, C]}, bias {data}) for `columns`. */
export function headLogits(embedding, head, columns) {
  const [size, units] = head.kernel.shape;
  return Float32Array.from(columns ?? Array.from({ length: units }, (_, c) => c), (c) => {
    let total = 0;
    for (let i = 0; i < size; i += 1) total += embedding[i] * head.kernel.data[i * units + c];
    return f32(total + head.bias.data[c]);
  });
}

/** Minus the log-sum-exp of the logits. */
export function energy(logits) {
  const top = Math.max(...logits);
  return f32(-(top + Math.log(logits.reduce((sum, value) => sum + Math.exp(value - top), 0))));
}

export const maxSoftmax = (probabilities) => -Math.max(...probabilities);

/** One image's score for `method`; params.head (kernel, bias) for energy, params.stats for Mahalanobis. */
export function oodScore(method, card, embedding, probabilities, { head, stats } = {}) {
  if (method === "mahalanobis") return mahalanobis(embedding, stats.means, stats.precision);
  if (method === "energy") return energy(headLogits(embedding, head, scoreColumns(card)));
  if (method === "max_softmax") return maxSoftmax(probabilities);
  throw new Error(`unknown OOD score ${method}`);
}

/** The arrays a score method reads: the version's file key and its arrays, or null (max_softmax). */
export const OOD_FILES = { mahalanobis: ["ood", "stats"], energy: ["head", "head"], max_softmax: null };

// --- tags --------------------------------------------------------------------------------------------
/** Indices of the k largest scores, largest first; equal scores by lower index. */
export function topK(scores, k) {
  return Array.from(scores.keys()).sort((a, b) => (scores[b] - scores[a]) || (a - b)).slice(0, k);
}

/** The card's tags.top_k ImageNet tags of one image's scores. */
export function topKTags(card, scores, names) {
  return topK(scores, card.tags.top_k).map((index) => ({ label: names[index], index, probability: scores[index] }));
}

// --- maps and colours --------------------------------------------------------------------------------
/** Scale to [0, 1] by the maximum after clipping negatives (a flat or negative map stays all zero). */
export function normaliseMap(values) {
  const clipped = Float32Array.from(values, (v) => Math.max(v, 0));
  const top = clipped.reduce((a, b) => Math.max(a, b), 0);
  return top > 0 ? clipped.map((v) => v / top) : clipped;
}

const ANCHORS = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];  // inferno

function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** 256 RGB colours interpolated between the anchors (flat Uint8Array, 3 per colour). */
export const COLOURS = (() => {
  const table = new Uint8Array(256 * 3);
  const last = ANCHORS.length - 1;
  for (let i = 0; i < 256; i += 1) {
    const position = i === 255 ? last : i * (last / 255);  // numpy.linspace(0, last, 256)
    const low = Math.min(Math.floor(position), last - 1);
    const weight = position - low;
    for (let c = 0; c < 3; c += 1) {
      table[i * 3 + c] = roundHalfEven((1 - weight) * ANCHORS[low][c] + weight * ANCHORS[low + 1][c]);
    }
  }
  return table;
})();

/** A value in [0, 1] (clipped) → its index in COLOURS. */
export const colourIndex = (value) => Math.floor(f32(f32(Math.min(Math.max(value, 0), 1)) * 255));

/** Values in [0, 1] → RGBA bytes (opaque) in the colour map. */
export function colourise(values) {
  const rgba = new Uint8ClampedArray(values.length * 4);
  values.forEach((value, i) => {
    const index = colourIndex(value) * 3;
    rgba.set([COLOURS[index], COLOURS[index + 1], COLOURS[index + 2], 255], i * 4);
  });
  return rgba;
}

// --- feature-map tiles -------------------------------------------------------------------------------
export const TILE_MIN_SIDE = 56;

/** [{channel, mean}] of the `count` most active channels of one (C, H, W) map (flat), most active first. */
export function selectTiles(values, channels, height, width, count) {
  const area = height * width;
  const means = Float32Array.from({ length: channels }, (_, c) => {
    let total = 0;
    for (let i = c * area; i < (c + 1) * area; i += 1) total += values[i];
    return total / area;
  });
  return topK(means, count).map((channel) => ({ channel, mean: means[channel] }));
}

/** One (H, W) channel normalised and enlarged by an integer factor to at least TILE_MIN_SIDE: {values, height, width}. */
export function tile(values, height, width) {
  const repeat = Math.max(1, Math.ceil(TILE_MIN_SIDE / width));
  const unit = normaliseMap(values);
  const out = new Float32Array(height * width * repeat * repeat);
  const outWidth = width * repeat;
  for (let y = 0; y < height * repeat; y += 1) {
    for (let x = 0; x < outWidth; x += 1) out[y * outWidth + x] = unit[Math.floor(y / repeat) * width + Math.floor(x / repeat)];
  }
  return { values: out, height: height * repeat, width: outWidth };
}
