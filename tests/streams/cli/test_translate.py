"""`lifecycle translate`: a payload's contract events, offline, through the gateway's own mapping."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest

from streams.cli.commands import main, parser
from streams.contract.decoding import validate_document
from streams.gateway.sources import TRANSLATABLE
from tests.support import ROOT, event

FIXTURES = ROOT / "tests" / "streams" / "gateway" / "fixtures"


def translate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, object]], str]:
    code = main(["translate", *args])
    out, err = capsys.readouterr()
    return code, [orjson.loads(line) for line in out.splitlines()], err


def test_a_vendor_payload_prints_its_contract_events(capsys: pytest.CaptureFixture[str]) -> None:
    code, events, _ = translate(capsys, "--source", "stripe", str(FIXTURES / "stripe" / "invoice.paid.json"))
    assert code == 0 and [e["type"] for e in events] == ["deal.won"]
    assert all(validate_document(e) for e in events)
    code, events, _ = translate(capsys, "--source", "pipedrive", str(FIXTURES / "pipedrive" / "deal-won.json"))
    assert code == 0 and "deal.won" in [e["type"] for e in events]


def test_an_ignored_type_prints_nothing_and_a_refused_one_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, events, err = translate(capsys, "--source", "pipedrive", str(FIXTURES / "pipedrive" / "create-person.json"))
    assert (code, events) == (0, []) and err.startswith("ignored: ")
    refused = tmp_path / "refused.json"
    refused.write_bytes(orjson.dumps({**event("csat.submitted"), "score": 9}))
    code, events, err = translate(capsys, "--source", "native", str(refused))
    assert (code, events) == (1, []) and err.startswith("refused: invalid_field: ")


def test_the_sources_offered_are_the_gateway_s() -> None:
    commands = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    source = next(a for a in commands.choices["translate"]._actions if a.dest == "source")
    assert tuple(source.choices or ()) == TRANSLATABLE
