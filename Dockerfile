# The runner image: a plain Python, the in-container agent and the handlers, run as an unprivileged user.
# Built by `make image` (scripts/runner-image.sh), from a local base when PYTHON_IMAGE is not present.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS runner
WORKDIR /app
# The agent needs only pool/ (agent, frames, registry: standard library only, see
# tests/pool/test_contract.py) and the handlers; the gateway's policy code stays out of the sandbox.
COPY pool/ /app/pool/
COPY handlers/ /app/handlers/
# requirements.txt's packages, installed by scripts/deps-dir.sh (an unchanged file: a cached layer).
ARG DEPS=.build/deps
COPY ${DEPS}/ /opt/deps/
ENV PYTHONPATH=/app:/opt/deps PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65534:65534
CMD ["sleep", "infinity"]
