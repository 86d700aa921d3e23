# The runner image plus the test suite's probe handlers (built by tests/dockerenv.py).
FROM isogate-runner:latest
COPY tests/probe_handlers/ /app/probe_handlers/
