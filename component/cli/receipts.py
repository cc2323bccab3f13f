"""``courier client`` commands of courier-receipts (xeps/courier-receipts.xml): ``policy``,
``policy-of`` and ``confirm``.  Registered into :data:`.base.COMMANDS` by :func:`add_parsers`."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from slixmpp import JID
from slixmpp.jid import InvalidJID

from ..xep import receipts
from .base import COMMANDS, OK, CourierClient, Output, Problem


async def cmd_policy(client: CourierClient, args: argparse.Namespace, out: Output, stop: asyncio.Event) -> int:
    if args.clear:
        await client.receipts.set_policy(args.courier, None, contact=args.contact, timeout=args.timeout)
        line = f"{args.contact}: own policy removed (your default applies)"
        out.emit(line, type="policy-cleared", contact=args.contact)
        return OK
    if args.value:
        await client.receipts.set_policy(args.courier, args.value, contact=args.contact or "", timeout=args.timeout)
        who = args.contact or "default"
        out.emit(f"{who}: {args.value}", type="policy-set", contact=args.contact or "", policy=args.value)
        return OK
    policies = (await client.receipts.get_policies(args.courier, timeout=args.timeout))["receipts_policies"]
    default = policies["default"] or "auto"
    contacts = {p["contact"]: p["value"] for p in policies["receipts_policy_items"]}
    if args.contact:  # only the policy this contact gets from me
        own = args.contact in contacts
        policy = contacts.get(args.contact, default)
        note = "" if own else "  (your default)"
        out.emit(f"{args.contact}: {policy}{note}", type="policy", contact=args.contact, policy=policy, own=own)
        return OK
    lines = [f"default: {default}"] + [f"{c}: {p}" for c, p in sorted(contacts.items())]
    out.emit(
        "\n".join(lines),
        type="policies",
        default=default,
        contacts=[{"contact": c, "policy": p} for c, p in sorted(contacts.items())],
    )
    return OK


async def cmd_policy_of(client: CourierClient, args: argparse.Namespace, out: Output, stop: asyncio.Event) -> int:
    policy = (await client.receipts.get_policy(args.courier, args.of, timeout=args.timeout))["receipts_policy"]
    value = policy["value"]
    out.emit(f"{args.of}: {value}", type="policy-of", jid=args.of, policy=value)
    return OK


async def cmd_confirm(client: CourierClient, args: argparse.Namespace, out: Output, stop: asyncio.Event) -> int:
    await client.receipts.confirm(args.courier, args.id, args.sender or "", timeout=args.timeout)
    to = f" to {args.sender}" if args.sender else ""
    out.emit(f"receipt sent for {args.id}{to}", type="confirmed", id=args.id, sender=args.sender or "")
    return OK


def user_jid(value: str, what: str) -> str:
    """*value* as a user's bare JID, or :class:`Problem` (exit 2)."""
    try:
        jid = JID(value)
    except InvalidJID as exc:
        raise Problem(f"{what}: not a JID: {value!r} ({exc})") from None
    if not jid.user:
        raise Problem(f"{what} must be a user's JID (USER@DOMAIN), not {value!r}")
    return str(jid.bare)


def check_usage(args: argparse.Namespace) -> None:
    """The receipt-policy commands' arguments, checked before connecting."""
    command = args.client_command
    if command == "policy":
        if args.contact is not None:
            args.contact = user_jid(args.contact, "--contact")
        if args.clear and args.value:
            raise Problem("policy: give either a policy or --clear, not both")
        if args.clear and not args.contact:
            raise Problem("policy --clear needs --contact JID (your default can be changed, not removed)")
    elif command == "policy-of":
        args.of = user_jid(args.of, "policy-of")
    elif command == "confirm" and args.sender is not None:
        args.sender = user_jid(args.sender, "--from")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the receipt-policy subcommands to ``courier client`` (and their handlers to COMMANDS)."""
    COMMANDS.update({"policy": cmd_policy, "policy-of": cmd_policy_of, "confirm": cmd_confirm})
    policy = sub.add_parser(
        "policy",
        parents=[common],
        help="your receipt policies: show them, set auto|manual|refuse (default or --contact), or --clear one",
        description="Without POLICY: show your default and per-contact receipt policies (with --contact: that "
        "contact's only). With POLICY: set your default, or with --contact that contact's own policy. "
        "auto: receipts and read markers go as your client sends them; manual: automatic receipts are "
        "withheld, only what you confirm goes; refuse: nothing goes and senders are told.",
    )
    policy.add_argument("value", metavar="POLICY", nargs="?", choices=receipts.POLICIES, help="auto, manual or refuse")
    policy.add_argument("--contact", metavar="JID", help="only for this contact (default: your default policy)")
    policy.add_argument("--clear", action="store_true", help="remove --contact's own policy: your default applies")

    policy_of = sub.add_parser("policy-of", parents=[common], help="the receipt policy JID applies to your messages")
    policy_of.add_argument("of", metavar="JID")

    confirm = sub.add_parser(
        "confirm", parents=[common], help="send the receipt for a message you received (for the manual policy)"
    )
    confirm.add_argument("id", metavar="ID", help="the received message's id")
    confirm.add_argument("--from", dest="sender", metavar="JID", help="its sender, if several people used that id")


__all__ = ["add_parsers", "check_usage", "user_jid"]
