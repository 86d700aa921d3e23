"""Decide step: thread, docker or block, from the risk score, the identity, the route and the mode."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from policy.config import Config, ExecutionMode, Mode, RouteConfig
from policy.identity import Identity, Trust
from policy.risk import RiskScore
from policy.rules import RiskThresholds


class Band(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Action(StrEnum):
    THREAD = "thread"
    DOCKER = "docker"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    band: Band
    reason: str
    would: Action | None = None  # report-only: what would have been done, when not what is done

    @property
    def mode(self) -> Mode | None:
        """The executor to use, None when blocked."""
        return None if self.action is Action.BLOCK else Mode(self.action.value)


def band(total: int, thresholds: RiskThresholds) -> Band:
    """low < `low` <= medium < `medium` <= high < `high` <= critical."""
    if total < thresholds.low:
        return Band.LOW
    if total < thresholds.medium:
        return Band.MEDIUM
    if total < thresholds.high:
        return Band.HIGH
    return Band.CRITICAL


def triggers(risk: RiskScore, identity: Identity, route: RouteConfig, config: Config) -> list[str]:
    """The enabled `hybrid.docker_for` triggers that apply to this request."""
    enabled = config.hybrid.docker_for
    found = {
        "untrusted": enabled.untrusted and identity.untrusted,
        "high_resource": enabled.high_resource and (risk.fired("large_payload") or route.heavy),
        "suspicious": enabled.suspicious and risk.suspicious_content,
        "new": enabled.new and risk.fired("new_entity"),
    }
    return [name for name, applies in found.items() if applies]


def decide(
    risk: RiskScore,
    identity: Identity,
    route: RouteConfig,
    config: Config,
    *,
    memory_pressure: bool = False,
) -> Decision:
    """Where this request runs. Pure: every input is a value. Report-only (`hybrid.report_only`, or the
    route's own): where a trusted caller's zero-risk request runs, with what this one would have had."""
    decision = _decide(risk, identity, route, config, memory_pressure)
    report_only = config.hybrid.report_only if route.report_only is None else route.report_only
    if not report_only:
        return decision
    trusted = Identity(identity.entity_id, authenticated=True, trust=Trust.TRUSTED)
    served = _decide(RiskScore(0), trusted, route, config, memory_pressure)
    if served.action is decision.action:
        return decision
    reason = f"report-only: would be {decision.action} ({decision.reason})"
    return Decision(served.action, decision.band, reason, would=decision.action)


def _decide(
    risk: RiskScore, identity: Identity, route: RouteConfig, config: Config, memory_pressure: bool
) -> Decision:
    level = band(risk.total, route.risk_thresholds or config.hybrid.risk_thresholds)
    block_at = config.hybrid.block_threshold if route.block_threshold is None else route.block_threshold
    if block_at is not None and risk.total >= block_at:
        return Decision(Action.BLOCK, level, f"score {risk.total} >= block threshold {block_at}")
    if route.mode is not None:
        return Decision(Action(route.mode.value), level, f"route {route.path} pins {route.mode}")
    if config.execution_mode is not ExecutionMode.HYBRID:
        return Decision(Action(config.execution_mode.value), level, f"execution_mode {config.execution_mode}")
    action, reason = _hybrid(level, triggers(risk, identity, route, config))
    if route.heavy and identity.untrusted:  # CPU-heavy work from a stranger would starve the shared pool
        action, reason = Action.DOCKER, "heavy route, untrusted caller"
    if route.upstreams:  # forwarding runs no code here; docker means isolated, never production
        if action is Action.DOCKER and route.isolated is None and not risk.suspicious_content:
            # A public API's callers are new and anonymous: who they are alone never refuses them.
            return Decision(Action.THREAD, level, f"{reason}; no content factor, no isolated target")
        return Decision(action, level, reason)
    if action is Action.THREAD and memory_pressure:
        action, reason = Action.DOCKER, "gateway over its memory limit"
    if action is Action.DOCKER and not config.docker.enabled:
        return Decision(Action.THREAD, level, f"{reason}; docker disabled, degraded to thread")
    return Decision(action, level, reason)


def _hybrid(level: Band, applied: list[str]) -> tuple[Action, str]:
    if level is Band.LOW:
        return Action.THREAD, "low risk"
    if level is Band.MEDIUM:
        if applied:
            return Action.DOCKER, "medium risk, triggers: " + ",".join(applied)
        return Action.THREAD, "medium risk, no trigger enabled applies"
    return Action.DOCKER, f"{level} risk"
