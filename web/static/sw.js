// RIIM service worker: the app shell (pages, JS, CSS, catalogue) and the vendored libraries are cached
// so the Analyze page opens and classifies with the server unreachable. Pages, code and API reads go to
// the network first (always fresh when online) and fall back to the cache; vendored files are
// cache-first. Model weights are not cached here: edge.js keeps them in IndexedDB.
const CACHE = "riim-shell-v2";
const SHELL = [
  "/",
  "/static/css/app.css",
  "/static/i18n/messages.json",
  "/static/js/i18n.js",
  "/static/js/offline.js",
  "/static/js/tf-globals.js",
  "/static/js/preprocess.js",
  "/static/js/contract.js",
  "/static/js/edge.js",
  "/static/js/render.js",
  "/static/js/analyze.js",
  "/static/vendor/bootstrap/bootstrap.min.css",
  "/static/vendor/tfjs/tf.min.js",
  "/static/vendor/tfjs/tf-backend-wasm.min.js",
  "/static/vendor/tfjs/tfjs-backend-wasm.wasm",
  "/static/vendor/tfjs/tfjs-backend-wasm-simd.wasm",
  "/static/vendor/tfjs/tfjs-backend-wasm-threaded-simd.wasm",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(request) || (request.mode === "navigate" && await cache.match("/"));
    if (cached) return cached;
    throw error;
  }
}

async function cacheFirst(request) {
  const cached = await caches.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) (await caches.open(CACHE)).put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/static/vendor/")) event.respondWith(cacheFirst(event.request));
  else if (url.pathname.startsWith("/static/") || event.request.mode === "navigate"
           || url.pathname === "/api/v1/model-info") event.respondWith(networkFirst(event.request));
});
