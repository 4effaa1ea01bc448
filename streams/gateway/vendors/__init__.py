"""One module per source: how its payloads map to contract events, and how its requests are authenticated."""
