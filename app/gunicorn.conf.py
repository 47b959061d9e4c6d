"""Gunicorn settings for ``make serve`` (``gunicorn -c app/gunicorn.conf.py``).

- ``RIIM_WORKERS`` worker processes, default one per core, each with a few threads for slow clients and one
  ONNX Runtime thread (``RIIM_ORT_THREADS``). Measured with ``benchmarks/bench_http.py`` on 2 cores (8 clients,
  median of 3 rounds): 2 workers × 1 thread 114 req/s, 3 × 1 109, 5 × 1 (the old 2 × cores + 1) 107,
  1 × 2 90: one Python process per core keeps both busy; more only add memory and tail latency.
- :func:`on_starting` runs the one-off start-up work once, in the master, before any worker exists.
- No preload: each worker builds the app — and its ONNX Runtime session — after the fork
  (:func:`post_worker_init` loads the default model before the worker takes requests).
- Graceful reload: ``kill -HUP $(cat instance/gunicorn.pid)`` starts new workers (new code, new model
  sessions) and lets the old ones finish their requests; workers are also recycled after ``max_requests``.
"""
import multiprocessing
import os

wsgi_app = "app:create_app()"
bind = os.environ.get("RIIM_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("RIIM_WORKERS", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("RIIM_THREADS", 2))
preload_app = False
raw_env = [f"RIIM_ORT_THREADS={os.environ.get('RIIM_ORT_THREADS', '1')}"]
timeout = 60
graceful_timeout = 30
keepalive = 5
max_requests = 5000
max_requests_jitter = 500
control_socket_disable = True  # signals (HUP, TERM) are the interface; no shared ~/.gunicorn socket
accesslog = os.environ.get("RIIM_ACCESS_LOG")  # e.g. "-" for stdout; off by default
errorlog = "-"


def on_starting(server):
    """In the master, once: migrations, the uploads check and orphaned jobs (workers only serve)."""
    from app import create_app, prepare

    server.log.info("prepared: %s", prepare(create_app()))


def post_worker_init(worker):
    """Create this worker's ONNX Runtime session now, after the fork, so the first request is fast."""
    from app.inference import model_cache

    app = worker.wsgi
    with app.app_context():
        try:
            model = model_cache().get(app.config["DEFAULT_MODEL"])
        except Exception as error:  # noqa: BLE001 — serve anyway; /api/v1/ready reports the problem
            worker.log.warning("worker %s: default model not loaded: %s", worker.pid, error)
        else:
            worker.log.info("worker %s: %s:%s loaded", worker.pid, model.name, model.version)
