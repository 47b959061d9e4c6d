// RIIM service worker: the public app shell (pages, JS, CSS, catalogue) and the vendored libraries are
// cached so the Analyze page opens and classifies with the server unreachable. Only public GETs are ever
// cached (isPublic): never the labelling page, admin API answers, job logs or uploaded photos, which go to
// the network untouched. Files under /static/ are served from the cache of this worker's VERSION (the
// server writes the static files' content hash into it): a repeat visit asks the server for none of them,
// and a new version of any file comes with a new worker and a new cache. Public pages and reads go to the
// network first (always fresh when online) and fall back to the cache. Model weights are not cached here:
// edge.js keeps them in IndexedDB. Logging out (POST /api/v1/auth/logout, seen here) deletes every other cache and
// anything non-public, including what older versions of this worker kept.
const VERSION = "unversioned";
const CACHE = `riim-shell-${VERSION}`;
const SHELL = [
  "/",
  "/static/css/app.css",
  "/static/favicon.svg",
  "/imagenet-labels.es.json",
  "/static/i18n/messages.json",
  "/static/js/i18n.js",
  "/static/js/offline.js",
  "/static/js/preprocess.js",
  "/static/js/contract.js",
  "/static/js/edge.js",
  "/static/js/edge-worker.js",
  "/static/js/edge-start.js",
  "/static/js/render.js",
  "/static/js/analyze.js",
  "/static/vendor/bootstrap/bootstrap.min.css",
  "/static/vendor/bootstrap/bootstrap.bundle.min.js",
  "/static/vendor/tfjs/tf-core.es2017.min.js",
  "/static/vendor/tfjs/tf-converter.es2017.min.js",
  "/static/vendor/tfjs/tf-backend-wasm.es2017.min.js",
  "/static/vendor/tfjs/tfjs-backend-wasm.wasm",
  "/static/vendor/tfjs/tfjs-backend-wasm-simd.wasm",
  "/static/vendor/tfjs/tfjs-backend-wasm-threaded-simd.wasm",
];

self.addEventListener("install", (event) => {  // from the server, not from an older copy in the HTTP cache
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: "no-cache" }))))
    .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

const PUBLIC_PAGES = new Set(["/", "/network", "/models"]);
const PUBLIC_API = new Set(["/api/v1/model-info", "/api/v1/health"]);

/** Whether a same-origin URL is public (the same for every visitor): the only answers ever cached. */
const isPublic = (url) => PUBLIC_PAGES.has(url.pathname) || PUBLIC_API.has(url.pathname)
  || url.pathname.startsWith("/static/") || /^\/imagenet-labels\.[a-z]+\.json$/.test(url.pathname);

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
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.status === 200) await cache.put(request, response.clone());
  return response;
}

/** On logout: only the public shell stays. */
async function forgetPrivate() {
  await Promise.all((await caches.keys()).filter((name) => name !== CACHE).map((name) => caches.delete(name)));
  const cache = await caches.open(CACHE);
  const requests = await cache.keys();
  await Promise.all(requests.filter((request) => !isPublic(new URL(request.url))).map((request) => cache.delete(request)));
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin) return;
  if (event.request.method === "POST" && url.pathname === "/api/v1/auth/logout") {
    event.waitUntil(forgetPrivate());
    return; // the request itself goes to the network untouched
  }
  if (event.request.method !== "GET" || !isPublic(url)) return;
  if (url.pathname.startsWith("/static/")) event.respondWith(cacheFirst(event.request));
  else event.respondWith(networkFirst(event.request));
});
