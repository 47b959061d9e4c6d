// The card's `input` rule in the browser, written to give the same pixels as models/preprocess.py:
// centred square of crop_fraction × the shorter side → resize to size×size with Pillow's bilinear
// resampling (same coefficients and 8-bit fixed-point rounding) → (pixel − mean) / std per channel.
// Every number comes from the card; nothing about the model is written here.

const PRECISION_BITS = 22; // Pillow: 32 - 8 - 2

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

// Pillow's precompute_coeffs for the bilinear filter (support 1), as integer fixed-point weights.
function coefficients(inSize, in0, in1, outSize) {
  const scale = (in1 - in0) / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const bounds = [];
  for (let i = 0; i < outSize; i += 1) {
    const center = in0 + (i + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const weights = new Float64Array(count);
    let total = 0;
    for (let x = 0; x < count; x += 1) {
      const distance = Math.abs((x + xmin - center + 0.5) / filterScale);
      weights[x] = distance < 1 ? 1 - distance : 0;
      total += weights[x];
    }
    for (let x = 0; x < count; x += 1) {
      weights[x] = Math.trunc(0.5 + (total ? weights[x] / total : weights[x]) * 2 ** PRECISION_BITS);
    }
    bounds.push({ start: xmin, weights });
  }
  return bounds;
}

function clip8(sum) {
  return Math.min(255, Math.max(0, Math.floor(sum / 2 ** PRECISION_BITS)));
}

/** Crop and resize RGBA ImageData to the card's size: Uint8Array (size × size × 3), before normalisation. */
export function modelPixels(image, input) {
  const size = input.size;
  const [left, top, right, bottom] = cropBox(image.width, image.height, input.crop_fraction);
  const columns = coefficients(image.width, left, right, size);
  const rows = coefficients(image.height, top, bottom, size);
  const firstRow = rows[0].start;
  const lastRow = rows[size - 1].start + rows[size - 1].weights.length;
  const src = image.data;
  // Horizontal pass over the rows the vertical pass needs, rounded to 8 bits like Pillow.
  const temp = new Uint8Array((lastRow - firstRow) * size * 3);
  for (let y = firstRow; y < lastRow; y += 1) {
    for (let x = 0; x < size; x += 1) {
      const { start, weights } = columns[x];
      for (let c = 0; c < 3; c += 1) {
        let sum = 2 ** (PRECISION_BITS - 1);
        for (let k = 0; k < weights.length; k += 1) sum += src[(y * image.width + start + k) * 4 + c] * weights[k];
        temp[((y - firstRow) * size + x) * 3 + c] = clip8(sum);
      }
    }
  }
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y += 1) {
    const { start, weights } = rows[y];
    for (let x = 0; x < size; x += 1) {
      for (let c = 0; c < 3; c += 1) {
        let sum = 2 ** (PRECISION_BITS - 1);
        for (let k = 0; k < weights.length; k += 1) sum += temp[((start - firstRow + k) * size + x) * 3 + c] * weights[k];
        out[(y * size + x) * 3 + c] = clip8(sum);
      }
    }
  }
  return out;
}

/** (pixel − mean) / std per channel → Float32Array in NHWC order. */
export function normalize(pixels, input) {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i += 1) {
    const c = i % 3;
    out[i] = (pixels[i] - input.mean[c]) / input.std[c];
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
