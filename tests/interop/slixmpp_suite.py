"""Interop cases driven by slixmpp against a running Starling.

Usage: slixmpp_suite.py HOST STARTTLS_PORT DIRECT_TLS_PORT RESULTS_FILE
Each case logs in its own users (created beforehand by run.sh, password "pw") and writes one line
"slixmpp/<case> pass|fail" to RESULTS_FILE. Exit status is 0; run.sh compares with the baseline.
"""
import asyncio
import ssl
import sys
import traceback

import slixmpp

HOST, STARTTLS, DIRECT, RESULTS = "127.0.0.1", 5222, 5223, "/dev/null"
DOMAIN = "localhost"
TIMEOUT = 15


class Client(slixmpp.ClientXMPP):
    def __init__(self, user, resource="slix", mech=None, direct=False, presence=True):
        kwargs = {"sasl_mech": mech} if mech else {}
        super().__init__(f"{user}@{DOMAIN}/{resource}", "pw", **kwargs)
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

    def state(self, jid):
        item = self.client_roster[jid]
        return (item["subscription"], item["pending_out"])

    async def bye(self):
        self.disconnect()
        await asyncio.sleep(0.2)


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
]

USERS = ["login", "pinger", "s1a", "s1b", "s1c", "s1d", "s2a", "s2b", "s3a", "s3b", "r1", "r2", "o1", "o2"]


async def main():
    with open(RESULTS, "a") as out:
        for name, case in CASES:
            try:
                await asyncio.wait_for(case(), 60)
                verdict = "pass"
            except BaseException:  # noqa: BLE001 - every failure is a verdict
                traceback.print_exc()
                verdict = "fail"
            print(f"slixmpp/{name} {verdict}", flush=True)
            out.write(f"slixmpp/{name} {verdict}\n")


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--users":
        print(" ".join(USERS))
    elif len(sys.argv) == 5:
        HOST, STARTTLS, DIRECT, RESULTS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        asyncio.run(main())
    else:
        sys.exit(__doc__)
