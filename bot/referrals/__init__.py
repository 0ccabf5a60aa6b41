"""Referrals to crisis organisations: the outbox worker, its delivery channels and the acknowledgements.

- `signing`: the `X-Hubbot-Signature` scheme; `payload`: the JSON documents an organisation receives;
- `channels`: signed HTTPS webhook and Telegram staff chat; `directory`: which organisation uses which;
- `worker`: claims, delivers, retries, gives up, chases acknowledgements; `outcomes`: how a referral ends
  for the person; `acks`: `POST /referrals/ack` and staff taps; `staff`: the staff chat's message and router;
- `service`: wires them for `hubbot run`; `commands`: `hubbot referrals test|list`.

See docs/referrals.md for what organisations receive.
"""
