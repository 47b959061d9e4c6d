// A photo or drawing of ONE handwritten digit → an MNIST-like 28×28 input, step by step: the same steps,
// constants and float64 operations (in the same order) as models/digits_preprocess.py, which documents
// them. Golden vectors written by Python (tests/test_digits_preprocess.py) prove both agree.
export const SIZE = 28;
const BOX = 20;
const WORK_SIDE = 160;
const SMALL_SIDE = 32;
const MIN_CONTRAST = 0.2;
const TAIL = 0.005;
const BACKGROUND_RADIUS = 16;
const NOISE_FRACTION = 0.02;
const PART_MARGIN = 0.15;
const SEVERAL_FRACTION = 0.25;
const MIN_DIGIT_FRACTION = 0.08;
const MAX_INK_FRACTION = 0.5;

const round = (value) => Math.floor(value + 0.5);  // half up, as the Python side

/** A float64 image: {data: Float64Array, height, width}. */
const image = (height, width, data = new Float64Array(height * width)) => ({ data, height, width });

function taps(nIn, nOut) {
  const scale = nOut / nIn;
  const support = Math.max(1, 1 / scale);
  const result = [];
  for (let i = 0; i < nOut; i += 1) {
    const centre = (i + 0.5) / scale;
    const low = Math.max(0, Math.floor(centre - support));
    const high = Math.min(nIn, Math.ceil(centre + support));
    const weights = [];
    for (let j = low; j < high; j += 1) weights.push(Math.max(0, 1 - Math.abs((j + 0.5 - centre) / support)));
    let total = 0;
    for (const weight of weights) total += weight;
    result.push([low, weights.map((weight) => weight / total)]);
  }
  return result;
}

function resizeRows(source, nOut) {
  const { data, height, width } = source;
  const out = image(nOut, width);
  taps(height, nOut).forEach(([low, weights], i) => {
    for (let x = 0; x < width; x += 1) {
      let acc = 0;
      weights.forEach((weight, k) => { acc += weight * data[(low + k) * width + x]; });
      out.data[i * width + x] = acc;
    }
  });
  return out;
}

function transpose({ data, height, width }) {
  const out = image(width, height);
  for (let y = 0; y < height; y += 1) for (let x = 0; x < width; x += 1) out.data[x * height + y] = data[y * width + x];
  return out;
}

/** Minimum over [i − radius, i + radius] along the rows, clipped at the edges. */
function minFilter(source, radius) {
  const { data, height, width } = source;
  const out = image(height, width, Float64Array.from(data));
  for (let shift = 1; shift <= radius; shift += 1) {
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) {
        const at = y * width + x;
        if (y >= shift) out.data[at] = Math.min(out.data[at], data[at - shift * width]);
        if (y + shift < height) out.data[at] = Math.min(out.data[at], data[at + shift * width]);
      }
    }
  }
  return out;
}

/** Separable antialiased triangle-filter resize (rows first, then columns). */
export function resize(source, height, width) {
  return transpose(resizeRows(transpose(resizeRows(source, height)), width));
}

/** Luma 0–255 of interleaved pixels with ``channels`` (1: grey, 3: RGB, 4: RGBA as ImageData). */
export function grey(pixels, width, height, channels) {
  const out = image(height, width);
  for (let i = 0; i < width * height; i += 1) {
    out.data[i] = channels < 3 ? pixels[i * channels]
      : 0.299 * pixels[i * channels] + 0.587 * pixels[i * channels + 1] + 0.114 * pixels[i * channels + 2];
  }
  return out;
}

export function otsu(levels) {
  const hist = new Array(256).fill(0);
  for (const level of levels) hist[level] += 1;
  const count = levels.length;
  let total = 0;
  hist.forEach((h, i) => { total += i * h; });
  let weightLow = 0; let sumLow = 0; let best = -1; let threshold = 0;
  for (let level = 0; level < 256; level += 1) {
    weightLow += hist[level];
    if (weightLow === 0) continue;
    const weightHigh = count - weightLow;
    if (weightHigh === 0) break;
    sumLow += level * hist[level];
    const difference = sumLow / weightLow - (total - sumLow) / weightHigh;
    const between = weightLow * weightHigh * difference * difference;
    if (between > best) { best = between; threshold = level; }
  }
  return threshold;
}

/** 8-connected components: {labels: Int32Array (1-based, largest first), found: [{area, box, first}]}. */
export function components(mask, height, width) {
  const raw = new Int32Array(height * width);
  const groups = [];
  const stack = [];
  for (let start = 0; start < mask.length; start += 1) {
    if (!mask[start] || raw[start]) continue;
    const group = { area: 0, box: [height, -1, width, -1], first: start, id: groups.length + 1 };
    raw[start] = group.id;
    stack.push(start);
    while (stack.length) {
      const at = stack.pop();
      const y = Math.floor(at / width); const x = at - y * width;
      group.area += 1;
      group.box = [Math.min(group.box[0], y), Math.max(group.box[1], y), Math.min(group.box[2], x), Math.max(group.box[3], x)];
      for (let dy = -1; dy <= 1; dy += 1) {
        for (let dx = -1; dx <= 1; dx += 1) {
          const ny = y + dy; const nx = x + dx;
          if (ny < 0 || ny >= height || nx < 0 || nx >= width) continue;
          const next = ny * width + nx;
          if (mask[next] && !raw[next]) { raw[next] = group.id; stack.push(next); }
        }
      }
    }
    groups.push(group);
  }
  const found = [...groups].sort((a, b) => b.area - a.area || a.first - b.first);
  const rank = new Int32Array(groups.length + 1);
  found.forEach((group, index) => { rank[group.id] = index + 1; });
  const labels = raw.map((id) => rank[id]);
  return { labels, found: found.map(({ area, box, first }) => ({ area, box, first })) };
}

const near = (box, other, margin) => other[0] <= box[1] + margin && other[1] >= box[0] - margin
  && other[2] <= box[3] + margin && other[3] >= box[2] - margin;

/** The MNIST-like input of one digit: {input: Float32Array(784) | null, reason, steps, info}. ``pixels``
 * interleaved with ``channels`` (ImageData: 4). Steps are float64 images in [0, 1] to draw. */
export function preprocess(pixels, width, height, channels = 4) {
  let luma = grey(pixels, width, height, channels);
  const longest = Math.max(height, width);
  if (longest > WORK_SIDE || longest < SMALL_SIDE) {
    const side = longest > WORK_SIDE ? WORK_SIDE : SMALL_SIDE;
    luma = resize(luma, Math.max(1, round(height * side / longest)), Math.max(1, round(width * side / longest)));
  }
  ({ height, width } = luma);
  const steps = { grey: image(height, width, luma.data.map((v) => v / 255)) };
  const ordered = Float64Array.from(luma.data).sort();
  const tail = Math.floor(TAIL * (ordered.length - 1));
  const low = ordered[tail]; const high = ordered[ordered.length - 1 - tail];
  const info = { contrast: (high - low) / 255 };
  if (info.contrast < MIN_CONTRAST) return { input: null, reason: "empty", steps, info };
  const stretched = luma.data.map((v) => Math.min(Math.max((v - low) / (high - low), 0), 1));
  const border = [];
  for (let x = 0; x < width; x += 1) border.push(stretched[x]);
  for (let x = 0; x < width; x += 1) border.push(stretched[(height - 1) * width + x]);
  for (let y = 1; y < height - 1; y += 1) border.push(stretched[y * width]);
  for (let y = 1; y < height - 1; y += 1) border.push(stretched[y * width + width - 1]);
  let borderSum = 0;
  for (const value of border) borderSum += value;
  info.dark_background = borderSum / border.length < 0.5;
  const raw = image(height, width, info.dark_background ? stretched : stretched.map((v) => 1 - v));
  let covered = 0;
  for (const value of raw.data) covered += value > 0.5 ? 1 : 0;
  info.ink_fraction = covered / raw.data.length;
  if (info.ink_fraction > MAX_INK_FRACTION) {
    steps.ink = raw;
    return { input: null, reason: "no_digit", steps, info };
  }
  const background = transpose(minFilter(transpose(minFilter(raw, BACKGROUND_RADIUS)), BACKGROUND_RADIUS));
  let ink = raw.data.map((v, i) => v - background.data[i]);
  let inkPeak = 0;
  for (const value of ink) inkPeak = Math.max(inkPeak, value);
  if (inkPeak > 0) ink = ink.map((v) => v / inkPeak);
  steps.ink = image(height, width, ink);
  const levels = Array.from(ink, (v) => Math.floor(v * 255 + 0.5));
  info.threshold = otsu(levels);
  const mask = Uint8Array.from(levels, (level) => (level > info.threshold ? 1 : 0));
  const { labels, found } = components(mask, height, width);
  if (!found.length) {
    steps.mask = image(height, width, Float64Array.from(mask));
    return { input: null, reason: "no_digit", steps, info };
  }
  const main = found[0];
  const significant = found.filter((c) => c.area >= NOISE_FRACTION * main.area);
  let box = [...main.box];
  const keep = new Set([1]);
  const others = [];
  significant.slice(1).forEach((part, index) => {
    const margin = PART_MARGIN * Math.max(box[1] - box[0] + 1, box[3] - box[2] + 1);
    if (near(box, part.box, margin)) {
      keep.add(index + 2);
      box = [Math.min(box[0], part.box[0]), Math.max(box[1], part.box[1]), Math.min(box[2], part.box[2]), Math.max(box[3], part.box[3])];
    } else {
      others.push(part);
    }
  });
  steps.mask = image(height, width, Float64Array.from(labels, (label, i) => (keep.has(label) ? 1 : mask[i] ? 0.35 : 0)));
  const [top, bottom, left, right] = box;
  Object.assign(info, { box, components: found.length, parts: keep.size, separate: others.length });
  if (Math.max(bottom - top + 1, right - left + 1) < MIN_DIGIT_FRACTION * Math.max(height, width)
      || (top === 0 && bottom === height - 1 && left === 0 && right === width - 1)) {
    return { input: null, reason: "no_digit", steps, info };
  }
  if (others.some((part) => part.area >= SEVERAL_FRACTION * main.area)) {
    return { input: null, reason: "several_digits", steps, info };
  }
  let rows = bottom - top + 1; let cols = right - left + 1;
  const crop = image(rows, cols);
  for (let y = 0; y < rows; y += 1) {
    for (let x = 0; x < cols; x += 1) {
      const at = (top + y) * width + left + x;
      crop.data[y * cols + x] = keep.has(labels[at]) ? ink[at] : 0;
    }
  }
  steps.crop = crop;
  const scale = BOX / Math.max(rows, cols);
  rows = Math.max(1, round(rows * scale)); cols = Math.max(1, round(cols * scale));
  const small = resize(crop, rows, cols);
  let peak = -Infinity;
  for (const value of small.data) peak = Math.max(peak, value);
  if (peak > 0) small.data = small.data.map((v) => v / peak);
  steps.scaled = small;
  let mass = 0; let centreY = 0; let centreX = 0;
  for (let y = 0; y < rows; y += 1) {
    for (let x = 0; x < cols; x += 1) {
      const value = small.data[y * cols + x];
      mass += value; centreY += value * (y + 0.5); centreX += value * (x + 0.5);
    }
  }
  centreY /= mass; centreX /= mass;
  const y0 = Math.min(Math.max(round(SIZE / 2 - centreY), 0), SIZE - rows);
  const x0 = Math.min(Math.max(round(SIZE / 2 - centreX), 0), SIZE - cols);
  const frame = image(SIZE, SIZE);
  for (let y = 0; y < rows; y += 1) for (let x = 0; x < cols; x += 1) frame.data[(y0 + y) * SIZE + x0 + x] = small.data[y * cols + x];
  steps.input = frame;
  info.offset = [y0, x0];
  return { input: Float32Array.from(frame.data), reason: null, steps, info };
}
