"""Decisions: every band boundary, every trigger, pins, block threshold, memory pressure, docker off."""

from typing import Any

import pytest

from conftest import make_config
from policy.config import Config, Mode, RouteConfig
from policy.decision import Action, Band, decide
from policy.identity import Identity, Trust, identify
from policy.risk import Hit, RiskScore

HYBRID = make_config({"execution_mode": "hybrid", "docker": {"enabled": True}})
TRUSTED = Identity("t", True, Trust.TRUSTED)
ANONYMOUS = identify(None, "1.2.3.4")
PLAIN = RouteConfig("/a", "echo")
HEAVY = RouteConfig("/a", "echo", heavy=True)


def risk(total: int, *fired: str) -> RiskScore:
    return RiskScore(total, tuple(Hit(name, 1, "test") for name in fired))


def hybrid(**overrides: Any) -> Config:
    return make_config({"execution_mode": "hybrid", "docker": {"enabled": True}, **overrides})


@pytest.mark.parametrize(
    ("total", "band", "action"),
    [
        (0, Band.LOW, Action.THREAD),
        (29, Band.LOW, Action.THREAD),
        (30, Band.MEDIUM, Action.THREAD),  # no trigger applies to a trusted plain request
        (59, Band.MEDIUM, Action.THREAD),
        (60, Band.HIGH, Action.DOCKER),
        (79, Band.HIGH, Action.DOCKER),
        (80, Band.CRITICAL, Action.DOCKER),
        (100, Band.CRITICAL, Action.DOCKER),
    ],
)
def test_band_boundaries(total: int, band: Band, action: Action) -> None:
    decision = decide(risk(total), TRUSTED, PLAIN, HYBRID)
    assert (decision.band, decision.action) == (band, action)


@pytest.mark.parametrize(
    ("identity", "route", "fired", "trigger"),
    [
        (ANONYMOUS, PLAIN, (), "untrusted"),
        (Identity("u", True, Trust.UNTRUSTED), PLAIN, (), "untrusted"),
        (TRUSTED, HEAVY, (), "high_resource"),
        (TRUSTED, PLAIN, ("large_payload",), "high_resource"),
        (TRUSTED, PLAIN, ("suspicious",), "suspicious"),
        (TRUSTED, PLAIN, ("xss",), "suspicious"),  # any content factor, not only the keyword one
        (TRUSTED, PLAIN, ("profile",), "suspicious"),
        (TRUSTED, PLAIN, ("new_entity",), "new"),
    ],
)
def test_each_trigger_sends_medium_risk_to_docker_only_when_enabled(
    identity: Identity, route: RouteConfig, fired: tuple[str, ...], trigger: str
) -> None:
    for total in (30, 59):
        on = decide(risk(total, *fired), identity, route, HYBRID)
        assert on.action is Action.DOCKER and trigger in on.reason
        off = hybrid(hybrid={"docker_for": {trigger: False}})
        assert decide(risk(total, *fired), identity, route, off).action is Action.THREAD
    assert decide(risk(29, *fired), identity, route, HYBRID).action is Action.THREAD


def test_high_and_critical_are_never_downgraded_even_with_all_triggers_off() -> None:
    off = hybrid(hybrid={"docker_for": {"untrusted": False, "high_resource": False, "new": False}})
    assert decide(risk(60), TRUSTED, PLAIN, off).action is Action.DOCKER
    assert decide(risk(95), TRUSTED, PLAIN, off).action is Action.DOCKER


@pytest.mark.parametrize(
    ("mode", "pin", "total", "action"),
    [
        ("thread", None, 100, Action.THREAD),
        ("docker", None, 0, Action.DOCKER),
        ("hybrid", Mode.THREAD, 100, Action.THREAD),
        ("hybrid", Mode.DOCKER, 0, Action.DOCKER),
        ("thread", Mode.DOCKER, 0, Action.DOCKER),
    ],
)
def test_modes_and_route_pins(mode: str, pin: Mode | None, total: int, action: Action) -> None:
    config = hybrid(execution_mode=mode)
    assert decide(risk(total), TRUSTED, RouteConfig("/a", "echo", mode=pin), config).action is action


@pytest.mark.parametrize(("total", "action"), [(89, Action.DOCKER), (90, Action.BLOCK), (100, Action.BLOCK)])
def test_block_threshold_beats_pins(total: int, action: Action) -> None:
    config = hybrid(hybrid={"block_threshold": 90})
    pinned = RouteConfig("/a", "echo", mode=Mode.DOCKER)
    decision = decide(risk(total), TRUSTED, pinned, config)
    assert decision.action is action
    assert decision.mode is (None if action is Action.BLOCK else Mode.DOCKER)


def test_block_threshold_is_off_by_default() -> None:
    assert decide(risk(100), TRUSTED, PLAIN, HYBRID).action is Action.DOCKER


def test_memory_pressure_sends_thread_work_to_docker_in_hybrid_only() -> None:
    decision = decide(risk(0), TRUSTED, PLAIN, HYBRID, memory_pressure=True)
    assert decision.action is Action.DOCKER and "memory" in decision.reason
    thread_mode = hybrid(execution_mode="thread")
    assert decide(risk(0), TRUSTED, PLAIN, thread_mode, memory_pressure=True).action is Action.THREAD
    pinned = RouteConfig("/a", "echo", mode=Mode.THREAD)
    assert decide(risk(0), TRUSTED, pinned, HYBRID, memory_pressure=True).action is Action.THREAD


def test_hybrid_degrades_to_thread_when_docker_is_disabled() -> None:
    config = make_config({"execution_mode": "hybrid", "docker": {"enabled": False}})
    decision = decide(risk(100), ANONYMOUS, PLAIN, config)
    assert decision.action is Action.THREAD and "docker disabled" in decision.reason
    assert decision.band is Band.CRITICAL


def test_route_thresholds_and_block_threshold_override_the_gateway() -> None:
    from policy.rules import RiskThresholds

    tight = RouteConfig("/a", "echo", risk_thresholds=RiskThresholds(10, 20, 25))
    assert decide(risk(25), TRUSTED, tight, HYBRID).band is Band.CRITICAL
    assert decide(risk(25), TRUSTED, PLAIN, HYBRID).band is Band.LOW
    strict = RouteConfig("/a", "echo", block_threshold=40)
    assert decide(risk(40), TRUSTED, strict, HYBRID).action is Action.BLOCK
    lenient = RouteConfig("/a", "echo", block_threshold=100)
    assert decide(risk(95), TRUSTED, lenient, hybrid(hybrid={"block_threshold": 90})).action is Action.DOCKER


def test_caller_factors_alone_are_not_suspicious_content() -> None:
    quiet = hybrid(hybrid={"docker_for": {"new": False}})
    decision = decide(risk(55, "new_entity", "ip_flagged"), TRUSTED, PLAIN, quiet)
    assert decision.action is Action.THREAD and decision.band is Band.MEDIUM


@pytest.mark.parametrize("triggers_on", [True, False])
def test_a_heavy_route_never_runs_in_a_thread_for_an_untrusted_caller(triggers_on: bool) -> None:
    config = hybrid(
        hybrid={"docker_for": dict.fromkeys(("untrusted", "high_resource", "suspicious", "new"), triggers_on)}
    )
    assert decide(risk(0), ANONYMOUS, HEAVY, config).action is Action.DOCKER  # even at score 0
    assert decide(risk(0), TRUSTED, HEAVY, config).action is Action.THREAD
    assert decide(risk(0), ANONYMOUS, PLAIN, config).action is Action.THREAD


REPORT_ONLY = hybrid(hybrid={"report_only": True, "block_threshold": 90})


@pytest.mark.parametrize(
    ("total", "identity", "would"),
    [
        (70, TRUSTED, Action.DOCKER),  # high risk
        (95, TRUSTED, Action.BLOCK),  # past the block threshold
        (30, ANONYMOUS, Action.DOCKER),  # medium risk with an untrusted caller's trigger
        (10, TRUSTED, None),  # what is done anyway: nothing to report
    ],
)
def test_report_only_serves_as_a_trusted_zero_risk_request_and_says_what_it_would_have_done(
    total: int, identity: Identity, would: Action | None
) -> None:
    decision = decide(risk(total, "sql_injection"), identity, PLAIN, REPORT_ONLY)
    assert decision.action is Action.THREAD and decision.would is would
    if would is not None:
        assert decision.reason.startswith(f"report-only: would be {would}")
        assert decision.band is decide(risk(total), identity, PLAIN, hybrid()).band  # the real band, kept


def test_report_only_keeps_what_the_policy_pins_and_a_route_may_opt_out() -> None:
    pinned = RouteConfig("/a", "echo", mode=Mode.DOCKER)
    assert decide(risk(95), TRUSTED, pinned, REPORT_ONLY).action is Action.DOCKER  # the pin, not the block
    assert decide(risk(95), TRUSTED, pinned, REPORT_ONLY).would is Action.BLOCK
    enforced = RouteConfig("/a", "echo", report_only=False)
    assert decide(risk(95), TRUSTED, enforced, REPORT_ONLY).action is Action.BLOCK
    only_here = RouteConfig("/a", "echo", report_only=True)
    assert decide(risk(70), TRUSTED, only_here, hybrid()).would is Action.DOCKER
