// A classic script of the Analyze page, run as soon as it is parsed (before the page's modules have loaded):
// the browser model's Web Worker starts loading TF.js and compiling its wasm while the page is still
// starting and looks up the model's version. edge.js adopts this worker.
globalThis.riimEdgeWorker = new Worker(new URL("edge-worker.js", document.currentScript.src), { type: "module" });
