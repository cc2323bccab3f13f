"""courier-sms: phone numbers, SMS fallback and number JIDs, P3 (xeps/courier-sms.xml)."""

from slixmpp.plugins.base import register_plugin

from .sms import IDENTITY, PhoneInfo, SmsIqService, XEP_CourierSms
from .stanza import NS, NS_GATEWAY, Fallback, GatewayQuery, Phone, Register, Remove, Sms, Verify

register_plugin(XEP_CourierSms)

__all__ = [
    "IDENTITY",
    "NS",
    "NS_GATEWAY",
    "Fallback",
    "GatewayQuery",
    "Phone",
    "PhoneInfo",
    "Register",
    "Remove",
    "Sms",
    "SmsIqService",
    "Verify",
    "XEP_CourierSms",
]
