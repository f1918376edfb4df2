"""The XMPP side of tests/migration/run.sh, driven with slixmpp.

  xmpp.py populate HOST PORT SNAPSHOT.json ARCHIVED
      On the source server (Prosody or ejabberd, no TLS, the accounts created beforehand with
      the passwords below): sets rosters (groups, names, a `both` pair, a pending subscription
      in each direction, a contact at a remote domain), vCards, a private XML element
      (XEP-0049) and an offline message; then reads every account's roster, vCard and private
      element back from the source server and writes them to SNAPSHOT.json: what the source
      itself says, which the import must reproduce exactly. With ARCHIVED=yes the source
      archives messages (XEP-0313): alice's message to bob must be in her archive.

  xmpp.py check HOST PORT SNAPSHOT.json MECHANISM OFFLINE
      On Starling (STARTTLS, its self-signed certificate accepted): logs every account in with
      its ORIGINAL password over MECHANISM (SCRAM-SHA-1 or SCRAM-SHA-256), and compares the
      roster (jid, name, subscription, ask, groups), the vCard and the private element with the
      snapshot; checks that carol gets alice's pending subscription request at login, and, with
      OFFLINE=yes, bob's offline message. Exits 1 on the first difference, printing both sides.

  xmpp.py passwords
      Prints "user<TAB>password" lines for run.sh to create the accounts with.
"""
import asyncio
import json
import ssl
import sys
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

DOMAIN = "localhost"
TIMEOUT = 20
# alice's password is not ASCII: it must survive the source's storage, its export and our import
# (SASLprep, RFC 4013, leaves these characters as they are).
PASSWORDS = {
    "alice": "pässwörd-Ærø-✓",
    "bob": "bob's secret",
    "carol": "carol-pw-3",
}
REMOTE = "dave@remote.example"
OFFLINE_BODY = "while you were out"
ARCHIVED_BODY = "kept in the archive"
PRIVATE = "<exodus xmlns='exodus:prefs'><defaultnick>Alice in Wonderland</defaultnick></exodus>"
VCARDS = {
    "alice": "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>ali</NICKNAME>"
    "<EMAIL><INTERNET/><USERID>alice@example.org</USERID></EMAIL></vCard>",
    "bob": "<vCard xmlns='vcard-temp'><FN>Bob Builder</FN></vCard>",
    "carol": "<vCard xmlns='vcard-temp'><FN>Carol Ünïcode</FN><NICKNAME>caro</NICKNAME></vCard>",
}


def jid(user):
    return f"{user}@{DOMAIN}"


class Client(slixmpp.ClientXMPP):
    def __init__(self, user, tls, mech=None, presence=False):
        kwargs = {"sasl_mech": mech} if mech else {}
        if not tls:
            # The source servers run without TLS on loopback; SCRAM does not need it.
            kwargs["plugin_config"] = {"feature_mechanisms": {"unencrypted_scram": True}}
        super().__init__(f"{jid(user)}/migration", PASSWORDS[user], **kwargs)
        self.user = user
        self.auto_authorize = None
        self.auto_subscribe = False
        self.presence = presence
        self.ready = asyncio.Event()
        self.failed = asyncio.Event()
        self.subscribes = []
        self.messages = []
        self.enable_direct_tls = False
        if tls:
            self.enable_plaintext = False
            self.ssl_context.check_hostname = False
            self.ssl_context.verify_mode = ssl.CERT_NONE
        else:
            self.enable_starttls = False
            self.enable_plaintext = True
        self.add_event_handler("session_start", self._start)
        self.add_event_handler("failed_auth", lambda _: self.failed.set())
        self.add_event_handler("presence_subscribe", lambda p: self.subscribes.append(p["from"].bare))
        self.add_event_handler("message", self.messages.append)
        # slixmpp's "message" event skips messages without a <body/>, such as MAM results.
        self.mam_results = []
        self.register_handler(Callback(
            "mam results", MatchXPath("{jabber:client}message/{urn:xmpp:mam:2}result"),
            self._mam_result,
        ))

    async def _start(self, _):
        if self.presence:
            self.send_presence()
        self.ready.set()

    async def online(self, host, port):
        self.connect(host, port)
        done, _ = await asyncio.wait(
            [asyncio.ensure_future(self.ready.wait()), asyncio.ensure_future(self.failed.wait())],
            timeout=TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not self.ready.is_set():
            what = "authentication failed" if self.failed.is_set() else "timed out"
            raise SystemExit(f"{self.user}: login {what} ({self.boundjid})")
        return self

    async def iq(self, kind, payload):
        iq = self.make_iq_get() if kind == "get" else self.make_iq_set()
        iq.xml.append(ET.fromstring(payload) if isinstance(payload, str) else payload)
        return await iq.send(timeout=TIMEOUT)

    async def roster_set(self, contact, name=None, groups=()):
        item = ET.Element("{jabber:iq:roster}item", {"jid": contact})
        if name:
            item.set("name", name)
        for g in groups:
            ET.SubElement(item, "{jabber:iq:roster}group").text = g
        query = ET.Element("{jabber:iq:roster}query")
        query.append(item)
        await self.iq("set", query)

    async def fetch_roster(self):
        """{jid: {name, subscription, ask, groups}} of the roster the server returns."""
        result = await self.iq("get", "<query xmlns='jabber:iq:roster'/>")
        items = {}
        for item in result.xml.iter("{jabber:iq:roster}item"):
            items[item.get("jid")] = {
                "name": item.get("name"),
                "subscription": item.get("subscription", "none"),
                "ask": item.get("ask"),
                # Prosody keeps groups as a set; compare them as one.
                "groups": sorted(g.text or "" for g in item.iter("{jabber:iq:roster}group")),
            }
        return items

    async def fetch_vcard(self):
        result = await self.iq("get", "<vCard xmlns='vcard-temp'/>")
        card = result.xml.find("{vcard-temp}vCard")
        return canonical(card) if card is not None and len(card) else None

    async def fetch_private(self):
        result = await self.iq(
            "get", "<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query>"
        )
        el = result.xml.find("{jabber:iq:private}query/{exodus:prefs}exodus")
        return canonical(el) if el is not None and len(el) else None

    def _mam_result(self, msg):
        r = msg.xml.find("{urn:xmpp:mam:2}result")
        m = r.find("{urn:xmpp:forward:0}forwarded/{jabber:client}message") if r is not None else None
        if m is not None:
            self.mam_results.append(
                [m.get("from", "").split("/")[0], m.get("to", "").split("/")[0],
                 m.findtext("{jabber:client}body")]
            )

    async def fetch_archive(self):
        """[(from bare, to bare, body)] of the account's archive (XEP-0313), or None when the
        server has none (ejabberd without mod_mam)."""
        self.mam_results = []
        try:
            await self.iq("set", "<query xmlns='urn:xmpp:mam:2' queryid='migration'/>")
        except slixmpp.exceptions.IqError:
            return None
        # The results precede the IQ result on the stream; let their handlers run.
        await asyncio.sleep(0.2)
        return self.mam_results

    async def bye(self):
        self.disconnect()
        await asyncio.sleep(0.2)


def canonical(el):
    """An element as comparable text: namespaces spelled out, children in order, attributes
    sorted, whitespace-only text dropped (servers indent differently)."""

    def walk(e):
        attrs = "".join(f" {k}={v!r}" for k, v in sorted(e.attrib.items()))
        text = (e.text or "").strip()
        inner = text + "".join(walk(c) + ((c.tail or "").strip()) for c in e)
        return f"<{e.tag}{attrs}>{inner}</{e.tag}>"

    return walk(el)


async def until(predicate, what):
    for _ in range(TIMEOUT * 20):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


async def populate(host, port, snapshot_path, archived):
    # carol first, alone: her contact at another domain, her vCard. She stays offline afterwards,
    # so that alice's subscription request and bob's message wait for her.
    carol = await Client("carol", tls=False).online(host, port)
    await carol.roster_set(REMOTE, "Dave", ["Elsewhere"])
    await carol.iq("set", VCARDS["carol"])
    await carol.bye()

    alice = Client("alice", tls=False, presence=True)
    alice.auto_authorize = True  # answers bob's subscribe with subscribed
    bob = Client("bob", tls=False, presence=True)
    bob.auto_authorize = True
    bob.auto_subscribe = True  # subscribes back to whoever he approves
    await alice.online(host, port)
    await bob.online(host, port)

    # A mutual ("both") subscription, with names and groups on each side.
    await alice.roster_set(jid("bob"), "Bobby", ["Friends", "Work"])
    alice.send_presence_subscription(pto=jid("bob"))

    async def both():
        r = await alice.fetch_roster()
        s = await bob.fetch_roster()
        return r.get(jid("bob"), {}).get("subscription") == "both" and s.get(jid("alice"), {}).get(
            "subscription"
        ) == "both"

    await until(both, "alice and bob at subscription both")
    await bob.roster_set(jid("alice"), "Alice", ["Friends"])

    # Pending out for alice, pending in for carol (offline).
    await alice.roster_set(jid("carol"), "Carol")
    alice.send_presence_subscription(pto=jid("carol"))

    async def asked():
        return (await alice.fetch_roster()).get(jid("carol"), {}).get("ask") == "subscribe"

    await until(asked, "alice's pending subscription to carol")

    await alice.iq("set", VCARDS["alice"])
    await bob.iq("set", VCARDS["bob"])
    await alice.iq("set", f"<query xmlns='jabber:iq:private'>{PRIVATE}</query>")
    bob.send_message(mto=jid("carol"), mbody=OFFLINE_BODY, mtype="chat")
    # Archived by a source with XEP-0313 (the Prosody runs), in both archives.
    alice.send_message(mto=jid("bob"), mbody=ARCHIVED_BODY, mtype="chat")
    await asyncio.sleep(0.5)
    await alice.bye()
    await bob.bye()

    # What the source server says now. carol logs in without presence, so her offline message
    # and the pending request stay stored (RFC 6121 §4.2: delivered at initial presence only).
    snapshot = {}
    for user in PASSWORDS:
        c = await Client(user, tls=False).online(host, port)
        snapshot[user] = {
            "roster": await c.fetch_roster(),
            "vcard": await c.fetch_vcard(),
            "private": await c.fetch_private(),
            "archive": await c.fetch_archive(),
        }
        await c.bye()

    # The snapshot must hold what was set up, or the comparison later proves nothing.
    expect(snapshot["alice"]["roster"].get(jid("bob")),
           {"name": "Bobby", "subscription": "both", "ask": None, "groups": ["Friends", "Work"]},
           "source: alice's item for bob")
    expect(snapshot["alice"]["roster"].get(jid("carol")),
           {"name": "Carol", "subscription": "none", "ask": "subscribe", "groups": []},
           "source: alice's item for carol")
    expect(snapshot["bob"]["roster"].get(jid("alice")),
           {"name": "Alice", "subscription": "both", "ask": None, "groups": ["Friends"]},
           "source: bob's item for alice")
    expect(snapshot["carol"]["roster"].get(REMOTE),
           {"name": "Dave", "subscription": "none", "ask": None, "groups": ["Elsewhere"]},
           "source: carol's item for dave")
    for user, card in VCARDS.items():
        if snapshot[user]["vcard"] is None or "FN" not in snapshot[user]["vcard"]:
            raise SystemExit(f"source: {user} has no vCard: {snapshot[user]['vcard']}")
    if archived and [jid("alice"), jid("bob"), ARCHIVED_BODY] not in (snapshot["alice"]["archive"] or []):
        raise SystemExit(f"source: alice's archive lacks her message: {snapshot['alice']['archive']}")
    if snapshot["alice"]["private"] is None:
        raise SystemExit("source: alice has no private XML")
    with open(snapshot_path, "w") as f:
        json.dump(snapshot, f, indent=1, ensure_ascii=False)
    print(f"populated and read back {len(snapshot)} accounts")


def expect(got, want, what):
    if got != want:
        raise SystemExit(f"MISMATCH {what}:\n  expected {want!r}\n  got      {got!r}")


async def check(host, port, snapshot_path, mech, offline):
    with open(snapshot_path) as f:
        snapshot = json.load(f)
    for user, want in snapshot.items():
        c = await Client(user, tls=True, mech=mech, presence=True).online(host, port)
        expect(await c.fetch_roster(), want["roster"], f"{user}'s roster")
        expect(await c.fetch_vcard(), want["vcard"], f"{user}'s vCard")
        expect(await c.fetch_private(), want["private"], f"{user}'s private XML")
        # What the source archived (nothing when it had no archive), as the source returned it.
        expect(await c.fetch_archive(), want["archive"] or [], f"{user}'s archive")
        if user == "carol":
            # RFC 6121 §3.1.3: the pending request is delivered again at login.
            await until(lambda: _true(jid("alice") in c.subscribes), "alice's request at carol's login")
            if offline:
                await until(
                    lambda: _true(any(m["body"] == OFFLINE_BODY for m in c.messages)),
                    "bob's offline message for carol",
                )
        await c.bye()
        print(f"{user}: logged in over {mech} with the original password; roster, vCard, "
              f"private XML, archive as on the source")


async def _true(value):
    return value


def main(argv):
    if len(argv) >= 2 and argv[1] == "passwords":
        for user, pw in PASSWORDS.items():
            print(f"{user}\t{pw}")
        return
    if len(argv) == 6 and argv[1] == "populate":
        asyncio.run(populate(argv[2], int(argv[3]), argv[4], argv[5] == "yes"))
        return
    if len(argv) == 7 and argv[1] == "check":
        asyncio.run(check(argv[2], int(argv[3]), argv[4], argv[5], argv[6] == "yes"))
        return
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
