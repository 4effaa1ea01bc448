"""customer-lifecycle: customers' journey from sales into service, live, from Kafka events.

The package is cut by concept: ``contract`` (what upstream may send), ``domain`` (stage rules and
metric maths, pure), ``pipeline`` (one batch in, one transaction out, and where it runs), ``db`` (the
SQL read model), ``kafka`` (everything that speaks Kafka), ``metrics`` (Prometheus), ``app`` (the
composition root) and ``cli``.
"""
