"""``courier status``: a running Courier's figures for a person.

Reads the instance's own endpoint (``metrics.port``): ``/metrics`` (parsed with
prometheus_client's OpenMetrics parser, so what a person reads is what Prometheus
scrapes) and ``/status`` (connection, uptime, last warnings and errors).
Exit codes: 0 connected; 1 running but not connected to the server; 2 not reachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections import defaultdict
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def base_url(args: argparse.Namespace) -> str:
    """Where the instance serves: --url, --port, the config file's [metrics], or COURIER_METRICS_*."""
    if args.url:
        return str(args.url).rstrip("/")
    host = os.environ.get("COURIER_METRICS_HOST", "127.0.0.1")
    port = args.port or int(os.environ.get("COURIER_METRICS_PORT", "0") or 0)
    if args.config and not args.port:
        table = tomllib.loads(open(args.config, encoding="utf-8").read()).get("metrics", {})
        host, port = table.get("host", host), int(table.get("port", port))
    if not port:
        raise SystemExit("courier status: metrics are off (set metrics.port, or give --port / --url)")
    return f"http://{host}:{port}"


def _get(url: str, accept: str, timeout: float) -> str:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the operator's own URL)
        return str(response.read().decode("utf-8"))


def figures(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """OpenMetrics text → sample name → labels → value."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name][tuple(sorted(s.labels.items()))] = s.value
    return out


def _sum(f: dict[str, dict[Any, float]], name: str) -> float:
    return sum(f.get(name, {}).values())


def _one(f: dict[str, dict[Any, float]], name: str, **labels: str) -> float:
    return f.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


_ENGINES = {
    ("postgresql", "held"): "PostgreSQL, lease held (the active Courier); ",
    ("postgresql", "standby"): "PostgreSQL, STANDBY (another Courier holds the lease; this one waits); ",
    ("sqlite", ""): "SQLite; ",
}


def render(status: dict[str, Any], f: dict[str, dict[Any, float]]) -> str:
    held = {dict(k).get("reason", ""): v for k, v in f.get("courier_held_messages", {}).items()}
    fallbacks = {dict(k).get("cause", ""): v for k, v in f.get("courier_fallbacks_total", {}).items()}
    limited = {dict(k).get("limit", ""): v for k, v in f.get("courier_rate_limited_total", {}).items()}
    commits = _sum(f, "courier_store_commit_seconds_count")
    commit_avg = _sum(f, "courier_store_commit_seconds_sum") / commits * 1000 if commits else 0.0
    releases = _sum(f, "courier_release_latency_seconds_count")
    lines = [
        f"Courier {status['version']} as {status['jid']}, up {_duration(status['uptime'])}, "
        f"log level {status['log_level']}",
        f"Connection   {'connected' if status['connected'] else 'NOT connected'} to {status['server']}",
        "Held now     {:g} (recipient offline {:g}, undo window {:g}, queued {:g})".format(
            sum(held.values()), held.get("recipient-offline", 0), held.get("undo-window", 0), held.get("queued", 0)
        ),
        "Hand-offs    {:g} received, {:g} acknowledged; fallbacks {:g} ({})".format(
            _sum(f, "courier_handoffs_total"),
            _sum(f, "courier_acks_total"),
            sum(fallbacks.values()),
            ", ".join(f"{k} {v:g}" for k, v in sorted(fallbacks.items())) or "none",
        ),
        "Messages     {:g} released (mean wait {:.3f} s), {:g} recalled, {:g} edited".format(
            _sum(f, "courier_releases_total"),
            _sum(f, "courier_release_latency_seconds_sum") / releases if releases else 0.0,
            _sum(f, "courier_recalls_total"),
            _sum(f, "courier_edits_total"),
        ),
        "Store        {}{:g} commits (mean {:.2f} ms), {:g} failed".format(
            _ENGINES.get((status.get("store", ""), status.get("lease", "")), ""),
            commits,
            commit_avg,
            _sum(f, "courier_store_commit_failures_total"),
        ),
        "Drafts       {:g} pending, {:g} fired; list copies {:g}".format(
            _sum(f, "courier_drafts_pending"),
            _sum(f, "courier_drafts_fired_total"),
            _sum(f, "courier_fanout_copies_total"),
        ),
        "SMS          outbox {:g}, {:g} sent, {:g} failed".format(
            _sum(f, "courier_sms_outbox"), _sum(f, "courier_sms_sent_total"), _sum(f, "courier_sms_failed_total")
        ),
        "Rate limits  {:g} refused ({})".format(
            sum(limited.values()), ", ".join(f"{k} {v:g}" for k, v in sorted(limited.items())) or "none"
        ),
    ]
    errors = status.get("last_errors", [])
    lines.append(f"Last errors  {len(errors) or 'none'}" + (" (newest last):" if errors else ""))
    for e in errors[-5:]:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e["at"]))
        lines.append(f"  {at} {e['level']} {e['logger']}: {e['message']}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    url = base_url(args)
    try:
        status = json.loads(_get(url + "/status", "application/json", args.timeout))
        text = _get(url + "/metrics", OPENMETRICS, args.timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"courier status: no Courier answers at {url}: {exc}", file=sys.stderr)
        return 2
    f = figures(text)
    if args.json:
        print(
            json.dumps(
                {"status": status, "metrics": {n: {str(dict(k)): v for k, v in s.items()} for n, s in f.items()}}
            )
        )
    else:
        print(render(status, f))
    return 0 if status.get("connected") else 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "status",
        help="a running Courier's figures: connection, held messages, queues, last errors",
        description="Reads /status and /metrics of a running Courier (metrics.port). "
        "Exit codes: 0 connected, 1 not connected to the server, 2 not reachable.",
    )
    p.add_argument("--config", help="courier.toml: read [metrics] host and port from it")
    p.add_argument("--port", type=int, help="the metrics port (metrics.port, courier up --metrics-port)")
    p.add_argument("--url", help="the endpoint's base URL, e.g. http://127.0.0.1:9477")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer (default 5)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_status)
    return p
