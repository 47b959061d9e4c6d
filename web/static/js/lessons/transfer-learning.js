// Transfer-learning lesson, Teachable-Machine style: photos of 2–3 classes (the app's bundled real photos to
// start with; the student adds files or webcam captures), their embeddings from the REAL served model (the
// ONNX model's `embedding` output, POST /api/v1/lessons/embeddings — computed on the server, not by the
// browser's TF.js model), a new head (Dropout → Dense softmax, as training/finetune.py's stage 1) trained here
// with TF.js in seconds, then predictions on photos it did not train on, and live on the webcam.
import { element, fileButton, formatNumber, labelText, percent } from "../render.js";
import { decodeArray, fashionSet, predictHead, progressBar, thumbnail, trainHead } from "../lesson_data.js";

// Two sets of real photos to start from (the student can rename the classes, add photos or webcam captures):
// - "fashion": three Fashion-MNIST classes (embeddings from GET /api/v1/lessons/fashion, cached on the server);
// - "photos": the app's bundled cat / dog / other photos (few, and the cats and dogs mostly 32-pixel CIFAR
//   images: a lesson in itself about how much the data matters).
const FASHION = { rows: 100, classes: [7, 8, 1], test: 3 };  // sneaker, bag, trouser; last 3 of each to test
const PHOTOS = { perClass: 6, classes: ["cat", "dog", "other"],
  // held out: one real photo per class (darknet's dog.jpg, a street scene whose centre crop shows mostly a
  // bicycle, stays in training)
  test: ["foolbox/cifar10_08_3.png", "foolbox/imagenet_16_251.jpg", "skimage/coins"] };

const BATCH = 16;  // images per embeddings request (the API's limit)
const LIVE_EVERY_MS = 700;

async function fashionClasses(ctx) {
  const set = await fashionSet(ctx, "train", FASHION.rows);
  const classes = FASHION.classes.map((label) => {
    const rows = set.labels.map((l, row) => (l === label ? row : -1)).filter((row) => row >= 0);
    return { name: ctx.t(`lesson.transfer-learning.fashion_${set.classes[label]}`), examples: rows.map((row, i) => ({
      title: `Fashion-MNIST ${set.classes[label]}`, canvas: () => thumbnail(set, row, ""), heldOut: i >= rows.length - FASHION.test,
      embedding: set.x.slice(row * set.dimension, (row + 1) * set.dimension) })) };
  });
  return { classes, model: set.model };
}

async function photoClasses(ctx) {
  const { photos } = await ctx.api("/api/v1/lessons/samples");
  const classes = PHOTOS.classes.map((label) => {
    const chosen = photos.filter((photo) => photo.label === label).slice(0, PHOTOS.perClass);
    return { name: labelText(label), examples: chosen.map((photo) => ({ url: photo.url, title: photo.name, heldOut: PHOTOS.test.includes(photo.name) })) };
  });
  return { classes };
}

/** Fill in the embedding of every example that lacks one (the served model, in batches of 16). */
async function embed(ctx, examples) {
  const missing = examples.filter((example) => !example.embedding);
  let model = null;
  for (let start = 0; start < missing.length; start += BATCH) {
    const body = new FormData();
    for (const example of missing.slice(start, start + BATCH)) {
      example.blob ??= await (await fetch(example.url)).blob();
      body.append("image", example.blob, example.title || "photo.jpg");
    }
    const answer = await ctx.api("/api/v1/lessons/embeddings", { method: "POST", body });
    const { values, shape } = decodeArray(answer.embeddings);
    missing.slice(start, start + BATCH).forEach((example, i) => { example.embedding = values.slice(i * shape[1], (i + 1) * shape[1]); });
    model = answer.model;
  }
  return model;
}

/** An example's picture: its photo, or the Fashion-MNIST canvas. */
function picture(example, className, title = "") {
  const node = example.canvas ? example.canvas() : element("img", { attrs: { src: example.objectUrl || example.url, alt: example.title || "" } });
  if (className) node.classList.add(className);
  node.title = title || "";
  return node;
}

function stack(examples) {
  const dimension = examples[0].embedding.length;
  const x = new Float32Array(examples.length * dimension);
  examples.forEach((example, i) => x.set(example.embedding, i * dimension));
  return { x, dimension };
}

function classBox(ctx, state, index, onChange, camera) {
  const klass = state.classes[index];
  const name = element("input", { className: "form-control form-control-sm", attrs: { id: `tl-name-${index}`, value: klass.name, maxlength: "30", "aria-label": ctx.t("lesson.transfer-learning.class_name", { n: index + 1 }) } });
  name.addEventListener("input", () => { klass.name = name.value.trim() || `${index + 1}`; });
  const thumbs = element("div", { className: "lesson-class-thumbs" });
  const draw = () => {
    thumbs.replaceChildren(...klass.examples.map((example) => picture(example, example.heldOut ? "lesson-held-out" : "",
      example.heldOut ? ctx.t("lesson.transfer-learning.held_out") : example.title)));
  };
  draw();
  const files = element("input", { attrs: { type: "file", accept: "image/*", multiple: "", id: `tl-files-${index}` } });
  files.addEventListener("change", () => {
    for (const file of files.files) klass.examples.push({ blob: file, title: file.name, objectUrl: URL.createObjectURL(file), heldOut: false });
    files.value = "";
    draw();
    onChange();
  });
  const capture = element("button", { className: "btn btn-outline-secondary btn-sm", text: ctx.t("lesson.transfer-learning.capture"), attrs: { type: "button", disabled: "" } });
  capture.addEventListener("click", async () => {
    const blob = await camera.grab();
    if (!blob) return;
    klass.examples.push({ blob, title: "webcam.jpg", objectUrl: URL.createObjectURL(blob), heldOut: false });
    draw();
    onChange();
  });
  camera.buttons.push(capture);
  const count = element("span", { className: "small text-body-secondary" });
  klass.redraw = () => {
    draw();
    const training = klass.examples.filter((e) => !e.heldOut).length;
    count.textContent = ctx.t("lesson.transfer-learning.counts", { train: training, test: klass.examples.length - training });
  };
  klass.redraw();
  return element("div", { className: "col-12 col-md-4" }, element("div", { className: "lesson-class-box h-100" },
    element("label", { className: "form-label small mb-1", text: ctx.t("lesson.transfer-learning.class_name", { n: index + 1 }), attrs: { for: `tl-name-${index}` } }),
    name, thumbs, count, element("div", { className: "d-flex flex-column gap-1 mt-1" },
      fileButton(files, ctx.t("lesson.transfer-learning.add_files")), capture)));
}

/** The webcam: on/off, a frame as a JPEG blob. Absent (no camera API) → the buttons stay disabled. */
function webcam(ctx) {
  const video = element("video", { className: "lesson-webcam d-none", attrs: { autoplay: "", muted: "", playsinline: "" } });
  const toggle = element("button", { className: "btn btn-outline-primary btn-sm", text: ctx.t("lesson.transfer-learning.camera_on"), attrs: { type: "button" } });
  const camera = { video, toggle, stream: null, buttons: [], onStart: () => {} };
  if (!navigator.mediaDevices?.getUserMedia) {
    toggle.disabled = true;
    toggle.textContent = ctx.t("lesson.transfer-learning.no_camera");
  }
  toggle.addEventListener("click", async () => {
    if (camera.stream) {
      camera.stream.getTracks().forEach((track) => track.stop());
      camera.stream = null;
    } else {
      try {
        camera.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
        video.srcObject = camera.stream;
        camera.onStart();
      } catch (error) {
        toggle.textContent = ctx.t("lesson.transfer-learning.camera_refused", { message: error.message });
        return;
      }
    }
    video.classList.toggle("d-none", !camera.stream);
    toggle.textContent = ctx.t(camera.stream ? "lesson.transfer-learning.camera_off" : "lesson.transfer-learning.camera_on");
    camera.buttons.forEach((button) => { button.disabled = !camera.stream; });
  });
  camera.grab = () => new Promise((resolve) => {
    if (!camera.stream || !video.videoWidth) { resolve(null); return; }
    const canvas = element("canvas", { attrs: { width: String(video.videoWidth), height: String(video.videoHeight) } });
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(resolve, "image/jpeg", 0.9);
  });
  return camera;
}

/** Probability bars of one prediction (class names from the boxes), the best one highlighted. */
function fillBars(names, row, best) {
  const box = element("div", { className: "lesson-bars" });
  names.forEach((name, i) => {
    const fill = element("div", { className: `progress-bar${i === best ? "" : " bg-secondary"}` });
    fill.style.width = `${Math.round(100 * row[i])}%`;
    box.append(element("div", { className: "d-flex align-items-center gap-2 small mb-1" },
      element("span", { className: "lesson-bar-name text-truncate", text: name }),
      element("div", { className: "progress flex-grow-1", attrs: { role: "progressbar", "aria-label": name, "aria-valuenow": String(Math.round(100 * row[i])), "aria-valuemin": "0", "aria-valuemax": "100" } }, fill),
      element("span", { text: percent(row[i], 0) })));
  });
  return box;
}

/** Train the head on every training example; predictions for the held-out ones. */
async function trainAndTest(ctx, state, progress, output) {
  const used = state.classes.map((klass, label) => ({ klass, label })).filter(({ klass }) => klass.examples.some((e) => !e.heldOut));
  if (used.length < 2) throw new Error(ctx.t("lesson.transfer-learning.need_two"));
  const examples = used.flatMap(({ klass }) => klass.examples);
  progress.update(0, 1, ctx.t("lesson.transfer-learning.embedding", { count: examples.filter((e) => !e.embedding).length }));
  const started = performance.now();
  state.model = (await embed(ctx, examples)) || state.model;
  const embedSeconds = (performance.now() - started) / 1000;
  const labelled = (heldOut) => used.flatMap(({ klass }, label) => klass.examples.filter((e) => e.heldOut === heldOut).map((e) => ({ ...e, label })));
  const train = labelled(false);
  const test = labelled(true);
  const { x, dimension } = stack(train);
  state.head?.dispose();
  const epochs = ctx.quick ? 20 : 40;
  const { model, history } = await trainHead({ x, labels: train.map((e) => e.label) }, {
    dimension, classes: used.length, epochs, batchSize: 8, learningRate: 3e-3, dropout: 0.2,
    onEpoch: (epoch, logs) => progress.update(epoch + 1, epochs, ctx.t("lesson.transfer-learning.training", {
      epoch: epoch + 1, epochs, photos: train.length, loss: formatNumber(logs.loss, { maximumFractionDigits: 3 }) })),
  });
  Object.assign(state, { head: model, dimension, names: used.map(({ klass }) => klass.name) });
  const seconds = (performance.now() - started) / 1000;
  const rows = test.length ? predictHead(model, stack(test), dimension) : [];
  const right = rows.filter((row, i) => row.indexOf(Math.max(...row)) === test[i].label).length;
  const table = element("div", { className: "row g-2" }, ...test.map((example, i) => element("div", { className: "col-12 col-sm-6 col-lg-4" },
    element("div", { className: "d-flex gap-2 align-items-start" },
      picture(example, "lesson-thumb", example.title),
      element("div", { className: "flex-grow-1 small" },
        element("div", { text: ctx.t("lesson.transfer-learning.truth", { name: state.names[example.label] }) }),
        fillBars(state.names, rows[i], rows[i].indexOf(Math.max(...rows[i]))))))));
  output.replaceChildren(
    element("p", { className: "small mb-2", text: ctx.t(test.length ? "lesson.transfer-learning.result" : "lesson.transfer-learning.result_no_test", {
      right, total: test.length, photos: train.length, classes: used.length, seconds: formatNumber(seconds, { maximumFractionDigits: 1 }),
      embed: formatNumber(embedSeconds, { maximumFractionDigits: 1 }), accuracy: percent(history.acc.at(-1) ?? 0, 0) }) }),
    table);
  progress.update(1, 1, ctx.t("lesson.transfer-learning.trained", { model: `${state.model.name} ${state.model.version}`, dimension }));
  return { test_accuracy: test.length ? right / test.length : 0, train_photos: train.length, test_photos: test.length, dimension, classes: used.length, seconds };
}

/** Webcam frames classified by the trained head, every LIVE_EVERY_MS while the camera is on. */
function liveLoop(ctx, state, camera, output) {
  let busy = false;
  const tick = async () => {
    if (!camera.stream || !state.head || busy || document.hidden) return;
    busy = true;
    try {
      const blob = await camera.grab();
      if (!blob) return;
      const frame = { blob, title: "frame.jpg" };
      await embed(ctx, [frame]);
      const [row] = predictHead(state.head, stack([frame]), state.dimension);
      output.replaceChildren(element("p", { className: "small mb-1", text: ctx.t("lesson.transfer-learning.live_says") }), fillBars(state.names, row, row.indexOf(Math.max(...row))));
    } catch (error) {
      output.replaceChildren(element("p", { className: "small text-danger", text: error.message }));
    } finally {
      busy = false;
    }
  };
  setInterval(tick, LIVE_EVERY_MS);
}

const PRESETS = { fashion: fashionClasses, photos: photoClasses, empty: async (ctx) => ({ classes: [1, 2, 3].map((n) => ({ name: ctx.t("lesson.transfer-learning.class_name", { n }), examples: [] })) }) };

export async function mount(root, ctx) {
  const state = { classes: [] };
  const camera = webcam(ctx);
  const progress = progressBar();
  const output = element("div", { className: "mt-2" });
  const live = element("div", { className: "mt-2", attrs: { "aria-live": "polite" } });
  const preset = element("select", { className: "form-select form-select-sm w-auto mw-100", attrs: { id: "tl-preset" } },
    ...Object.keys(PRESETS).map((key) => element("option", { text: ctx.t(`lesson.transfer-learning.preset_${key}`), attrs: { value: key } })));
  const trainButton = element("button", { className: "btn btn-primary btn-sm", text: ctx.t("lesson.transfer-learning.train"), attrs: { type: "button" } });
  const pickFile = element("input", { attrs: { type: "file", accept: "image/*", id: "tl-classify" } });
  const boxes = element("div", { className: "row g-2 mb-2" });
  const train = async () => {
    trainButton.disabled = true;
    try {
      ctx.shared.transfer = await trainAndTest(ctx, state, progress, output);
      return ctx.shared.transfer;
    } catch (error) {
      output.replaceChildren(element("div", { className: "alert alert-danger mb-0", text: error.message }));
      return null;
    } finally {
      trainButton.disabled = false;
    }
  };
  const load = async (key) => {
    state.head?.dispose();
    state.head = null;  // the live view waits for the next training
    live.replaceChildren();
    const { classes, model } = await PRESETS[key](ctx);
    Object.assign(state, { classes, model: model || state.model });
    camera.buttons.length = 0;
    boxes.replaceChildren(...state.classes.map((_, i) => classBox(ctx, state, i, () => state.classes.forEach((k) => k.redraw()), camera)));
    camera.buttons.forEach((button) => { button.disabled = !camera.stream; });
    output.replaceChildren();
  };
  root.append(element("p", { className: "small", text: ctx.t("lesson.transfer-learning.intro") }),
    element("div", { className: "mb-2" },
      element("label", { className: "form-label small d-block mb-1", text: ctx.t("lesson.transfer-learning.preset"), attrs: { for: "tl-preset" } }), preset),
    boxes, element("div", { className: "d-flex flex-wrap gap-2 align-items-center mb-2" }, trainButton, camera.toggle),
    camera.video, progress.node, output,
    element("h3", { className: "h6 mt-3", text: ctx.t("lesson.transfer-learning.live_title") }),
    element("label", { className: "form-label small", text: ctx.t("lesson.transfer-learning.classify_file"), attrs: { for: "tl-classify" } }), element("div", {}, fileButton(pickFile, ctx.t("common.choose_photo"))), live);
  trainButton.addEventListener("click", train);
  preset.addEventListener("change", async () => {
    await load(preset.value);
    if (preset.value !== "empty") await train();
    else progress.update(0, 1, ctx.t("lesson.transfer-learning.empty_hint"));
  });
  pickFile.addEventListener("change", async () => {
    const file = pickFile.files[0];
    if (!file || !state.head) return;
    const example = { blob: file, title: file.name };
    try {
      await embed(ctx, [example]);
      const [row] = predictHead(state.head, stack([example]), state.dimension);
      live.replaceChildren(element("img", { className: "lesson-thumb me-2", attrs: { src: URL.createObjectURL(file), alt: file.name } }),
        fillBars(state.names, row, row.indexOf(Math.max(...row))));
    } catch (error) {
      live.replaceChildren(element("div", { className: "alert alert-danger mb-0", text: error.message }));
    }
  });
  liveLoop(ctx, state, camera, live);
  await load("fashion");
  const result = await trainAndTest(ctx, state, progress, output);
  ctx.shared.transfer = result;
  root.dataset.result = JSON.stringify(result);
  root.dataset.expect = JSON.stringify({ test_accuracy: [0.66, 1], train_photos: [6, 200], dimension: [8, 4096], seconds: [0, 60] });
  root.dataset.state = "done";
}

/** How many numbers does the new head learn? (one weight per embedding number and class, plus a bias per class) */
export async function exercise(root, ctx) {
  const input = element("input", { className: "form-control form-control-sm lesson-q-input", attrs: { id: "tl-params", type: "number", min: "0", step: "1" } });
  const check = element("button", { className: "btn btn-primary btn-sm", text: ctx.t("lesson.transfer-learning.ex_check"), attrs: { type: "button" } });
  const answer = element("div", { className: "mt-2", attrs: { role: "status" } });
  const facts = ctx.shared.transfer;
  if (!facts) throw new Error(ctx.t("lesson.transfer-learning.ex_wait"));
  root.append(element("p", { text: ctx.t("lesson.transfer-learning.ex_question", { dimension: formatNumber(facts.dimension), classes: facts.classes }) }),
    element("div", { className: "d-flex flex-wrap gap-2 align-items-end" },
      element("label", { className: "form-label small w-100 mb-0", text: ctx.t("lesson.transfer-learning.ex_label"), attrs: { for: "tl-params" } }), input, check),
    answer);
  check.addEventListener("click", () => {
    const { dimension, classes } = ctx.shared.transfer;
    const expected = (dimension + 1) * classes;
    const ok = Number(input.value) === expected;
    answer.replaceChildren(element("div", { className: `alert ${ok ? "alert-success" : "alert-warning"} mb-0` },
      element("strong", { text: ctx.t(ok ? "lesson.transfer-learning.ex_right" : "lesson.transfer-learning.ex_wrong") }), " ",
      ctx.t("lesson.transfer-learning.ex_explain", { dimension: formatNumber(dimension), classes, weights: formatNumber(dimension * classes), expected: formatNumber(expected) })));
    if (ok) ctx.complete?.();
  });
  root.dataset.state = "ready";
}
