# syntax=docker/dockerfile:1
# RIIM images (docs/deploy.md). Two targets, both Debian bookworm + Python 3.11 like the development machines:
#   serve  the web app: gunicorn + ONNX Runtime, NO TensorFlow (`pip install -e .`, no train extra), non-root,
#          HEALTHCHECK on /api/v1/ready. Models: a volume at /data/models, or baked in at build time with
#          --build-context models=models (the repository's models/ folder, whose store/ is copied).
#   train  training, export and `riim worker` (the RQ job worker): the train extra, TensorFlow, the Debian
#          packages of `make setup` (chromium for the TF.js parity check, the bundled photos and datasets).
#   docker build --target serve -t riim-serve .      docker build --target train -t riim-train .

# The browser libraries, vendored from npm exactly as `make setup` does.
FROM node:20-bookworm AS web
WORKDIR /src
COPY Makefile ./
COPY web/package.json web/package-lock.json web/
RUN make web/static/vendor/.vendored

# No models unless a build context named "models" replaces this stage (its store/ folder is baked in).
FROM python:3.11-slim-bookworm AS models
RUN mkdir /store

FROM python:3.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RIIM_MODELS_DIR=/data/models RIIM_INSTANCE_PATH=/data/instance
RUN useradd --create-home --uid 10001 riim && mkdir -p /data/models /data/instance && chown -R riim /data
WORKDIR /app
COPY --chown=riim . .
COPY --from=web --chown=riim /src/web/static/vendor web/static/vendor

FROM base AS serve
# Serving dependencies only (setup.cfg install_requires): the train extra, and so TensorFlow, is not installed.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv && /opt/venv/bin/pip install -q -c constraints.txt -e .
COPY --from=models --chown=riim /store/ /data/models/
ENV PATH=/opt/venv/bin:$PATH RIIM_ENV=production RIIM_BIND=0.0.0.0:8000
USER riim
VOLUME ["/data/models", "/data/instance"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/v1/ready', timeout=8).status != 200)"]
CMD ["gunicorn", "-c", "app/gunicorn.conf.py"]

FROM base AS train
# The same install as `make setup` (one place for the package lists): the venv with the train and dev extras
# and the Debian packages (chromium, darknet, dataset-fashion-mnist, redis-server).
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/root/.cache/pip \
    make PYTHON=python3.11 .venv/bin/.installed system-packages && rm -rf /var/lib/apt/lists/*
ENV PATH=/app/.venv/bin:$PATH
USER riim
VOLUME ["/data/models", "/data/instance"]
CMD ["riim", "worker"]
