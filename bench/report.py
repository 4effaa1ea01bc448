"""The benchmark's tables (Markdown, as README's Performance section shows them) and
bench/results/latest.json."""

from __future__ import annotations

import argparse
import json
import os
import platform

from bench import RESULTS
from bench.framework import FLOOR, FRAMEWORK


def report(
    rows: dict[str, dict[str, float]], latencies: list[dict[str, float]], total: int, options: argparse.Namespace
) -> None:
    floor_rate = total / rows[FLOOR]["seconds"]
    framework_rate = total / rows[FRAMEWORK]["seconds"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        f"events: {total}, repeats: {options.repeat} (median), machine: {machine}",
        "",
        "| run | events | seconds | events/s | CPU s | peak RSS MiB | / framework | / floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, row in rows.items():
        rate = total / row["seconds"]
        lines.append(
            f"| {label} | {total} | {row['seconds']:.2f} | {rate:,.0f} | {row['cpu']:.1f} | {row['rss']:.0f} "
            f"| {rate / framework_rate:.2f} | {rate / floor_rate:.3f} |"
        )
    for label in rows:
        if label.startswith("poison: ") and label.endswith(", clean"):
            for other, row in rows.items():
                if other.startswith(label.removesuffix("clean")) and other != label:
                    ratio = rows[label]["seconds"] / row["seconds"]
                    lines.append(f"\n{other.removeprefix('poison: ')}: events/s {ratio:.3f} of the clean stream's")
    if latencies:
        lines += [
            "",
            "| end-to-end latency (publish -> committed and counted in /metrics) | offered events/s | events "
            "| p50 ms | p95 ms | p99 ms | p99 ms with the warm-up | events per batch | write ms per batch "
            "| publish ms per batch "
            f"| cores busy (of {os.cpu_count()}): all / worker (main + pipeline process) / load generator "
            "/ broker and rest |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in latencies:
            load = f" ({row['share']:.1%} of its throughput)" if "share" in row else ""
            lines.append(
                f"| product: SQLite{load} | {row['rate']:,.0f} | {row['events']:.0f} "
                f"| {row['p50']:.0f} | {row['p95']:.0f} | {row['p99']:.0f} | {row['p99_all']:.0f} "
                f"| {row['batch_events']:.0f} | {row['write_ms']:.0f} | {row['publish_ms']:.0f} "
                f"| {row['cores_busy']:.2f} / {row['cores_worker']:.2f} ({row['cores_worker_main']:.2f} + "
                f"{row['cores_worker'] - row['cores_worker_main']:.2f}) / {row['cores_generator']:.2f}"
                f" / {row['cores_rest']:.2f} |"
            )
        lines.append(
            f"\nload generator: librdkafka, linger.ms {options.latency_linger_ms:g}; before the measured events of each"
            f" run, {options.latency_warmup_seconds:g} s of the same load, not measured"
        )
    print("\n".join(lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "events": total,
        "machine": machine,
        "rows": rows,
        "latency": latencies,
        "latency_linger_ms": options.latency_linger_ms,
        "latency_warmup_seconds": options.latency_warmup_seconds,
    }
    (RESULTS / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
