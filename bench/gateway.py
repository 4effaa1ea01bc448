"""Benchmark of the webhook gateway (issue 21, point 7): requests/s and p99 from request to Kafka ack, one
and 100 contract events a request, against a bare aiohttp handler on the same machine, in one run.

    .venv/bin/python -m bench.gateway [--seconds 10] [--batch 1,100] [--connections 64] [--rounds 1]

Two servers, each a process of its own started the same way (same environment, ``web.run_app`` on
LIFECYCLE_GATEWAY_HOST/PORT, the same body limit): the real ``lifecycle gateway`` (publishes every event
with the validating publisher, acks=all, and answers once Kafka acknowledged them), and a bare handler
(``python -m bench.gateway --serve-bare``) that reads the body, parses it with orjson and answers 200.
The load generator is vegeta (pinned, built with Go into the project's cache at the first run), ``POST
/events`` with the bearer token and the simulator's events (a pool, cycled), one JSON object a request
or a JSON array of ``batch``.

Per batch size and round: a closed loop (``--connections`` connections, each sending its next request
once the last is answered) for ``--seconds`` on each server, then an open loop on each at half the bare
handler's closed-loop requests/s of that round, and one on the gateway at half its own; each after
``--warmup-seconds`` of the same load, not measured. Bare and gateway alternate which goes first (per
batch and per round), so the VM's drift hits both; after each run the server is let go idle. vegeta's
open loop starts each request when it is due, on a new worker if all are busy; its latency runs from
then to the answer (the gateway's answer comes after Kafka's ack), waiting for a free connection
included (at most ``--open-connections``); a request that failed (not 200, or no answer in 30 s)
counts as infinite.
With ``--rounds`` > 1 each figure is the median of the rounds. Cores: CPU seconds over wall seconds
of the server process, of vegeta and of the whole machine (the rest is the broker, mostly).
Without KAFKA_BOOTSTRAP_SERVERS it starts the project's local broker; the topics are fresh.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import math
import os
import platform
import resource
import shutil
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
    """The framework alone: reads the body, parses the JSON, answers 200; on the gateway's settings and
    its event loop."""
    from aiohttp import web

    from streams.gateway.server import event_loop
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
    gc.collect()
    gc.freeze()  # as run_gateway does
    app = web.Application(client_max_size=settings.gateway_max_body_bytes)
    app.router.add_post("/events", events)
    app.router.add_get("/health", health)
    web.run_app(app, host=settings.gateway_host, port=settings.gateway_port, print=None, loop=event_loop())


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
        """CPU seconds of the process, all its threads (aiohttp's, aiokafka's)."""
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


# --- the load generator: vegeta ------------------------------------------------------------------
# A Python client costs as much CPU a request as the server it measures (0.9 core at 8,000 requests/s,
# bench/results/2026-12-gateway.md) and fell behind its own schedule in the open loop; vegeta (Go) is
# made for this: a constant-rate open loop that starts each request when it is due, and a closed one.
VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"


def vegeta() -> Path:
    """The pinned vegeta, built once from the Go module proxy into the project's cache."""
    from streams.kafka.broker import cache_root

    binary = cache_root() / "tools" / f"vegeta-{VEGETA_VERSION}" / "vegeta"
    if not binary.exists():
        if shutil.which("go") is None:
            raise SystemExit(f"bench.gateway needs Go to build its load generator ({VEGETA_MODULE}@{VEGETA_VERSION})")
        print(f"building {VEGETA_MODULE}@{VEGETA_VERSION} into {binary.parent}", file=sys.stderr)
        subprocess.run(
            ["go", "install", f"{VEGETA_MODULE}@{VEGETA_VERSION}"],
            env={**os.environ, "GOBIN": str(binary.parent)},
            check=True,
        )
    return binary


@dataclass(frozen=True)
class Load:
    targets: Path  # vegeta's JSON targets: the request bodies, cycled through
    batch: int


def bodies(events: Sequence[dict[str, Any]], batch: int) -> list[bytes]:
    """Request bodies of ``batch`` events: one JSON object for 1, a JSON array otherwise."""
    if batch == 1:
        return [orjson.dumps(event) for event in events]
    return [orjson.dumps(list(events[i : i + batch])) for i in range(0, len(events) - batch + 1, batch)]


def write_targets(path: Path, url: str, encoded: Sequence[bytes], headers: dict[str, str]) -> Path:
    header = {name: [value] for name, value in headers.items()}
    with path.open("wb") as out:
        for body in encoded:
            target = {"method": "POST", "url": url, "header": header, "body": base64.b64encode(body).decode()}
            out.write(orjson.dumps(target) + b"\n")
    return path


def attack(
    load: Load, seconds: float, *, connections: int, rate: float | None = None, server: Server | None = None
) -> tuple[dict[str, Any], dict[str, float]]:
    """One vegeta attack: a closed loop of ``connections`` workers (``rate`` None), or an open loop at
    ``rate`` requests/s on at most ``connections`` connections. Returns vegeta's JSON report and the cores
    (CPU seconds over wall seconds) of ``server``, of vegeta and of the machine while it attacked."""
    from bench.usage import machine_busy

    shape = ["-rate=0", f"-workers={connections}", f"-max-workers={connections}"]
    if rate is not None:
        shape = [f"-rate={max(1, round(rate))}/1s", f"-max-connections={connections}"]
    with tempfile.NamedTemporaryFile(suffix=".bin") as results:
        command = [str(vegeta()), "attack", "-format=json", f"-targets={load.targets}", f"-duration={seconds}s"]
        command += [f"-timeout={CLIENT_TIMEOUT_SECONDS:g}s", "-max-body=0", f"-output={results.name}", *shape]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall, cpu, busy = time.perf_counter(), server.cpu() if server else 0.0, machine_busy()
        subprocess.run(command, check=True)
        wall, busy = time.perf_counter() - wall, machine_busy() - busy
        cpu = (server.cpu() - cpu) if server else 0.0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        report = subprocess.run(
            [str(vegeta()), "report", "-type=json", results.name], check=True, capture_output=True
        ).stdout
    generator = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    cores = {"cores_server": cpu / wall, "cores_generator": generator / wall, "cores_machine": busy / wall}
    return orjson.loads(report), cores


def _failed(report: dict[str, Any]) -> int:
    return int(report["requests"]) - int(report.get("status_codes", {}).get("200", 0))


def settle(server: Server, idle_cores: float = 0.05, timeout: float = 60.0) -> None:
    """Until the server is idle (below ``idle_cores`` over half a second): an overloaded gateway goes on
    with the requests the open loop gave up on, which would weigh on the next run."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        before = server.cpu()
        time.sleep(0.5)
        if server.cpu() - before < idle_cores * 0.5:
            return
    print(f"warning: {server.name} still busy {timeout:.0f} s after a run", file=sys.stderr)


def closed_run(server: Server, load: Load, connections: int, seconds: float, warmup: float) -> dict[str, float]:
    attack(load, warmup, connections=connections)
    published = server.published()
    report, cores = attack(load, seconds, connections=connections, server=server)
    answered = int(report.get("status_codes", {}).get("200", 0))
    if published is not None:  # the gateway's own count agrees with what was answered
        acked = (server.published() or 0.0) - published
        if acked != answered * load.batch:
            print(f"warning: {server.name} counted {acked:.0f} events for {answered} requests", file=sys.stderr)
    return {
        "requests_per_s": float(report["throughput"]),
        "events_per_s": float(report["throughput"]) * load.batch,
        "closed_failed": _failed(report),
        **cores,
    }


def open_run(load: Load, rate: float, seconds: float, warmup: float, connections: int) -> dict[str, float]:
    """vegeta starts each request when it is due, whatever is unanswered; a request that failed (not
    200, or no answer in 30 s) counts as infinite in the quantiles."""
    attack(load, warmup, connections=connections, rate=rate)
    report, _cores = attack(load, seconds, connections=connections, rate=rate)
    failed = _failed(report)
    latencies = report["latencies"]

    def quantile(name: str, q: float) -> float:
        return math.inf if failed > (1 - q) * int(report["requests"]) else float(latencies[name]) / 1e6

    return {
        "offered_per_s": rate,
        "achieved_per_s": float(report["rate"]),
        "p50": quantile("50th", 0.50),
        "p99": quantile("99th", 0.99),
        "open_failed": failed,
    }


def measure(
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
                closed[name] = closed_run(
                    servers[name], loads[name][batch], options.connections, options.seconds, options.warmup_seconds
                )
                settle(servers[name])
            rate = closed[BARE]["requests_per_s"] / 2
            for name in order:
                print(f"round {round_ + 1}, batch {batch}: {name}, open loop at {rate:,.0f}/s", file=sys.stderr)
                opened = open_run(
                    loads[name][batch], rate, options.seconds, options.warmup_seconds, options.open_connections
                )
                settle(servers[name])
                # and at half its own rate: the latency of a gateway run within what it takes
                own = closed[name]["requests_per_s"] / 2
                if name == BARE:
                    mine = opened
                else:
                    print(f"round {round_ + 1}, batch {batch}: {name}, open loop at {own:,.0f}/s", file=sys.stderr)
                    mine = open_run(
                        loads[name][batch], own, options.seconds, options.warmup_seconds, options.open_connections
                    )
                    settle(servers[name])
                runs.setdefault((name, batch), []).append(
                    {**closed[name], **opened, **{f"own_{key}": value for key, value in mine.items()}}
                )
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
        f" rounds: {options.rounds}{median}; load generator: vegeta {VEGETA_VERSION}",
        "",
        "| variant | batch | req/s | events/s | / bare | open loop req/s (½ bare) | p50 ms | p99 ms | failed "
        "(closed / open) | open loop req/s (½ own) | p50 ms | p99 ms | cores, closed loop: server / load generator"
        " / machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for batch in options.batch:
        bare_rate = rows[(BARE, batch)]["requests_per_s"]
        for name in (BARE, GATEWAY):
            row = rows[(name, batch)]
            lines.append(
                f"| {name} | {batch} | {row['requests_per_s']:,.0f} | {row['events_per_s']:,.0f} "
                f"| {row['requests_per_s'] / bare_rate:.2f} | {row['offered_per_s']:,.0f} | {_ms(row['p50'])} "
                f"| {_ms(row['p99'])} | {row['closed_failed']:.0f} / {row['open_failed']:.0f} "
                f"| {row['own_offered_per_s']:,.0f} | {_ms(row['own_p50'])} | {_ms(row['own_p99'])} "
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
            f"{'met' if gateway['p99'] <= TARGET_P99_MS else 'NOT met'}); at half its own rate "
            f"({gateway['own_offered_per_s']:,.0f} req/s) p99 {_ms(gateway['own_p99'])} ms"
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
    parser.add_argument(
        "--connections",
        type=int,
        default=64,
        help="connections of the closed loop; a request waits ~10 ms for Kafka's ack, so 16 bound the gateway's rate",
    )
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
            name: {
                batch: Load(
                    write_targets(work / f"{slug}-{batch}.json", server.url + "/events", encoded[batch], headers), batch
                )
                for batch in options.batch
            }
            for name, slug, server in ((name, name.split()[0], server) for name, server in servers.items())
        }
        vegeta()  # built before anything is measured
        runs = measure(servers, loads, options)
    finally:
        for server in servers.values():
            server.stop()
        if kafka is not None:
            kafka.stop()
    rows = {key: {k: statistics.median(r[k] for r in values) for k in values[0]} for key, values in runs.items()}
    report(rows, options, "local (LocalKafka)" if kafka is not None else bootstrap)


if __name__ == "__main__":
    main()
