"""The server's Prometheus metrics, in a registry of its own (one per app, so tests can build several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Batch-size histogram buckets (crops per model call).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """Requests, latency, batch sizes and queue depth.

    Attributes:
        requests: ``lungcad_requests_total{endpoint, status}``.
        latency: ``lungcad_request_seconds{endpoint}`` histogram.
        batch_size: ``lungcad_batch_size`` histogram: crops per classifier call.
        queue_depth: ``lungcad_queue_depth``: requests waiting for the model worker.
        crops: ``lungcad_crops_total``: crops classified.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("lungcad_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("lungcad_request_seconds", "Request latency", ["endpoint"], registry=self.registry)
        self.batch_size = Histogram("lungcad_batch_size", "Crops per classifier call", buckets=BATCH_BUCKETS,
                                    registry=self.registry)
        self.queue_depth = Gauge("lungcad_queue_depth", "Classify requests waiting", registry=self.registry)
        self.crops = Counter("lungcad_crops", "Crops classified", registry=self.registry)

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
