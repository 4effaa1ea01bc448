"""The dead-letter topic read back and replayed to the source topics (`lifecycle dlq`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from streams.contract.dead_letters import StoredDeadLetter, parse_dead_letter
from streams.kafka.reading import read_to_end
from streams.settings import Settings


def read_dead_letters(settings: Settings) -> Iterator[StoredDeadLetter]:
    """Everything on the dead-letter topic, from its beginning to its end as of now."""
    for batch in read_to_end(settings, [settings.topic_dlq]):
        yield from (parse_dead_letter(record) for record in batch)


class Replayed(NamedTuple):
    sent: int  # re-published to their source topics
    skipped: int  # truncated (their value is not the original's), or from the gateway: not sent


def replay(
    letters: Sequence[StoredDeadLetter],
    send: Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]]], None],
) -> Replayed:
    """Re-publish to the source topic with the original key, value and headers. A truncated dead letter
    (cut to fit the dead-letter topic) holds only the beginning of its value: it is skipped, never sent
    as if it were the original. So is one from the gateway (its origin ``gateway:<source>`` is no
    topic, its value a vendor's body): fix the mapping or the upstream and let the vendor resend it."""
    sent = 0
    for letter in letters:
        if not letter.truncated and ":" not in letter.source_topic:  # no topic name has a colon
            send(letter.source_topic, letter.key, letter.value, letter.original_headers)
            sent += 1
    return Replayed(sent, len(letters) - sent)
