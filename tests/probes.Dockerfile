# The runner image plus the test suite's probe handlers (built by tests/dockerenv.py).
FROM isogate-runner:latest
COPY tests/probe_handlers/ /app/probe_handlers/
# What the test apps import (tests/requirements-apps.txt, installed by scripts/deps-dir.sh).
COPY .build/test-deps/ /opt/test-deps/
ENV PYTHONPATH=/app:/opt/deps:/opt/test-deps
