"""Benchmark of the webhook gateway (issue 21, point 7): requests/s and p99 from request to Kafka ack, one
and 100 contract events a request, against a bare aiohttp handler on the same machine, in one run.

    .venv/bin/python -m bench.gateway [--seconds 10] [--batch 1,100] [--connections 16] [--rounds 1]

Two servers, each a process of its own started the same way (same environment, ``web.run_app`` on
LIFECYCLE_GATEWAY_HOST/PORT, the same body limit): the real ``lifecycle gateway`` (publishes every event
with the validating publisher, acks=all, and answers once Kafka acknowledged them), and a bare handler
(``python -m bench.gateway --serve-bare``) that reads the body, parses it with orjson and answers 200.
The load generator is this process (an aiohttp client), ``POST /events`` with the bearer token and the
simulator's events (a pool, cycled), one JSON object a request or a JSON array of ``batch``.

Per batch size and round: a closed loop (``--connections`` connections, each sending its next request
once the last is answered) for ``--seconds`` on each server, then an open loop on each at half the bare
handler's closed-loop requests/s of that round; each after ``--warmup-seconds`` of the same load, not
measured. Bare and gateway alternate which goes first (per batch and per round), so the VM's drift hits
both; after each run the server is let go idle. An open-loop request's latency runs from when it was
due to its answer (the gateway's answer comes after Kafka's ack), waiting for a free connection
included (at most ``--open-connections``); a request that failed (not 200, or no answer in 30 s)
counts as infinite.
With ``--rounds`` > 1 each figure is the median of the rounds. Cores: CPU seconds over wall seconds
of the server process, of this load generator and of the whole machine (the rest is the broker, mostly).
Without KAFKA_BOOTSTRAP_SERVERS it starts the project's local broker; the topics are fresh.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

BARE = "bare aiohttp handler"
GATEWAY = "gateway (lifecycle gateway)"
POOL_EVENTS = 20_000  # the simulator's events, cycled through
CLIENT_TIMEOUT_SECONDS = 30.0
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0


# --- the bare handler's process --------------------------------------------------------------------
def serve_bare() -> None:
    """The framework alone: reads the body, parses the JSON, answers 200; on the gateway's settings."""
    from aiohttp import web

    from streams.settings import Settings

    async def events(request: web.Request) -> web.Response:
        document = orjson.loads(await request.read())
        count = len(document) if isinstance(document, list) else 1
        return web.Response(
            body=orjson.dumps({"published": count, "dead_lettered": 0}), content_type="application/json"
        )

    async def health(_request: web.Request) -> web.Response:
        return web.Response(body=b'{"status": "ok"}', content_type="application/json")

    settings = Settings()
    app = web.Application(client_max_size=settings.gateway_max_body_bytes)
    app.router.add_post("/events", events)
    app.router.add_get("/health", health)
    web.run_app(app, host=settings.gateway_host, port=settings.gateway_port, print=None)


# --- the servers, seen from outside ----------------------------------------------------------------
class Server:
    """A server process in its own process group, on a port of its own."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path) -> None:
        from streams.kafka.broker import free_port

        self.name, self.command, self.log_path = name, command, log_path
        self.port = free_port()
        self.env = {**env, "LIFECYCLE_GATEWAY_PORT": str(self.port)}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from streams.cli.processes import wait_for
        from streams.metrics.scraped import http_get

        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=Path(__file__).resolve().parents[1],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")
            try:
                return http_get(self.url + "/health", timeout=1)[0] == 200
            except OSError:
                return False

        wait_for(ready, timeout=60, what=f"{self.name}'s /health")

    def cpu(self) -> float:
        """CPU seconds of the process, all its threads (the gateway's publishing threads, kafka-python's)."""
        from bench.usage import proc_usage

        assert self.process is not None
        return proc_usage(self.process.pid)[0]

    def published(self) -> float | None:
        """The gateway's own count of events Kafka acknowledged; None for the bare handler."""
        from streams.metrics.scraped import http_get, metric_value

        if self.name != GATEWAY:
            return None
        text = http_get(self.url + "/metrics")[1].decode()
        return metric_value(text, "lifecycle_gateway_events_published_total", source="native")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


# --- the load generator ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Load:
    url: str
    bodies: list[bytes]
    batch: int
    headers: dict[str, str]


def bodies(events: Sequence[dict[str, Any]], batch: int) -> list[bytes]:
    """Request bodies of ``batch`` events: one JSON object for 1, a JSON array otherwise."""
    if batch == 1:
        return [orjson.dumps(event) for event in events]
    return [orjson.dumps(list(events[i : i + batch])) for i in range(0, len(events) - batch + 1, batch)]


@contextlib.asynccontextmanager
async def client(load: Load, connections: int) -> Any:
    """An aiohttp session of at most ``connections`` connections, kept alive."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, headers=load.headers, timeout=timeout) as session:
        yield session


async def _post(session: Any, load: Load, index: int) -> bool:
    import aiohttp

    try:
        async with session.post(load.url, data=load.bodies[index % len(load.bodies)]) as response:
            await response.read()
            return bool(response.status == 200)
    except (TimeoutError, aiohttp.ClientError):
        return False


async def closed_loop(session: Any, load: Load, connections: int, seconds: float) -> tuple[int, int, float]:
    """``connections`` loops, each sending its next request once the last is answered, for ``seconds``;
    returns (answered 200, failed, seconds from the start to the last answer)."""
    counts = [0, 0]
    deadline = time.perf_counter() + seconds

    async def connection(offset: int) -> None:
        index = offset
        while time.perf_counter() < deadline:
            counts[0 if await _post(session, load, index) else 1] += 1
            index += connections

    start = time.perf_counter()
    await asyncio.gather(*(connection(k) for k in range(connections)))
    return counts[0], counts[1], time.perf_counter() - start


async def open_loop(session: Any, load: Load, rate: float, seconds: float) -> list[float]:
    """Requests at ``rate``/s for ``seconds``, each sent when due whatever is still unanswered; returns
    each one's latency in seconds from when it was due to its answer (infinite if it failed)."""
    latencies: list[float] = []

    async def send(index: int, due: float) -> None:
        latencies.append(time.perf_counter() - due if await _post(session, load, index) else math.inf)

    tasks = []
    begin = time.perf_counter()
    for index in range(max(1, int(rate * seconds))):
        due = begin + index / rate
        ahead = due - time.perf_counter()
        if ahead > 0:  # at least 1 ms, then what is due goes out: a wake-up per request costs the generator
            await asyncio.sleep(max(ahead, 0.001))
        tasks.append(asyncio.create_task(send(index, due)))
    await asyncio.gather(*tasks)
    return latencies


async def settle(server: Server, idle_cores: float = 0.05, timeout: float = 60.0) -> None:
    """Until the server is idle (below ``idle_cores`` over half a second): an overloaded gateway goes on
    with the requests the open loop gave up on, which would weigh on the next run."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        before = server.cpu()
        await asyncio.sleep(0.5)
        if server.cpu() - before < idle_cores * 0.5:
            return
    print(f"warning: {server.name} still busy {timeout:.0f} s after a run", file=sys.stderr)


def _usage(server: Server) -> tuple[float, float, float, float]:
    from bench.usage import machine_busy, self_usage

    return time.perf_counter(), server.cpu(), self_usage()[0], machine_busy()


def _cores(before: tuple[float, ...], after: tuple[float, ...]) -> dict[str, float]:
    wall = after[0] - before[0]
    server, generator, machine = ((a - b) / wall for a, b in zip(after[1:], before[1:], strict=True))
    return {"cores_server": server, "cores_generator": generator, "cores_machine": machine}


async def closed_run(server: Server, load: Load, connections: int, seconds: float, warmup: float) -> dict[str, float]:
    async with client(load, connections) as session:
        await closed_loop(session, load, connections, warmup)
        published = server.published()
        before = _usage(server)
        answered, failed, elapsed = await closed_loop(session, load, connections, seconds)
        after = _usage(server)
    if published is not None:  # the gateway's own count agrees with what was answered
        acked = (server.published() or 0.0) - published
        if acked != answered * load.batch:
            print(f"warning: {server.name} counted {acked:.0f} events for {answered} requests", file=sys.stderr)
    return {
        "requests_per_s": answered / elapsed,
        "events_per_s": answered * load.batch / elapsed,
        "closed_failed": failed,
        **_cores(before, after),
    }


async def open_run(
    server: Server, load: Load, rate: float, seconds: float, warmup: float, connections: int
) -> dict[str, float]:
    async with client(load, connections) as session:
        await open_loop(session, load, rate, warmup)
        latencies = sorted(await open_loop(session, load, rate, seconds))

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "offered_per_s": rate,
        "p50": quantile(0.50),
        "p99": quantile(0.99),
        "open_failed": sum(1 for value in latencies if value == math.inf),
    }


async def measure(
    servers: dict[str, Server], loads: dict[str, dict[int, Load]], options: argparse.Namespace
) -> dict[tuple[str, int], list[dict[str, float]]]:
    """Every round, every batch: closed loop on both, then open loop on both at half the bare handler's
    rate; which goes first alternates."""
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for round_ in range(options.rounds):
        for position, batch in enumerate(options.batch):
            order = [BARE, GATEWAY] if (round_ + position) % 2 == 0 else [GATEWAY, BARE]
            closed: dict[str, dict[str, float]] = {}
            for name in order:
                print(f"round {round_ + 1}, batch {batch}: {name}, closed loop", file=sys.stderr)
                closed[name] = await closed_run(
                    servers[name], loads[name][batch], options.connections, options.seconds, options.warmup_seconds
                )
                await settle(servers[name])
            rate = closed[BARE]["requests_per_s"] / 2
            for name in order:
                print(f"round {round_ + 1}, batch {batch}: {name}, open loop at {rate:,.0f}/s", file=sys.stderr)
                opened = await open_run(
                    servers[name],
                    loads[name][batch],
                    rate,
                    options.seconds,
                    options.warmup_seconds,
                    options.open_connections,
                )
                await settle(servers[name])
                runs.setdefault((name, batch), []).append({**closed[name], **opened})
    return runs


# --- the report ------------------------------------------------------------------------------------
def _ms(value: float) -> str:
    return "failed" if value == math.inf else f"{value:.1f}"


def report(rows: dict[tuple[str, int], dict[str, float]], options: argparse.Namespace, broker: str) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    median = " (median)" if options.rounds > 1 else ""
    lines = [
        f"machine: {machine}; broker: {broker}; {options.seconds:g} s a run after {options.warmup_seconds:g} s of"
        f" warm-up; connections: {options.connections} (closed loop), at most {options.open_connections} (open loop);"
        f" rounds: {options.rounds}{median}",
        "",
        "| variant | batch | req/s | events/s | / bare | open loop req/s (½ bare) | p50 ms | p99 ms | failed "
        "(closed / open) | cores, closed loop: server / load generator / machine |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for batch in options.batch:
        bare_rate = rows[(BARE, batch)]["requests_per_s"]
        for name in (BARE, GATEWAY):
            row = rows[(name, batch)]
            lines.append(
                f"| {name} | {batch} | {row['requests_per_s']:,.0f} | {row['events_per_s']:,.0f} "
                f"| {row['requests_per_s'] / bare_rate:.2f} | {row['offered_per_s']:,.0f} | {_ms(row['p50'])} "
                f"| {_ms(row['p99'])} | {row['closed_failed']:.0f} / {row['open_failed']:.0f} "
                f"| {row['cores_server']:.2f} / {row['cores_generator']:.2f} / {row['cores_machine']:.2f} |"
            )
    lines.append("")
    for batch in options.batch:
        bare, gateway = rows[(BARE, batch)], rows[(GATEWAY, batch)]
        ratio = gateway["requests_per_s"] / bare["requests_per_s"]
        lines.append(
            f"batch {batch}: gateway / bare {ratio:.2f} (target >= {TARGET_RATIO:.2f}: "
            f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}); gateway p99 {_ms(gateway['p99'])} ms at "
            f"{gateway['offered_per_s']:,.0f} req/s (target <= {TARGET_P99_MS:g} ms: "
            f"{'met' if gateway['p99'] <= TARGET_P99_MS else 'NOT met'})"
        )
    print("\n".join(lines))
    if options.json:
        document = {
            "machine": machine,
            "options": {key: value for key, value in vars(options).items() if key != "json"},
            "rows": [{"variant": name, "batch": batch, **row} for (name, batch), row in rows.items()],
        }
        options.json.write_text(json.dumps(document, indent=2, default=str) + "\n")


# --- the run ---------------------------------------------------------------------------------------
def _batches(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("comma-separated positive batch sizes, e.g. 1,100")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds of each run")
    parser.add_argument("--warmup-seconds", type=float, default=2.0, help="seconds of the same load before each run")
    parser.add_argument("--batch", type=_batches, default=[1, 100], help="events a request, comma-separated")
    parser.add_argument("--connections", type=int, default=16, help="connections of the closed loop")
    parser.add_argument(
        "--open-connections",
        type=int,
        default=256,
        help="most connections of the open loop; a request due while all are busy waits, and that counts",
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every run; figures are their median")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_bare:
        serve_bare()
        return

    from bench.load import simulated
    from streams.cli.processes import LIFECYCLE
    from streams.kafka.admin import ensure_topics
    from streams.kafka.broker import LocalKafka
    from streams.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    kafka = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or ""
    if not bootstrap:
        kafka = LocalKafka(work / "kafka").start()
        bootstrap = kafka.bootstrap_servers
    servers: dict[str, Server] = {}
    try:
        suffix = uuid.uuid4().hex[:8]
        topics = {name: f"bench-gw-{name}-{suffix}" for name in ("leads", "deals", "tickets", "lifecycle", "dlq")}
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        settings = Settings(
            topic_leads=topics["leads"],
            topic_deals=topics["deals"],
            topic_tickets=topics["tickets"],
            topic_lifecycle=topics["lifecycle"],
            topic_dlq=topics["dlq"],
        )
        ensure_topics(settings)
        token = f"bench-{uuid.uuid4().hex}"
        env = {
            **os.environ,
            **{f"LIFECYCLE_TOPIC_{name.upper()}": topic for name, topic in topics.items()},
            "LIFECYCLE_DATA_DIR": str(work / "data"),
            "LIFECYCLE_LOG_LEVEL": "warning",
            "LIFECYCLE_GATEWAY_HOST": "127.0.0.1",
            "LIFECYCLE_GATEWAY_TOKEN": token,
        }
        servers = {
            BARE: Server(BARE, [sys.executable, "-m", "bench.gateway", "--serve-bare"], env, work / "bare.log"),
            GATEWAY: Server(GATEWAY, [LIFECYCLE, "gateway"], env, work / "gateway.log"),
        }
        for server in servers.values():
            server.start()
        events = simulated(max(POOL_EVENTS, max(options.batch)))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        encoded = {batch: bodies(events, batch) for batch in options.batch}
        loads = {
            name: {batch: Load(server.url + "/events", encoded[batch], batch, headers) for batch in options.batch}
            for name, server in servers.items()
        }
        runs = asyncio.run(measure(servers, loads, options))
    finally:
        for server in servers.values():
            server.stop()
        if kafka is not None:
            kafka.stop()
    rows = {key: {k: statistics.median(r[k] for r in values) for k in values[0]} for key, values in runs.items()}
    report(rows, options, "local (LocalKafka)" if kafka is not None else bootstrap)


if __name__ == "__main__":
    main()
