"""The other end of the Profanity group chat check: profanity_peer.py's peer with slixmpp's
xep_0045 plugin. Besides what that peer notes in OUT_FILE, it notes

- "groupchat NICK: BODY" for each message to all with a body (history included);
- "presence NICK TYPE CODES ACTOR REASON" for each MUC presence, TYPE "available" or
  "unavailable", CODES the sorted status codes joined by commas ("-" for none), ACTOR the
  actor's nick and REASON the item's reason (each "-" if there is none);
- "joined ROOM" once xep_0045's join_muc_wait has returned (own presence, then the subject);
- "invite mediated FROM INVITER REASON" for a XEP-0045 §7.8.2 invitation sent on by a room:
  FROM the message's sender (the room), INVITER the bare JID in the <invite/>'s from;
- "invite direct FROM ROOM REASON" for a XEP-0249 direct invitation: FROM the sender's bare
  JID, ROOM the jid of its <x xmlns='jabber:x:conference'/>.

It reads lines appended to CMD_FILE: "join ROOM NICK" enters ROOM as NICK; "say ROOM BODY" sends
BODY to all in ROOM; "JID BODY" is a chat message, as in profanity_peer.py.

Usage: profanity_muc_peer.py HOST PORT JID OUT_FILE CMD_FILE
"""
import asyncio
import os
import sys

from slixmpp import JID
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profanity_peer import Peer  # noqa: E402


class MucPeer(Peer):
    def __init__(self, jid, out):
        super().__init__(jid, out)
        self.register_plugin("xep_0045")
        self.register_plugin("xep_0249")
        self.add_event_handler("groupchat_message", self.groupchat)
        self.add_event_handler("groupchat_presence", self.presence)
        # Not xep_0045's groupchat_invite event: slixmpp 1.17.0 drops an invitation from a room it
        # believes it is still in, and it does not forget a room it was removed from (322).
        self.register_handler(
            Callback("mediated invite", StanzaPath("message/muc/invite"), self.mediated_invite)
        )
        self.add_event_handler("groupchat_direct_invite", self.direct_invite)

    def groupchat(self, msg):
        if msg["body"]:
            self.note(f"groupchat {msg['from'].resource}: {msg['body']}")

    def presence(self, pres):
        kind = "unavailable" if pres["type"] == "unavailable" else "available"
        codes = ",".join(str(c) for c in sorted(pres["muc"]["status_codes"])) or "-"
        actor = pres["muc"]["item"]["actor"]["nick"] or "-"
        reason = pres["muc"]["item"]["reason"] or "-"
        self.note(f"presence {pres['from'].resource} {kind} {codes} {actor} {reason}")

    def mediated_invite(self, msg):
        invite = msg["muc"]["invite"]
        inviter = invite["from"].bare or "-"
        self.note(f"invite mediated {msg['from']} {inviter} {invite['reason'] or '-'}")

    def direct_invite(self, msg):
        invite = msg["groupchat_invite"]
        self.note(f"invite direct {msg['from'].bare} {invite['jid']} {invite['reason'] or '-'}")

    async def join(self, room, nick):
        await self.plugin["xep_0045"].join_muc_wait(JID(room), nick, maxstanzas=0, timeout=15)
        self.note(f"joined {room}")


async def commands(peer, path):
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
            verb, _, rest = line.partition(" ")
            if verb == "join":
                room, _, nick = rest.partition(" ")
                await peer.join(room, nick)
            elif verb == "say":
                room, _, body = rest.partition(" ")
                peer.send_message(mto=room, mbody=body, mtype="groupchat")
                peer.note(f"said {body}")
            else:
                peer.send_message(mto=verb, mbody=rest, mtype="chat")
                peer.note(f"sent {rest}")
        done = max(done, len(lines) - 1)


async def main(host, port, jid, out, cmd_file):
    peer = MucPeer(jid, out)
    peer.connect(host, port)
    await asyncio.wait_for(commands(peer, cmd_file), 3600)


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:]))
