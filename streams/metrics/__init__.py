"""Prometheus metrics: the counters the worker keeps, the read model's gauges, and their exposition."""
