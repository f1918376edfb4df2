"""Interop cases driven by slixmpp against a running Starling.

Usage: slixmpp_suite.py HOST STARTTLS_PORT DIRECT_TLS_PORT RESULTS_FILE COMPONENT_PORT COMPONENT_DOMAIN COMPONENT_SECRET
Each case logs in its own users (created beforehand by run.sh, password "pw") and writes one line
"slixmpp/<case> pass|fail" to RESULTS_FILE. Exit status is 0; run.sh compares with the baseline.
The stream management cases put a cutting proxy (cutproxy.py) between one client and STARTTLS_PORT.
The component cases connect a XEP-0114 component (slixmpp's ComponentXMPP) to COMPONENT_PORT as
COMPONENT_DOMAIN, with COMPONENT_SECRET or a wrong one.
"""
import asyncio
import base64
import os
import ssl
import sys
import time
import traceback
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp import JID
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cutproxy import CutProxy  # noqa: E402

HOST, STARTTLS, DIRECT, RESULTS = "127.0.0.1", 5222, 5223, "/dev/null"
COMPONENT_PORT, COMPONENT_DOMAIN, COMPONENT_SECRET = 5347, "echo.localhost", ""
DOMAIN = "localhost"
TIMEOUT = 15


class Client(slixmpp.ClientXMPP):
    def __init__(self, user, resource="slix", mech=None, direct=False, presence=True, password="pw"):
        kwargs = {"sasl_mech": mech} if mech else {}
        super().__init__(f"{user}@{DOMAIN}/{resource}", password, **kwargs)
        for p in ("xep_0030", "xep_0115", "xep_0184", "xep_0199", "xep_0203"):
            self.register_plugin(p)
        self.plugin["xep_0184"].auto_ack = True
        self.auto_authorize = None  # the test decides
        self.auto_subscribe = False
        self.enable_plaintext = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        if direct:
            self.enable_direct_tls = True
            self.enable_starttls = False
        self.direct = direct
        self.send_initial_presence = presence
        self.ready = asyncio.Event()
        self.messages = []
        self.receipts = []
        self.failed_auth = False
        self.add_event_handler("session_start", self._start)
        self.add_event_handler("failed_auth", lambda _: setattr(self, "failed_auth", True))
        self.add_event_handler("message", self.messages.append)
        self.add_event_handler("receipt_received", self.receipts.append)

    async def _start(self, _):
        await self.get_roster()
        if self.send_initial_presence:
            self.send_presence()
        self.ready.set()

    async def online(self):
        self.connect(HOST, DIRECT if self.direct else STARTTLS)
        await asyncio.wait_for(self.ready.wait(), TIMEOUT)
        return self

    def bodies(self, sender):
        """Bodies of the chat messages received from the bare JID of user `sender`, in order."""
        return [m["body"] for m in self.messages if m["type"] == "chat" and m["from"].bare == jid(sender)]

    def state(self, jid):
        item = self.client_roster[jid]
        return (item["subscription"], item["pending_out"])

    async def bye(self):
        self.disconnect()
        await asyncio.sleep(0.2)


class SmClient(Client):
    """A client with XEP-0198 stream management, resumption asked for (the plugin's default),
    that connects to the STARTTLS port through a CutProxy. It records the session events in
    order; `lost` is set whenever its connection goes, and it never reconnects by itself."""

    SM_EVENTS = ("session_start", "sm_enabled", "session_resumed", "sm_failed", "session_end", "disconnected")

    def __init__(self, user, proxy, resource="slix"):
        super().__init__(user, resource)
        self.register_plugin("xep_0198")
        # Not a direct TLS attempt first: the proxy forwards to the STARTTLS port, and counts
        # one connection per login.
        self.enable_direct_tls = False
        self.proxy = proxy
        self.events = []
        self.enabled = None  # the server's <enabled/>
        self.resumed = None  # the server's <resumed/>
        self.lost = asyncio.Event()
        for name in self.SM_EVENTS:
            self.add_event_handler(name, lambda _e, name=name: self.events.append(name))
        self.add_event_handler("sm_enabled", lambda e: setattr(self, "enabled", e))
        self.add_event_handler("session_resumed", lambda e: setattr(self, "resumed", e))
        self.add_event_handler("disconnected", lambda _e: self.lost.set())

    def connect_via_proxy(self):
        self.lost.clear()
        self.connect(HOST, self.proxy.port)

    async def online(self):
        self.connect_via_proxy()
        await asyncio.wait_for(self.ready.wait(), TIMEOUT)
        assert await until(lambda: self.enabled is not None), self.events
        return self

    def count(self, event):
        return self.events.count(event)


class Echo(slixmpp.ComponentXMPP):
    """A XEP-0114 component at COMPONENT_DOMAIN: it echoes each chat message with a body back to
    its sender, from bot@COMPONENT_DOMAIN, and answers jabber:iq:version (the xep_0092 plugin)
    and disco#info (xep_0030). It records what it receives and its session events."""

    EVENTS = ("session_start", "stream_error", "disconnected")

    def __init__(self, secret):
        super().__init__(COMPONENT_DOMAIN, secret, HOST, COMPONENT_PORT)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0092", {"software_name": "starling-interop-echo", "version": "1.0"})
        self.events = []
        self.stream_errors = []
        self.received = []
        self.ready = asyncio.Event()
        self.lost = asyncio.Event()
        for name in self.EVENTS:
            self.add_event_handler(name, lambda _e, name=name: self.events.append(name))
        self.add_event_handler("session_start", lambda _: self.ready.set())
        self.add_event_handler("stream_error", self.stream_errors.append)
        self.add_event_handler("disconnected", lambda _: self.lost.set())
        self.add_event_handler("message", self._echo)

    def _echo(self, msg):
        self.received.append(msg)
        if msg["type"] == "chat" and msg["body"]:
            self.send_message(mto=msg["from"], mfrom=f"bot@{COMPONENT_DOMAIN}", mbody=msg["body"], mtype="chat")

    async def online(self):
        self.connect()
        await asyncio.wait_for(self.ready.wait(), TIMEOUT)
        return self


async def settle(seconds=0.8):
    await asyncio.sleep(seconds)


async def until(pred, seconds=TIMEOUT):
    for _ in range(int(seconds * 10)):
        if pred():
            return True
        await asyncio.sleep(0.1)
    return pred()


def jid(user):
    return f"{user}@{DOMAIN}"


# ----- cases -----

async def login(mech, direct):
    c = await Client("login", mech=mech, direct=direct).online()
    assert c.authenticated, "not authenticated"
    assert str(c.boundjid).startswith("login@localhost/"), c.boundjid
    await c.bye()


async def case_ping():
    c = await Client("pinger").online()
    # Not plugin.ping(): it counts an error reply as a pong. send_ping raises IqError on one.
    reply = await c.plugin["xep_0199"].send_ping(DOMAIN, timeout=5)
    assert reply["type"] == "result" and reply["from"] == DOMAIN, str(reply)
    await c.bye()


async def request_then(refusal, a_user, b_user):
    a = await Client(a_user, "Spark").online()
    b = await Client(b_user, "Spark").online()
    await a.update_roster(jid(b_user), name=b_user, groups=["Friends"])
    a.send_presence(pto=jid(b_user), ptype="subscribe")
    assert await until(lambda: a.state(jid(b_user)) == ("none", True)), a.state(jid(b_user))
    b.send_presence(pto=jid(a_user), ptype=refusal)
    await settle()
    result = a.state(jid(b_user))
    await a.bye()
    await b.bye()
    return result


async def case_seed1_refusal_unsubscribe():
    # RFC 6121 A.2.3 "None + Pending In" / A.3.3 "None + Pending Out": no change anywhere.
    assert await request_then("unsubscribe", "s1a", "s1b") == ("none", True)
    # The request is still pending, so it is delivered again at s1b's next login (RFC 6121 §3.1.3).
    b = Client("s1b", "Spark")
    requests = []
    b.add_event_handler("presence_subscribe", requests.append)
    await b.online()
    assert await until(lambda: any(p["from"].bare == jid("s1a") for p in requests)), requests
    await b.bye()


async def case_seed1_refusal_unsubscribed():
    assert await request_then("unsubscribed", "s1c", "s1d") == ("none", False)


async def case_seed2_approve_then_refuse():
    a = await Client("s2a", "Spark").online()
    b = await Client("s2b", "Spark").online()
    await a.update_roster(jid("s2b"), name="s2b", groups=["Friends"])
    a.send_presence(pto=jid("s2b"), ptype="subscribe")
    assert await until(lambda: a.state(jid("s2b")) == ("none", True))
    b.send_presence(pto=jid("s2a"), ptype="subscribed")
    assert await until(lambda: a.state(jid("s2b")) == ("to", False)), a.state(jid("s2b"))
    await b.plugin["xep_0199"].ping(jid=DOMAIN, timeout=5)
    await b.update_roster(jid("s2a"), name="", groups=["Friends"])
    assert await until(lambda: b.state(jid("s2a")) == ("from", False)), b.state(jid("s2a"))
    b.send_presence(pto=jid("s2a"), ptype="subscribe")
    assert await until(lambda: b.state(jid("s2a")) == ("from", True))
    # Spark refuses the reverse request with 'unsubscribe': A.2.3 "To + Pending In" -> "None +
    # Pending In"; A.3.3 "From + Pending Out" -> "None + Pending Out".
    a.send_presence(pto=jid("s2b"), ptype="unsubscribe")
    assert await until(lambda: b.state(jid("s2a")) == ("none", True)), b.state(jid("s2a"))
    assert await until(lambda: a.state(jid("s2b")) == ("none", False)), a.state(jid("s2b"))
    await a.bye()
    await b.bye()


async def befriend(a_user, b_user):
    a = await Client(a_user, "Spark").online()
    b = await Client(b_user, "Spark").online()
    await a.update_roster(jid(b_user), name=b_user, groups=["Friends"])
    a.send_presence(pto=jid(b_user), ptype="subscribe")
    assert await until(lambda: a.state(jid(b_user)) == ("none", True))
    b.send_presence(pto=jid(a_user), ptype="subscribed")
    b.send_presence(pto=jid(a_user), ptype="subscribe")
    assert await until(lambda: b.state(jid(a_user)) == ("from", True))
    a.send_presence(pto=jid(b_user), ptype="subscribed")
    assert await until(lambda: a.state(jid(b_user)) == ("both", False)), a.state(jid(b_user))
    assert await until(lambda: b.state(jid(a_user)) == ("both", False)), b.state(jid(a_user))
    return a, b


async def case_seed3_both():
    a, b = await befriend("s3a", "s3b")
    # Each sees the other's resource available.
    assert await until(lambda: "Spark" in a.client_roster.presence(jid("s3b")))
    assert await until(lambda: "Spark" in b.client_roster.presence(jid("s3a")))
    await a.bye()
    await b.bye()


async def case_receipts_disco_caps():
    a, b = await befriend("r1", "r2")
    info = await a.plugin["xep_0030"].get_info(jid=f"{jid('r2')}/Spark", timeout=5)
    assert "urn:xmpp:receipts" in info["disco_info"]["features"]
    # XEP-0115: b's caps arrived in its presence and resolve to the same features.
    assert await until(lambda: a.plugin["xep_0115"].get_verstring(f"{jid('r2')}/Spark") is not None)
    m = a.make_message(mto=f"{jid('r2')}/Spark", mbody="My lord, dispatch; read o'er these articles.", mtype="chat")
    m["request_receipt"] = True
    m.send()
    assert await until(lambda: any(r["receipt"] == m["id"] for r in a.receipts)), [str(r) for r in a.receipts]
    await a.bye()
    await b.bye()


async def case_offline_delivery():
    a = await Client("o1").online()
    a.send_message(mto=jid("o2"), mbody="while you were away", mtype="chat")
    await settle()
    b = await Client("o2").online()
    assert await until(lambda: any(x["body"] == "while you were away" for x in b.messages))
    got = next(x for x in b.messages if x["body"] == "while you were away")
    # XEP-0203: stamped by the server (its domain) when stored.
    assert got["delay"]["from"] == DOMAIN and got["delay"]["stamp"] is not None, str(got)
    await a.bye()
    await b.bye()


async def case_sm_resume_after_cut():
    """XEP-0198 §5: the client's TCP connection is reset (by the proxy, not by the client) while
    messages are in flight both ways, and more are sent while it is gone; the client resumes on
    a new connection and every message arrives once, in order, both ways."""
    proxy = CutProxy(HOST, STARTTLS)
    await proxy.start()
    try:
        a = await SmClient("sma", proxy).online()
        b = await Client("smb").online()
        assert a.enabled["resume"] in (True, "true", "1") and a.enabled["id"], str(a.enabled)
        sm_id, bound = a.enabled["id"], a.boundjid.full
        # Alternately to A's bare and full JID: both must reach the session, detached or not.
        to = [jid("sma"), bound]
        sent_by_b = []

        def b_sends(*bodies):
            for body in bodies:
                b.send_message(mto=to[len(sent_by_b) % 2], mbody=body, mtype="chat")
                sent_by_b.append(body)

        b_sends("m1", "m2", "m3")
        assert await until(lambda: a.bodies("smb") == sent_by_b), a.bodies("smb")
        a.send_message(mto=jid("smb"), mbody="a1", mtype="chat")
        assert await until(lambda: b.bodies("sma") == ["a1"]), b.bodies("sma")

        # The path dies: what either end writes now is lost, though both writes complete.
        proxy.freeze()
        b_sends("m4", "m5")
        a.send_message(mto=jid("smb"), mbody="a2", mtype="chat")
        await settle(0.5)
        # Then both ends get a reset, and A's stanzas go on while it is disconnected.
        assert proxy.cut() == 1
        await asyncio.wait_for(a.lost.wait(), TIMEOUT)
        b_sends("m6", "m7")
        a.send_message(mto=jid("smb"), mbody="a3", mtype="chat")
        await settle(0.3)

        a.connect_via_proxy()
        assert await until(lambda: a.resumed is not None or a.count("sm_failed")), a.events
        assert a.resumed is not None and a.resumed["previd"] == sm_id, (a.events, str(a.resumed))
        assert await until(lambda: len(a.bodies("smb")) >= 7 and len(b.bodies("sma")) >= 3)
        await settle()  # anything sent twice would show up by now
        assert a.bodies("smb") == sent_by_b, a.bodies("smb")
        # Once each, but not in order: slixmpp 1.17.0 itself writes a3 before a2 after <resumed/>
        # (it queues the stanza it retransmits, a2, behind those sent while disconnected, a3).
        assert sorted(b.bodies("sma")) == ["a1", "a2", "a3"], b.bodies("sma")
        # The same session: resumed once, never a new one, the same resource.
        assert a.count("session_start") == 1 and a.count("session_resumed") == 1, a.events
        assert a.count("sm_enabled") == 1 and a.count("sm_failed") == 0, a.events
        assert a.boundjid.full == bound, (a.boundjid.full, bound)
        assert proxy.accepted == 2, proxy.accepted
        await a.bye()
        await b.bye()
    finally:
        await proxy.close()


async def case_sm_resume_takeover():
    """XEP-0198 §5 when the server has not noticed the loss: the path dies (the proxy freezes it,
    so not even a reset arrives), A gives up its own socket and resumes on a new connection while
    the server still holds the old one, which it must close and take the session from."""
    proxy = CutProxy(HOST, STARTTLS)
    await proxy.start()
    try:
        a = await SmClient("smta", proxy).online()
        b = await Client("smtb").online()
        sent_by_b = []

        def b_sends(*bodies):
            for body in bodies:
                b.send_message(mto=jid("smta"), mbody=body, mtype="chat")
                sent_by_b.append(body)

        b_sends("t1", "t2")
        assert await until(lambda: a.bodies("smtb") == sent_by_b), a.bodies("smtb")
        proxy.freeze()
        b_sends("t3", "t4")
        a.send_message(mto=jid("smtb"), mbody="x1", mtype="chat")
        await settle(0.5)
        a.abort()  # as a client whose own ping went unanswered; the server hears nothing
        await asyncio.wait_for(a.lost.wait(), TIMEOUT)
        b_sends("t5")
        await settle(0.3)
        assert proxy.connections() == 1, proxy.connections()  # the server holds it still

        a.connect_via_proxy()
        assert await until(lambda: a.resumed is not None or a.count("sm_failed")), a.events
        assert a.resumed is not None, a.events
        # The server closed the old connection (the proxy saw it end).
        assert await until(lambda: proxy.connections() == 1 and proxy.accepted == 2), proxy.connections()
        assert await until(lambda: len(a.bodies("smtb")) >= 5 and len(b.bodies("smta")) >= 1)
        await settle()
        assert a.bodies("smtb") == sent_by_b, a.bodies("smtb")
        assert b.bodies("smta") == ["x1"], b.bodies("smta")
        assert a.count("session_start") == 1 and a.count("session_resumed") == 1, a.events
        await a.bye()
        await b.bye()
    finally:
        await proxy.close()


async def case_sm_no_resume_offline():
    """A client with resumption enabled loses its connection and never comes back: once the
    server's resumption timeout passes, what it had not acknowledged and what arrived for it
    meanwhile is stored offline (XEP-0198 §5, RFC 6121 §8.5.2) and delivered once, with a
    XEP-0203 delay, at its next ordinary login; what it had acknowledged is not delivered again."""
    proxy = CutProxy(HOST, STARTTLS)
    await proxy.start()
    try:
        a = await SmClient("smoa", proxy).online()
        b = await Client("smob").online()
        max_wait = int(a.enabled["max"] or 0)
        # run.sh's server offers 3 seconds; much more would make this case slow.
        assert 0 < max_wait <= 10, str(a.enabled)
        for body in ("acked 1", "acked 2"):
            b.send_message(mto=jid("smoa"), mbody=body, mtype="chat")
        assert await until(lambda: a.bodies("smob") == ["acked 1", "acked 2"]), a.bodies("smob")
        # slixmpp acknowledges only when asked; here it does so of itself, then sends B a message:
        # once B has that, the server has read the <a/> before it.
        a.plugin["xep_0198"].send_ack()
        a.send_message(mto=jid("smob"), mbody="sync", mtype="chat")
        assert await until(lambda: b.bodies("smoa") == ["sync"]), b.bodies("smoa")

        proxy.freeze()
        b.send_message(mto=jid("smoa"), mbody="lost on the way", mtype="chat")
        await settle(0.5)
        assert proxy.cut() == 1
        await asyncio.wait_for(a.lost.wait(), TIMEOUT)
        b.send_message(mto=jid("smoa"), mbody="while detached 1", mtype="chat")
        b.send_message(mto=f"{jid('smoa')}/slix", mbody="while detached 2", mtype="chat")
        a.disconnect()  # already disconnected: it stays so, and never tries to resume
        await asyncio.sleep(max_wait + 1.5)
        b.send_message(mto=f"{jid('smoa')}/slix", mbody="after the session ended", mtype="chat")
        await settle()

        again = await Client("smoa", "again").online()
        expected = ["lost on the way", "while detached 1", "while detached 2", "after the session ended"]
        assert await until(lambda: len(again.bodies("smob")) >= len(expected)), again.bodies("smob")
        await settle()
        assert again.bodies("smob") == expected, again.bodies("smob")
        for m in again.messages:
            assert m["delay"]["from"] == DOMAIN and m["delay"]["stamp"] is not None, str(m)
        assert a.count("session_resumed") == 0 and a.count("session_start") == 1, a.events
        await again.bye()
        await b.bye()
    finally:
        await proxy.close()


async def server_items(c):
    """The JIDs of the server's disco#items (XEP-0030 §4)."""
    reply = await c.plugin["xep_0030"].get_items(jid=DOMAIN, timeout=5)
    return [item[0] for item in reply["disco_items"]["items"]]


async def case_component():
    """XEP-0114: a component connects with the shared secret; a user's chat message to a JID at
    its domain reaches it once, and its echo from bot@ its domain reaches the user once; IQs to
    its domain are answered by it; the server's disco#items lists the domain while it is
    connected (XEP-0030 §4) and no longer once it has gone."""
    comp = Echo(COMPONENT_SECRET)
    c = Client("comp")
    c.register_plugin("xep_0092")
    try:
        await comp.online()
        await c.online()
        assert COMPONENT_DOMAIN in await server_items(c), await server_items(c)

        bot = f"bot@{COMPONENT_DOMAIN}"
        body = "Is this the component? Echo, echo."
        c.send_message(mto=bot, mbody=body, mtype="chat")
        assert await until(lambda: any(m["from"] == bot for m in c.messages)), [str(m) for m in c.messages]

        version = await c.plugin["xep_0092"].get_version(COMPONENT_DOMAIN, timeout=5)
        assert version["type"] == "result" and version["from"] == COMPONENT_DOMAIN, str(version)
        assert version["software_version"]["name"] == "starling-interop-echo", str(version)
        assert version["software_version"]["version"] == "1.0", str(version)
        info = await c.plugin["xep_0030"].get_info(jid=COMPONENT_DOMAIN, timeout=5)
        assert info["type"] == "result" and info["from"] == COMPONENT_DOMAIN, str(info)
        assert "jabber:iq:version" in info["disco_info"]["features"], str(info)

        await settle()  # anything delivered twice would show up by now
        got = [(str(m["from"]), m["type"], m["body"]) for m in c.messages]
        assert got == [(bot, "chat", body)], got
        sent = [(str(m["from"]), str(m["to"]), m["type"], m["body"]) for m in comp.received]
        assert sent == [(c.boundjid.full, bot, "chat", body)], sent
        assert comp.events == ["session_start"], comp.events

        comp.disconnect()
        await asyncio.wait_for(comp.lost.wait(), TIMEOUT)
        # The server detaches the domain as its stream ends, which may be just after the
        # component has seen the end: a few tries.
        for _ in range(20):
            items = await server_items(c)
            if COMPONENT_DOMAIN not in items:
                break
            await asyncio.sleep(0.1)
        assert COMPONENT_DOMAIN not in items, items
    finally:
        comp.abort()
        await c.bye()


async def case_component_bad_secret():
    """XEP-0114 §3: a handshake with the wrong secret ends the stream with <not-authorized/>;
    the component never starts a session."""
    comp = Echo(COMPONENT_SECRET + " but wrong")
    try:
        comp.connect()
        await asyncio.wait_for(comp.lost.wait(), 5)
        assert [e["condition"] for e in comp.stream_errors] == ["not-authorized"], [str(e) for e in comp.stream_errors]
        assert comp.events == ["stream_error", "disconnected"], comp.events
    finally:
        comp.abort()


async def carbons_client(user, resource):
    c = Client(user, resource=resource)
    c.register_plugin("xep_0280")
    c.carbons_received, c.carbons_sent = [], []
    c.add_event_handler("carbon_received", lambda m: c.carbons_received.append(m["carbon_received"]))
    c.add_event_handler("carbon_sent", lambda m: c.carbons_sent.append(m["carbon_sent"]))
    await c.online()
    await c.plugin["xep_0280"].enable(timeout=5)
    return c


async def case_carbons_two_devices():
    """XEP-0280 §7 and §8 with slixmpp's xep_0280 plugin: a phone and a laptop of one account
    talk with a third user; each device sees both sides of the conversation."""
    phone = await carbons_client("cb1", "phone")
    laptop = await carbons_client("cb1", "laptop")
    peer = await Client("cb2").online()
    peer.send_message(mto=f"{jid('cb1')}/phone", mbody="to the phone", mtype="chat")
    assert await until(lambda: phone.bodies("cb2") == ["to the phone"]), phone.bodies("cb2")
    assert await until(lambda: [m["body"] for m in laptop.carbons_received] == ["to the phone"])
    phone.send_message(mto=jid("cb2"), mbody="answered from the phone", mtype="chat")
    assert await until(lambda: peer.bodies("cb1") == ["answered from the phone"])
    assert await until(lambda: [m["body"] for m in laptop.carbons_sent] == ["answered from the phone"])
    # The device a message went to gets no carbon of it, nor of what it sent.
    await settle()
    assert phone.carbons_received == [] and phone.carbons_sent == []
    for c in (phone, laptop, peer):
        await c.bye()


async def case_mam_history():
    """XEP-0313 with slixmpp's xep_0313 plugin: a device that was off catches up with the
    conversation from the archive, both sides, in order; XEP-0359 ids match the live copies."""
    a = await Client("mh1").online()
    b = Client("mh2")
    b.register_plugin("xep_0313")
    b.register_plugin("xep_0359")
    await b.online()
    for i in range(3):
        a.send_message(mto=jid("mh2"), mbody=f"question {i}", mtype="chat")
        assert await until(lambda i=i: len(b.bodies("mh1")) == i + 1)
        b.send_message(mto=jid("mh1"), mbody=f"answer {i}", mtype="chat")
        assert await until(lambda i=i: len(a.bodies("mh2")) == i + 1)
    live_ids = [m["stanza_id"]["id"] for m in b.messages if m["type"] == "chat"]
    assert all(live_ids), [str(m) for m in b.messages]
    await b.bye()
    # Another device of mh2 fetches the history.
    c = Client("mh2", resource="other")
    c.register_plugin("xep_0313")
    await c.online()
    got = [m async for m in c.plugin["xep_0313"].iterate(with_jid=JID(jid("mh1")), rsm={"max": 2})]
    bodies = [m["mam_result"]["forwarded"]["stanza"]["body"] for m in got]
    assert bodies == [x for i in range(3) for x in (f"question {i}", f"answer {i}")], bodies
    ids = [m["mam_result"]["id"] for m in got]
    assert ids[0::2] == live_ids, (ids, live_ids)
    await a.bye()
    await c.bye()


async def case_blocking():
    """XEP-0191 with slixmpp's xep_0191 plugin: a user blocks a spammer from one device; the other
    device, which fetched the list, gets the push (§3.3); the spammer's messages never arrive and
    are answered with service-unavailable, the user's own to the spammer are refused with
    not-acceptable (§3.3); after unblocking, messages flow again (§3.4)."""
    a = Client("bl1")
    a.register_plugin("xep_0191")
    await a.online()
    other = Client("bl1", resource="other")
    other.register_plugin("xep_0191")
    await other.online()
    pushes = []
    other.add_event_handler("blocked", pushes.append)
    assert await other.plugin["xep_0191"].get_blocked_jids() == set()
    spam = await Client("bl2").online()
    spam_errors, a_errors = [], []
    spam.add_event_handler("message_error", spam_errors.append)
    a.add_event_handler("message_error", a_errors.append)

    await a.plugin["xep_0191"].block(JID(jid("bl2")))
    assert await until(lambda: len(pushes) == 1)
    assert [i["jid"] for i in pushes[0]["block"]["items"]] == [JID(jid("bl2"))], str(pushes[0])
    assert await a.plugin["xep_0191"].get_blocked_jids() == {JID(jid("bl2"))}
    spam.send_message(mto=jid("bl1"), mbody="buy now", mtype="chat")
    assert await until(lambda: len(spam_errors) == 1)
    assert spam_errors[0]["error"]["condition"] == "service-unavailable", str(spam_errors[0])
    a.send_message(mto=jid("bl2"), mbody="stop it", mtype="chat")
    assert await until(lambda: len(a_errors) == 1)
    assert a_errors[0]["error"]["condition"] == "not-acceptable", str(a_errors[0])
    await settle()
    assert a.bodies("bl2") == [] and other.bodies("bl2") == [] and spam.bodies("bl1") == []

    await a.plugin["xep_0191"].unblock(JID(jid("bl2")))
    spam.send_message(mto=jid("bl1"), mbody="hello again", mtype="chat")
    assert await until(lambda: a.bodies("bl2") == ["hello again"]), a.bodies("bl2")
    for c in (a, other, spam):
        await c.bye()


async def case_register_with_invite():
    """XEP-0077 in-band registration with slixmpp's xep_0077 plugin and a XEP-0445 invitation made
    by `starling invite create --contact inv1@localhost` (run.sh passes its URI in
    INTEROP_INVITE_URI): the client presents the token, registers, logs in with the new password
    and finds the inviter on its roster with subscription 'both' (XEP-0401 §5.3.2)."""
    uri = os.environ["INTEROP_INVITE_URI"]
    assert uri.startswith("xmpp:inv1@localhost?roster;preauth=") and uri.endswith(";ibr=y"), uri
    token = next(kv[len("preauth="):] for kv in uri.split("?", 1)[1].split(";") if kv.startswith("preauth="))
    password = "invited-pw"
    c = Client("invited", password=password)
    c.register_plugin("xep_0077")
    registered = []

    async def on_register(form):
        assert form["register"]["instructions"], str(form)
        reg = c.Iq()
        reg["type"] = "set"
        reg["register"]["username"] = "invited"
        reg["register"]["password"] = password
        # slixmpp holds back every IQ before the session but those carrying its register
        # plugin, so XEP-0445's separate <preauth/> IQ never leaves it: the token goes inside
        # the registration query, which Starling accepts too (COMPAT there; the separate IQ
        # is tested in crates/testkit/tests/registration.rs).
        reg["register"].xml.append(ET.fromstring(f"<preauth xmlns='urn:xmpp:pars:0' token='{token}'/>"))
        await reg.send(timeout=5)
        registered.append(True)

    c.add_event_handler("register", on_register)
    await c.online()
    assert registered == [True], registered
    assert str(c.boundjid).startswith("invited@localhost/"), c.boundjid
    assert c.client_roster[jid("inv1")]["subscription"] == "both", c.client_roster[jid("inv1")]
    inviter = await Client("inv1").online()
    assert inviter.client_roster[jid("invited")]["subscription"] == "both"
    await inviter.bye()
    await c.bye()



# ----- PEP (XEP-0163) on the account's pubsub service (XEP-0060) -----

NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_DELAY = "urn:xmpp:delay"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
# A node of no protocol, published to before a resource comes online: when the resource gets
# its last item (XEP-0163 §4.3.4), the server knows the resource's interests, so notifications
# published from then on reach it live. Without this, a notification published while the
# server is still resolving the resource's caps would be (rightly) not sent.
PROBE = "urn:example:starling-interop:probe"


class PubsubEvent:
    """One pubsub notification: `kind` publish, retract, purge or delete; `owner` the bare JID
    it came from (the PEP service); `payload` the item's first child (publish only); `delayed`
    whether it carries a XEP-0203 delay (the last item sent at presence, XEP-0163 §4.3.4)."""

    def __init__(self, kind, msg):
        self.kind = kind
        self.msg = msg
        self.owner = msg["from"].bare
        self.delayed = msg.xml.find(f"{{{NS_DELAY}}}delay") is not None
        self.id = None
        self.payload = None
        if kind in ("publish", "retract"):
            items = msg["pubsub_event"]["items"]
            self.node = items["node"]
            if kind == "publish":
                self.id = items["item"]["id"]
                self.payload = items["item"]["payload"]
            else:
                self.id = items["retract"]["id"]
        else:
            self.node = msg["pubsub_event"][kind]["node"]

    def __repr__(self):
        return f"<{self.kind} {self.owner} {self.node} {self.id}{' delayed' if self.delayed else ''}>"


class PepClient(Client):
    """A client with slixmpp's PEP stack (xep_0060, xep_0163) and `plugins` (e.g. xep_0118,
    whose register_pep adds `NODE+notify` itself). `interests` are further nodes it wants
    notifications of: xep_0163.add_interest puts `NODE+notify` in its disco#info, so in the
    XEP-0115 caps of its presence, which is how Starling decides whom to notify (XEP-0163
    §4.3.1). Every pubsub notification it gets is kept in `events`."""

    def __init__(self, user, resource="slix", plugins=(), interests=()):
        super().__init__(user, resource)
        for p in ("xep_0004", "xep_0060", "xep_0163", *plugins):
            self.register_plugin(p)
        self.interests = list(interests)
        self.events = []
        # At session_bind, as the plugins' own register_pep does: before the initial presence,
        # so that its caps already carry the interests.
        self.add_event_handler("session_bind", self._add_interests)
        for kind in ("publish", "retract", "purge", "delete"):
            self.add_event_handler(f"pubsub_{kind}", lambda m, kind=kind: self.events.append(PubsubEvent(kind, m)))

    def _add_interests(self, _jid):
        if self.interests:
            self.plugin["xep_0163"].add_interest(self.interests)

    def got(self, owner, node, kind="publish"):
        """The events of `kind` from user `owner`'s `node`, in order."""
        return [e for e in self.events if e.owner == jid(owner) and e.node == node and e.kind == kind]

    async def last_item(self, owner, node):
        """Waits for the newest item of `owner`'s `node` to arrive (live or at presence)."""
        assert await until(lambda: self.got(owner, node)), (owner, node, self.events)
        return self.got(owner, node)[-1]


def pubsub_form(c, form_type, fields):
    """A submitted XEP-0004 form of `form_type` with `pubsub#NAME` fields from `fields`."""
    form = c.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=form_type)
    for name, value in fields.items():
        form.add_field(var=f"pubsub#{name}", value=value)
    return form


def payload(xml):
    return ET.fromstring(xml)


async def iq_error(aw):
    """The error reply an IQ got; fails if it succeeded."""
    try:
        reply = await aw
    except IqError as e:
        return e.iq
    raise AssertionError(f"expected an error, got {reply}")


def pubsub_error(iq):
    """(stanza error condition, XEP-0060 application condition or None) of an error reply."""
    app = [child.tag.split("}")[1] for child in iq.xml.find("{jabber:client}error")
           if child.tag.startswith(f"{{{NS_PUBSUB_ERRORS}}}")]
    return iq["error"]["condition"], (app[0] if app else None)


def item_ids(iq):
    return [item["id"] for item in iq["pubsub"]["items"]]


async def probe(owner):
    """The owner publishes to PROBE (see there); a resource interested in it then gets it at
    its initial presence."""
    await owner.plugin["xep_0060"].publish(None, PROBE, id="probe", payload=payload(f"<probe xmlns='{PROBE}'/>"),
                                           timeout=5)


async def pep_pair(a_user, b_user):
    """Makes `a_user` and `b_user` contacts with subscription both (the seed-3 handshake, RFC 6121
    §3), then logs both out: each case logs in its own PEP clients afterwards."""
    a, b = await befriend(a_user, b_user)
    await a.bye()
    await b.bye()


async def case_pep_tune_nick():
    """XEP-0163 with slixmpp's xep_0118 (User Tune) and xep_0172 (User Nickname) plugins, whose
    register_pep advertises `tune+notify` and `nick+notify` in caps (XEP-0115). A contact that
    comes online after a publish gets the last item, with a delay (XEP-0163 §4.3.4); once it is
    online, it gets new items live (§4.3.1); the publisher's own resources get them too (§4.3)."""
    await pep_pair("pep1", "pep2")
    plugins = ("xep_0118", "xep_0172")
    a = await PepClient("pep1", "desk", plugins).online()
    await a.plugin["xep_0172"].publish_nick("Puck", timeout=5)
    tunes, nicks = [], []
    b = PepClient("pep2", "first", plugins)
    b.add_event_handler("user_tune_publish", tunes.append)
    b.add_event_handler("user_nick_publish", nicks.append)
    await b.online()
    # What makes Starling notify b: the caps b's presence carried name a disco#info with the
    # plugins' +notify features (slixmpp's xep_0163 register_pep, via xep_0115 update_caps).
    caps = await b.plugin["xep_0115"].get_caps(jid=b.boundjid.full)
    for ns in ("http://jabber.org/protocol/tune", "http://jabber.org/protocol/nick"):
        assert f"{ns}+notify" in caps["features"], caps
    # The nick was published before b came online: it arrives as the last item, delayed.
    assert await until(lambda: nicks), b.events
    assert nicks[0]["from"] == jid("pep1") and nicks[0]["type"] == "headline", str(nicks[0])
    assert nicks[0]["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Puck", str(nicks[0])
    assert nicks[0]["delay"]["stamp"] is not None, str(nicks[0])

    await a.plugin["xep_0118"].publish_tune(artist="Yes", title="Heart of the Sunrise", length=686, rating=9,
                                            source="Yessongs", track="3", uri="https://yes.example/",
                                            timeout=5)
    assert await until(lambda: tunes), b.events
    tune = tunes[0]["pubsub_event"]["items"]["item"]["tune"]
    assert tunes[0]["from"] == jid("pep1"), str(tunes[0])
    assert (tune["artist"], tune["title"], tune["length"], tune["rating"], tune["source"], tune["track"]) == \
        ("Yes", "Heart of the Sunrise", "686", "9", "Yessongs", "3"), str(tunes[0])
    assert tunes[0].xml.find(f"{{{NS_DELAY}}}delay") is None, str(tunes[0])
    # The publisher's resource advertises the same interests.
    assert await until(lambda: a.got("pep1", "http://jabber.org/protocol/tune")), a.events

    # Another resource of the contact, online after both publishes: both last items.
    later = await PepClient("pep2", "second", plugins).online()
    assert (await later.last_item("pep1", "http://jabber.org/protocol/nick")).delayed, later.events
    last_tune = await later.last_item("pep1", "http://jabber.org/protocol/tune")
    assert last_tune.delayed, later.events
    assert last_tune.msg["pubsub_event"]["items"]["item"]["tune"]["title"] == "Heart of the Sunrise", later.events
    await settle(0.5)
    assert len(tunes) == 1 and len(nicks) == 1, b.events  # nothing twice
    for c in (a, b, later):
        await c.bye()


OMEMO = "urn:xmpp:omemo:2"
OMEMO_DEVICES = "urn:xmpp:omemo:2:devices"
OMEMO_BUNDLES = "urn:xmpp:omemo:2:bundles"
AXOLOTL_DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"


def device_ids(el):
    """The device ids of an OMEMO 2 <devices/> or legacy <list/>."""
    return {int(d.get("id")) for d in el}


class OmemoDevice:
    """An OMEMO device without a crypto library: the PEP side of XEP-0384 §5.3 with made-up
    keys. Device lists go to `urn:xmpp:omemo:2:devices` and, as Conversations' legacy OMEMO
    0.3 does, `eu.siacs.conversations.axolotl.devicelist` (item `current`, access model open);
    bundles to `urn:xmpp:omemo:2:bundles`, one item per device id, max_items=max, open."""

    def __init__(self, user, resource, device_id):
        self.user, self.device_id = user, device_id
        self.c = PepClient(user, resource, interests=(OMEMO_DEVICES, AXOLOTL_DEVICELIST))

    async def online(self):
        await self.c.online()
        return self

    def key(self, name):
        """Made-up key material: base64 of a text naming the key and the device."""
        return base64.b64encode(f"{name} of device {self.device_id}".encode()).decode()

    async def publish_bundle(self):
        bundle = (f"<bundle xmlns='{OMEMO}'><spk id='1'>{self.key('spk')}</spk><spks>{self.key('spks')}</spks>"
                  f"<ik>{self.key('ik')}</ik><prekeys><pk id='1'>{self.key('pk1')}</pk>"
                  f"<pk id='2'>{self.key('pk2')}</pk></prekeys></bundle>")
        opts = pubsub_form(self.c, PUBLISH_OPTIONS, {"max_items": "max", "access_model": "open"})
        reply = await self.c.plugin["xep_0060"].publish(None, OMEMO_BUNDLES, id=str(self.device_id),
                                                        payload=payload(bundle), options=opts, timeout=5)
        assert reply["pubsub"]["publish"]["item"]["id"] == str(self.device_id), str(reply)

    async def publish_devices(self, ids):
        devices = "".join(f"<device id='{i}'/>" for i in sorted(ids))
        for node, xml in ((OMEMO_DEVICES, f"<devices xmlns='{OMEMO}'>{devices}</devices>"),
                          (AXOLOTL_DEVICELIST, f"<list xmlns='eu.siacs.conversations.axolotl'>{devices}</list>")):
            opts = pubsub_form(self.c, PUBLISH_OPTIONS, {"access_model": "open"})
            await self.c.plugin["xep_0060"].publish(None, node, id="current", payload=payload(xml),
                                                    options=opts, timeout=5)

    async def sees(self, owner, ids):
        """Waits until the newest device lists of `owner` on both nodes it got list `ids`."""
        def both():
            return all(self.c.got(owner, node) and device_ids(self.c.got(owner, node)[-1].payload) == set(ids)
                       for node in (OMEMO_DEVICES, AXOLOTL_DEVICELIST))
        assert await until(both), (self.c.boundjid, owner, ids, self.c.events)


async def case_pep_omemo_shaped():
    """The PEP traffic of XEP-0384 (OMEMO 2) §5.3 and legacy OMEMO, between two accounts with
    two devices each: each device joins its account's device list, which its other device and
    the contact's devices are notified of (XEP-0163 §4.3); bundles are kept one per device
    (max_items=max, XEP-0060 §7.1.5 publish-options); a third account with no subscription reads
    a bundle by item id (XEP-0060 §6.5.8) and the device lists (access model open, §4.5)."""
    await pep_pair("om1", "om2")
    phone1 = await OmemoDevice("om1", "phone", 1001).online()
    await phone1.publish_bundle()
    await phone1.publish_devices({1001})
    laptop1 = await OmemoDevice("om1", "laptop", 1002).online()
    # The laptop learns the list from its own account's PEP (the last item), adds itself.
    await laptop1.sees("om1", {1001})
    await laptop1.publish_bundle()
    await laptop1.publish_devices({1001, 1002})
    await phone1.sees("om1", {1001, 1002})

    phone2 = await OmemoDevice("om2", "phone", 2001).online()
    laptop2 = await OmemoDevice("om2", "laptop", 2002).online()
    for d in (phone2, laptop2):
        await d.sees("om1", {1001, 1002})
    await phone2.publish_bundle()
    await phone2.publish_devices({2001})
    await laptop2.sees("om2", {2001})
    await laptop2.publish_bundle()
    await laptop2.publish_devices({2001, 2002})
    for d in (phone1, laptop1, phone2):
        await d.sees("om2", {2001, 2002})
    # Live notifications to the contact's devices, not only last items.
    live = [e for e in phone1.c.got("om2", OMEMO_DEVICES) if not e.delayed]
    assert live and device_ids(live[-1].payload) == {2001, 2002}, phone1.c.events

    stranger = await PepClient("om3").online()
    pubsub = stranger.plugin["xep_0060"]
    reply = await pubsub.get_item(jid("om1"), OMEMO_BUNDLES, "1002", timeout=5)
    assert item_ids(reply) == ["1002"], str(reply)
    bundle = reply["pubsub"]["items"]["item"]["payload"]
    assert bundle.tag == f"{{{OMEMO}}}bundle" and bundle.find(f"{{{OMEMO}}}ik").text == laptop1.key('ik'), str(reply)
    # Both bundles kept (max_items=max), and both device lists readable.
    assert sorted(item_ids(await pubsub.get_items(jid("om2"), OMEMO_BUNDLES, timeout=5))) == ["2001", "2002"]
    for node in (OMEMO_DEVICES, AXOLOTL_DEVICELIST):
        reply = await pubsub.get_items(jid("om1"), node, timeout=5)
        assert item_ids(reply) == ["current"], str(reply)
        assert device_ids(reply["pubsub"]["items"]["item"]["payload"]) == {1001, 1002}, str(reply)
    assert stranger.events == [], stranger.events
    for c in (phone1, laptop1, phone2, laptop2):
        await c.c.bye()
    await stranger.bye()


async def case_pep_avatar():
    """XEP-0084 with slixmpp's xep_0084 plugin: the publisher stores the data, then the
    metadata (§4.1, §4.2); the contact is notified of the metadata only (its caps say
    `urn:xmpp:avatar:metadata+notify`, not data) and fetches the data by the id it names (§4.3)."""
    await pep_pair("av1", "av2")
    b = PepClient("av2", plugins=("xep_0084",))
    metadata = []
    b.add_event_handler("avatar_metadata_publish", metadata.append)
    await b.online()
    a = await PepClient("av1", plugins=("xep_0084",)).online()
    image = bytes(range(256)) * 3
    avatar = a.plugin["xep_0084"]
    avatar_id = avatar.generate_id(image)
    await avatar.publish_avatar(image, timeout=5)
    # Width and height as strings: slixmpp 1.17.0 types them int but writes the value as given
    # into the attribute, and its serializer cannot write an int.
    await avatar.publish_avatar_metadata({"id": avatar_id, "type": "image/png", "bytes": len(image),
                                          "width": "32", "height": "24"}, timeout=5)
    assert await until(lambda: metadata), b.events
    infos = metadata[-1]["pubsub_event"]["items"]["item"]["avatar_metadata"]["items"]
    assert [(i["id"], i["type"], i["bytes"], i["width"], i["height"]) for i in infos] == \
        [(avatar_id, "image/png", len(image), 32, 24)], str(metadata[-1])
    reply = await b.plugin["xep_0084"].retrieve_avatar(JID(jid("av1")), avatar_id, timeout=5)
    assert reply["pubsub"]["items"]["item"]["id"] == avatar_id, str(reply)
    assert reply["pubsub"]["items"]["item"]["avatar_data"]["value"] == image
    await settle(0.5)
    assert b.got("av1", "urn:xmpp:avatar:data") == [], b.events
    await a.bye()
    await b.bye()


BOOKMARKS = "urn:xmpp:bookmarks:1"


async def case_pep_bookmarks():
    """XEP-0402 (slixmpp 1.17's xep_0402 has the <conference/> stanza only, so xep_0060
    publishes it) with the publish-options of §3.3: persist_items, max_items=max,
    send_last_published_item=never, access_model=whitelist. The account's other resource is
    notified of both bookmarks (§4, its caps say `urn:xmpp:bookmarks:1+notify`) and reads them
    back; a XEP-0048 client reads them from private XML and drops one, which the Bookmarks 2
    client sees retracted (§5.1 #compat); a contact with the same interest gets nothing and is
    refused the items (XEP-0060 §6.5.9.8: not-allowed, closed-node)."""
    await pep_pair("bm1", "bm2")
    a = await PepClient("bm1", "a", plugins=("xep_0402",)).online()
    await probe(a)
    b = await PepClient("bm1", "b", plugins=("xep_0402",), interests=(BOOKMARKS, PROBE)).online()
    contact = await PepClient("bm2", interests=(BOOKMARKS, PROBE)).online()
    await b.last_item("bm1", PROBE)
    await contact.last_item("bm1", PROBE)

    rooms = {"council@conference.localhost": ("Council of Oberon", True, "Puck"),
             "orchard@conference.localhost": ("The Orchard", False, "Titania")}
    Conference = a.plugin["xep_0402"].stanza.Conference
    for room, (name, autojoin, nick) in rooms.items():
        conf = Conference()
        conf["name"], conf["autojoin"], conf["nick"] = name, autojoin, nick
        opts = pubsub_form(a, PUBLISH_OPTIONS, {"persist_items": "true", "max_items": "max",
                                                "send_last_published_item": "never",
                                                "access_model": "whitelist"})
        await a.plugin["xep_0060"].publish(None, BOOKMARKS, id=room, payload=conf, options=opts, timeout=5)

    assert await until(lambda: len(b.got("bm1", BOOKMARKS)) == 2), b.events
    assert [e.id for e in b.got("bm1", BOOKMARKS)] == list(rooms), b.events
    reply = await b.plugin["xep_0060"].get_items(jid("bm1"), BOOKMARKS, timeout=5)
    got = {item["id"]: (item["conference"]["name"], item["conference"]["autojoin"], item["conference"]["nick"])
           for item in reply["pubsub"]["items"]}
    assert got == rooms, str(reply)

    # XEP-0402 §5.1 (#compat): a XEP-0048 client (slixmpp's xep_0048, private XML storage)
    # reads the same rooms, and the room it drops is retracted for the Bookmarks 2 clients.
    legacy = await PepClient("bm1", "legacy", plugins=("xep_0048",)).online()
    result = await legacy.plugin["xep_0048"].get_bookmarks(timeout=5)
    confs = {str(c["jid"]): (c["name"], c["autojoin"], c["nick"])
             for c in result["private"]["bookmarks"]["conferences"]}
    assert confs == rooms, str(result)
    kept = legacy.plugin["xep_0048"].stanza.Bookmarks()
    kept.add_conference("council@conference.localhost", "Puck", name="Council of Oberon", autojoin=True)
    await legacy.plugin["xep_0048"].set_bookmarks(kept, timeout=5)
    assert await until(lambda: [e.id for e in b.got("bm1", BOOKMARKS, "retract")]
                       == ["orchard@conference.localhost"]), b.events
    reply = await b.plugin["xep_0060"].get_items(jid("bm1"), BOOKMARKS, timeout=5)
    assert item_ids(reply) == ["council@conference.localhost"], str(reply)
    await legacy.bye()

    err = await iq_error(contact.plugin["xep_0060"].get_items(jid("bm1"), BOOKMARKS, timeout=5))
    assert pubsub_error(err) == ("not-allowed", "closed-node"), str(err)
    err = await iq_error(contact.plugin["xep_0060"].get_item(jid("bm1"), BOOKMARKS, "council@conference.localhost",
                                                             timeout=5))
    assert pubsub_error(err) == ("not-allowed", "closed-node"), str(err)
    await settle(0.5)
    assert contact.got("bm1", BOOKMARKS) == [], contact.events
    for c in (a, b, contact):
        await c.bye()


async def case_pep_generic_node():
    """XEP-0060 owner and publisher use cases with slixmpp's xep_0060 plugin on the account's own
    PEP service (its bare JID): create and configure (§8.1.3), configuration get and set (§8.2),
    the node in disco#items (§5.2), max_items honoured, retract with notify (§7.2.2.1), purge
    (§8.5) and delete (§8.4), each notified to the account's other resource interested in the
    node (XEP-0163 §4.3)."""
    node = "urn:example:starling-interop:notes"
    own = jid("ps1")
    a = await PepClient("ps1", "owner").online()
    pubsub = a.plugin["xep_0060"]
    config = pubsub_form(a, NODE_CONFIG, {"title": "Interop notes", "max_items": "10", "notify_retract": "0"})
    await pubsub.create_node(own, node, config=config, timeout=5)
    values = (await pubsub.get_node_config(own, node, timeout=5))["pubsub_owner"]["configure"]["form"].get_values()
    assert values["pubsub#title"] == "Interop notes" and values["pubsub#max_items"] == "10", values
    assert values["pubsub#notify_retract"] in (False, "0"), values
    assert values["pubsub#access_model"] == "presence", values  # PEP's default (XEP-0163 §4.1)
    renamed = pubsub_form(a, NODE_CONFIG, {"title": "Notes", "max_items": "2"})
    await pubsub.set_node_config(own, node, renamed, timeout=5)
    values = (await pubsub.get_node_config(own, node, timeout=5))["pubsub_owner"]["configure"]["form"].get_values()
    assert values["pubsub#title"] == "Notes" and values["pubsub#max_items"] == "2", values
    nodes = await pubsub.get_nodes(jid=own, timeout=5)
    assert (own, node) in [(str(i[0]), i[1]) for i in nodes["disco_items"]["items"]], str(nodes)

    def note(text):
        return payload(f"<note xmlns='{node}'>{text}</note>")

    for i in (1, 2):
        await pubsub.publish(own, node, id=f"n{i}", payload=note(f"note {i}"), timeout=5)
    other = await PepClient("ps1", "other", interests=(node,)).online()
    last = await other.last_item("ps1", node)
    assert last.id == "n2" and last.delayed and last.payload.text == "note 2", other.events
    await pubsub.publish(own, node, id="n3", payload=note("note 3"), timeout=5)
    assert await until(lambda: [e.id for e in other.got("ps1", node)] == ["n2", "n3"]), other.events
    assert sorted(item_ids(await pubsub.get_items(own, node, timeout=5))) == ["n2", "n3"]  # max_items 2

    await pubsub.retract(own, node, "n2", notify=True, timeout=5)
    assert await until(lambda: [e.id for e in other.got("ps1", node, "retract")] == ["n2"]), other.events
    assert item_ids(await pubsub.get_items(own, node, timeout=5)) == ["n3"]
    await pubsub.purge(own, node, timeout=5)
    assert await until(lambda: other.got("ps1", node, "purge")), other.events
    assert item_ids(await pubsub.get_items(own, node, timeout=5)) == []
    await pubsub.delete_node(own, node, timeout=5)
    assert await until(lambda: other.got("ps1", node, "delete")), other.events
    err = await iq_error(pubsub.get_items(own, node, timeout=5))
    assert pubsub_error(err) == ("item-not-found", None), str(err)
    await settle(0.5)
    assert [e.kind for e in other.events] == ["publish", "publish", "retract", "purge", "delete"], other.events
    await a.bye()
    await other.bye()


# ----- Multi-user chat (XEP-0045) at conference.localhost -----

MUC_SERVICE = f"conference.{DOMAIN}"


def room_jid(name):
    return f"{name}@{MUC_SERVICE}"


class MucClient(Client):
    """A client with slixmpp's own MUC plugins. It records, in order, every message stanza it gets
    (`stanzas`: slixmpp's `message` event, which Client records, is for those with a body only),
    every MUC presence (`presences`, xep_0045's `groupchat_presence`) and every XEP-0425
    moderation notice (`moderations`, xep_0425's `moderated_message`)."""

    PLUGINS = ("xep_0004", "xep_0045", "xep_0249", "xep_0313", "xep_0359", "xep_0421", "xep_0425")

    def __init__(self, user, resource="slix"):
        super().__init__(user, resource)
        for p in self.PLUGINS:
            self.register_plugin(p)
        self.muc = self.plugin["xep_0045"]
        self.stanzas = []
        self.presences = []
        self.moderations = []
        self.register_handler(Callback("every message", MatchXPath(f"{{{self.default_ns}}}message"),
                                       self.stanzas.append))
        self.add_event_handler("groupchat_presence", self.presences.append)
        self.add_event_handler("moderated_message", self.moderations.append)

    def groupchat(self, room):
        """The messages to all with a body from `room`'s occupants, in order."""
        return [m for m in self.stanzas
                if m["type"] == "groupchat" and m["from"].bare == room and m["body"]]

    def presences_of(self, room, nick, *codes):
        """The presences from `room/nick` that carry all the status `codes`."""
        return [p for p in self.presences
                if p["from"] == f"{room}/{nick}" and set(codes) <= p["muc"]["status_codes"]]

    async def join(self, room, nick, **history):
        """xep_0045's join_muc_wait: (own presence, subject, occupants' presences, history)."""
        return await self.muc.join_muc_wait(JID(room), nick, timeout=TIMEOUT, **history)

    async def create(self, room, nick):
        """Creates `room` by entering it (XEP-0045 §10.1.1: status 201, owner and moderator) and
        accepts the default configuration (an instant room, §10.1.2: an empty submitted form)."""
        pres, _, _, _ = await self.join(room, nick, maxstanzas=0)
        assert {110, 201} <= pres["muc"]["status_codes"], str(pres)
        assert (pres["muc"]["affiliation"], pres["muc"]["role"]) == ("owner", "moderator"), str(pres)
        await self.muc.set_room_config(room, self.plugin["xep_0004"].make_form(ftype="submit"), timeout=5)
        return pres


def occupant_id(stanza):
    return stanza["occupant-id"]["id"]


async def case_muc_create_configure():
    """XEP-0045 §10.1.1 and §10.1.3 with slixmpp's xep_0045: entering a new room creates it,
    locked (status 201; another user gets <item-not-found/>, §7.2.5 of the locked room); the owner
    fetches the configuration form (muc#roomconfig), submits it with a name and persistence, and
    the room opens. §6.1 and §6.3: the server lists the service and the service the room, with its
    name; §6.4: the room's disco#info shows muc_persistent and the name."""
    room = room_jid("interop-hall")
    owner = await MucClient("mcc1").online()
    other = await MucClient("mcc2").online()
    assert MUC_SERVICE in await server_items(owner), await server_items(owner)
    pres, _, occupants, _ = await owner.join(room, "Oberon", maxstanzas=0)
    codes = pres["muc"]["status_codes"]
    assert {110, 201} <= codes, str(pres)
    assert (pres["muc"]["affiliation"], pres["muc"]["role"]) == ("owner", "moderator"), str(pres)
    assert [str(p["from"]) for p in occupants] == [f"{room}/Oberon"], [str(p) for p in occupants]  # alone
    try:
        await other.join(room, "Puck", maxstanzas=0)
        raise AssertionError("entered a locked room")
    except PresenceError as e:
        assert e.condition == "item-not-found", str(e.presence)

    form = await owner.muc.get_room_config(room, timeout=5)
    fields = form.get_fields()
    # slixmpp gives a hidden field's value as a list.
    assert fields["FORM_TYPE"]["value"] == ["http://jabber.org/protocol/muc#roomconfig"], str(form)
    assert fields["muc#roomconfig_persistentroom"]["type"] == "boolean", str(form)
    assert fields["muc#roomconfig_persistentroom"]["value"] is False, str(form)  # temporary by default
    form.set_values({"muc#roomconfig_roomname": "The Hall of Oberon",
                     "muc#roomconfig_persistentroom": True})
    await owner.muc.set_room_config(room, form, timeout=5)
    values = (await owner.muc.get_room_config(room, timeout=5)).get_values()
    assert values["muc#roomconfig_roomname"] == "The Hall of Oberon", values
    assert values["muc#roomconfig_persistentroom"] is True, values

    items = await owner.plugin["xep_0030"].get_items(jid=MUC_SERVICE, timeout=5)
    listed = [(str(i[0]), i[2]) for i in items["disco_items"]["items"]]
    assert (room, "The Hall of Oberon") in listed, listed
    info = await other.plugin["xep_0030"].get_info(jid=room, timeout=5)
    features = info["disco_info"]["features"]
    assert "http://jabber.org/protocol/muc" in features, features
    assert "muc_persistent" in features and "muc_temporary" not in features, features
    identities = [(i[0], i[1], i[3]) for i in info["disco_info"]["identities"]]
    assert identities == [("conference", "text", "The Hall of Oberon")], identities
    # Unlocked: the other user enters now.
    pres, _, occupants, _ = await other.join(room, "Puck", maxstanzas=0)
    assert 201 not in pres["muc"]["status_codes"], str(pres)
    assert [str(p["from"]) for p in occupants] == [f"{room}/Oberon", f"{room}/Puck"], [str(p) for p in occupants]
    await owner.bye()
    await other.bye()


async def case_muc_chat_history():
    """XEP-0045 §7.4: messages to all are reflected to every occupant, the sender too, with the
    sender's id (muc#stable_id), the room's XEP-0359 <stanza-id by=room/> (§3: one id for every
    copy) and the XEP-0421 <occupant-id/> of the sender's presence. §7.2.15-§7.2.16: a newcomer
    that asks for maxstanzas=2 gets the last two messages, each with the room's XEP-0203 delay
    and the same ids, then the subject (xep_0045's join_muc_wait returns the history it caught)."""
    room = room_jid("interop-chat")
    alice = await MucClient("mch1").online()
    bob = await MucClient("mch2").online()
    carol = await MucClient("mch3").online()
    alice_pres = await alice.create(room, "alice")
    subject = "Lovers and madmen have such seething brains"
    alice.muc.set_subject(room, subject)
    assert await until(lambda: any(m["subject"] == subject for m in alice.stanzas)), alice.stanzas
    bob_pres, got_subject, occupants, history = await bob.join(room, "bob", maxstanzas=0)
    assert got_subject["subject"] == subject and history == [], (str(got_subject), history)
    assert [str(p["from"]) for p in occupants] == [f"{room}/alice", f"{room}/bob"], [str(p) for p in occupants]
    ids = {"alice": occupant_id(alice_pres), "bob": occupant_id(bob_pres)}
    assert all(ids.values()) and ids["alice"] != ids["bob"], ids
    # Bob sees the same occupant id for alice as she does for herself.
    assert occupant_id(occupants[0]) == ids["alice"], str(occupants[0])

    lines = [("alice", "The lunatic, the lover and the poet"), ("bob", "Are of imagination all compact"),
             ("alice", "One sees more devils than vast hell can hold")]
    sent = []
    for nick, body in lines:
        c = alice if nick == "alice" else bob
        m = c.make_message(mto=room, mbody=body, mtype="groupchat")
        m.send()
        sent.append((nick, m["id"], body))
        for each in (alice, bob):
            assert await until(lambda each=each: len(each.groupchat(room)) == len(sent)), each.groupchat(room)
    stanza_ids = []
    for each in (alice, bob):
        got = each.groupchat(room)
        assert [(m["from"].resource, m["id"], m["body"]) for m in got] == sent, [str(m) for m in got]
        for m, (nick, _, _) in zip(got, sent):
            assert m["stanza_id"]["by"] == room and m["stanza_id"]["id"], str(m)
            assert occupant_id(m) == ids[nick], (str(m), ids)
            assert m.xml.find("{urn:xmpp:delay}delay") is None, str(m)  # live, not history
        stanza_ids.append([m["stanza_id"]["id"] for m in got])
    assert stanza_ids[0] == stanza_ids[1] and len(set(stanza_ids[0])) == 3, stanza_ids

    _, got_subject, _, history = await carol.join(room, "carol", maxstanzas=2)
    assert [(m["from"].resource, m["id"], m["body"]) for m in history] == sent[1:], [str(m) for m in history]
    for m, sid, (nick, _, _) in zip(history, stanza_ids[0][1:], sent[1:]):
        assert m["delay"]["from"] == room and m["delay"]["stamp"] is not None, str(m)
        assert m["stanza_id"]["id"] == sid and occupant_id(m) == ids[nick], str(m)
    assert str(got_subject["from"]) == f"{room}/alice" and got_subject["subject"] == subject, str(got_subject)
    # In that order: the history, then the subject.
    order = [m["body"] or f"subject: {m['subject']}" for m in carol.stanzas if m["type"] == "groupchat"]
    assert order == [body for _, _, body in sent[1:]] + [f"subject: {subject}"], order
    for c in (alice, bob, carol):
        await c.bye()


async def case_muc_invite():
    """XEP-0045 §7.8.2 with xep_0045's invite(): the room passes the mediated invitation on to the
    invitee from the room's JID with the inviter's JID and reason; the invitee's decline
    (xep_0045's decline(), §7.8.2) reaches the inviter from the room. XEP-0249 with xep_0249's
    send_invitation: the direct invitation reaches the invitee from the inviter (§2), who then
    enters the room."""
    room = room_jid("interop-invite")
    alice = await MucClient("mci1").online()
    bob = await MucClient("mci2").online()
    carol = await MucClient("mci3").online()
    mediated, direct = [], []
    bob.add_event_handler("groupchat_invite", mediated.append)
    carol.add_event_handler("groupchat_direct_invite", direct.append)
    await alice.create(room, "alice")

    alice.muc.invite(room, jid("mci2"), reason="A play of Pyramus and Thisbe")
    assert await until(lambda: mediated), bob.stanzas
    inv = mediated[0]
    assert inv["from"] == room and inv["muc"]["invite"]["from"].bare == jid("mci1"), str(inv)
    assert inv["muc"]["invite"]["reason"] == "A play of Pyramus and Thisbe", str(inv)
    bob.muc.decline(room, inv["muc"]["invite"]["from"], reason="I have a part to learn")

    def declines():
        # slixmpp 1.17.0 raises no groupchat_decline event for clients (it looks the room up in
        # a table keyed by its own JIDs), so the message itself.
        return [m for m in alice.stanzas if m["from"] == room and m.xml.find(
            "{http://jabber.org/protocol/muc#user}x/{http://jabber.org/protocol/muc#user}decline") is not None]
    assert await until(declines), alice.stanzas
    dec = declines()[0]["muc"]["decline"]
    assert JID(dec["from"]).bare == jid("mci2") and dec["reason"] == "I have a part to learn", str(declines()[0])

    alice.plugin["xep_0249"].send_invitation(JID(jid("mci3")), JID(room), reason="Bring the lion")
    assert await until(lambda: direct), carol.stanzas
    d = direct[0]
    assert d["from"] == alice.boundjid.full, str(d)
    assert d["groupchat_invite"]["jid"] == room and d["groupchat_invite"]["reason"] == "Bring the lion", str(d)
    await carol.join(d["groupchat_invite"]["jid"], "carol", maxstanzas=0)
    assert await until(lambda: alice.presences_of(room, "carol")), alice.presences
    assert len(mediated) == 1 and len(direct) == 1, (mediated, direct)
    for c in (alice, bob, carol):
        await c.bye()


async def case_muc_kick_ban():
    """XEP-0045 §8.2 with xep_0045's set_role(role='none'): the kicked occupant gets its own
    unavailable presence with 110 and 307, the actor and the reason, the others 307; it may come
    back. §9.1 with set_affiliation('outcast'): the banned one gets 110 and 301, the others 301;
    the outcast list (§9.2, get_affiliation_list) names it, and entering again is refused with
    <forbidden/> (§7.2.8)."""
    room = room_jid("interop-court")
    alice = await MucClient("mck1").online()
    bob = await MucClient("mck2").online()
    carol = await MucClient("mck3").online()
    await alice.create(room, "alice")
    await bob.join(room, "bob", maxstanzas=0)
    await carol.join(room, "carol", maxstanzas=0)
    assert await until(lambda: alice.presences_of(room, "carol") and bob.presences_of(room, "carol"))

    await alice.muc.set_role(room, "bob", "none", reason="Out, sword, and wound", timeout=5)
    assert await until(lambda: bob.presences_of(room, "bob", 110, 307)), bob.presences
    own = bob.presences_of(room, "bob", 110, 307)[0]
    assert own["type"] == "unavailable" and own["muc"]["role"] == "none", str(own)
    assert own["muc"]["item"]["actor"]["nick"] == "alice", str(own)
    assert own["muc"]["item"]["reason"] == "Out, sword, and wound", str(own)
    assert await until(lambda: carol.presences_of(room, "bob", 307)), carol.presences
    seen = carol.presences_of(room, "bob", 307)[0]
    assert seen["type"] == "unavailable" and 110 not in seen["muc"]["status_codes"], str(seen)

    # A kick is no ban.
    await bob.join(room, "bob", maxstanzas=0)
    await alice.muc.set_affiliation(room, "outcast", jid=JID(jid("mck2")), reason="Hence, away!", timeout=5)
    assert await until(lambda: bob.presences_of(room, "bob", 110, 301)), bob.presences
    own = bob.presences_of(room, "bob", 110, 301)[0]
    assert own["type"] == "unavailable" and own["muc"]["affiliation"] == "outcast", str(own)
    assert own["muc"]["item"]["reason"] == "Hence, away!", str(own)
    assert await until(lambda: carol.presences_of(room, "bob", 301)), carol.presences
    outcasts = await alice.muc.get_affiliation_list(room, "outcast", timeout=5)
    assert outcasts == [JID(jid("mck2"))], outcasts
    try:
        await bob.join(room, "bob", maxstanzas=0)
        raise AssertionError("a banned user entered")
    except PresenceError as e:
        assert e.condition == "forbidden", str(e.presence)
    for c in (alice, bob, carol):
        await c.bye()


async def case_muc_moderate():
    """XEP-0425 (urn:xmpp:message-moderate:1) with slixmpp's xep_0425: the room advertises the
    feature (§2); a participant may not moderate (<forbidden/>, §4.2); a moderator retracts a
    message by the room's stanza id and both occupants get the room's retraction (§4.1: a XEP-0424
    <retract id/> holding <moderated by/> with the moderator's occupant id, and the reason); a
    newcomer's history no longer holds the message (§6) and the room's archive has a tombstone
    in its place (§5, xep_0313). The reasons are checked last, so that a misplaced one does not
    hide the rest."""
    room = room_jid("interop-moderated")
    alice = await MucClient("mcm1").online()
    bob = await MucClient("mcm2").online()
    carol = await MucClient("mcm3").online()
    alice_pres = await alice.create(room, "alice")
    info = await bob.plugin["xep_0030"].get_info(jid=room, timeout=5)
    assert "urn:xmpp:message-moderate:1" in info["disco_info"]["features"], str(info)
    await bob.join(room, "bob", maxstanzas=0)
    bob.send_message(mto=room, mbody="Buy Bottom's ass-head, cheap!", mtype="groupchat")
    for c in (alice, bob):
        assert await until(lambda c=c: c.groupchat(room)), c.stanzas
    sid = alice.groupchat(room)[0]["stanza_id"]["id"]
    assert sid and bob.groupchat(room)[0]["stanza_id"]["id"] == sid

    err = await iq_error(bob.plugin["xep_0425"].moderate(JID(room), sid, "Mine own", timeout=5))
    assert err["error"]["condition"] == "forbidden", str(err)
    await alice.plugin["xep_0425"].moderate(JID(room), sid, "Spam", timeout=5)
    for c in (alice, bob):
        assert await until(lambda c=c: c.moderations), c.stanzas
    for c in (alice, bob):
        m = c.moderations[0]
        assert m["from"] == room and m["type"] == "groupchat", str(m)
        assert m["retract"]["id"] == sid, str(m)
        assert m["retract"]["moderated"]["by"] == f"{room}/alice", str(m)
        assert m["retract"]["moderated"]["occupant-id"]["id"] == occupant_id(alice_pres), str(m)
    _, _, _, history = await carol.join(room, "carol", maxstanzas=20)
    assert history == [], [str(m) for m in history]
    # §5: the archive keeps a tombstone under the same id, the body gone, <retracted/> holding
    # <moderated by/>.
    reply = await bob.plugin["xep_0313"].retrieve(jid=JID(room), timeout=5)
    tombstones = [m["mam_result"]["forwarded"]["stanza"] for m in reply["mam"]["results"]
                  if m["mam_result"]["id"] == sid]
    assert len(tombstones) == 1, str(reply)
    tomb = tombstones[0]
    assert not tomb["body"] and tomb.xml.find("{urn:xmpp:message-retract:1}retracted") is not None, str(tomb)
    assert tomb["retracted"]["moderated"]["by"] == f"{room}/alice", str(tomb)
    await settle(0.3)
    for c in (alice, bob):
        assert len(c.moderations) == 1, [str(m) for m in c.moderations]
    # XEP-0425 §4.1 (and §5 for the tombstone): the reason is a child of <retract/> (and of
    # <retracted/>) in urn:xmpp:message-retract:1, where slixmpp's Retract and Retracted read it.
    for c in (alice, bob):
        m = c.moderations[0]
        assert m["retract"]["reason"] == "Spam", f"no <reason/> in <retract/>'s namespace: {m}"
    assert tomb["retracted"]["reason"] == "Spam", f"no <reason/> in <retracted/>'s namespace: {tomb}"
    for c in (alice, bob, carol):
        await c.bye()


async def case_muc_mam():
    """XEP-0313 on the room's JID with slixmpp's xep_0313 (XEP-0045 rooms archive their messages,
    status 170): an occupant pages through the archive (RSM max=2) and gets every message as it
    was reflected, forwarded from the room's occupant JIDs with a delay, in order, whose archive
    ids are the stanza ids delivered live (XEP-0359 §3); `with` an occupant JID gets that
    occupant's messages only; someone who never entered the (open) room may query too."""
    room = room_jid("interop-archive")
    alice = await MucClient("mcam1").online()
    bob = await MucClient("mcam2").online()
    pres = await alice.create(room, "alice")
    assert 170 in pres["muc"]["status_codes"], str(pres)
    await bob.join(room, "bob", maxstanzas=0)
    sent = []
    for i in range(2):
        for nick, c in (("alice", alice), ("bob", bob)):
            body = f"{nick}'s line {i}"
            c.send_message(mto=room, mbody=body, mtype="groupchat")
            sent.append((nick, body))
            assert await until(lambda: len(bob.groupchat(room)) == len(sent)), bob.groupchat(room)
    live_ids = [m["stanza_id"]["id"] for m in bob.groupchat(room)]

    got = [m async for m in bob.plugin["xep_0313"].iterate(jid=JID(room), rsm={"max": 2})]
    fwd = [m["mam_result"]["forwarded"] for m in got]
    assert [(f["stanza"]["from"].resource, f["stanza"]["body"]) for f in fwd] == sent, [str(m) for m in got]
    assert [m["mam_result"]["id"] for m in got] == live_ids, ([m["mam_result"]["id"] for m in got], live_ids)
    for m, f in zip(got, fwd):
        assert m["from"] == room and f["stanza"]["type"] == "groupchat", str(m)
        assert f["delay"]["stamp"] is not None, str(m)

    stranger = await MucClient("mcam3").online()
    reply = await stranger.plugin["xep_0313"].retrieve(jid=JID(room), with_jid=JID(f"{room}/bob"), timeout=5)
    bodies = [m["mam_result"]["forwarded"]["stanza"]["body"] for m in reply["mam"]["results"]]
    assert bodies == [body for nick, body in sent if nick == "bob"], bodies
    assert reply["mam_fin"]["complete"] in (True, "true"), str(reply)
    for c in (alice, bob, stranger):
        await c.bye()


CASES = [
    ("login_scram_sha1_starttls", lambda: login("SCRAM-SHA-1", False)),
    ("login_scram_sha256_starttls", lambda: login("SCRAM-SHA-256", False)),
    ("login_scram_sha1_direct_tls", lambda: login("SCRAM-SHA-1", True)),
    ("login_scram_sha256_direct_tls", lambda: login("SCRAM-SHA-256", True)),
    ("ping", case_ping),
    ("seed1_refusal_unsubscribe", case_seed1_refusal_unsubscribe),
    ("seed1_refusal_unsubscribed", case_seed1_refusal_unsubscribed),
    ("seed2_approve_then_refuse", case_seed2_approve_then_refuse),
    ("seed3_both", case_seed3_both),
    ("receipts_disco_caps", case_receipts_disco_caps),
    ("offline_delivery", case_offline_delivery),
    ("sm_resume_after_cut", case_sm_resume_after_cut),
    ("sm_resume_takeover", case_sm_resume_takeover),
    ("sm_no_resume_offline", case_sm_no_resume_offline),
    ("component", case_component),
    ("component_bad_secret", case_component_bad_secret),
    ("carbons_two_devices", case_carbons_two_devices),
    ("mam_history", case_mam_history),
    ("blocking", case_blocking),
    ("register_with_invite", case_register_with_invite),
    ("pep_tune_nick", case_pep_tune_nick),
    ("pep_omemo_shaped", case_pep_omemo_shaped),
    ("pep_avatar", case_pep_avatar),
    ("pep_bookmarks", case_pep_bookmarks),
    ("pep_generic_node", case_pep_generic_node),
    ("muc_create_configure", case_muc_create_configure),
    ("muc_chat_history", case_muc_chat_history),
    ("muc_invite", case_muc_invite),
    ("muc_kick_ban", case_muc_kick_ban),
    ("muc_moderate", case_muc_moderate),
    ("muc_mam", case_muc_mam),
]

USERS = ["login", "pinger", "s1a", "s1b", "s1c", "s1d", "s2a", "s2b", "s3a", "s3b", "r1", "r2", "o1", "o2",
         "sma", "smb", "smta", "smtb", "smoa", "smob", "comp",
         "cb1", "cb2", "mh1", "mh2", "bl1", "bl2", "inv1",
         "pep1", "pep2", "om1", "om2", "om3", "av1", "av2", "bm1", "bm2", "ps1",
         "mcc1", "mcc2", "mch1", "mch2", "mch3", "mci1", "mci2", "mci3", "mck1", "mck2", "mck3",
         "mcm1", "mcm2", "mcm3", "mcam1", "mcam2", "mcam3"]


async def main():
    with open(RESULTS, "a") as out:
        for name, case in CASES:
            start = time.monotonic()
            try:
                await asyncio.wait_for(case(), 60)
                verdict = "pass"
            except BaseException:  # noqa: BLE001 - every failure is a verdict
                traceback.print_exc()
                verdict = "fail"
            print(f"slixmpp/{name} {verdict} ({time.monotonic() - start:.1f} s)", flush=True)
            out.write(f"slixmpp/{name} {verdict}\n")


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--users":
        print(" ".join(USERS))
    elif len(sys.argv) == 8:
        HOST, STARTTLS, DIRECT, RESULTS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        COMPONENT_PORT, COMPONENT_DOMAIN, COMPONENT_SECRET = int(sys.argv[5]), sys.argv[6], sys.argv[7]
        asyncio.run(main())
    else:
        sys.exit(__doc__)
