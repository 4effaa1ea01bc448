"""The webhook gateway's own metrics (`lifecycle gateway` serves them at its /metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Histogram

REQUEST_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class RequestOutcome(StrEnum):
    """What became of a request: every one is counted under exactly one."""

    PUBLISHED = "published"  # every event it mapped to is on Kafka (some may be dead letters)
    IGNORED = "ignored"  # a vendor event type the product does not follow (answered 200)
    DEAD_LETTERED = "dead_lettered"  # it mapped to nothing the contract accepts: the body is a dead letter
    UNAUTHORIZED = "unauthorized"  # 401
    DISABLED = "disabled"  # 404: the source's secret is not set
    TOO_LARGE = "too_large"  # 413
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # 415
    UNAVAILABLE = "unavailable"  # 503: Kafka did not acknowledge in time


@dataclass(frozen=True)
class SourceMetrics:
    """One source's series, bound once: ``labels()`` on every request was a twentieth of its CPU."""

    requests: dict[RequestOutcome, Counter]
    seconds: Histogram
    published: Counter
    dead_letters: Counter


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry, sources: tuple[str, ...]) -> None:
        self.requests = Counter(
            "lifecycle_gateway_requests", "Requests by source and outcome.", ["source", "outcome"], registry=registry
        )
        self.seconds = Histogram(
            "lifecycle_gateway_request_seconds",
            "Request received to response, Kafka's acknowledgement included.",
            ["source"],
            buckets=REQUEST_SECONDS_BUCKETS,
            registry=registry,
        )
        self.published = Counter(
            "lifecycle_gateway_events_published",
            "Contract events published to the source topics, by source.",
            ["source"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "lifecycle_gateway_dead_letters",
            "Dead letters the gateway sent (a refused event, or a body that maps to none), by source.",
            ["source"],
            registry=registry,
        )
        # every series from start-up, at 0: a ratio over them is never empty
        self.sources = {
            source: SourceMetrics(
                {outcome: self.requests.labels(source, outcome.value) for outcome in RequestOutcome},
                self.seconds.labels(source),
                self.published.labels(source),
                self.dead_letters.labels(source),
            )
            for source in sources
        }
