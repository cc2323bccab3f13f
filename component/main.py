"""The ``courier`` command: up, run, status, adduser, prosody-config, config-doc."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import sys
from pathlib import Path

from . import __version__, prosody
from . import config as configuration
from .sms import sandbox
from .store.engine import describe

SETUP_FILE = "courier-up.json"


def _setup_for(data: Path, args: argparse.Namespace | None = None) -> prosody.ProsodySetup:
    """The setup saved in *data* by ``courier up``, updated from *args*."""
    saved = data / SETUP_FILE
    values: dict[str, object] = json.loads(saved.read_text()) if saved.exists() else {}
    if args is not None:
        for key in ("domain", "c2s_port", "component_port", "s2s_port"):
            if getattr(args, key, None) is not None:
                values[key] = getattr(args, key)
        if getattr(args, "peer", None):
            values["peers"] = dict(_peer(p) for p in args.peer)
        if getattr(args, "prosody_gc", None) is not None:
            values["gc"] = prosody.gc_mode(args.prosody_gc)
    values.setdefault("secret", secrets.token_urlsafe(24))
    setup = prosody.ProsodySetup(data=data, **values)  # type: ignore[arg-type]
    data.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({k: values[k] for k in values}, indent=1))
    saved.chmod(0o600)
    return setup


def _peer(text: str) -> tuple[str, str]:
    """``DOMAIN=HOST:PORT`` of ``--peer``."""
    domain, sep, address = text.partition("=")
    host, colon, port = address.rpartition(":")
    if not (sep and domain and colon and host and port.isdigit()):
        raise SystemExit(f"courier: --peer {text!r}: expected DOMAIN=HOST:PORT")
    return domain, address


def cmd_up(args: argparse.Namespace) -> int:
    data = Path(args.data).resolve()
    setup = _setup_for(data, args)
    setup.render()
    ports = [(setup.c2s_port, "--c2s-port"), (setup.component_port, "--component-port")]
    if setup.s2s_port is not None:
        ports.append((setup.s2s_port, "--s2s-port"))
    for port, what in ports:
        if prosody._listening(port):
            free = 15222 if what == "--c2s-port" else 15347
            print(
                f"courier: port {port} is in use (a system Prosody?).\n"
                f'Stop it or choose another: make run ARGS="{what} {free}" (or courier up {what} {free}).',
                file=sys.stderr,
            )
            return 1
    proc = prosody.start(setup)
    try:
        sms = sandbox.up(data) if args.sms else None  # `courier up --sms`: a local Kannel (component/sms/sandbox.py)
    except (OSError, RuntimeError, TimeoutError) as exc:
        prosody.stop(proc)
        print(f"courier: could not start Kannel: {exc}", file=sys.stderr)
        return 1
    config = configuration.load(
        None,
        None,
        **{
            "xmpp.domain": setup.domain,
            "xmpp.secret": setup.secret,
            "xmpp.port": setup.component_port,
            "store.path": str(data / "courier.sqlite"),
            **({"metrics.port": args.metrics_port} if args.metrics_port is not None else {}),
            **(sms.options if sms is not None else {}),
        },
    )
    _apply_log_level(config)
    print(
        f"Prosody  {setup.domain}: c2s on 127.0.0.1:{setup.c2s_port} (plain, loopback only), "
        f"component port {setup.component_port}, GC {setup.gc or 'incremental (Prosody default)'}\n"
        + (
            f"s2s      127.0.0.1:{setup.s2s_port} (dialback, no TLS; fixed peers: "
            f"{', '.join(f'{d}={a}' for d, a in sorted(setup.peers.items())) or 'none, DNS'})\n"
            if setup.s2s_port is not None
            else "s2s      off (an island; --s2s-port PORT federates)\n"
        )
        + f"Courier  {config.jid}: store {describe(config.store_url)}\n"
        f"Config   {setup.config_file}\nLogs     {setup.log_file}\n"
        + (
            f"Metrics  http://{config['metrics.host']}:{config['metrics.port']}/metrics\n"
            if config["metrics.port"]
            else ""
        )
        + f"Add a user: courier adduser alice@{setup.domain} PASSWORD --data {args.data}\n"
        "Ctrl-C stops both.",
        flush=True,
    )
    if sms is not None:
        print(sandbox.instructions(sms.setup), flush=True)
    status = 0
    try:
        status = _serve(config)
    except KeyboardInterrupt:
        pass
    finally:
        if sms is not None:
            sms.stop()
        prosody.stop(proc)
    return status


def _apply_log_level(config: configuration.Config) -> None:
    from .ops.service import apply_log_level

    apply_log_level(config["log.level"])


async def _run_logged(config: configuration.Config) -> None:
    from .app import run

    await run(config)


def _serve(config: configuration.Config) -> int:
    """Run Courier; a store that another Courier holds is a clear refusal (exit 3), not a traceback."""
    from .standby import Stopped
    from .store.lock import StoreLocked

    try:
        asyncio.run(_run_logged(config))
    except StoreLocked as exc:
        print(f"courier: {exc}", file=sys.stderr)
        return 3
    except Stopped:  # stopped while the standby (PostgreSQL): nothing was opened
        logging.getLogger("component").info("Courier stopped (it was the standby)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = configuration.load(args.config)
    except configuration.ConfigError as exc:
        print(f"courier: {exc}", file=sys.stderr)
        return 2
    _apply_log_level(config)
    return _serve(config)


def cmd_adduser(args: argparse.Namespace) -> int:
    setup = _setup_for(Path(args.data).resolve())
    setup.render()
    try:
        prosody.adduser(setup, args.jid, args.password)
    except (ValueError, RuntimeError) as exc:
        print(f"courier: {exc}", file=sys.stderr)
        return 1
    print(f"added {args.jid}")
    return 0


def cmd_prosody_config(args: argparse.Namespace) -> int:
    component = f"courier.{args.domain}"
    print(
        f"""-- Courier: add to your Prosody configuration, then restart Prosody.
-- Copy prosody-config/mod_courier_route/ into a directory listed in plugin_paths.
-- Federation: messages from other servers are handed off too. Publish _xmpp-server._tcp
-- SRV (or A/AAAA) records and certificates for {args.domain} AND {component}
-- (Courier's reports and notices leave from {component}); see docs/federation.md.
modules_enabled = {{ --[[ your modules ]] "privilege" }}
-- Optional, on Lua 5.4: Prosody's generational GC, measured with Courier at 25-55 % less
-- Prosody CPU per message than the default mode, without its 1.5-2 ms pauses, for more
-- memory (Courier's bench/README.md, "Prosody's garbage collector").
-- gc = {{ mode = "generational" }}

VirtualHost "{args.domain}"
    modules_enabled = {{ "courier_route" }}
    courier_component = "{component}"
    courier_ack_timeout = 5
    privileged_entities = {{
        ["{component}"] = {{ roster = "get"; message = "outgoing"; presence = "roster" }};
    }}

Component "{component}"
    component_secret = "{args.secret or "<the xmpp.secret of courier.toml>"}"
    modules_enabled = {{ "privilege" }}"""
    )
    return 0


def cmd_config_doc(_args: argparse.Namespace) -> int:
    print(configuration.markdown_table())
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="courier", description="Courier: tracked delivery beside Prosody.")
    p.add_argument("--version", action="version", version=f"courier {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="render a Prosody config, run Prosody and Courier in the foreground")
    up.add_argument("--domain", default=None, help="the XMPP domain (default: localhost)")
    up.add_argument("--data", default="./var", help="data directory (default: ./var)")
    up.add_argument("--c2s-port", type=int, default=None, help="client port (default: 5222)")
    up.add_argument("--component-port", type=int, default=None, help="component port (default: 5347)")
    up.add_argument("--s2s-port", type=int, default=None, help="federate: s2s on 127.0.0.1:PORT with dialback")
    up.add_argument(
        "--peer",
        action="append",
        metavar="DOMAIN=HOST:PORT",
        help="a fixed s2s address for DOMAIN (test networks, private federations without DNS); repeatable",
    )
    up.add_argument("--sms", action="store_true", help="also run a local Kannel with a fake SMSC: the SMS sandbox")
    up.add_argument(
        "--prosody-gc",
        choices=prosody.GC_CHOICES,
        default=None,
        help="Prosody's Lua garbage collector: generational measured at 25-55 %% less Prosody CPU per "
        "message, for more memory (bench/README.md); default: Prosody's own (incremental); kept in "
        "DATA/courier-up.json",
    )
    up.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on 127.0.0.1:PORT (metrics.port)")
    up.set_defaults(func=cmd_up)

    run = sub.add_parser("run", help="run only the component, for a Prosody you run yourself")
    run.add_argument("--config", required=True, help="courier.toml")
    run.set_defaults(func=cmd_run)

    add = sub.add_parser("adduser", help="register a user on the Prosody of `courier up`")
    add.add_argument("jid")
    add.add_argument("password")
    add.add_argument("--data", default="./var")
    add.set_defaults(func=cmd_adduser)

    pc = sub.add_parser("prosody-config", help="print the Prosody snippet for `courier run`")
    pc.add_argument("--domain", default="localhost")
    pc.add_argument("--secret", default="")
    pc.set_defaults(func=cmd_prosody_config)

    doc = sub.add_parser("config-doc", help="print the configuration reference (Markdown)")
    doc.set_defaults(func=cmd_config_doc)

    from .cli import status
    from .cli.client import add_parser

    status.add_parser(sub)
    add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("slixmpp").setLevel(logging.WARNING)
    # aiosqlite's DEBUG lines name every call of its thread ("executing functools.partial…"): noise
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    if os.environ.get("COURIER_RECORD_SENT"):
        from .ops.service import record_sent_stanzas

        record_sent_stanzas(Path(os.environ["COURIER_RECORD_SENT"]))
    args = parser().parse_args(argv)
    return int(args.func(args))
