"""The application service: a batch of Kafka messages in, one database transaction out; batching and where it runs."""
