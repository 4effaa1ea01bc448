"""customer-lifecycle: customers' journey from sales into service, live, from Kafka events.

The package is cut by concept: ``contract`` (what upstream may send), ``domain`` (stage rules and
metric maths, pure), ``pipeline``/``batches`` (one batch in, one transaction out), ``db`` (the SQL
read model), ``metrics`` (Prometheus), ``app`` (the composition root) and ``cli``.
"""
