"""Fills ejabberd's SQL message archive (table `archive` of Debian's lite.sql, the schema
ejabberd.sh FEATURES=full uses) with the synthetic history `starling-bench mam-fill` writes for
Starling: users PREFIX1..PREFIX{COUNT} chat in pairs drawn among their PEERS next numbers, every
message stored twice as mod_mam stores a message between two local users (the sender's archive,
peer = the recipient's bare JID; the recipient's, peer = the sender's full JID), timestamps
rising evenly over the last DAYS days (ejabberd's archive ids are these microsecond timestamps,
so they are unique), bodies of 1 to 15 pseudo-words from a log-uniform vocabulary of 20,000.
The stanza is as ejabberd stores it (xml:lang first, xmlns last).

There is no bulk API in ejabberd for this: rows go in with SQL, in one transaction, with the
instance stopped. Prints a line like starling-bench's: RESULT scenario=mam-fill rows=…
archive_rows=… rows_per_s=… fill_s=… db_bytes=… bytes_per_row=… (growth of the database's
files per row).

Usage: ejabberd_mam_fill.py DB DOMAIN PREFIX COUNT ROWS [PEERS [DAYS [SEED]]]
Standard library only.
"""
import os
import random
import sqlite3
import sys
import time

VOCABULARY = 20_000
SYLLABLES = ["ka", "lo", "mi", "ne", "ta", "ri", "so", "ve", "du", "pa", "xe", "bo", "ly", "ze",
             "fi", "gu", "an", "el", "is", "or", "un", "ch", "th", "st", "qu", "wa", "yo", "be",
             "ce", "de", "ge", "he"]


def word(rank):
    out = []
    while True:
        out.append(SYLLABLES[rank % 32])
        rank //= 32
        if rank == 0:
            return "".join(out)


def body(rng):
    return " ".join(word(int(VOCABULARY ** rng.random()) - 1) for _ in range(1 + rng.randrange(15)))


def db_bytes(db):
    return sum(os.path.getsize(db + s) for s in ("", "-wal", "-shm", "-journal")
               if os.path.exists(db + s))


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    db, domain, prefix = sys.argv[1:4]
    count, rows = int(sys.argv[4]), int(sys.argv[5])
    peers = int(sys.argv[6]) if len(sys.argv) > 6 else 10
    days = int(sys.argv[7]) if len(sys.argv) > 7 else 365
    rng = random.Random(int(sys.argv[8]) if len(sys.argv) > 8 else 1)
    if count < 2:
        sys.exit("at least two users")
    peers = max(1, min(peers, count - 1))
    before = db_bytes(db)
    messages = (rows + 1) // 2
    now_us = int(time.time() * 1e6)
    step = max(1, days * 86_400_000_000 // max(1, messages))
    first = now_us - step * messages
    started = time.time()
    conn = sqlite3.connect(db)

    def generate():
        written = 0
        for m in range(messages):
            a = rng.randrange(count)
            b = (a + 1 + rng.randrange(peers)) % count
            if rng.randrange(2):
                a, b = b, a
            frm, to = f"{prefix}{a + 1}@{domain}", f"{prefix}{b + 1}@{domain}"
            text = body(rng)
            xml = (f"<message xml:lang='en' to='{to}' from='{frm}/phone' type='chat' id='f{m}' "
                   f"xmlns='jabber:client'><body>{text}</body></message>")
            ts = first + step * m
            yield (f"{prefix}{a + 1}", ts, to, to, xml, text)
            written += 1
            if written < rows:
                yield (f"{prefix}{b + 1}", ts, f"{frm}/phone", frm, xml, text)
                written += 1

    with conn:
        conn.executemany("INSERT INTO archive (username, timestamp, peer, bare_peer, xml, txt, kind, nick) "
                         "VALUES (?, ?, ?, ?, ?, ?, 'chat', '')", generate())
    total = conn.execute("SELECT count(*) FROM archive").fetchone()[0]
    conn.close()
    secs = time.time() - started
    after = db_bytes(db)
    print(f"{rows} rows ({messages} messages between {count} users) inserted in {secs:.1f} s; "
          f"database files {before} bytes before, {after} after")
    print(f"RESULT scenario=mam-fill rows={rows} archive_rows={total} rows_per_s={rows / max(secs, 1e-9):.0f} "
          f"fill_s={secs:.1f} db_bytes={after} bytes_per_row={(after - before) / max(rows, 1):.1f}")


if __name__ == "__main__":
    main()
