"""The `crs` risk factor: the OWASP Core Rule Set's request attack rules on Hyperscan (see engine.py)."""

from __future__ import annotations

from policy import compiled_path

__path__[:0] = compiled_path(__name__)  # before the imports below: their compiled build, if fresh

from policy.config import Config  # noqa: E402
from policy.crs.checks import Value  # noqa: E402
from policy.crs.engine import Engine  # noqa: E402
from policy.crs.request import crs_values  # noqa: E402
from policy.crs.rules import Rule  # noqa: E402
from policy.risk import Factor, RiskInput, evidence  # noqa: E402


def crs_factor(engine: Engine) -> Factor:
    """The factor for compiled rules: fires when the matched rules' anomaly scores reach the threshold
    (`prose_threshold`, each attack family once, when every rule matched a body's field, where one family
    alone is often a sentence); its reason names each rule with the variable it matched and an excerpt
    (`942190 at ARGS:id: '1 union select'`), as CRS users tune by rule id and variable (`risk.exclude`)."""

    def attacks(inp: RiskInput, config: Config) -> str | None:
        crs, route = config.risk.crs, inp.route.path
        values = crs_values(inp.incoming, inp.fields, inp.scan_bytes, engine.variables)

        def skip(rule_id: int, value: Value) -> bool:
            where = _where(value)
            risk = config.risk
            return risk.excluded("crs", route, where) or risk.excluded(str(rule_id), route, where)

        matched = engine.matches(values, crs.excluded(route), skip if config.risk.exclude else None)
        score = sum(rule.score for rule, _ in matched)
        outside_prose = sum(rule.score for rule, value in matched if not value.prose)
        if outside_prose < crs.anomaly_threshold and _by_family(matched) < crs.prose_threshold:
            return None
        found = "; ".join(f"{rule.id} at {_evidence(value)}" for rule, value in matched[:4])
        return f"{found}{' ...' if len(matched) > 4 else ''} (anomaly score {score})"

    return attacks


def _by_family(matched: list[tuple[Rule, Value]]) -> int:
    """The anomaly score with each attack family (942 SQL, 932 RCE...) counted once, at its highest: a
    family's rules are variations on one grammar, and a sentence that trips one often trips its twin."""
    families: dict[int, int] = {}
    for rule, _ in matched:
        families[rule.id // 1000] = max(families.get(rule.id // 1000, 0), rule.score)
    return sum(families.values())


def _where(value: Value) -> str:
    """The variable a value is, as evidence and `risk.exclude` name it: `ARGS:id`, `REQUEST_FILENAME`."""
    return f"{value.variable}:{value.key}" if value.key else value.variable


def _evidence(value: Value) -> str:
    return evidence(_where(value), value.text)
