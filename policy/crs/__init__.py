"""The `crs` risk factor: the OWASP Core Rule Set's request attack rules on Hyperscan (see engine.py)."""

from __future__ import annotations

from policy import compiled_path

__path__[:0] = compiled_path(__name__)  # before the imports below: their compiled build, if fresh

from policy.config import Config  # noqa: E402
from policy.crs.engine import Engine  # noqa: E402
from policy.crs.request import crs_values  # noqa: E402
from policy.risk import Factor, RiskInput  # noqa: E402


def crs_factor(engine: Engine) -> Factor:
    """The factor for compiled rules: fires when the matched rules' anomaly scores reach the threshold;
    its reason names them (`crs=942190,942370 (anomaly score 10)`), as CRS users tune by rule id."""

    def attacks(inp: RiskInput, config: Config) -> str | None:
        crs = config.risk.crs
        values = crs_values(inp.incoming, inp.fields, inp.scan_bytes, engine.variables)
        matched = engine.evaluate(values, crs.excluded(inp.route.path))
        score = sum(rule.score for rule in matched)
        if score < crs.anomaly_threshold:
            return None
        return f"crs={','.join(str(rule.id) for rule in matched)} (anomaly score {score})"

    return attacks
