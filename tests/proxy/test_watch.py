"""The dashboard's figures (proxy/watch.py): what is flagged, and every table's bound."""

from policy.decision import Action, Band, Decision
from policy.risk import Hit, RiskScore
from proxy import watch
from proxy.gateway import Trace
from proxy.watch import Watch

NEW = Hit("new_entity", 30, "0 earlier requests, fewer than 10")
XSS = Hit("xss", 40, "ARGS:q: '<script' (cross-site scripting)")


def trace(entity: str, *hits: Hit, would: Action | None = None) -> Trace:
    total = min(100, sum(hit.points for hit in hits))
    band = Band.LOW if total < 30 else Band.MEDIUM
    decision = Decision(Action.THREAD, band, "test", would=would)
    return Trace("r1", 0.0, True, entity, route="/echo", risk=RiskScore(total, hits), decision=decision)


def test_flagged_is_what_the_request_itself_tripped_or_report_only_would_have_acted_on() -> None:
    seen = Watch()
    seen.request(trace("alice"), "GET", 200, "thread", 1.0)
    seen.request(trace("newcomer", NEW), "GET", 200, "thread", 1.0)  # only its history: counted, not flagged
    seen.request(trace("mallory", NEW, XSS), "GET", 200, "docker", 2.0)
    seen.request(trace("quiet", would=Action.DOCKER), "GET", 200, "thread", 1.0)
    assert [f["entity"] for f in seen.flagged] == ["mallory", "quiet"]
    assert seen.flagged[0]["evidence"] == {"new_entity": NEW.reason, "xss": XSS.reason}
    assert seen.flagged[1]["would"] == "docker"
    assert seen.scores[0] == 2 and seen.scores[3] == 1 and seen.scores[7] == 1
    assert seen.factors == {"newcomer": {"new_entity": 1}, "mallory": {"new_entity": 1, "xss": 1}}
    shown = seen.status(
        [{"entityId": "mallory", "totalRequests": 1}, {"entityId": "alice", "totalRequests": 1}]
    )
    assert [f["entity"] for f in shown["flagged"]] == ["quiet", "mallory"]  # newest first
    assert [t["factors"] for t in shown["top"]] == [{"new_entity": 1, "xss": 1}, {}]


def test_every_table_is_bounded() -> None:
    seen = Watch()
    for i in range(watch.MAX_ENTITIES + 50):
        seen.request(trace(f"e{i}", XSS), "GET", 200, "thread", 1.0)
    assert (
        len(seen.flagged) == watch.MAX_FLAGGED and seen.flagged[-1]["entity"] == f"e{watch.MAX_ENTITIES + 49}"
    )
    assert len(seen.factors) == watch.MAX_ENTITIES and "e0" not in seen.factors  # the one seen longest ago
    seen.request(trace("e60", XSS), "GET", 200, "thread", 1.0)  # seen again: kept the longest now
    for i in range(watch.MAX_ENTITIES + 50, watch.MAX_ENTITIES + 100):
        seen.request(trace(f"e{i}", XSS), "GET", 200, "thread", 1.0)
    assert "e60" in seen.factors and "e61" not in seen.factors
    for _ in range(watch.MAX_TIMINGS + 10):
        seen.request(trace("alice"), "GET", 200, "thread", 5.0)
    seen.sample({"total": 0})
    assert seen._timings == {}  # taken by the sample
    for t in range(int(watch.WINDOW_S / watch.SAMPLE_S) + 20):
        seen.sample({"total": t, "mode:thread": t * 5}, now=1000.0 + t * watch.SAMPLE_S)
    assert len(seen.samples) == watch.WINDOW_S / watch.SAMPLE_S  # 15 minutes, no more
    assert seen.samples[-1]["rates"] == {"mode:thread": 1.0}  # 5 requests in 5 seconds
