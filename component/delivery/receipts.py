"""Receipt policy (P2): what a recipient lets its contacts learn of their messages.

A user applies ``auto`` (receipts and markers go as the client sends them), ``manual``
(automatic receipts are withheld; the user confirms with a command) or ``refuse``
(requests are stripped before the message is stored, acknowledgements withheld) — by
default and per contact.  A sender whose request is refused is told once per change.
The confirming receipt itself is a message Courier originates for the user
(:meth:`component.delivery.originate.Originate.confirm`)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from ..namespaces import NS_MARKERS, NS_RECEIPTS
from ..store import Store
from .ports import Invalid, Transport
from .stanzas import domain
from .states import Event

POLICIES = ("auto", "manual", "refuse")


class ReceiptPolicy:
    """Users' receipt policies, cached; the decisions taken on hand-offs."""

    def __init__(self, store: Store, transport: Transport, local_domain: str) -> None:
        self.store = store
        self.transport = transport
        self.domain = local_domain
        self.policies: dict[tuple[str, str], str] = {}  # (user, contact or '') -> auto|manual|refuse
        self.notified: dict[tuple[str, str], str] = {}  # (sender, recipient) -> policy told

    async def load(self) -> None:
        self.policies = await self.store.receipt_policies()
        self.notified = await self.store.policy_notices()

    def policy_of(self, user: str, contact: str) -> str:
        """The receipt policy *user* applies to *contact*: per contact, else default, else auto."""
        return self.policies.get((user, contact)) or self.policies.get((user, "")) or "auto"

    def policies_of(self, user: str) -> tuple[str, dict[str, str]]:
        """*user*'s default policy and per-contact overrides."""
        overrides = {c: p for (u, c), p in self.policies.items() if u == user and c}
        return self.policies.get((user, ""), "auto"), overrides

    async def set_policy(self, user: str, contact: str, policy: str | None) -> None:
        if policy is not None and policy not in POLICIES:
            raise Invalid("a receipt policy is auto, manual or refuse")
        await self.store.set_receipt_policy(user, contact, policy)
        if policy is None:
            self.policies.pop((user, contact), None)
        else:
            self.policies[(user, contact)] = policy

    def withholds(self, sender: str, recipient_bare: str, event: Event) -> bool:
        """Whether an acknowledgement (*event*) from *sender* to *recipient_bare* is withheld:
        an automatic receipt under "manual", anything under "refuse"."""
        policy = self.policy_of(sender, recipient_bare)
        return policy == "refuse" or (policy == "manual" and event is Event.RECEIVE)

    def strip_refused(self, inner: ET.Element, sender: str, recipient_bare: str, asked: bool, now: float) -> bool:
        """Before a message is stored: strip receipt requests the recipient refuses, tell the sender
        once.  True if *inner* was changed (then the server's copy may not be released as it is)."""
        if domain(recipient_bare) != self.domain:
            return False
        policy = self.policy_of(recipient_bare, sender)
        told = self.notified.get((sender, recipient_bare))
        changed = False
        if policy == "refuse":
            for tag in (f"{{{NS_RECEIPTS}}}request", f"{{{NS_MARKERS}}}markable"):
                for element in inner.findall(tag):
                    inner.remove(element)
                    changed = True
            if asked and told != "refuse":
                self.notified[(sender, recipient_bare)] = policy
                self.store.queue_policy_notice(sender, recipient_bare, policy, now)
                self.store.after_commit(lambda: self.transport.notice(sender, recipient_bare, policy))
        elif told == "refuse":  # the policy changed: tell again should it be refused again
            self.notified[(sender, recipient_bare)] = policy
            self.store.queue_policy_notice(sender, recipient_bare, policy, now)
        return changed
