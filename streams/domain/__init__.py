"""The pure core: lifecycle stages, how events change state, and the metric maths. No I/O here."""
