# isogate: `make run` starts the gateway, `make test` runs every check. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint deps crs compiled image bench token clean screenshot

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

# What handlers and apps import (config.yaml's docker.requirements), in the venv for thread mode; the
# runner image gets the same file (scripts/runner-image.sh). Skipped while the file is unchanged.
deps: $(VENV)/.installed
	@$(BIN)/python -m proxy.requirements --install >/dev/null

# The OWASP Core Rule Set for risk.crs (Debian's modsecurity-crs: rules under /usr/share/modsecurity-crs),
# and libinjection for its rules 942100 and 941100 (Debian's libmodsecurity3 carries and exports it).
crs:
	@test -d /usr/share/modsecurity-crs/rules && ldconfig -p | grep -q libmodsecurity.so.3 || \
		{ apt-get update -qq && apt-get install -y -qq modsecurity-crs libmodsecurity3 >/dev/null; }

# crs comes before deps: `python -m proxy.requirements` loads config.yaml, whose risk.crs reads the rules.
# The scoring path compiled to C by mypyc (scripts/compile.py), again whenever a policy/ source changed. A
# build that is not the sources' is never loaded: policy/__init__.py runs the Python then, and says why.
compiled: build/compiled/manifest.json
build/compiled/manifest.json: $(VENV)/.installed scripts/compile.py $(shell find policy -name '*.py')
	@command -v gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq gcc >/dev/null; }
	@$(BIN)/python -c 'import os, sysconfig; os.stat(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null \
		|| { apt-get update -qq && apt-get install -y -qq python3-dev >/dev/null; }
	$(BIN)/python scripts/compile.py >/dev/null

.env: .env.example
	@test -f .env || { umask 077 && cp .env.example .env && echo "wrote .env (overrides, all commented out)"; }

# The signing key, in an owner-only file passed as SECRET_KEY_FILE: never in the gateway's environment,
# which /proc/<pid>/environ shows for its whole life (a thread-mode handler could read it there).
.secret_key:
	@umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_hex(32))' > $@ && echo "wrote $@ (mode 600)"

# The Docker engine, the runner image and the example replica app (installs docker.io and starts dockerd if
# needed; needs root).
image: $(VENV)/.installed
	scripts/runner-image.sh
	scripts/example-image.sh

# Without a Docker engine the gateway still starts, in thread mode, and says so.
# Started as root, the gateway becomes the user `isogate` once it holds its port, store and key (server.user):
# created here if missing, in the docker group (the engine's socket), its entity state in /var/lib/isogate.
run: crs deps compiled .env .secret_key
	@set -a && . ./.env && set +a && export SECRET_KEY_FILE=.secret_key && \
	if [ "$$(id -u)" = 0 ]; then \
		id -u isogate >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin isogate; \
		install -d -o isogate -g isogate -m 700 /var/lib/isogate; \
		export SERVER_USER=$${SERVER_USER-isogate} STATE_PATH=$${STATE_PATH-/var/lib/isogate/isogate-state.db}; \
	fi && \
	if ! scripts/runner-image.sh; then \
		echo "isogate: WARNING: no Docker engine: starting in thread mode (EXECUTION_MODE=thread DOCKER_ENABLED=false)" >&2; \
		export EXECUTION_MODE=thread DOCKER_ENABLED=false; \
	fi && { ! getent group docker >/dev/null || ! id -u isogate >/dev/null 2>&1 || usermod -aG docker isogate; } && \
	exec $(BIN)/python -m proxy --config config.yaml

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict proxy policy pool

# Container tests fail (never skip) with the reason when the image step could not get an engine, and
# run twice: under runc, then under gVisor (runsc, registered by scripts/gvisor.sh); those marked `once`
# run in the first pass only (pyproject.toml says when).
test: lint crs deps compiled
	@# redis for the state tests; curl and jq for the docs' console examples, which the suite runs as written;
	@# chromium for the dashboard's browser test (Playwright drives Debian's: its own download is not reachable);
	@# openssl for docs/deployment.md's TLS commands, which the suite runs as written
	@command -v redis-server >/dev/null && command -v curl >/dev/null && command -v jq >/dev/null && \
		command -v chromium >/dev/null && command -v openssl >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq redis-server curl jq chromium openssl >/dev/null; }
	-scripts/runner-image.sh
	-scripts/gvisor.sh
	$(BIN)/pytest
	$(BIN)/pytest -m "docker and not once" --runtime runsc

# docs/images/dashboard.png: the dashboard's browser test, with a few minutes of mixed traffic first.
screenshot: $(VENV)/.installed compiled
	ISOGATE_SCREENSHOT=docs/images/dashboard.png $(BIN)/pytest -q tests/e2e/test_dashboard_browser.py -k live_figures

# The product's benchmark table, with baselines measured in the same run (a few minutes; loopback only).
bench: $(VENV)/.installed compiled
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	scripts/runner-image.sh
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	test -x /usr/sbin/nginx || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null || \
		apt-get install -y -qq nginx >/dev/null; }
	test -f /usr/lib/nginx/modules/ngx_http_modsecurity_module.so || \
		{ apt-get update -qq && apt-get install -y -qq libnginx-mod-http-modsecurity >/dev/null; }
	$(BIN)/python bench/benign.py --show 0
	$(BIN)/python bench/params.py
	$(BIN)/python bench/scenarios.py
	$(BIN)/python bench/upstream.py
	$(BIN)/python bench/waf.py
	$(BIN)/python bench/replica.py
	$(BIN)/python bench/apps.py
	$(BIN)/python bench/churn.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/remote_engine.py
	$(BIN)/python bench/overload.py
	$(BIN)/python bench/fairness.py
	scripts/gvisor.sh
	$(BIN)/python bench/runtimes.py

# make token SUB=ops ROLE=admin: a bearer token for the running gateway (1 hour)
token: $(VENV)/.installed .env .secret_key
	@set -a && . ./.env && set +a && SECRET_KEY_FILE=.secret_key $(BIN)/python -m proxy.mint --sub $(or $(SUB),alice) \
		$(if $(ROLE),--role $(ROLE)) $(if $(TRUST),--trust $(TRUST))

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache *.egg-info
