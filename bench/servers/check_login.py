#!/usr/bin/env python3
"""Log in with slixmpp and check the roster a provisioned instance hands out.

usage: check_login.py PORT TLS JID PASSWORD RING [MECH]
  TLS = off (plaintext, no STARTTLS) | starttls (STARTTLS required, certificate not verified)
  MECH = SASL mechanism to use (default SCRAM-SHA-1)
Prints the mechanism, whether the stream was encrypted and the roster summary; exits non-zero
unless the roster has exactly the RING contacts expected from provisioning (i±1..i±RING/2,
wrapping mod COUNT, where COUNT comes from env COUNT) with subscription both.
Needs slixmpp (e.g. /tmp/venv/bin/python).
"""

import asyncio
import logging
import os
import ssl
import sys

import slixmpp


def expected(jid, ring, count):
    user, host = jid.split("@")
    prefix = user.rstrip("0123456789")
    i = int(user[len(prefix):])
    half = ring // 2
    out = set()
    for d in list(range(-half, 0)) + list(range(1, half + 1)):
        out.add(f"{prefix}{(i - 1 + d) % count + 1}@{host}")
    return out


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, mech):
        super().__init__(jid, password, sasl_mech=mech)
        self.result = None
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("failed_auth", self.failed)
        self.add_event_handler("disconnected", lambda _: self.done.set_result(None)
                               if not self.done.done() else None)
        self.done = asyncio.get_event_loop().create_future()

    def failed(self, _):
        self.result = "auth failed"
        self.disconnect()

    async def start(self, _):
        roster = await self.get_roster()
        items = roster["roster"]["items"]
        self.result = {str(j): dict(v)["subscription"] for j, v in items.items()}
        self.disconnect()


def main():
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__)
    port, tls, jid, password, ring = sys.argv[1:6]
    mech = sys.argv[6] if len(sys.argv) == 7 else "SCRAM-SHA-1"
    ring = int(ring)
    count = int(os.environ.get("COUNT", "0"))
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "ERROR"))
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    c = Client(jid, password, mech)
    if tls == "off":
        c.enable_starttls = False
        c.enable_direct_tls = False
        c.enable_plaintext = True
        # slixmpp refuses PLAIN and SCRAM on an unencrypted stream unless told otherwise.
        c.plugin["feature_mechanisms"].config.update(unencrypted_plain=True, unencrypted_scram=True)
    else:
        c.enable_starttls = True
        c.enable_direct_tls = False
        c.enable_plaintext = False
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c.ssl_context = ctx
    tls_ok = []
    c.add_event_handler("tls_success", lambda *_: tls_ok.append(True))
    c.connect("127.0.0.1", int(port))
    loop = asyncio.get_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(c.done, 15))
    except asyncio.TimeoutError:
        c.result = c.result or "timed out (15 s)"
    mechs = sorted(c.plugin["feature_mechanisms"].mech_list)
    res = c.result
    print(f"offered mechanisms: {' '.join(mechs)}; TLS: {'yes' if tls_ok else 'no'}")
    if (tls == "off") == bool(tls_ok):
        print("FAIL: TLS state does not match the mode")
        sys.exit(1)
    if not isinstance(res, dict):
        print(f"FAIL {jid}: {res or 'no session'}")
        sys.exit(1)
    subs = set(res.values())
    print(f"{jid}: logged in with {mech}, roster {len(res)} items, subscriptions {sorted(subs)}")
    ok = len(res) == ring and subs <= {"both"}
    if count:
        want = expected(jid, ring, count)
        if set(res) != want:
            print(f"roster differs: missing {sorted(want - set(res))[:5]} extra {sorted(set(res) - want)[:5]}")
            ok = False
    print("OK" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
