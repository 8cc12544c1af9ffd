"""/metrics in Prometheus' text format: what an operator graphs while the server runs.

    lmlab_waiting_sequences{model}      sequences queued for a place in the batch
    lmlab_running_sequences{model}      sequences being decoded
    lmlab_largest_batch{model}          the most sequences one forward pass has decoded
    lmlab_generated_tokens_total{model} tokens generated since start (its rate is tokens/s)
    lmlab_request_seconds{route}        request latency histogram (streams: until the last event)
    lmlab_first_token_seconds           time to first token histogram
    lmlab_requests_total{route,status}  requests answered, by status
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from typing import Any

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ROUTES = ("/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/models", "/health", "/metrics", "/")


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total, self.count = 0.0, 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{{labels}{"," if labels else ""}le="{le}"}} {running}')
        braces = f"{{{labels}}}" if labels else ""
        return [*out, f"{name}_sum{braces} {self.total}", f"{name}_count{braces} {self.count}"]


class Metrics:
    """Counters and histograms, updated from the event loop and read by /metrics."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, Histogram] = {}
        self.first_token = Histogram()
        self.requests: Counter[tuple[str, int]] = Counter()

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        # a label per unknown path would let clients grow memory; the pipelines share one
        route = path if path in ROUTES else "/v1/pipelines" if path.startswith("/v1/pipelines/") else "other"
        with self.lock:
            self.latency.setdefault(route, Histogram()).observe(seconds)
            self.requests[(route, status)] += 1

    def observe_first_token(self, seconds: float) -> None:
        with self.lock:
            self.first_token.observe(seconds)

    def render(self, engines: dict[str, Any]) -> str:
        lines = []
        for name, help_text in (("waiting_sequences", "sequences queued for a place in the batch"),
                                ("running_sequences", "sequences being decoded"),
                                ("largest_batch", "the most sequences one forward pass has decoded"),
                                ("generated_tokens_total", "tokens generated since the server started")):
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# HELP lmlab_{name} {help_text}", f"# TYPE lmlab_{name} {kind}"]
            for model, engine in engines.items():
                value = {"waiting_sequences": engine.waiting.qsize(), "running_sequences": engine.running,
                         "largest_batch": engine.largest_batch, "generated_tokens_total": engine.tokens_generated}[name]
                lines.append(f'lmlab_{name}{{model="{model}"}} {value}')
        with self.lock:
            lines += ["# HELP lmlab_request_seconds request latency", "# TYPE lmlab_request_seconds histogram"]
            for route, histogram in sorted(self.latency.items()):
                lines += histogram.lines("lmlab_request_seconds", f'route="{route}"')
            lines += ["# HELP lmlab_first_token_seconds time to first token",
                      "# TYPE lmlab_first_token_seconds histogram",
                      *self.first_token.lines("lmlab_first_token_seconds", "")]
            lines += ["# HELP lmlab_requests_total requests answered", "# TYPE lmlab_requests_total counter"]
            lines += [f'lmlab_requests_total{{route="{r}",status="{s}"}} {n}'
                      for (r, s), n in sorted(self.requests.items())]
        return "\n".join(lines) + "\n"
