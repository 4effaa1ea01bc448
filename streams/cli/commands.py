"""`lifecycle`: the one command line of the product. `lifecycle --help` lists the subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from streams.cli.logs import mask_secrets_in_logs
from streams.settings import DEFAULT_BOOTSTRAP, Settings

log = logging.getLogger("lifecycle")


def _settings() -> Settings:
    settings = Settings()
    mask_secrets_in_logs(settings.secret_values())
    return settings


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")


# --- broker ------------------------------------------------------------------------------------
def cmd_broker(args: argparse.Namespace) -> int:
    from streams.kafka.broker import LocalKafka

    settings = _settings()
    kafka = LocalKafka(settings.data_dir / "kafka", port=args.port, controller_port=args.controller_port,
                       partitions=settings.topic_partitions)  # fmt: skip
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    kafka.start()
    print(f"Kafka listening on {kafka.bootstrap_servers} (log: {kafka.log_file}); Ctrl-C stops it", flush=True)
    try:
        while not stop.wait(1.0):
            if kafka.process is not None and kafka.process.poll() is not None:
                print(f"Kafka exited with {kafka.process.returncode}", file=sys.stderr)
                return 1
    finally:
        kafka.stop()
        print("Kafka stopped", flush=True)
    return 0


def cmd_fetch_kafka(args: argparse.Namespace) -> int:
    from streams.kafka.broker import fetch_kafka

    print(fetch_kafka())
    return 0


# --- worker ------------------------------------------------------------------------------------
def cmd_worker(args: argparse.Namespace) -> int:
    from streams.app import build, faust_worker, prepare_infrastructure

    settings = _settings()
    prepare_infrastructure(settings)
    lifecycle = build(settings)
    from streams.db.engine import redacted

    print(
        f"worker: Kafka {settings.bootstrap_servers}; database {redacted(settings.sqlalchemy_url)}; "
        f"metrics and API on http://{settings.web_host}:{settings.web_port}/",
        flush=True,
    )
    faust_worker(lifecycle.app, settings.log_level).execute_from_commandline()
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from streams.db.engine import make_engine, redacted
    from streams.db.migrations import upgrade

    settings = _settings()
    applied = upgrade(make_engine(settings.sqlalchemy_url))
    print(f"{redacted(settings.sqlalchemy_url)}: applied {applied or 'nothing (up to date)'}")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from streams.kafka.admin import ensure_topics

    created = ensure_topics(_settings())
    print(f"created: {created or 'none (all exist)'}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from streams.settings import reference

    if args.markdown:
        print(reference(), end="")
        return 0
    settings = _settings()
    for name, value in settings.model_dump().items():
        print(f"{name} = {value!r}")  # SecretStr fields print as '**********'
    return 0


# --- publishing and simulation -----------------------------------------------------------------
def _read_json_lines(source: TextIO) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(source, start=1):
        if line.strip():
            try:
                yield number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, exc


def cmd_publish(args: argparse.Namespace) -> int:
    from streams.domain.errors import ErrorClass, InvalidEvent
    from streams.kafka.publisher import EventPublisher

    source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    sent, failed = 0, 0
    with source, EventPublisher(_settings()) as publisher:
        for number, document in _read_json_lines(source):
            try:
                if isinstance(document, Exception):
                    raise InvalidEvent(ErrorClass.NOT_JSON, str(document))
                publisher.publish(document)
                sent += 1
            except InvalidEvent as exc:
                failed += 1
                print(f"line {number}: {exc.error_class}: {exc.reason}", file=sys.stderr)
    print(f"published {sent} events; rejected {failed}")
    return 1 if failed else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.cli.simulator import Simulator
    from streams.kafka.publisher import EventPublisher

    settings = _settings()
    simulation = Simulator(args.seed, csat_dip=args.csat_dip, at_risk_threshold=settings.at_risk_csat_threshold).run(
        args.customers
    )
    if args.expected:
        Path(args.expected).write_text(json.dumps(simulation.expected.as_dict(), indent=2) + "\n")
    if args.output:
        with open(args.output, "wb") as sink:
            for event in simulation.events:
                sink.write(orjson.dumps(event) + b"\n")
        print(f"wrote {len(simulation.events)} events to {args.output}")
        return 0
    with EventPublisher(settings) as publisher:
        started = time.monotonic()
        for index, event in enumerate(simulation.events, start=1):
            publisher.publish(event)
            if args.rate:
                ahead = index / args.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)  # pacing the offered load, not waiting for a result
    print(f"published {len(simulation.events)} events for {args.customers} customers")
    return 0


# --- dead letters ------------------------------------------------------------------------------
def cmd_dlq(args: argparse.Namespace) -> int:
    from streams.kafka.dead_letters import read_dead_letters, replay
    from streams.kafka.publisher import EventPublisher

    settings = _settings()
    letters = list(read_dead_letters(settings))
    if args.error_class:
        letters = [d for d in letters if d.error_class == args.error_class]
    if args.offsets:
        wanted = {tuple(int(x) for x in spec.split(":")) for spec in args.offsets}
        letters = [d for d in letters if (d.dlq_partition, d.dlq_offset) in wanted]
    if args.action == "replay":
        if not (args.all or args.error_class or args.offsets):
            print("replay needs --offset P:O, --error-class or --all", file=sys.stderr)
            return 2
        with EventPublisher(settings) as publisher:
            count = replay(letters, publisher.send_raw)
        print(f"replayed {count.sent} messages to their source topics")
        if count.skipped:
            print(
                f"skipped {count.skipped} dead letters: truncated ones, whose value was cut to fit the dead-letter "
                "topic (original_size, original_sha256 in `lifecycle dlq`), and the gateway's (origin "
                "gateway:<source>), whose value is a vendor's body: replay them from the source",
                file=sys.stderr,
            )
        return 0
    for letter in letters:
        print(json.dumps(letter.as_dict()))
    print(f"{len(letters)} dead letters", file=sys.stderr)
    return 0


# --- rebuild -----------------------------------------------------------------------------------
def cmd_rebuild(args: argparse.Namespace) -> int:
    from streams.app import rebuild

    settings = _settings()
    count = rebuild(settings)
    print(f"rebuilt the read model from {count} messages")
    return 0


# --- demo and live view ------------------------------------------------------------------------
def cmd_live(args: argparse.Namespace) -> int:
    from streams.cli.live import live_view

    live_view(_settings(), interval=args.interval, once=args.once)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Broker (unless KAFKA_BOOTSTRAP_SERVERS is set) + worker + simulator + live view; it ends, once they
    are stopped, on the Sales vs Service figures."""
    from streams.cli.live import final_view, live_view
    from streams.kafka.broker import LocalKafka

    settings = _settings()
    env = dict(os.environ)
    kafka = None
    if settings.kafka_bootstrap_servers is None:
        kafka = LocalKafka(settings.data_dir / "kafka", port=int(DEFAULT_BOOTSTRAP.rsplit(":", 1)[1]),
                           partitions=settings.topic_partitions).start()  # fmt: skip
        print(f"Kafka listening on {kafka.bootstrap_servers}", flush=True)
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers
    lifecycle = [sys.executable, "-m", "streams.cli"]
    log_path = settings.data_dir / "worker.log"
    children: list[subprocess.Popen[bytes]] = []
    try:
        with log_path.open("ab") as worker_log:
            children.append(
                subprocess.Popen([*lifecycle, "worker"], env=env, stdout=worker_log, stderr=subprocess.STDOUT)
            )
            simulate = [*lifecycle, "simulate", "--customers", str(args.customers), "--rate", str(args.rate),
                        "--seed", str(args.seed), "--csat-dip", str(args.csat_dip)]  # fmt: skip
            children.append(subprocess.Popen(simulate, env=env, stdout=worker_log, stderr=subprocess.STDOUT))
        print(f"worker log: {log_path}; metrics: http://{settings.web_host}:{settings.web_port}/metrics", flush=True)
        started = time.monotonic()
        live_view(settings, until=lambda: bool(args.duration) and time.monotonic() - started > args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
        if kafka is not None:
            kafka.stop()
    final_view(settings)
    return 0


# --- gateway -----------------------------------------------------------------------------------
def cmd_gateway(args: argparse.Namespace) -> int:
    from streams.gateway.server import run_gateway

    settings = _settings()
    _configure_logging(settings.log_level)
    run_gateway(settings)
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    """The contract events a payload maps to, one JSON object a line, offline: the gateway's mapping."""
    from streams.contract.decoding import validate_document
    from streams.domain.errors import InvalidEvent
    from streams.gateway.sources import options_from, translate

    body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    headers = dict(tuple(part.strip() for part in spec.split(":", 1)) for spec in args.headers)
    try:
        mapped = translate(args.source, body, headers, options_from(_settings()))
        for document in mapped.events:
            validate_document(dict(document))
    except InvalidEvent as exc:
        print(f"refused: {exc.error_class}: {exc.reason}", file=sys.stderr)
        return 1
    if mapped.ignored is not None:
        print(f"ignored: {mapped.ignored}", file=sys.stderr)
    for document in mapped.events:
        print(orjson.dumps(document).decode())
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="lifecycle", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    broker = commands.add_parser("broker", help="run the local Apache Kafka (KRaft) on 127.0.0.1")
    broker.add_argument("--port", type=int, default=9092)
    broker.add_argument("--controller-port", type=int, default=9093)
    broker.set_defaults(func=cmd_broker)
    commands.add_parser("fetch-kafka", help="download the Kafka jars with Maven (done on demand)").set_defaults(
        func=cmd_fetch_kafka
    )
    commands.add_parser(
        "worker", help="run the Faust worker (consumes, writes the read model, serves /metrics)"
    ).set_defaults(func=cmd_worker)
    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(func=cmd_db_upgrade)
    commands.add_parser("topics", help="create the pipeline's topics").set_defaults(func=cmd_topics)
    settings = commands.add_parser("settings", help="the settings in effect (secrets hidden), or their reference")
    settings.add_argument("--markdown", action="store_true", help="print docs/configuration.md")
    settings.set_defaults(func=cmd_settings)

    publish = commands.add_parser("publish", help="validate and publish JSON-lines events from FILE or -")
    publish.add_argument("file")
    publish.set_defaults(func=cmd_publish)

    simulate = commands.add_parser("simulate", help="generate seeded customer journeys and publish them")
    simulate.add_argument("--customers", type=int, default=1000)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--rate", type=float, default=0.0, help="events per second (0: as fast as possible)")
    simulate.add_argument("--csat-dip", type=float, default=0.0, help="share of CSAT answers drawn from a bad week")
    simulate.add_argument("--expected", help="write the expected outcome (JSON) here")
    simulate.add_argument("--output", help="write the events as JSON lines here instead of publishing")
    simulate.set_defaults(func=cmd_simulate)

    dlq = commands.add_parser("dlq", help="list dead letters, or replay them to their source topic")
    dlq.add_argument("action", nargs="?", choices=["list", "replay"], default="list")
    dlq.add_argument("--error-class")
    dlq.add_argument("--offset", dest="offsets", action="append", help="DLQ partition:offset (repeatable)")
    dlq.add_argument("--all", action="store_true")
    dlq.set_defaults(func=cmd_dlq)

    commands.add_parser("rebuild", help="rebuild the read model from the topics (stop the workers first)").set_defaults(
        func=cmd_rebuild
    )
    live = commands.add_parser("live", help="terminal view of the funnel and of sales vs service")
    live.add_argument("--interval", type=float, default=2.0)
    live.add_argument("--once", action="store_true")
    live.set_defaults(func=cmd_live)

    commands.add_parser(
        "gateway", help="the webhook gateway: vendors' webhooks and contract events over HTTP, to the source topics"
    ).set_defaults(func=cmd_gateway)
    translate = commands.add_parser(
        "translate", help="print the contract events a payload maps to (offline, the gateway's mapping)"
    )
    translate.add_argument(
        "--source", required=True, choices=("pipedrive", "zendesk", "stripe", "cloudevents", "native")
    )
    translate.add_argument("--header", dest="headers", action="append", default=[], help="Name: value (repeatable)")
    translate.add_argument("file", nargs="?", default="-")
    translate.set_defaults(func=cmd_translate)

    demo = commands.add_parser("demo", help="broker + worker + simulator + live view, on the embedded defaults")
    demo.add_argument("--customers", type=int, default=20000)
    demo.add_argument("--rate", type=float, default=500.0)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--csat-dip", type=float, default=0.0)
    demo.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)")
    demo.set_defaults(func=cmd_demo)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _configure_logging(os.environ.get("LIFECYCLE_LOG_LEVEL", "info") if args.command != "worker" else "warning")
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
