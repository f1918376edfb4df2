"""The other end of the Profanity check: logs in as a slixmpp client, approves any subscription
request and asks back (so the contact becomes 'both'), and appends every chat body it receives
to OUT_FILE, one per line. It writes "online" to OUT_FILE once its session has started.
With CMD_FILE, it also watches that file for lines "JID BODY" appended to it, and sends each
BODY to JID as a chat message, noting "sent BODY" in OUT_FILE (profanity_resume.sh uses this).

Usage: profanity_peer.py HOST PORT JID OUT_FILE [CMD_FILE]
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
        self.add_event_handler("message_error", self.error)

    async def start(self, _):
        await self.get_roster()
        self.send_presence()
        self.note("online")

    def message(self, msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.note(msg["body"])

    def error(self, msg):
        self.note(f"error {msg['error']['condition']}")

    def note(self, line):
        with open(self.out, "a") as f:
            f.write(line + "\n")


async def commands(peer, path):
    """Sends a chat message for each line "JID BODY" appended to `path`."""
    done = 0
    while True:
        await asyncio.sleep(0.1)
        try:
            with open(path) as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            continue
        # The last element is an unfinished line (or empty): not yet.
        for line in lines[done:-1]:
            to, _, body = line.partition(" ")
            peer.send_message(mto=to, mbody=body, mtype="chat")
            peer.note(f"sent {body}")
        done = max(done, len(lines) - 1)


async def main(host, port, jid, out, cmd_file=None):
    peer = Peer(jid, out)
    peer.connect(host, port)
    if cmd_file:
        await asyncio.wait_for(commands(peer, cmd_file), 3600)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:]))
