"""Federation scenarios between two running XMPP servers, driven by slixmpp clients.

Usage:
  fed_driver.py MODE PAIR RESULTS LOGDIR A B
  fed_driver.py --cases MODE

MODE    which certificates both servers were started with (run.sh):
          standard      test-CA certificates with EKU serverAuth + clientAuth
          noclientauth  test-CA certificates with EKU serverAuth only
          untrusted     certificates from a CA neither server trusts
PAIR    the prefix of the verdict lines, e.g. prosody-ejabberd (A first)
RESULTS file the verdict lines are appended to: "PAIR/CASE: pass|fail|skip (reason)"
LOGDIR  where the raw s2s wire transcripts of the probe go
A, B    TYPE:DOMAIN:ADDRESS:LOGFILE of each server; c2s on ADDRESS:5222, s2s on ADDRESS:5269.
        User alice on A and bob on B exist with password "pw" (run.sh creates them).

Every case asserts the exact stanzas the clients receive (addresses, types, ids, payload
elements) and cites the section it checks. The authentication cases read the servers' own logs
(see auth_events) and the bidi case counts TCP connections with `ss`. `--cases MODE` prints
the case names of MODE, one a line (run.sh writes skips with them).
"""
import asyncio
import copy
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET

import slixmpp

PASSWORD = "pw"
RESOURCE = "fed"
TIMEOUT = 20  # a first s2s connection may include DNS, TLS and a dialback round trip
CERTS = os.environ.get("FED_CERTS", "")
PROBE_DOMAIN = "probe.fed.test"

NS_CLIENT = "jabber:client"
NS_ROSTER = "jabber:iq:roster"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_PING = "urn:xmpp:ping"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIDI_FEATURE = "urn:xmpp:features:bidi"

ET.register_namespace("", NS_CLIENT)


def q(ns, name):
    return f"{{{ns}}}{name}"


def show(el):
    return ET.tostring(el, encoding="unicode")


class Server:
    def __init__(self, spec):
        self.type, self.domain, self.addr, self.log = spec.split(":", 3)

    def __str__(self):
        return self.domain


# ----------------------------------------------------------------------------- clients

class Client(slixmpp.ClientXMPP):
    """A client that records every stanza it receives (a copy of the XML, in order) and sends
    the stanzas under test as raw XML, exactly as written in the cases."""

    def __init__(self, user, server):
        super().__init__(f"{user}@{server.domain}/{RESOURCE}", PASSWORD)
        self.srv = server
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199")  # answers pings (XEP-0199 §4.4)
        self.auto_authorize = None  # the cases decide about subscriptions
        self.auto_subscribe = False
        self.enable_plaintext = False
        self.enable_direct_tls = False
        # The c2s certificate is not what is under test (and in the untrusted mode no CA we
        # know signed it).
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.inbox = []
        self.ready = asyncio.Event()
        self.add_filter("in", self._record)
        self.add_event_handler("session_start", self._start)

    def _record(self, stanza):
        self.inbox.append(copy.deepcopy(stanza.xml))
        return stanza

    async def _start(self, _):
        await self.get_roster()  # an interested resource gets roster pushes (RFC 6121 §2.1.6)
        self.send_raw("<presence/>")
        self.ready.set()

    async def online(self):
        self.connect(self.srv.addr, 5222)
        await asyncio.wait_for(self.ready.wait(), TIMEOUT)
        return self

    @property
    def bare(self):
        return self.boundjid.bare

    @property
    def full(self):
        return self.boundjid.full

    def put(self, xml):
        self.send_raw(xml)

    async def expect(self, what, pred, timeout=TIMEOUT):
        """The first stanza received (so far or within `timeout`) that satisfies pred."""
        deadline = time.monotonic() + timeout
        while True:
            for el in self.inbox:
                if pred(el):
                    return el
            if time.monotonic() > deadline:
                recent = "\n    ".join(show(el) for el in self.inbox[-6:])
                raise AssertionError(f"{self.bare} waited {timeout} s for: {what}; last received:\n    {recent}")
            await asyncio.sleep(0.05)

    async def bye(self):
        self.disconnect()
        await asyncio.sleep(0.3)


def is_stanza(el, name, **attrs):
    if el.tag != q(NS_CLIENT, name):
        return False
    return all(el.get(k.rstrip("_")) == v for k, v in attrs.items())


def roster_pushes(client, jid):
    """(subscription, ask) of every roster push about `jid` that `client` received, in order."""
    out = []
    for el in client.inbox:
        if is_stanza(el, "iq", type="set"):
            for item in el.findall(f"{q(NS_ROSTER, 'query')}/{q(NS_ROSTER, 'item')}"):
                if item.get("jid") == jid:
                    out.append((item.get("subscription"), item.get("ask")))
    return out


def fold(pushes):
    """Consecutive identical pushes as one."""
    return [p for i, p in enumerate(pushes) if i == 0 or p != pushes[i - 1]]


def check_error(el, error_type, condition):
    err = el.find(q(NS_CLIENT, "error"))
    assert err is not None, f"no <error/> in {show(el)}"
    assert err.get("type") == error_type, f"error type {err.get('type')!r}, expected {error_type!r}: {show(el)}"
    assert err.find(q(NS_STANZAS, condition)) is not None, f"no <{condition}/> in {show(el)}"


# ----------------------------------------------------------------------------- the cases

class Pair:
    def __init__(self, mode, a, b, logdir):
        self.mode, self.a, self.b, self.logdir = mode, a, b, logdir
        self.alice = self.bob = None
        self.probes = {}
        self.traffic = {"a_to_b": False, "b_to_a": False}

    def ends(self, direction):
        """(sender, receiver) clients for "a_to_b" or "b_to_a"."""
        return (self.alice, self.bob) if direction == "a_to_b" else (self.bob, self.alice)

    # -- RFC 6121 §3: the seed flow, request and approval both ways ending in 'both'.
    async def seed_both(self):
        a, b = self.alice, self.bob
        # RFC 6121 §2.3.2/§2.1.6: the roster set (the seed's first stanza) comes back as a push
        # with subscription='none' and no 'ask'.
        a.put(f"<iq type='set' id='seed-1'><query xmlns='{NS_ROSTER}'><item jid='{b.bare}' name='bob'>"
               "<group>Friends</group></item></query></iq>")
        await a.expect("result of the roster set", lambda e: is_stanza(e, "iq", type="result", id="seed-1"))
        # §3.1.2: the user's server pushes the item with ask='subscribe' and routes the request,
        # stamped with the user's bare JID, to the contact's server; §3.1.3: it is delivered
        # to the contact.
        a.put(f"<presence id='seed-2' to='{b.bare}' type='subscribe'/>")
        sub = await b.expect("subscription request", lambda e: is_stanza(e, "presence", type="subscribe"))
        assert sub.get("from") == a.bare, f"request not from the bare JID {a.bare}: {show(sub)}"
        assert sub.get("id") == "seed-2", f"id not kept: {show(sub)}"
        # §3.1.5: the contact approves; its server pushes subscription='from' and sends the
        # contact's presence to the user. §3.1.6: the user's server pushes subscription='to'
        # and delivers the 'subscribed' from the contact's bare JID.
        b.put(f"<presence id='seed-3' to='{a.bare}' type='subscribed'/>")
        ok = await a.expect("approval", lambda e: is_stanza(e, "presence", type="subscribed"))
        assert ok.get("from") == b.bare, f"approval not from the bare JID {b.bare}: {show(ok)}"
        await a.expect(f"available presence from {b.full}",
                       lambda e: is_stanza(e, "presence", from_=b.full) and e.get("type") is None)
        # The reverse request and its approval.
        b.put(f"<presence id='seed-4' to='{a.bare}' type='subscribe'/>")
        sub = await a.expect("reverse subscription request",
                             lambda e: is_stanza(e, "presence", type="subscribe"))
        assert sub.get("from") == b.bare, show(sub)
        a.put(f"<presence id='seed-5' to='{b.bare}' type='subscribed'/>")
        ok = await b.expect("reverse approval", lambda e: is_stanza(e, "presence", type="subscribed"))
        assert ok.get("from") == a.bare, show(ok)
        await b.expect(f"available presence from {a.full}",
                       lambda e: is_stanza(e, "presence", from_=a.full) and e.get("type") is None)
        # Every push, in order (Appendix A's state tables): the user none -> none+ask ->
        # to -> both; the contact (no item until it approves) from -> from+ask -> both. A push
        # repeating the item unchanged (ejabberd sends one when the reverse request arrives and
        # the item gains its invisible "pending in") changes nothing for the client: such
        # repeats are folded, and named in the reason.
        want_a = [("none", None), ("none", "subscribe"), ("to", None), ("both", None)]
        want_b = [("from", None), ("from", "subscribe"), ("both", None)]
        ok_a = await until(lambda: fold(roster_pushes(a, b.bare)) == want_a)
        ok_b = await until(lambda: fold(roster_pushes(b, a.bare)) == want_b)
        await asyncio.sleep(1)  # and nothing after them
        got_a, got_b = roster_pushes(a, b.bare), roster_pushes(b, a.bare)
        assert ok_a and fold(got_a) == want_a, f"{a.bare}'s pushes for {b.bare}: {got_a}, expected {want_a}"
        assert ok_b and fold(got_b) == want_b, f"{b.bare}'s pushes for {a.bare}: {got_b}, expected {want_b}"
        repeats = [f"{c.srv.type} repeated the unchanged '{sub}' push" for c, got in ((a, got_a), (b, got_b))
                   for sub in [got[i][0] for i in range(1, len(got)) if got[i] == got[i - 1]]]
        self.traffic["a_to_b"] = self.traffic["b_to_a"] = True
        return "; ".join(repeats) or None

    # -- RFC 6121 §4.2.2/§4.4.2: presence broadcast to a subscribed remote contact.
    async def presence(self):
        a, b = self.alice, self.bob
        for sender, receiver, show_ in ((a, b, "away"), (b, a, "dnd")):
            # The initial presence reached the contact from the sender's full JID (seed_both
            # waited for it), and so does a change of availability (§4.4.2).
            sender.put(f"<presence id='pres-{show_}'><show>{show_}</show><status>federated {show_}</status></presence>")
            el = await receiver.expect(f"presence with <show>{show_}</show> from {sender.full}",
                                       lambda e: is_stanza(e, "presence", from_=sender.full)
                                       and e.findtext(q(NS_CLIENT, "show")) == show_)
            assert el.get("type") is None, show(el)
            assert el.findtext(q(NS_CLIENT, "status")) == f"federated {show_}", show(el)
            assert el.get("to") in (receiver.bare, receiver.full), show(el)

    # -- XEP-0184 §4 (the seed's receipt exchange), over federation.
    async def receipt(self, direction):
        sender, receiver = self.ends(direction)
        mid = f"receipt-{direction}"
        body = "My lord, dispatch; read o'er these articles."
        sender.put(f"<message id='{mid}' to='{receiver.bare}' type='chat'><body>{body}</body>"
                    f"<request xmlns='{NS_RECEIPTS}'/></message>")
        msg = await receiver.expect("the message", lambda e: is_stanza(e, "message", id=mid))
        assert msg.get("from") == sender.full, f"not from {sender.full}: {show(msg)}"
        assert msg.get("type") == "chat" and msg.findtext(q(NS_CLIENT, "body")) == body, show(msg)
        assert msg.find(q(NS_RECEIPTS, "request")) is not None, f"<request/> lost: {show(msg)}"
        receiver.put(f"<message id='ack-{mid}' to='{sender.full}'><received xmlns='{NS_RECEIPTS}' id='{mid}'/></message>")
        ack = await sender.expect("the receipt", lambda e: is_stanza(e, "message", id=f"ack-{mid}"))
        assert ack.get("from") == receiver.full, f"receipt not from {receiver.full}: {show(ack)}"
        rec = ack.find(q(NS_RECEIPTS, "received"))
        assert rec is not None and rec.get("id") == mid, f"no <received id='{mid}'/>: {show(ack)}"
        self.traffic[direction] = True
        return f"receipt from {receiver.full}"

    # -- XEP-0199 §4.2 (a client pinging a server, here the remote one).
    async def ping_server(self, direction):
        sender, receiver = self.ends(direction)
        target = receiver.srv.domain
        iid = f"ping-server-{direction}"
        sender.put(f"<iq type='get' id='{iid}' to='{target}'><ping xmlns='{NS_PING}'/></iq>")
        el = await sender.expect("the ping answer", lambda e: is_stanza(e, "iq", id=iid))
        assert el.get("type") == "result", f"not a result: {show(el)}"
        assert el.get("from") == target, f"not from {target}: {show(el)}"
        assert len(el) == 0, f"a result with a payload: {show(el)}"

    # -- XEP-0199 §4.4 (client to client), the remote client answering.
    async def ping_full_jid(self, direction):
        sender, receiver = self.ends(direction)
        iid = f"ping-full-{direction}"
        sender.put(f"<iq type='get' id='{iid}' to='{receiver.full}'><ping xmlns='{NS_PING}'/></iq>")
        el = await sender.expect("the ping answer", lambda e: is_stanza(e, "iq", id=iid))
        assert el.get("type") == "result", f"not a result: {show(el)}"
        assert el.get("from") == receiver.full, f"not from {receiver.full}: {show(el)}"

    # -- RFC 6121 §8.5.1 (no such user): a message gets <service-unavailable/> back (or is
    # dropped, which §8.5.1 also allows, and which this case counts as a failure because the
    # sender then cannot tell); RFC 6120 §8.3.3.19: its type is cancel; the error comes from the
    # address the message was sent to (RFC 6120 §8.3.1). An IQ must be answered too (RFC 6120
    # §8.2.3): §8.5.1 asks <service-unavailable/> for one to a missing account, but a server may
    # answer a ping to a bare JID itself, so the reason only records what came back.
    async def missing_user(self, direction):
        sender, receiver = self.ends(direction)
        nobody = f"nobody@{receiver.srv.domain}"
        mid, iid = f"missing-msg-{direction}", f"missing-iq-{direction}"
        sender.put(f"<message id='{mid}' to='{nobody}' type='chat'><body>anyone there?</body></message>")
        sender.put(f"<iq type='get' id='{iid}' to='{nobody}'><ping xmlns='{NS_PING}'/></iq>")
        msg = await sender.expect("the message's error", lambda e: is_stanza(e, "message", id=mid))
        assert msg.get("type") == "error" and msg.get("from") == nobody, show(msg)
        check_error(msg, "cancel", "service-unavailable")
        iq = await sender.expect("the IQ's answer", lambda e: is_stanza(e, "iq", id=iid))
        assert iq.get("from") == nobody and iq.get("type") in ("result", "error"), show(iq)
        if iq.get("type") == "error":
            err = iq.find(q(NS_CLIENT, "error"))
            cond = [c.tag.split("}")[1] for c in err if c.tag.startswith(f"{{{NS_STANZAS}}}") and not c.tag.endswith("}text")] if err is not None else []
            iq_text = f"error {err.get('type') if err is not None else '?'}/{','.join(cond)}"
        else:
            iq_text = "result"
        echoed = msg.findtext(q(NS_CLIENT, "body")) is not None
        return (f"message: service-unavailable/cancel{', body echoed' if echoed else ''}; "
                f"ping to the bare JID: {iq_text}")

    # -- messages both ways with receipts, for the configuration modes.
    async def exchange(self):
        await self.receipt("a_to_b")
        await self.receipt("b_to_a")

    # -- how each direction authenticated (RFC 6120 §6.4 SASL EXTERNAL / XEP-0220 dialback).
    async def auth_external(self):
        return await self.judge_auth(lambda mechs: mechs == {"EXTERNAL"}, "EXTERNAL")

    async def external_no_clientauth(self):
        await self.exchange()
        return await self.judge_auth(lambda mechs: bool(mechs), "any mechanism")

    async def dialback_untrusted(self):
        await self.exchange()
        return await self.judge_auth(lambda mechs: mechs == {"dialback"}, "dialback")

    async def judge_auth(self, acceptable, wanted):
        """Each direction that carried traffic must have been authenticated, by mechanisms that
        `acceptable` accepts. The reason names them, and EXTERNAL refusals, per direction."""
        deadline = time.monotonic() + 10
        while True:
            _, bad = self.auth_summary()
            if not bad or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        # ejabberd's log handler writes with a delay (Erlang's delayed_write: up to 2 s), so
        # the lines about refused attempts may trail the ones the loop waited for.
        await asyncio.sleep(3)
        summary, _ = self.auth_summary()
        verdicts = []
        for direction, (src, dst) in (("a_to_b", (self.a, self.b)), ("b_to_a", (self.b, self.a))):
            mechs, via_bidi, refusals = summary[direction]
            label = f"{src.domain.split('.')[0]}->{dst.domain.split('.')[0]}"
            if via_bidi and not mechs:
                text = f"{label} over the other direction's bidi stream"
            else:
                text = f"{label} {'+'.join(sorted(mechs)) or 'not authenticated'}"
            if refusals:
                text += f" (EXTERNAL failed: {'; '.join(sorted(refusals))})"
            verdicts.append(text)
            if not (via_bidi and not mechs) and not acceptable(mechs):
                raise AssertionError(f"expected {wanted}: " + ", ".join(verdicts))
        return ", ".join(verdicts)

    def auth_summary(self):
        """{direction: (successful mechanisms, carried by a bidi stream, EXTERNAL refusals)}
        from both servers' logs: for A->B, A's outgoing and B's incoming events. Streams of
        the wire probe (PROBE_DOMAIN) are left out."""
        events = auth_events(self.a) + auth_events(self.b)
        summary, bad = {}, False
        for direction, (src, dst) in (("a_to_b", (self.a, self.b)), ("b_to_a", (self.b, self.a))):
            mechs, bidi, refusals = set(), False, set()
            for ev in events:
                fwd = (ev["dir"] == "out" and ev["local"] == src.domain and ev["remote"] == dst.domain) \
                    or (ev["dir"] == "in" and ev["local"] == dst.domain and ev["remote"] == src.domain)
                rev = (ev["dir"] == "out" and ev["local"] == dst.domain and ev["remote"] == src.domain) \
                    or (ev["dir"] == "in" and ev["local"] == src.domain and ev["remote"] == dst.domain)
                if fwd and ev.get("failed"):
                    # The receiver's words if it logged any, else the sender's.
                    refusals.add((0 if ev["dir"] == "in" else 1, ev["reason"]))
                elif fwd:
                    mechs.add(ev["mech"])
                if rev and ev.get("bidi"):
                    bidi = True
            if self.traffic[direction] and not mechs and not bidi:
                bad = True
            if refusals:
                first = min(r[0] for r in refusals)
                refusals = {r[1] for r in refusals if r[0] == first}
            summary[direction] = (mechs, bidi, refusals)
        return summary, bad

    # -- XEP-0288: one stream for both directions where both servers offer it.
    async def bidi(self):
        lacking = [s.domain for s in (self.a, self.b) if not self.probes.get(s.domain, {}).get("bidi")]
        if lacking:
            raise Skip(f"{' and '.join(lacking)} does not offer {NS_BIDI_FEATURE}" if len(lacking) == 1
                       else f"{' and '.join(lacking)} do not offer {NS_BIDI_FEATURE}")
        # Traffic went both ways in the earlier cases; what is left open between the two?
        n = s2s_connections(self.a, self.b)
        assert n == 1, f"{n} s2s connections between {self.a} and {self.b}, expected 1 (bidi)"
        summary, _ = self.auth_summary()
        assert summary["a_to_b"][1] or summary["b_to_a"][1], "no stream negotiated bidi in the logs"
        return "one connection carries both directions"


class Skip(Exception):
    pass


async def until(pred, seconds=TIMEOUT):
    deadline = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


CASES = {
    "standard": [
        ("seed_both", lambda p: p.seed_both()),
        ("presence", lambda p: p.presence()),
        ("receipt_a_to_b", lambda p: p.receipt("a_to_b")),
        ("receipt_b_to_a", lambda p: p.receipt("b_to_a")),
        ("ping_server_a_to_b", lambda p: p.ping_server("a_to_b")),
        ("ping_server_b_to_a", lambda p: p.ping_server("b_to_a")),
        ("ping_full_jid_a_to_b", lambda p: p.ping_full_jid("a_to_b")),
        ("ping_full_jid_b_to_a", lambda p: p.ping_full_jid("b_to_a")),
        ("missing_user_a_to_b", lambda p: p.missing_user("a_to_b")),
        ("missing_user_b_to_a", lambda p: p.missing_user("b_to_a")),
        ("auth_external", lambda p: p.auth_external()),
        ("bidi", lambda p: p.bidi()),
    ],
    "noclientauth": [("external_no_clientauth", lambda p: p.external_no_clientauth())],
    "untrusted": [("dialback_untrusted", lambda p: p.dialback_untrusted())],
}


# ----------------------------------------------------------------------------- server logs

def auth_events(server):
    """The s2s authentication events in a server's log, as dicts: dir (in|out), local, remote,
    mech, bidi; or failed=True with a reason (an EXTERNAL attempt refused)."""
    try:
        with open(server.log, errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    events = []
    if server.type == "prosody":
        # mod_fedtest_log (prosody-plugins/) writes these.
        for m in re.finditer(r"fedtest s2s-authenticated direction=(\w+) local=(\S+) remote=(\S+) "
                             r"mechanism=(\S+) bidi=(\w+)", text):
            events.append({"dir": "in" if m[1] == "incoming" else "out", "local": m[2], "remote": m[3],
                           "mech": m[4], "bidi": m[5] == "true"})
        # mod_saslauth, outgoing: "SASL EXTERNAL with REMOTE failed: REASON". Prosody does not
        # log the local host there; with one host per instance it is the instance's.
        local = re.search(r'VirtualHost "([^"]+)"', open(os.path.join(os.path.dirname(server.log), "prosody.cfg.lua")).read())
        for m in re.finditer(r"SASL EXTERNAL with (\S+) failed: (.*)", text):
            events.append({"dir": "out", "local": local[1] if local else "?", "remote": m[1],
                           "failed": True, "reason": m[2].strip()})
    elif server.type == "ejabberd":
        # ejabberd_s2s_in / ejabberd_s2s_out at info level.
        for m in re.finditer(r"Accepted (inbound|outbound) s2s (\S+) authentication (\S+) -> (\S+)", text):
            if m[1] == "inbound":
                events.append({"dir": "in", "local": m[4], "remote": m[3], "mech": m[2]})
            else:
                events.append({"dir": "out", "local": m[3], "remote": m[4], "mech": m[2]})
        for m in re.finditer(r"Failed (inbound|outbound) s2s (\S+) authentication (\S+) -> (\S+) \([^)]*\): (.*)", text):
            if m[1] == "inbound":
                events.append({"dir": "in", "local": m[4], "remote": m[3], "failed": True, "reason": m[5].strip()})
            else:
                events.append({"dir": "out", "local": m[3], "remote": m[4], "failed": True, "reason": m[5].strip()})
    elif server.type == "starling":
        # starling_s2s at info level (tracing's key=value fields):
        #   s2s connection established (outbound) local=A remote=B peer=… auth="SASL EXTERNAL" bidi=true
        #   s2s connection established (inbound) peer=… remote=B local=A auth="dialback" bidi=false
        #   s2s SASL EXTERNAL refused (outbound); trying dialback local=A remote=B peer=… reason="…"
        #   s2s SASL EXTERNAL refused (inbound) peer=… local=A remote=B reason=…
        def fields(rest):
            return {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', rest)}
        for m in re.finditer(r"s2s connection established \((inbound|outbound)\)(.*)", text):
            f = fields(m[2])
            auth = f.get("auth", "")
            events.append({"dir": "in" if m[1] == "inbound" else "out", "local": f.get("local", "?"),
                           "remote": f.get("remote", "?"),
                           "mech": "EXTERNAL" if "EXTERNAL" in auth else "dialback",
                           "bidi": f.get("bidi") == "true"})
        for m in re.finditer(r"s2s SASL EXTERNAL refused \((inbound|outbound)\)(.*)", text):
            f = fields(m[2])
            events.append({"dir": "in" if m[1] == "inbound" else "out", "local": f.get("local", "?"),
                           "remote": f.get("remote", "?"), "failed": True, "reason": f.get("reason", "")})
    return [e for e in events if PROBE_DOMAIN not in (e["local"], e["remote"])]


def s2s_connections(a, b):
    """Established TCP connections between the two servers' s2s ports, counted once each (by
    their connecting end, whose peer is ADDR:5269)."""
    out = subprocess.run(["ss", "-Htn", "state", "established"], capture_output=True, text=True).stdout
    n = 0
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[3] in (f"{a.addr}:5269", f"{b.addr}:5269"):
            n += 1
    return n


# ----------------------------------------------------------------------------- wire probe

class Probe:
    """Opens an s2s stream to a server as PROBE_DOMAIN, the way a peer would, and keeps the
    exact bytes both ways: stream opening and features before and after STARTTLS, and the
    answer to SASL EXTERNAL with PROBE_DOMAIN's certificate of the run's kind. Standard
    library only (no XMPP code), synchronous; the transcript goes to LOGDIR."""

    def __init__(self, server, certdir):
        self.server, self.certdir = server, certdir
        self.transcript = []
        self.result = {"bidi": False}

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - recorded, never fatal
            self.transcript.append(f"!! probe ended: {e!r}")
            self.result["error"] = repr(e)
        return self.result

    def _open(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  f"xmlns:stream='{NS_STREAMS}' xmlns:db='jabber:server:dialback' "
                  f"from='{PROBE_DOMAIN}' to='{self.server.domain}' version='1.0'>")

    def send(self, text):
        self.transcript.append(f"C: {text}")
        self.sock.sendall(text.encode())

    def element(self):
        while True:
            for ev, el in self.parser.read_events():
                if ev == "start":
                    self.depth += 1
                elif ev == "end":
                    self.depth -= 1
                    if self.depth == 1:
                        return el
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.transcript.append(f"S: {data.decode(errors='replace')}")
            self.parser.feed(data)

    def _run(self):
        s = self.server
        self.sock = socket.create_connection((s.addr, 5269), timeout=10)
        self._open()
        features = self.element()
        self.result["features_plain"] = [c.tag for c in features]
        if features.find(q(NS_TLS, "starttls")) is None:
            raise AssertionError("no STARTTLS offered")
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        proceed = self.element()
        assert proceed.tag == q(NS_TLS, "proceed"), show(proceed)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(os.path.join(self.certdir, f"{PROBE_DOMAIN}.crt"),
                            os.path.join(self.certdir, f"{PROBE_DOMAIN}.key"))
        self.sock = ctx.wrap_socket(self.sock, server_hostname=s.domain)
        self.transcript.append(f"-- TLS {self.sock.version()} {self.sock.cipher()[0]}")
        self._open()
        features = self.element()
        self.result["features_tls"] = [c.tag for c in features]
        self.result["bidi"] = features.find(q(NS_BIDI_FEATURE, "bidi")) is not None
        mechs = [m.text for m in features.iter(q(NS_SASL, "mechanism"))]
        self.result["mechanisms"] = mechs
        if "EXTERNAL" in mechs:
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
            answer = self.element()
            self.result["external"] = answer.tag.split("}")[1]
            if self.result["external"] == "success":
                # RFC 6120 §6.4.6: a new stream; its features are the authenticated ones.
                self._open()
                features = self.element()
                self.result["features_authenticated"] = [c.tag for c in features]
        self.send("</stream:stream>")
        try:
            self.sock.settimeout(2)
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        self.sock.close()

    def save(self, path):
        with open(path, "w") as f:
            f.write("\n".join(self.transcript) + "\n")


def summarize_probe(p):
    r = p.result
    if "error" in r:
        return f"probe failed: {r['error']}"
    feats = lambda tags: " ".join(t.split("}")[1] + "{" + t.split("}")[0][1:] + "}" for t in tags)  # noqa: E731
    return (f"before TLS: {feats(r.get('features_plain', []))}; after TLS: {feats(r.get('features_tls', []))}; "
            f"mechanisms {r.get('mechanisms')}; EXTERNAL -> {r.get('external', 'not offered')}"
            + (f"; then: {feats(r['features_authenticated'])}" if "features_authenticated" in r else ""))


# ----------------------------------------------------------------------------- main

async def main(mode, pair_name, results, logdir, a, b):
    pair = Pair(mode, a, b, logdir)
    lines = []

    def verdict(case, v, reason=None):
        line = f"{pair_name}/{case}: {v}" + (f" ({reason})" if reason else "")
        print(line, flush=True)
        lines.append(line)

    certdir = os.path.join(CERTS, {"standard": "good"}.get(mode, mode))
    for s in (a, b):
        p = Probe(s, certdir)
        pair.probes[s.domain] = await asyncio.to_thread(p.run)
        p.save(os.path.join(logdir, f"probe-{s.domain}.txt"))
        print(f"  probe {s.domain} ({s.type}, {mode} certificate): {summarize_probe(p)}", flush=True)

    start_error = None
    try:
        pair.alice = await Client("alice", a).online()
        pair.bob = await Client("bob", b).online()
    except BaseException as e:  # noqa: BLE001
        start_error = f"login failed: {e!r}"
        traceback.print_exc()

    for name, case in CASES[mode]:
        t0 = time.monotonic()
        if start_error:
            verdict(name, "fail", start_error)
            continue
        try:
            reason = await asyncio.wait_for(case(pair), 60)
            verdict(name, "pass", reason)
        except Skip as e:
            verdict(name, "skip", str(e))
        except BaseException as e:  # noqa: BLE001 - every failure is a verdict
            traceback.print_exc()
            first = (str(e) or repr(e)).splitlines()[0]
            verdict(name, "fail", first)
        print(f"  ({name}: {time.monotonic() - t0:.1f} s)", flush=True)

    for c in (pair.alice, pair.bob):
        if c is not None:
            await c.bye()
    with open(results, "a") as out:
        out.write("".join(line + "\n" for line in lines))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--cases":
        print("\n".join(name for name, _ in CASES[sys.argv[2]]))
    elif len(sys.argv) == 7 and sys.argv[1] in CASES:
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], Server(sys.argv[5]), Server(sys.argv[6])))
    else:
        sys.exit(__doc__)
