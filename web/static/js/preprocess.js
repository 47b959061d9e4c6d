// The card's `input` rule in the browser, written to give the same pixels as models/preprocess.py:
// centred square of crop_fraction × the shorter side → resize to size×size with Pillow's bilinear
// resampling (same coefficients and 8-bit fixed-point rounding) → (pixel − mean) / std per channel.
// Every number comes from the card; nothing about the model is written here.

const PRECISION_BITS = 22; // Pillow: 32 - 8 - 2
const HALF = 1 << (PRECISION_BITS - 1);

/** Decode an image blob into RGBA pixels as Pillow sees them (EXIF orientation, no colour management). */
export async function decodePixels(blob) {
  const bitmap = await createImageBitmap(blob, {
    colorSpaceConversion: "none", imageOrientation: "from-image", premultiplyAlpha: "none",
  });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.fillStyle = "#fff"; // transparency composited on white, as models/preprocess.to_rgb does
  context.fillRect(0, 0, bitmap.width, bitmap.height);
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  return context.getImageData(0, 0, canvas.width, canvas.height);
}

/** The centred square the model sees: [left, top, right, bottom] (models/preprocess.crop_box). */
export function cropBox(width, height, cropFraction) {
  const side = Math.min(width, height) * cropFraction;
  const left = (width - side) / 2;
  const top = (height - side) / 2;
  return [left, top, left + side, top + side];
}

// Pillow's precompute_coeffs for the bilinear filter (support 1 × the downscaling factor, so a downscale
// averages every source pixel under each output pixel), as integer fixed-point weights: output i reads
// count[i] pixels from start[i], weights at i × width. Kept per geometry (a webcam repeats its frame size).
const tables = new Map();
function coefficients(inSize, in0, in1, outSize) {
  const key = `${inSize} ${in0} ${in1} ${outSize}`;
  if (tables.has(key)) return tables.get(key);
  const scale = Math.fround(in1 - in0) / outSize;  // IN0, IN1 are float32 like Pillow's box; so is their difference
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const reciprocal = 1 / filterScale;
  const width = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * width);
  const raw = new Float64Array(width);
  for (let i = 0; i < outSize; i += 1) {
    const center = in0 + (i + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let x = 0; x < n; x += 1) {
      const distance = Math.abs((x + xmin - center + 0.5) * reciprocal);
      raw[x] = distance < 1 ? 1 - distance : 0;
      total += raw[x];
    }
    for (let x = 0; x < n; x += 1) {
      weights[i * width + x] = Math.trunc(0.5 + (total ? raw[x] / total : raw[x]) * 2 ** PRECISION_BITS);
    }
    start[i] = xmin;
    count[i] = n;
  }
  const table = { start, count, weights, width };
  if (tables.size > 8) tables.clear();
  tables.set(key, table);
  return table;
}

// The two resampling passes of Pillow's 8-bit path: sums in 32-bit integers, each result shifted back and
// clipped to 0..255 (the Uint8ClampedArray store clips). SRC has WIDTH pixels a row and STRIDE bytes a pixel
// (4 RGBA, 3 RGB); the output is RGB. Horizontal: rows FIRST..LAST of the source, SHIFT = its first column
// in source coordinates; vertical: columns X0..X1, FIRST = its first row in source coordinates.
function horizontal(src, width, stride, first, last, table, outWidth, shift = 0) {
  const { start, count, weights, width: taps } = table;
  const out = new Uint8ClampedArray((last - first) * outWidth * 3);
  for (let y = first, o = 0; y < last; y += 1) {
    const row = y * width * stride;
    for (let x = 0; x < outWidth; x += 1, o += 3) {
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let k = 0, p = row + (start[x] - shift) * stride, w = x * taps; k < count[x]; k += 1, p += stride, w += 1) {
        const weight = weights[w];
        r += src[p] * weight;
        g += src[p + 1] * weight;
        b += src[p + 2] * weight;
      }
      out[o] = r >> PRECISION_BITS;
      out[o + 1] = g >> PRECISION_BITS;
      out[o + 2] = b >> PRECISION_BITS;
    }
  }
  return out;
}

function vertical(src, width, stride, first, table, outHeight, x0, x1) {
  const { start, count, weights, width: taps } = table;
  const out = new Uint8ClampedArray(outHeight * (x1 - x0) * 3);
  const line = width * stride;
  for (let y = 0, o = 0; y < outHeight; y += 1) {
    const top = (start[y] - first) * line;
    for (let x = x0; x < x1; x += 1, o += 3) {
      let r = HALF;
      let g = HALF;
      let b = HALF;
      for (let k = 0, p = top + x * stride, w = y * taps; k < count[y]; k += 1, p += line, w += 1) {
        const weight = weights[w];
        r += src[p] * weight;
        g += src[p + 1] * weight;
        b += src[p + 2] * weight;
      }
      out[o] = r >> PRECISION_BITS;
      out[o + 1] = g >> PRECISION_BITS;
      out[o + 2] = b >> PRECISION_BITS;
    }
  }
  return out;
}

/** Crop and resize RGBA ImageData to the card's size: Uint8Array (size × size × 3), before normalisation. */
export function modelPixels(image, input) {
  const size = input.size;
  // Pillow holds the box in float32.
  const [left, top, right, bottom] = cropBox(image.width, image.height, input.crop_fraction).map(Math.fround);
  const columns = coefficients(image.width, left, right, size);
  const rows = coefficients(image.height, top, bottom, size);
  // Pillow 13 resizes vertically first when the height shrinks much more than the width (python-pillow/Pillow
  // #9549); the order changes the 8-bit rounding between the passes, so it is followed here. Either first
  // pass runs only over the rows (columns) the second one reads.
  if (size < image.height && image.height - size > 2 * (image.width - size)) {
    const x0 = columns.start[0];
    const x1 = columns.start[size - 1] + columns.count[size - 1];
    const temp = vertical(image.data, image.width, 4, 0, rows, size, x0, x1);
    return new Uint8Array(horizontal(temp, x1 - x0, 3, 0, size, columns, size, x0).buffer);
  }
  const first = rows.start[0];
  const last = rows.start[size - 1] + rows.count[size - 1];
  const temp = horizontal(image.data, image.width, 4, first, last, columns, size);
  return new Uint8Array(vertical(temp, size, 3, first, rows, size, 0, size).buffer);
}

// (p − mean) / std for every byte value and channel, in float32 steps as numpy does (models/preprocess.normalize).
function normalizeTable(input) {
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c += 1) {
    const mean = Math.fround(input.mean[c]);
    const std = Math.fround(input.std[c]);
    for (let v = 0; v < 256; v += 1) table[c * 256 + v] = Math.fround(v - mean) / std;
  }
  return table;
}

/** (pixel − mean) / std per channel → Float32Array in NHWC order (into OUT when given). */
export function normalize(pixels, input, out = new Float32Array(pixels.length)) {
  const table = normalizeTable(input);
  for (let i = 0; i < pixels.length; i += 3) {
    out[i] = table[pixels[i]];
    out[i + 1] = table[256 + pixels[i + 1]];
    out[i + 2] = table[512 + pixels[i + 2]];
  }
  return out;
}

/** The model pixels as RGBA ImageData (to show exactly what the network sees). */
export function toImageData(pixels, size) {
  const rgba = new Uint8ClampedArray(size * size * 4);
  for (let i = 0; i < size * size; i += 1) {
    rgba.set(pixels.subarray(i * 3, i * 3 + 3), i * 4);
    rgba[i * 4 + 3] = 255;
  }
  return new ImageData(rgba, size, size);
}
