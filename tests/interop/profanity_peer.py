"""The other end of the Profanity check: logs in as a slixmpp client, approves any subscription
request and asks back (so the contact becomes 'both'), and appends every chat body it receives
to OUT_FILE, one per line. It writes "online" to OUT_FILE once its session has started.

Usage: profanity_peer.py HOST PORT JID OUT_FILE
"""
import asyncio
import ssl
import sys

import slixmpp


class Peer(slixmpp.ClientXMPP):
    def __init__(self, jid, out):
        super().__init__(jid, "pw")
        self.out = out
        self.auto_authorize = True
        self.auto_subscribe = True
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("message", self.message)

    async def start(self, _):
        await self.get_roster()
        self.send_presence()
        self.note("online")

    def message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.note(msg["body"])

    def note(self, line):
        with open(self.out, "a") as f:
            f.write(line + "\n")


async def main(host, port, jid, out):
    peer = Peer(jid, out)
    peer.connect(host, port)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
