// A classic script in the Analyze page's <head>, run as soon as it arrives (async: it waits for nothing else):
// the browser model's Web Worker starts loading TF.js and compiling its wasm while the page is still
// starting and looks up the model's version. edge.js adopts this worker.
globalThis.riimEdgeWorker = new Worker(new URL("edge-worker.js", document.currentScript.src), { type: "module" });
