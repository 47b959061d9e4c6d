// Real Fashion-MNIST photos for the first lessons (GET /api/v1/learn/garments), and the hand-made features
// that turn a 28×28 photo into two numbers a small classifier can learn from.
import { element } from "../render.js";

const INK = 60;  // a pixel brighter than this (0-255) is part of the garment

/** Two numbers per 28×28 photo: the share of columns and of rows that contain part of the garment. */
export function shapeFeatures(pixels) {
  let columns = 0;
  let rows = 0;
  for (let i = 0; i < 28; i += 1) {
    let column = false;
    let row = false;
    for (let j = 0; j < 28; j += 1) {
      column ||= pixels[j * 28 + i] > INK;
      row ||= pixels[i * 28 + j] > INK;
    }
    columns += column;
    rows += row;
  }
  return [columns / 28, rows / 28];
}

/** Two other numbers: how much of the photo is garment (0-1), and which share of that lies in the top half. */
export function inkFeatures(pixels) {
  let ink = 0;
  let top = 0;
  pixels.forEach((value, i) => {
    if (value > INK) {
      ink += 1;
      if (i < 14 * 28) top += 1;
    }
  });
  return [ink / pixels.length, ink ? top / ink : 0];
}

/** The base64 uint8 array of the API as one Uint8Array view per photo. */
function decode(encoded) {
  const bytes = Uint8Array.from(atob(encoded.data), (c) => c.charCodeAt(0));
  const size = encoded.shape[1] * encoded.shape[2];
  return Array.from({ length: encoded.shape[0] }, (_, i) => bytes.subarray(i * size, (i + 1) * size));
}

/** A 28×28 grey photo on a small canvas. */
export function thumbnail(pixels, label) {
  const canvas = element("canvas", { className: "garment-thumb", attrs: { width: 28, height: 28, role: "img", "aria-label": label } });
  const image = new ImageData(28, 28);
  pixels.forEach((value, i) => image.data.set([value, value, value, 255], i * 4));
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

/** ``count`` training and ``test`` test photos per class of two classes (``pair`` = "sneaker,bag"), each with
 * its two ``features``. */
export async function loadGarments(ctx, pair, features, count = ctx.quick ? 15 : 30, test = ctx.quick ? 8 : 20) {
  const data = await ctx.api(`/api/v1/learn/garments?classes=${pair}&count=${count}&test=${test}`);
  const part = (name) => {
    const images = decode(data[name].pixels);
    return { images, points: images.map(features), labels: data[name].labels };
  };
  return { classes: data.classes, train: part("train"), test: part("test") };
}
