// Register the service worker (/sw.js, scope /) that keeps the app shell and vendored files for offline use.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((error) => console.warn("service worker:", error));
}
