"""The worker's HTTP pages, served in-process by Faust's aiohttp application: no broker, nothing consumed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from streams.app import build
from streams.db.repository import Repository
from streams.pipeline.service import Pipeline
from streams.settings import Settings
from tests.support import TOPICS, event, messages_for, migrated

Client = TestClient[web.Request, web.Application]
CUSTOMER = "c 1/é?&"
PATH = f"/customers/{quote(CUSTOMER, safe='')}"


def serve(sqlite_url: str, tmp_path: Path, scenario: Callable[[Client], Awaitable[None]]) -> None:
    """``scenario`` against the pages of a worker built on ``sqlite_url``, where CUSTOMER has three tickets."""
    engine = migrated(sqlite_url)
    tickets = [event("ticket.opened", CUSTOMER, ticket_id=f"t-{n}") for n in range(3)]
    assert not Pipeline(Repository(engine), TOPICS).process(messages_for(tickets)).dead_letters
    lifecycle = build(
        Settings(database_url=SecretStr(sqlite_url), data_dir=tmp_path, pipeline_process=False),
        registry=CollectorRegistry(),
    )

    pages = lifecycle.app.web
    assert isinstance(pages, AiohttpWeb)

    async def run() -> None:
        async with TestClient(TestServer(pages.web_app)) as client:
            await scenario(client)

    try:
        asyncio.run(run())
    finally:
        lifecycle.engine.dispose()
        engine.dispose()


async def get(client: Client, url: str) -> tuple[int, Any]:
    response = await client.get(url)
    assert response.content_type == "application/json", url
    return response.status, await response.json()


def test_a_customers_lists_are_paged_by_their_next_links(sqlite_url: str, tmp_path: Path) -> None:
    async def scenario(client: Client) -> None:
        status, customer = await get(client, f"{PATH}?limit=2")
        assert status == 200 and customer["customer_id"] == CUSTOMER
        assert [ticket["ticket_id"] for ticket in customer["tickets"]] == ["t-0", "t-1"]
        assert customer["links"]["journey_next"] is None and customer["links"]["deals_next"] is None
        status, rest = await get(client, customer["links"]["tickets_next"])
        assert status == 200 and rest["customer_id"] == CUSTOMER
        assert [ticket["ticket_id"] for ticket in rest["tickets"]] == ["t-2"]
        assert rest["links"] == {"tickets_next": None}
        for name in ("journey", "deals", "tickets"):
            status, page = await get(client, f"{PATH}/{name}")
            assert status == 200 and page[name] == customer[name] + (rest[name] if name == "tickets" else [])

    serve(sqlite_url, tmp_path, scenario)


def test_a_bad_page_is_a_400_and_an_unknown_customer_a_404(sqlite_url: str, tmp_path: Path) -> None:
    bad_limit = {"error": "limit must be a whole number from 1 to 1000"}
    bad_cursor = {"error": "after must be the cursor of a next link of this list"}
    asked = {
        f"{PATH}?limit=0": (400, bad_limit),
        f"{PATH}/journey?limit=1001": (400, bad_limit),
        f"{PATH}/deals?limit=ten": (400, bad_limit),
        f"{PATH}/tickets?after=%2A%2A%2A": (400, bad_cursor),
        f"{PATH}/tickets?after=WyJ0LTEiLDFd": (400, bad_cursor),  # ["t-1",1]
        "/customers/nobody/journey": (404, {"error": "unknown customer 'nobody'"}),
        "/customers/nobody/deals?limit=0": (400, bad_limit),  # a bad page is not looked up
        "/customers/%00/tickets?limit=0": (404, {"error": "unknown customer '\\x00'"}),
        f"/customers/{'x' * 65}/journey": (404, {"error": f"unknown customer '{'x' * 65}'"}),
    }

    async def scenario(client: Client) -> None:
        answered = {url: await get(client, url) for url in asked}
        assert answered == asked

    serve(sqlite_url, tmp_path, scenario)
