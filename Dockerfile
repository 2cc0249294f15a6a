# mediasrv: one instance per container (INSTANCE_PATH needs WEB_CONCURRENCY=1).
# Build: docker build -t mediasrv:0.1.0 .   Run: docker compose up (docker-compose.yml)
FROM python:3.11-slim-bookworm

# No .pyc files (the root filesystem may be read-only), unbuffered logs, and bind every
# interface of the container's own network namespace (the proxy reaches it there).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=5050

WORKDIR /app

# Dependencies first (a layer that changes only with requirements.txt). Every pin is a
# manylinux wheel: no compiler needed. The models come with them: the pocketsphinx model
# in its wheel, espeak-ng's data in espeakng-loader's; the silero VAD model and the
# prompts are files of the mediasrv package, copied below.
COPY requirements.txt ./
RUN pip install --no-cache-dir --no-compile -r requirements.txt

COPY gunicorn.conf.py ./
COPY mediasrv ./mediasrv

# A fixed non-root uid: Kubernetes' runAsNonRoot can check a number, not a name.
RUN useradd --no-log-init --system --uid 10001 --no-create-home mediasrv
USER 10001

EXPOSE 5050
# Liveness, not readiness: a full or draining instance is healthy and must not be
# restarted (its calls would be cut); readiness is the load balancer's /healthz?ready=1.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "mediasrv.lifecycle", "health"]
# Exec form: gunicorn is PID 1 and gets SIGTERM itself (the drain in gunicorn.conf.py).
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
