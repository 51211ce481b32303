# syntax=docker/dockerfile:1
#
# regprobe container image: `regprobe run` in the Kubernetes CronJob (deploy/k8s), `regprobe check REF`
# in CI (docs/ci/).
#
#   docker build -t ghcr.io/regprobe/regprobe:0.1.0 .
#
# The version has one source, pyproject.toml: `regprobe --version` and the wheel's name come from it, the
# VERSION default below must equal it (tests/test_release.py), and the runtime stage installs the wheel
# *by that version*, so a --build-arg VERSION that disagrees with the wheel fails the build instead of
# labelling the image wrong.
#
# Nothing is resolved at build time: the build backend and every runtime dependency come from lock files
# with a hash for each file (scripts/lock-requirements.py writes them; docs/releasing.md). pip refuses
# anything whose hash is not listed.
#
# Base images are pinned by tag. For reproducible release builds pin the digest as well
# (python:3.12-slim@sha256:...) and let a bot bump it.

# --- build: the project as one wheel, nothing else --------------------------------------------------
FROM python:3.12-slim AS build

WORKDIR /src
COPY requirements-build.lock ./
# --no-build-isolation below builds with this setuptools, not whichever one an isolated build would fetch.
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-build.lock
COPY pyproject.toml README.md LICENSE ./
COPY src/ src/
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# --- runtime -----------------------------------------------------------------------------------------
FROM python:3.12-slim

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="regprobe" \
      org.opencontainers.image.description="Checks that everything a container registry lists can actually be pulled" \
      org.opencontainers.image.source="https://github.com/regprobe/regprobe" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# The lock and the wheel are bind-mounted rather than COPYed, so neither lands in a layer. The lock holds
# every dependency, each pinned and hashed (--require-hashes); the wheel goes in with --no-deps, so pip
# resolves nothing, and `pip check` fails the build if the lock misses a dependency of the wheel.
# A fixed numeric UID/GID (65532, the distroless "nonroot" convention) lets Kubernetes check
# runAsNonRoot without reading /etc/passwd; the passwd entry gives the process a HOME, where
# `docker run -v ~/.docker:/home/regprobe/.docker:ro` puts CI credentials.
RUN --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.lock \
    && pip install --no-cache-dir --no-deps "/wheels/regprobe-${VERSION}-py3-none-any.whl" \
    && pip check \
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
