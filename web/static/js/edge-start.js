// Imported first by analyze.js, so it runs before the page's other modules (i18n waits for its catalogue):
// the browser model's Web Worker starts loading TF.js at once and, on a repeat visit, the model from IndexedDB.
import { startWorker } from "./edge.js";

startWorker(document.getElementById("model-select").dataset.classModel || document.getElementById("main").dataset.model);
