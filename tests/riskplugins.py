"""A risk plugin, loaded by dotted path (`riskplugins:teapot`) in the plugin tests."""

from policy.config import Config
from policy.risk import RiskInput


def teapot(inp: RiskInput, config: Config) -> str | None:
    return "asks for tea" if inp.incoming.header("x-brew") == "tea" else None


NOT_CALLABLE = 3
