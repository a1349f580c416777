# syntax=docker/dockerfile:1
# smtp-tls-exporter in a container: the wheel is built in one stage, and the
# runtime is a slim Python with only the exporter and its dependencies.
#
#   docker build -t smtp-tls-exporter .
#   docker run -p 10587:10587 \
#       -v "$PWD/config.yml:/etc/smtp-tls-exporter/config.yml:ro" \
#       -e SMTP_PROBE_PASSWORD smtp-tls-exporter
#   docker run -p 10587:10587 smtp-tls-exporter demo --web.listen-address :10587
#
# Config: /etc/smtp-tls-exporter/config.yml (the image holds config.example.yml
# there; mount yours over it). Passwords: password_env with `-e NAME`, or
# password_file with a mounted file such as /run/secrets/smtp_probe_password.
# State kept across restarts (last results, test messages, DNS lookups):
# /var/lib/smtp-tls-exporter/state.json, a volume (`-v smtp-state:/var/lib/smtp-tls-exporter`).
# README.md, "Container", has the details.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter/ exporter/
# Wheels of the exporter and of every dependency: the runtime stage then
# installs without the network and without a compiler.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/smtp_tls_exporter-*.whl \
    && useradd --system --user-group --uid 10587 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin smtp-tls-exporter \
    && install -d -o 10587 -g 10587 -m 0700 /var/lib/smtp-tls-exporter
COPY config.example.yml /etc/smtp-tls-exporter/config.yml
# The state file's default directory, as systemd's StateDirectory= sets it: set
# here rather than in CMD, so it holds whatever arguments the container is given.
ENV STATE_DIRECTORY=/var/lib/smtp-tls-exporter
VOLUME ["/var/lib/smtp-tls-exporter"]
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10587:10587
EXPOSE 10587
# The slim image has no curl; Python is at hand.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:10587/-/healthy', timeout=4)"]
ENTRYPOINT ["smtp-tls-exporter"]
CMD ["--config.file", "/etc/smtp-tls-exporter/config.yml", "--web.listen-address", ":10587"]
