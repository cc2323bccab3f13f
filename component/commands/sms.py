"""Phone-number commands (P3): register, verify, show, change or remove your number; SMS fallback on/off."""

from __future__ import annotations

from typing import Any

from ..sms.numbers import display
from ..sms.service import NumberStatus, SmsService
from . import Command, CommandError, Context, Field, Result, bool_value, text_value


def _service(ctx: Context) -> SmsService:
    if ctx.sms is None:
        raise CommandError("SMS is not enabled on this server.")
    return ctx.sms


def _answer(status: NumberStatus, prefix: str = "") -> Result:
    return Result((prefix + " " if prefix else "") + status.describe())


class Phone(Command):
    node = "phone"
    name = "My phone number"
    help = "your phone number for SMS fallback: show it, register or change it (a code comes by SMS), remove it"
    example = "phone +12025550143"
    words = ("phone",)

    def fields(self, ctx: Context) -> list[Field]:
        status = _service(ctx).status(ctx.requester)
        return [
            Field(
                "number",
                "Phone number",
                default=status.number or "",
                desc="International format, like +12025550143. A new number gets a code by SMS.",
            ),
            Field(
                "fallback",
                "Messages sent while I am offline come as SMS",
                "boolean",
                default="1" if status.fallback or not status.number else "0",
            ),
            Field("remove", "Remove my number", "boolean", default="0"),
        ]

    def parse(self, word: str, args: str) -> dict[str, str]:
        parts = args.split()
        if not parts:
            return {}
        if parts == ["remove"]:
            return {"remove": "1"}
        if parts[0] == "fallback" and len(parts) == 2 and parts[1] in ("on", "off"):
            return {"fallback": parts[1], "strict": "1"}  # (a form's echoed default is not an order)
        if parts[0] in ("remove", "fallback"):
            raise CommandError("Usage: phone | phone NUMBER | phone fallback on|off | phone remove")
        return {"number": args}

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        service = _service(ctx)
        user = ctx.requester
        if bool_value(values, "remove"):
            await service.remove(user)
            return Result("Your phone number is removed: no more SMS fallback.")
        number = text_value(values, "number")
        fallback = bool_value(values, "fallback")
        notes = []
        if number:
            before = service.status(user).pending
            status = await service.register(user, number)
            if status.pending and status.pending != before:
                notes.append(f"A code is on its way to {display(status.pending)}: send “verify CODE”.")
        current = service.status(user)
        if fallback is not None and current.number and fallback != current.fallback:
            await service.set_fallback(user, fallback)
            notes.append(f"SMS fallback {'on' if fallback else 'off'}.")
        elif fallback is not None and not current.number and text_value(values, "strict"):
            raise CommandError("Register and verify a phone number first.")
        return _answer(service.status(user), " ".join(notes))


class Verify(Command):
    node = "phone-verify"
    name = "Verify my phone number"
    help = "activate your phone number with the code that came by SMS"
    example = "verify 123456"
    words = ("verify",)

    def fields(self, ctx: Context) -> list[Field]:
        return [Field("code", "Code from the SMS", required=True)]

    def parse(self, word: str, args: str) -> dict[str, str]:
        if not args:
            raise CommandError(f"Usage: {self.example}")
        return {"code": args}

    async def run(self, ctx: Context, values: dict[str, Any]) -> Result:
        service = _service(ctx)
        status = await service.verify(ctx.requester, text_value(values, "code"))
        return _answer(status, "Verified.")


COMMANDS: list[type[Command]] = [Phone, Verify]
