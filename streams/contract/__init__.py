"""The event contract: messages decoded and validated against ``schemas/v1``; the wire formats we write."""
