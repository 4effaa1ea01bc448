"""Kafka adapters: the lean Faust transport and sensors, producers, topic admin, dead letters, the local broker."""
