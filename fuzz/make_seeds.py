#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (run from anywhere; python3 only).

The seeds are small realistic inputs the fuzzers start from; libFuzzer mutates them. Re-running this
rewrites the seed files it owns (named seed-*) and leaves files added by `cargo fuzz cmin` alone.
Input formats are described at the top of each fuzz_targets/*.rs.
"""

import base64
import hashlib
import hmac
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent
REPO = ROOT.parent


def write(target, name, data):
    d = ROOT / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


# ---- stream_roundtrip ---------------------------------------------------------------------------
# One control byte: "0" feeds the rest whole; "3" + 3 length bytes splits it into chunks.

def scs_stanzas():
    """The stanzas clients send in tests/scripts/*.scs, with JID placeholders filled in."""
    out = []
    for path in sorted((REPO / "tests" / "scripts").glob("*.scs")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.rstrip().endswith(" sends:") and i + 1 < len(lines):
                xml = lines[i + 1].strip()
                xml = re.sub(r"\$\{(\w+)'s full JID\}", r"\1@localhost/res", xml)
                xml = re.sub(r"\$\{(\w+)'s JID\}", r"\1@localhost", xml)
                if xml.startswith("<") and xml not in out:
                    out.append(xml)
    return out


LONG_NS = "urn:example:" + "n" * 200
STREAM_SEEDS = {
    "starttls": "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    "auth-scram": "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>"
    "biwsbj11c2VyLHI9ZnlrbytkMmxiYkZnT05Sdjlxa3hkYXdM</auth>",
    "auth-plain-then-response": "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/>"
    "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AGFsaWNlAHB3</response>",
    "bind": "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    "<resource>laptop</resource></bind></iq>",
    "message-lang": "<message to='bob@localhost' type='chat' xml:lang='de' id='m1'>"
    "<body>Grüße &amp; &lt;Küsse&gt; &#x1F600; &#13;</body>"
    "<request xmlns='urn:xmpp:receipts'/></message>",
    "message-multiline": "<message to='bob@localhost'>\n\t<body>line one\r\nline two\rthree</body>\n</message>",
    "attr-escapes": "<presence id='a&apos;b&quot;c' to=\"x@y/\tz\n\"><status>\"quoted\" 'single'</status></presence>",
    "cdata": "<message><body><![CDATA[<not-a-tag/> & ]]></body></message>",
    "prefixed-children": "<iq type='result' id='p' xmlns:p='" + LONG_NS + "'><p:query>"
    + "<p:item/>" * 12 + "</p:query></iq>",
    "prefixed-attrs": "<message xmlns:x='urn:x' xmlns:y='urn:x'><x:data x:a='1' y:b='2'/></message>",
    "default-ns-undeclared": "<message><x xmlns=''><y/></x></message>",
    "redeclared-default": "<message xmlns='jabber:client'><body xmlns='jabber:client'>hi</body>"
    "<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>"
    "<p style='x'>hi</p></body></html></message>",
    "stream-prefix-inside": "<message><stream:error><x/></stream:error></message>",
    "stream-features-from-client": "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
    "keepalives": " \n\t <presence/> \r\n <iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>  ",
    "close": "<presence type='unavailable'/></stream:stream>",
    "close-then-junk": "</stream:stream> <message/>",
    "nested-stream": "<message><stream:stream><body>x</body></stream:stream></message>",
    "smuggle-body": "<message><body>&lt;/message&gt;&lt;message to='eve@localhost'&gt;</body></message>",
    "doctype": "<!DOCTYPE x [<!ENTITY a 'b'>]><message>&a;</message>",
    "comment": "<message><!-- hi --></message>",
    "pi": "<?xml-stylesheet href='x'?><message/>",
    "xml-decl-late": "<?xml version='1.0'?><message/>",
    "unknown-prefix": "<message><q:x/></message>",
    "text-between": "hello<message/>",
    "unclosed": "<message><body>never closed",
    "deep": "<iq type='get' id='d'>" + "<a>" * 40 + "</a>" * 40 + "</iq>",
    "vcard": "<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Peter Saint-Andre</FN>"
    "<PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==</BINVAL></PHOTO></vCard></iq>",
    "caps": "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
    "node='https://example.org/client' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>",
    "xml-attrs": "<message xml:lang='en' xml:space='preserve'><body xml:lang='fr'>salut</body></message>",
    "bad-utf8": b"<message><body>\xff\xfe</body></message>",
    "nul": b"<message><body>\x00</body></message>",
}


def stream_seeds():
    for i, xml in enumerate(scs_stanzas()):
        write("stream_roundtrip", f"scs-{i:02}", "0" + xml)
    for name, xml in STREAM_SEEDS.items():
        body = xml if isinstance(xml, bytes) else xml.encode()
        write("stream_roundtrip", name, b"0" + body)
    # The same stanzas split at odd points: byte by byte, and 7/2/13.
    write("stream_roundtrip", "chunked-1", b"1\x00" + STREAM_SEEDS["message-lang"].encode())
    write("stream_roundtrip", "chunked-3", b"3\x06\x01\x0c" + STREAM_SEEDS["keepalives"].encode())
    write("stream_roundtrip", "chunked-utf8", b"1\x00<message><body>\xf0\x9f\x98\x80 \xc3\xa9</body></message>")


# ---- sasl ---------------------------------------------------------------------------------------
# Control byte, then messages separated by "\n" (see fuzz_targets/sasl.rs).

MECH = {  # index in Mechanism::ALL
    ("sha512", True): 0, ("sha256", True): 1, ("sha1", True): 2,
    ("sha512", False): 3, ("sha256", False): 4, ("sha1", False): 5,
}
PLAIN = 6
PLUS_ADVERTISED, BINDINGS, NO_INITIAL, UNKNOWN_USER, WRONG_HASH = 0x08, 0x10, 0x20, 0x40, 0x80
SALT = base64.b64decode("QSXCR+Q6sek8bf92")
ITERATIONS = 16
SERVER_NONCE = "3rfcNHYJY1ZVvWVs7j"
CLIENT_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
EXPORTER = b"exporter-0123456789abcdef0123456789ab"


def scram(hash_name, gs2, cb_data=b"", user="user", password="pencil"):
    """A valid client-first, client-final and the server-final for the fuzz target's credential."""
    h = getattr(hashlib, hash_name)
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), SALT, ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", h).digest()
    stored_key = h(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", h).digest()
    first_bare = f"n={user},r={CLIENT_NONCE}"
    server_first = f"r={CLIENT_NONCE}{SERVER_NONCE},s={base64.b64encode(SALT).decode()},i={ITERATIONS}"
    without_proof = f"c={base64.b64encode(gs2.encode() + cb_data).decode()},r={CLIENT_NONCE}{SERVER_NONCE}"
    auth = f"{first_bare},{server_first},{without_proof}".encode()
    sig = hmac.new(stored_key, auth, h).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    server_final = "v=" + base64.b64encode(hmac.new(server_key, auth, h).digest()).decode()
    return gs2 + first_bare, final, server_first, server_final


def sasl_seeds():
    for hash_name in ("sha1", "sha256", "sha512"):
        first, final, server_first, server_final = scram(hash_name, "n,,")
        m = MECH[(hash_name, False)]
        write("sasl", f"scram-{hash_name}-ok", bytes([m]) + f"{first}\n{final}".encode())
        write("sasl", f"scram-{hash_name}-unknown", bytes([m | UNKNOWN_USER]) + f"{first}\n{final}".encode())
        write("sasl", f"scram-{hash_name}-no-initial", bytes([m | NO_INITIAL]) + f"\n{first}\n{final}".encode())
        wrong = scram(hash_name, "n,,", password="wrong")[1]
        write("sasl", f"scram-{hash_name}-wrong-password", bytes([m]) + f"{first}\n{wrong}".encode())
        # -PLUS with tls-exporter.
        gs2 = "p=tls-exporter,,"
        pfirst, pfinal, _, _ = scram(hash_name, gs2, EXPORTER)
        mp = MECH[(hash_name, True)]
        write("sasl", f"scram-{hash_name}-plus-ok",
              bytes([mp | PLUS_ADVERTISED | BINDINGS]) + f"{pfirst}\n{pfinal}".encode())
        # Client mode: the server side of the same exchange.
        hash_bits = {"sha512": 0, "sha256": 1, "sha1": 2}[hash_name] << 3
        write("sasl", f"client-{hash_name}",
              bytes([7 | hash_bits]) + f"n=a=3Db=2Cc\n{server_first}\n{server_final}".encode())
        write("sasl", f"client-{hash_name}-error",
              bytes([7 | hash_bits]) + f"x\n{server_first}\ne=invalid-proof".encode())
    first, final, _, _ = scram("sha256", "n,a=user@localhost,")
    write("sasl", "scram-authzid-own", bytes([MECH[("sha256", False)]]) + f"{first}\n{final}".encode())
    write("sasl", "scram-authzid-other",
          bytes([MECH[("sha256", False)]]) + f"n,a=admin@localhost,n=user,r={CLIENT_NONCE}".encode())
    write("sasl", "scram-y-downgrade",
          bytes([MECH[("sha1", False)] | PLUS_ADVERTISED]) + f"y,,n=user,r={CLIENT_NONCE}".encode())
    write("sasl", "scram-plus-server-end-point",
          bytes([MECH[("sha256", True)] | BINDINGS]) + f"p=tls-server-end-point,,n=user,r={CLIENT_NONCE}".encode())
    write("sasl", "scram-extension",
          bytes([MECH[("sha1", False)]]) + f"n,,n=us=2Cer,r={CLIENT_NONCE},x=ext\nc=biws,r=x,y=z,p=AAAA".encode())
    write("sasl", "scram-mandatory-ext", bytes([MECH[("sha1", False)]]) + b"n,,m=ext,n=user,r=abc")
    write("sasl", "scram-unicode-user",
          bytes([MECH[("sha256", False)] | WRONG_HASH]) + f"n,,n=I\u00adX\u2168\u00df,r={CLIENT_NONCE}".encode())
    write("sasl", "scram-abort", bytes([MECH[("sha1", False)] | NO_INITIAL]) + b"\n*")
    write("sasl", "plain-ok", bytes([PLAIN]) + b"\x00user\x00pencil")
    write("sasl", "plain-authzid", bytes([PLAIN]) + b"user@localhost\x00user\x00pencil")
    write("sasl", "plain-authzid-other", bytes([PLAIN]) + b"admin@localhost\x00user\x00pencil")
    write("sasl", "plain-wrong", bytes([PLAIN | UNKNOWN_USER]) + b"\x00user\x00pencil")
    write("sasl", "plain-wrong-hash", bytes([PLAIN | WRONG_HASH]) + b"\x00user\x00pencil")
    write("sasl", "plain-unicode", bytes([PLAIN]) + "\x00\u2168user\x00pen\u00adcil\u200b".encode())
    write("sasl", "plain-no-initial", bytes([PLAIN | NO_INITIAL]) + b"\n\x00user\x00pencil")
    write("sasl", "syntax-saslname", bytes([7]) + b"a=2C=3Db=2c=\x00\nr=,s=,i=0")
    write("sasl", "syntax-b64", bytes([7]) + b"cD10bHMtZXhwb3J0ZXIsLA==")


# ---- jid ----------------------------------------------------------------------------------------

JIDS = [
    "alice@localhost", "alice@localhost/laptop", "localhost", "localhost/res",
    "Alice@LOCALHOST/Laptop", "user@[::1]", "user@127.0.0.1/x", "a@b/c/d@e",
    "@localhost", "alice@", "alice@localhost/", "/res", "a@b@c", "a b@c", "a@exa mple",
    "juliet@example.com.", "user@xn--bcher-kva.example", "user@bücher.example",
    "\u03a9@\u4f8b\u3048.\u30c6\u30b9\u30c8/\u0440\u0435\u0441\u0443\u0440\u0441",
    "\uff21\uff22\uff23@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
    "stra\u00dfe@stra\u00dfe.de", "\u0130stanbul@x", "e\u0301@x", "\u2168@x",
    "\ufb01le@x", "\u05d0\u05d1@x", "a\u200d\u200cb@x/\u200b", "\U0001f600@x/\U0001f600",
    "user@x/\u0000", "\u00ad@x", "user\u007f@x", "user@\u0661\u0662.x", "user@-x-.y",
    "a" * 1024 + "@x", "x@" + "d" * 63 + "." + "e" * 63, "x@" + "d" * 64,
    "x@x/" + "r" * 1024, "'\"&<>@x", "user@x:5222", "user@[fe80::1%eth0]", "user@[1.2.3.4]",
    "\u212b@x", "\u00c5@x", "user@\u3002\u3002", "user@x\u3002y",
]


def jid_seeds():
    for i, j in enumerate(JIDS):
        write("jid", f"{i:02}", j.encode("utf-8", "surrogatepass"))


if __name__ == "__main__":
    stream_seeds()
    sasl_seeds()
    jid_seeds()
