#!/usr/bin/env python3
"""Generate benchmark accounts and rosters for Prosody and ejabberd (standard library only).

Users are PREFIX1..PREFIX{COUNT}@HOST, all with PASSWORD, stored only as SCRAM credentials
(RFC 5802: SaltedPassword = PBKDF2(password, salt, iterations); StoredKey = H(HMAC(SP,
"Client Key")); ServerKey = HMAC(SP, "Server Key")) with a random salt per user. With RING > 0,
user i gets the RING contacts i-RING/2 .. i-1 and i+1 .. i+RING/2 (wrapping mod COUNT), all with
subscription "both": the relation is symmetric, so every contact lists the user back.

  gen_users.py prosody DATA_PATH HOST PREFIX COUNT RING PASSWORD
      writes Prosody's internal storage (data_path layout) directly:
      DATA_PATH/<host>/accounts/<user>.dat and DATA_PATH/<host>/roster/<user>.dat
  gen_users.py piefxis OUT.xml HOST PREFIX COUNT RING PASSWORD
      writes one XEP-0227 file (scram-credentials, roster items) for `ejabberdctl import_piefxis`
      (ejabberd's own variant: see gen_piefxis)

Env: SCRAM_ITERATIONS (default 4096, as Starling and ejabberd), SCRAM_HASH (SHA-1 default, or
SHA-256; the server must be configured for the same one), GEN_JOBS (PBKDF2 worker processes,
default: number of CPUs).
"""

import base64
import hashlib
import hmac
import multiprocessing
import os
import sys
import uuid

HASHES = {"SHA-1": "sha1", "SHA-256": "sha256"}


def scram(args):
    """(salt, iterations, hash name, password) -> (stored_key, server_key) as bytes."""
    salt, iterations, hname, password = args
    salted = hashlib.pbkdf2_hmac(hname, password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hname).digest()
    stored_key = hashlib.new(hname, client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hname).digest()
    return stored_key, server_key


def credentials(salts, iterations, hname, password):
    jobs = int(os.environ.get("GEN_JOBS") or os.cpu_count() or 1)
    work = [(s, iterations, hname, password) for s in salts]
    if jobs <= 1 or len(work) < 64:
        return [scram(w) for w in work]
    with multiprocessing.Pool(jobs) as pool:
        return pool.map(scram, work, chunksize=256)


def ring_contacts(i, count, ring):
    """1-based contacts of user i: i±1 .. i±ring/2, wrapping mod count."""
    half = ring // 2
    out = []
    for d in list(range(-half, 0)) + list(range(1, half + 1)):
        out.append((i - 1 + d) % count + 1)
    return out


def lua_str(s):
    # Contact JIDs, user names and uuid salts here are plain ASCII; escape the two specials anyway.
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def prosody_encode(s):
    # util.datamanager's encode(): every non-alphanumeric byte becomes %xx (lower-case hex).
    return "".join(c if c.isascii() and c.isalnum() else "%%%02x" % ord(c) for c in s)


def gen_prosody(data_path, host, prefix, count, ring, password, iterations, hash_name):
    hname = HASHES[hash_name]
    hostdir = os.path.join(data_path, prosody_encode(host))
    accounts = os.path.join(hostdir, "accounts")
    rosters = os.path.join(hostdir, "roster")
    os.makedirs(accounts, exist_ok=True)
    os.makedirs(rosters, exist_ok=True)
    # Prosody uses a UUID string as the salt (its bytes go into PBKDF2 as they are).
    salts = [str(uuid.uuid4()) for _ in range(count)]
    creds = credentials([s.encode() for s in salts], iterations, hname, password.encode())
    for i in range(1, count + 1):
        user = f"{prefix}{i}"
        stored_key, server_key = creds[i - 1]
        with open(os.path.join(accounts, prosody_encode(user) + ".dat"), "w") as f:
            f.write(
                "return {\n"
                f'\t["iteration_count"] = {iterations};\n'
                f'\t["salt"] = {lua_str(salts[i - 1])};\n'
                f'\t["server_key"] = "{server_key.hex()}";\n'
                f'\t["stored_key"] = "{stored_key.hex()}";\n'
                "};\n"
            )
        if ring > 0:
            lines = ["return {", '\t[false] = { ["version"] = 1; ["pending"] = {}; };']
            for j in ring_contacts(i, count, ring):
                lines.append(
                    f'\t[{lua_str(f"{prefix}{j}@{host}")}] = '
                    '{ ["subscription"] = "both"; ["groups"] = {}; };'
                )
            lines.append("};\n")
            with open(os.path.join(rosters, prosody_encode(user) + ".dat"), "w") as f:
                f.write("\n".join(lines))


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


def gen_piefxis(out, host, prefix, count, ring, password, iterations, hash_name):
    hname = HASHES[hash_name]
    salts = [os.urandom(16) for _ in range(count)]
    creds = credentials(salts, iterations, hname, password.encode())
    # ejabberd (23.01 and later) keeps the SCRAM fields base64-encoded in its #scram record and its
    # import_piefxis base64-decodes the XML text once into that record (its export encodes the
    # record once more), so the XML carries base64(base64(bytes)), not XEP-0227's base64(bytes).
    b64 = lambda b: base64.b64encode(base64.b64encode(b)).decode()
    with open(out, "w") as f:
        f.write("<?xml version='1.0' encoding='UTF-8'?>\n"
                "<server-data xmlns='urn:xmpp:pie:0'>\n"
                f"<host jid='{xml_escape(host)}'>\n")
        for i in range(1, count + 1):
            user = xml_escape(f"{prefix}{i}")
            stored_key, server_key = creds[i - 1]
            f.write(
                f"<user name='{user}'>"
                f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-{hash_name}'>"
                f"<iter-count>{iterations}</iter-count><salt>{b64(salts[i - 1])}</salt>"
                f"<server-key>{b64(server_key)}</server-key>"
                f"<stored-key>{b64(stored_key)}</stored-key></scram-credentials>"
            )
            if ring > 0:
                f.write("<query xmlns='jabber:iq:roster'>")
                for j in ring_contacts(i, count, ring):
                    f.write(f"<item jid='{xml_escape(f'{prefix}{j}@{host}')}' subscription='both'/>")
                f.write("</query>")
            f.write("</user>\n")
        f.write("</host>\n</server-data>\n")


def main(argv):
    if len(argv) != 8 or argv[1] not in ("prosody", "piefxis"):
        sys.stderr.write(__doc__)
        return 2
    kind, target, host, prefix = argv[1:5]
    count, ring = int(argv[5]), int(argv[6])
    password = argv[7]
    iterations = int(os.environ.get("SCRAM_ITERATIONS") or 4096)
    hash_name = os.environ.get("SCRAM_HASH") or "SHA-1"
    if hash_name not in HASHES:
        sys.exit(f"SCRAM_HASH must be one of {', '.join(HASHES)}")
    if count < 1 or ring < 0:
        sys.exit("COUNT must be >= 1 and RING >= 0")
    if ring % 2:
        sys.exit("RING must be even (RING/2 contacts on each side)")
    if ring and ring >= count:
        sys.exit("RING must be smaller than COUNT (contacts would repeat or include the user)")
    gen = gen_prosody if kind == "prosody" else gen_piefxis
    gen(target, host, prefix, count, ring, password, iterations, hash_name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
