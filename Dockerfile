# syntax=docker/dockerfile:1
#
# regprobe container image: `regprobe run` in the Kubernetes CronJob (deploy/k8s), `regprobe check REF`
# in CI (docs/ci/).
#
#   docker build --build-arg VERSION=0.1.0 -t ghcr.io/regprobe/regprobe:0.1.0 .
#
# VERSION only feeds the OCI label; the package version comes from pyproject.toml, so keep the two equal
# (tests/test_dockerfile.py checks the default here against pyproject.toml).
#
# Base images are pinned by tag. For reproducible release builds pin the digest as well
# (python:3.12-slim@sha256:...) and let a bot bump it.

# --- build: the project as one wheel, nothing else --------------------------------------------------
FROM python:3.12-slim AS build

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src/ src/
# --no-deps: the runtime stage resolves the dependencies from the wheel's metadata.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime -----------------------------------------------------------------------------------------
FROM python:3.12-slim

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="regprobe" \
      org.opencontainers.image.description="Checks that everything a container registry lists can actually be pulled" \
      org.opencontainers.image.source="https://github.com/regprobe/regprobe" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# The wheel is bind-mounted from the build stage rather than COPYed, so it never lands in a layer.
# A fixed numeric UID/GID (65532, the distroless "nonroot" convention) lets Kubernetes check
# runAsNonRoot without reading /etc/passwd; the passwd entry gives the process a HOME, where
# `docker run -v ~/.docker:/home/regprobe/.docker:ro` puts CI credentials.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/regprobe-*.whl \
    && groupadd --system --gid 65532 regprobe \
    && useradd --system --uid 65532 --gid 65532 --home-dir /home/regprobe --create-home \
       --shell /usr/sbin/nologin regprobe

# Set after the install so pip still precompiles the package: at run time the root filesystem is
# read-only (deploy/k8s), and nothing could be written anyway.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 65532:65532
WORKDIR /home/regprobe

ENTRYPOINT ["regprobe"]
CMD ["run"]
