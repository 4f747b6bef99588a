# The jitaccess operator image: `docker build -t REGISTRY/jitaccess:VERSION .` from the repository root.
# Multi-stage: dependencies are built into a virtualenv in the first stage; the runtime stage carries
# only that virtualenv on a slim Python, runs as an unprivileged user and writes nothing to its root
# filesystem (the chart mounts it read-only).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, pinned (the versions the tests run against), so that a source-only change
# reuses this layer and every build gets the same packages.
COPY requirements-image.txt ./
RUN pip install -r requirements-image.txt \
 && pip check
COPY pyproject.toml LICENSE ./
COPY operator/ operator/
RUN pip install --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="jitaccess" \
      org.opencontainers.image.description="Just-in-time AWS IAM Identity Center access, as a Kubernetes operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# The same numeric user as the chart's runAsUser: runAsNonRoot can check a number, not a name.
RUN groupadd --system --gid 10001 jitaccess \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin jitaccess
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8080 9090 9443
ENTRYPOINT ["python", "-m", "jitaccess"]
CMD ["--liveness", "http://:8080/healthz"]
