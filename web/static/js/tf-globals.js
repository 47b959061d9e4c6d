// Loaded before the vendored tf.min.js. Its bundled regenerator runtime assigns the global
// `regeneratorRuntime` and, when that throws in strict mode, falls back to `Function(...)` — an eval the
// strict Content-Security-Policy forbids, which breaks TF.js start-up. Declaring the global first avoids it.
globalThis.regeneratorRuntime = undefined;
