"""The shipped config.yaml and .env.example are valid and wire every example handler."""

from pathlib import Path

from conftest import SECRET
from policy.config import ExecutionMode
from proxy.app import create_app
from proxy.loader import create_config, load_plugins

ROOT = Path(__file__).resolve().parents[1]


def test_config_yaml_is_valid_and_routes_every_example_handler() -> None:
    config = create_config(path=ROOT / "config.yaml", env={"SECRET_KEY": SECRET})
    assert config.execution_mode is ExecutionMode.HYBRID
    handlers = {route.handler for route in config.routes}
    assert handlers == {"echo", "json_transform", "compute", "whoami"}
    assert config.risk.keywords
    create_app(config, load_plugins(config))  # imports every routed handler


def test_programmatic_overrides_beat_env_and_file() -> None:
    config = create_config(
        {"execution_mode": "thread"},
        path=ROOT / "config.yaml",
        env={"SECRET_KEY": SECRET, "EXECUTION_MODE": "docker", "DOCKER_ENABLED": "true"},
    )
    assert config.execution_mode is ExecutionMode.THREAD and config.docker.enabled


def test_env_example_names_every_documented_variable() -> None:
    from policy.parse import ENV_VARS

    text = (ROOT / ".env.example").read_text()
    assert all(f"{name}=" in text for name in ENV_VARS)


def test_the_configuration_reference_is_the_models_and_current() -> None:
    """docs/configuration.md is made from the config model: a key cannot be missing, and a stale file fails
    here (python scripts/config_reference.py writes it again)."""
    from scripts.config_reference import render

    text = render()
    assert (ROOT / "docs" / "configuration.md").read_text() == text
    for key in (
        "`execution_mode`",
        "`risk.exclude[].variables`",
        "`routes[].authorization`",
        "`apps.*.target`",
    ):
        assert key in text
