"""Risk plugins are imported by dotted path and weighted by config."""

import pytest

from conftest import Gateway, make_config
from policy.errors import ConfigError
from proxy.loader import load_plugins

CONFIG = {
    "routes": [{"path": "/echo", "handler": "echo"}],
    "risk": {"plugins": ["riskplugins:teapot"], "weights": {"teapot": 11}},
}


async def test_a_plugin_factor_scores_through_the_gateway(gateway: Gateway) -> None:
    client = await gateway(CONFIG, plugins=load_plugins(make_config(CONFIG)))
    brewing = await client.get("/echo", headers={"X-Brew": "tea"})
    assert brewing.headers["X-Isogate-Factors"] == "new_entity=30,teapot=11"
    plain = await client.get("/echo")
    assert plain.headers["X-Isogate-Factors"] == "new_entity=30"


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ("riskplugins:missing", r"risk.plugins\[0\]: cannot load riskplugins:missing"),
        ("no_such_module_x:f", r"risk.plugins\[0\]: cannot load"),
        ("riskplugins:NOT_CALLABLE", r"risk.plugins\[0\]: riskplugins:NOT_CALLABLE is not callable"),
    ],
)
def test_bad_plugins_are_config_errors(plugin: str, message: str) -> None:
    name = plugin.rpartition(":")[2]
    config = make_config({"risk": {"plugins": [plugin], "weights": {name: 5}}})
    with pytest.raises(ConfigError, match=message):
        load_plugins(config)
