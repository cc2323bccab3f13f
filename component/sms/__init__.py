"""SMS fallback (P3): phone-number identities, SMS instead of waiting, inbound SMS.

- :mod:`.transport`: the transport interface every gateway implements;
- :mod:`.kannel`: the Kannel transport (HTTP sendsms, MO and DLR callbacks) and
  its configuration; :mod:`.sandbox` runs a local Kannel with a fake SMSC;
- :mod:`.numbers`: E.164 normalisation (``phonenumbers``) and number JIDs;
- :mod:`.encoding`: GSM-7 / UCS-2, part counting, cutting to length;
- :mod:`.service`: :class:`SmsService`, the core — registration and
  verification, the pipeline's fallback, the outbox with retries and rate
  limits, reports, inbound routing;
- :mod:`.xmpp`: the XMPP side (number JIDs, courier-sms IQs, XEP-0100).

The SQL is in :mod:`component.store.sms`, the protocol (courier-sms,
``xeps/courier-sms.xml``) in :mod:`component.xep.sms`, the commands in
:mod:`component.commands.sms`.
"""
