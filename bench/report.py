"""Turns bench/compare.sh's raw results into BENCHMARKS.md (stdout).

Usage: report.py OUT_DIR [EARLIER_RESULTS...]
       report.py --s2s S2S_RESULTS        (only the section "Server-to-server", for bench/s2s.sh)
Reads results.txt, machine.txt and commands-*.txt in OUT_DIR. Each figure is the median over the
runs of one scenario; ratios compare medians measured in the same compare.sh run. Earlier
results files (e.g. bench/results/full-<commit>.txt, raw results.txt of another run) fill in the
(server, TLS mode, scenario) triples OUT_DIR lacks, the first file that has a triple giving all
its runs; machine.txt then names them. Results of bench/s2s.sh (server column: the pair A-B,
scenario s2s_sat) given that way make the section "Server-to-server (issue 18)", with the `# `
lines of the file they came from. Standard library only.
"""
import statistics
import sys
from pathlib import Path

SERVERS = ["prosody", "ejabberd", "starling"]
NAMES = {"prosody": "Prosody", "ejabberd": "ejabberd", "starling": "Starling"}


def load(path, into=None):
    """Results of one file; with `into`, only the triples `into` lacks are added to it."""
    data = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[4] != "RESULT":
            continue
        server, mode, scenario, _run = parts[:4]
        fields = dict(p.split("=", 1) for p in parts[5:] if "=" in p)
        data.setdefault((server, mode, scenario), []).append(fields)
    if into is None:
        return data
    added = [k for k in data if k not in into]
    for k in added:
        into[k] = data[k]
    return added


def median(data, server, mode, scenario, key):
    values = []
    for fields in data.get((server, mode, scenario), []):
        try:
            values.append(float(fields[key]))
        except (KeyError, ValueError):
            pass
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


# (label, scenario, key, better, target kind, target value, digits)
# target kinds: "max_abs" (Starling ≤ value), "ratio_max" (Starling/ejabberd ≤ value),
# "ratio_min" (Starling/ejabberd ≥ value).
def metrics(mode):
    idle_limit = 8 if mode == "off" else 16
    idle_sm_limit = 9 if mode == "off" else 17
    return [
        ("Idle memory per connection (KiB RSS)", "idle", "kib_per_conn", "max_abs", idle_limit, 1),
        ("Idle memory per connection, stream management on (KiB RSS)", "idle_sm", "kib_per_conn", "max_abs", idle_sm_limit, 1),
        ("Login rate, SCRAM-SHA-1 (sessions/s)", "login", "sessions_per_s", "ratio_min", 2.0, 0),
        ("Server CPU per message at 10,000 msg/s (µs)", "chat_10k", "server_us_per_msg", "ratio_max", 1 / 3, 1),
        ("Saturation throughput (msg/s)", "chat_sat", "msgs_per_s", "ratio_min", 3.0, 0),
        ("p99 latency at 2,000 msg/s (ms)", "chat_2k", "p99_ms", "ratio_max", 0.5, 2),
        ("Presence broadcasts/s", "presence", "broadcasts_per_s", "ratio_min", 2.5, 0),
        ("PEP notifications/s", "pep", "notifications_per_s", "ratio_min", 2.5, 0),
        # Issue 16: group chat (XEP-0045), 100 rooms × 50 occupants all posting.
        ("MUC deliveries/s, 100 rooms × 50 occupants", "muc", "deliveries_per_s", "ratio_min", 3.0, 0),
        ("Server CPU per MUC delivery (µs)", "muc", "server_us_per_delivery", "ratio_max", 1 / 3, 2),
        ("Joining a room of 1,000 occupants: self-presence after, p50 (ms)", "muc_flood", "flood_p50_ms", "report", 0, 1),
        ("Joining (and leaving) a room of 1,000 occupants: server CPU (µs)", "muc_flood", "server_us_per_join", "report", 0, 0),
        ("MUC p99 latency at 1,000 posts/s over 100 rooms (ms)", "muc_quiet", "p99_ms", "report", 0, 1),
        ("… the same while one room is offered 5,000 posts/s (ms)", "muc_noisy", "p99_ms", "report", 0, 1),
        ("Saturation throughput, stream management on (msg/s)", "chat_sat_sm", "msgs_per_s", "ratio_min", 3.0, 0),
        ("Server CPU per message at saturation, stream management on (µs)", "chat_sat_sm", "server_us_per_msg", "ratio_max", 1 / 3, 1),
        # Issue 13: carbons, an archive of every message and stream management on every session.
        ("Saturation throughput, carbons + MAM + SM on (msg/s)", "chat_sat_full", "msgs_per_s", "ratio_min", 3.0, 0),
        ("Server CPU per message at saturation, carbons + MAM + SM on (µs)", "chat_sat_full", "server_us_per_msg", "ratio_max", 1 / 3, 1),
    ]


def target_text(kind, value):
    if kind == "report":
        return "(reported)"
    if kind == "max_abs":
        return f"≤ {value:g}"
    if kind == "ratio_min":
        return f"≥ {value:g}× ejabberd"
    return f"≤ {'⅓' if abs(value - 1/3) < 1e-9 else f'{value:g}×'} ejabberd" if value != 0.5 else "≤ ½ ejabberd"


def verdict(kind, value, s, e):
    if s is None:
        return "–", "not measured"
    if kind == "report":
        return "", ""
    if kind == "max_abs":
        return "", "met" if s <= value else "**not met**"
    if e is None or e == 0:
        return "", "no ejabberd figure"
    r = s / e
    ok = r >= value if kind == "ratio_min" else r <= value
    return f"{r:.2f}×", "met" if ok else "**not met**"


def table(data, mode):
    out = []
    out.append(f"| Figure | {' | '.join(NAMES[s] for s in SERVERS)} | Starling ÷ ejabberd | Target | |")
    out.append("| --- | " + " | ".join("---:" for _ in SERVERS) + " | ---: | --- | --- |")
    for label, scenario, key, kind, value, digits in metrics(mode):
        vals = {s: median(data, s, mode, scenario, key) for s in SERVERS}
        ratio, ok = verdict(kind, value, vals["starling"], vals["ejabberd"])
        out.append(f"| {label} | " + " | ".join(fmt(vals[s], digits) for s in SERVERS)
                   + f" | {ratio} | {target_text(kind, value)} | {ok} |")
    # Flat with scale: cost per message with many users over few, at one offered rate.
    row = []
    for s in SERVERS:
        a = median(data, s, mode, "scale_small", "server_us_per_msg")
        b = median(data, s, mode, "scale_large", "server_us_per_msg")
        row.append(None if a in (None, 0) or b is None else b / a)
    s_ratio = row[-1]
    ok = "–" if s_ratio is None else ("met" if s_ratio <= 1.2 else "**not met**")
    out.append("| CPU per message, many users ÷ few users (×) | " + " | ".join(fmt(v, 2) for v in row)
               + f" | | ≤ 1.2 | {ok} |")
    # Issue 12: stream management costs little against the same server without it.
    for label, key, better, limit in [
            ("Saturation throughput, SM on ÷ off (×)", "msgs_per_s", "min", 0.85),
            ("CPU per message at saturation, SM on ÷ off (×)", "server_us_per_msg", "max", 1.15)]:
        row = []
        for s in SERVERS:
            a = median(data, s, mode, "chat_sat", key)
            b = median(data, s, mode, "chat_sat_sm", key)
            row.append(None if a in (None, 0) or b is None else b / a)
        s_ratio = row[-1]
        met = s_ratio is not None and (s_ratio >= limit if better == "min" else s_ratio <= limit)
        ok = "–" if s_ratio is None else ("met" if met else "**not met**")
        sign = "≥" if better == "min" else "≤"
        out.append(f"| {label} | " + " | ".join(fmt(v, 2) for v in row) + f" | | {sign} {limit:g} | {ok} |")
    # Issue 13: what carbons + MAM + SM cost each server against plain saturated chat (no target).
    for label, key in [("Saturation throughput, carbons + MAM + SM on ÷ all off (×)", "msgs_per_s"),
                       ("CPU per message at saturation, carbons + MAM + SM on ÷ all off (×)", "server_us_per_msg")]:
        row = []
        for s in SERVERS:
            a = median(data, s, mode, "chat_sat", key)
            b = median(data, s, mode, "chat_sat_full", key)
            row.append(None if a in (None, 0) or b is None else b / a)
        if any(v is not None for v in row):
            out.append(f"| {label} | " + " | ".join(fmt(v, 2) for v in row) + " | | (reported) | |")
    # Issue 13: archive queries and the archive's size on disk (Starling; ejabberd beside it).
    p99 = {s: median(data, s, mode, "mam_query", "p99_ms") for s in SERVERS}
    rows = median(data, "starling", mode, "mam_fill", "archive_rows")
    users = median(data, "starling", mode, "mam_query", "users")
    if p99["starling"] is not None:
        e = p99["ejabberd"]
        ratio = f"{p99['starling'] / e:.2f}×" if e else ""
        out.append(f"| MAM query for the last 50 messages, archive of {fmt(rows, 0)} messages, {fmt(users, 0)} users: p99 (ms) | "
                   + " | ".join(fmt(p99[s], 2) for s in SERVERS)
                   + f" | {ratio} | ≤ 5 | {'met' if p99['starling'] <= 5 else '**not met**'} |")
    per_row = {s: median(data, s, mode, "mam_fill", "bytes_per_row") for s in SERVERS}
    if per_row["starling"] is not None:
        e = per_row["ejabberd"]
        ratio = f"{per_row['starling'] / e:.2f}×" if e else ""
        out.append("| Archive on disk per archived message (bytes; Starling's includes its full-text index) | "
                   + " | ".join(fmt(per_row[s], 0) for s in SERVERS) + f" | {ratio} | (reported) | |")
    if mode == "off":
        big = median(data, "starling", mode, "idle_100k", "kib_per_conn")
        held = median(data, "starling", mode, "idle_100k", "held")
        if big is not None:
            out.append(f"| Idle memory per connection, {fmt(held, 0)} held (target: 100,000), SM on (KiB RSS) | – | – | "
                       f"{fmt(big, 1)} | | ≤ 9 | {'met' if big <= 9 else '**not met**'} |")
        row = []
        for s in SERVERS:
            a = median(data, s, mode, "aged_before", "msgs_per_s")
            b = median(data, s, mode, "aged_after", "msgs_per_s")
            row.append(None if a in (None, 0) or b is None else b / a)
        s_ratio = row[-1]
        ok = "–" if s_ratio is None else ("met" if s_ratio >= 0.9 else "**not met**")
        out.append("| Saturation throughput after the login storms ÷ before (×) | "
                   + " | ".join(fmt(v, 2) for v in row) + f" | | ≥ 0.9 | {ok} |")
    return out


def detail(data, mode):
    keys = [
        ("idle", ["held", "rss_before_kib", "rss_after_kib", "kib_per_conn"]),
        ("login", ["ok", "failed", "sessions_per_s", "p50_ms", "p99_ms", "server_us_per_login", "server_cpu_pct", "gen_cpu_pct"]),
        ("fast", ["scram_logins_per_s", "scram_p50_ms", "scram_p99_ms", "scram_server_us_per_login", "fast_reconnects_per_s", "fast_p50_ms", "fast_p99_ms", "fast_server_us_per_reconnect", "fast_resumed", "fast_failed"]),
        ("chat_10k", ["msgs_per_s", "server_us_per_msg", "p50_ms", "p99_ms", "server_cpu_pct", "gen_cpu_pct", "late_or_lost"]),
        ("chat_2k", ["msgs_per_s", "server_us_per_msg", "p50_ms", "p99_ms", "p999_ms", "server_cpu_pct", "gen_cpu_pct"]),
        ("chat_sat", ["msgs_per_s", "server_us_per_msg", "p99_ms", "server_cpu_pct", "gen_cpu_pct"]),
        ("idle_sm", ["held", "kib_per_conn"]),
        ("chat_sat_sm", ["msgs_per_s", "server_us_per_msg", "p99_ms", "server_cpu_pct", "gen_cpu_pct", "late_or_lost"]),
        ("chat_sat_full", ["msgs_per_s", "server_us_per_msg", "p50_ms", "p99_ms", "server_cpu_pct", "gen_cpu_pct", "late_or_lost"]),
        ("chat_sat_full_archive", ["archived_rows"]),
        ("mam_fill", ["archive_rows", "rows_per_s", "fill_s", "db_bytes", "bytes_per_row"]),
        ("mam_query", ["queries_per_s", "p50_ms", "p99_ms", "p999_ms", "max_ms", "cold_p50_ms", "cold_max_ms", "results_per_query", "short_pages", "errors", "server_us_per_query", "server_cpu_pct", "gen_cpu_pct"]),
        ("mam_query_8", ["queries_per_s", "p50_ms", "p99_ms", "results_per_query", "errors", "server_us_per_query", "server_cpu_pct", "gen_cpu_pct"]),
        ("presence", ["changes", "broadcasts_per_s", "server_us_per_broadcast", "server_cpu_pct", "gen_cpu_pct"]),
        ("pep", ["publishes", "publish_errors", "notifications_per_s", "expected", "delivered", "lost", "duplicates", "server_us_per_notification", "pub_p50_ms", "pub_p99_ms", "notify_p50_ms", "notify_p99_ms", "server_cpu_pct", "gen_cpu_pct"]),
        ("muc", ["joined", "rooms_created", "join_s", "join_p99_ms", "posts", "message_errors", "deliveries_per_s", "expected", "delivered", "lost", "server_us_per_delivery", "p50_ms", "p99_ms", "server_cpu_pct", "gen_cpu_pct"]),
        ("muc_flood", ["occupants", "flood_joins", "flood_failed", "presences_before_self", "flood_p50_ms", "flood_max_ms", "server_us_per_join"]),
        ("muc_quiet", ["rate", "posts", "message_errors", "deliveries_per_s", "lost", "p50_ms", "p99_ms", "server_cpu_pct"]),
        ("muc_noisy", ["rate", "noisy_rate", "posts", "message_errors", "deliveries_per_s", "lost", "p50_ms", "p99_ms", "noisy_posts", "noisy_deliveries_per_s", "noisy_refused", "server_cpu_pct"]),
        ("scale_small", ["msgs_per_s", "server_us_per_msg", "server_cpu_pct"]),
        ("scale_large", ["msgs_per_s", "server_us_per_msg", "server_cpu_pct"]),
    ]
    if mode == "off":
        keys += [("aged_before", ["msgs_per_s", "server_us_per_msg", "gen_cpu_pct"]),
                 ("aged_storms", ["sessions_per_s", "first_sessions_per_s", "failed"]),
                 ("aged_after", ["msgs_per_s", "server_us_per_msg", "gen_cpu_pct"]),
                 ("idle_100k", ["held", "failed", "rss_before_kib", "rss_after_kib", "kib_per_conn"])]
    out = ["| Scenario | Figure | " + " | ".join(NAMES[s] for s in SERVERS) + " |",
           "| --- | --- | " + " | ".join("---:" for _ in SERVERS) + " |"]
    for scenario, fields in keys:
        for f in fields:
            vals = [median(data, s, mode, scenario, f) for s in SERVERS]
            if all(v is None for v in vals):
                continue
            out.append(f"| {scenario} | {f} | " + " | ".join(fmt(v, 2) for v in vals) + " |")
    return out


def websocket(data):
    """Issue 17: XMPP over WebSocket (mode ws) beside raw TCP without TLS (mode off)."""
    if not any(m == "ws" for (_, m, _) in data):
        return []
    out = ["", "## XMPP over WebSocket (RFC 7395)", "",
           "Mode `ws`: the generator speaks RFC 7395 to each server's WebSocket endpoint "
           "(`ws://127.0.0.1:PORT+2/xmpp-websocket`, subprotocol `xmpp`, one stanza per text "
           "message, no TLS; Starling's `[http] listen`, ejabberd's `ejabberd_http` listener with "
           "`ejabberd_http_ws`, Prosody's `mod_websocket`), the same users, SCRAM-SHA-1 and "
           "scenarios as TLS off: `idle` and `chat_sat`. The TCP figures beside them are TLS off's.", "",
           f"| Figure | {' | '.join(NAMES[s] for s in SERVERS)} | Starling ÷ ejabberd | Target | |",
           "| --- | " + " | ".join("---:" for _ in SERVERS) + " | ---: | --- | --- |"]
    rows = [
        ("Saturation throughput over WebSocket (msg/s)", "chat_sat", "msgs_per_s", "ratio_min", 3.0, 0),
        ("Server CPU per message at saturation over WebSocket (µs)", "chat_sat", "server_us_per_msg", "ratio_max", 1 / 3, 2),
        ("Idle memory per WebSocket connection (KiB RSS)", "idle", "kib_per_conn", "report", 0, 1),
    ]
    for label, scenario, key, kind, value, digits in rows:
        vals = {s: median(data, s, "ws", scenario, key) for s in SERVERS}
        ratio, ok = verdict(kind, value, vals["starling"], vals["ejabberd"])
        if kind == "report" and vals["ejabberd"]:
            ratio = f"{vals['starling'] / vals['ejabberd']:.2f}×" if vals["starling"] is not None else ""
        out.append(f"| {label} | " + " | ".join(fmt(vals[s], digits) for s in SERVERS)
                   + f" | {ratio} | {target_text(kind, value)} | {ok} |")
    for label, scenario, key in [
            ("Saturation throughput, WebSocket ÷ TCP (×)", "chat_sat", "msgs_per_s"),
            ("CPU per message at saturation, WebSocket ÷ TCP (×)", "chat_sat", "server_us_per_msg"),
            ("Idle memory per connection, WebSocket ÷ TCP (×)", "idle", "kib_per_conn")]:
        row = []
        for s in SERVERS:
            a = median(data, s, "off", scenario, key)
            b = median(data, s, "ws", scenario, key)
            row.append(None if a in (None, 0) or b is None else b / a)
        out.append(f"| {label} | " + " | ".join(fmt(v, 2) for v in row) + " | | (reported) | |")
    out += ["", "### XMPP over WebSocket: every figure (medians)", "",
            "| Scenario | Figure | " + " | ".join(NAMES[s] for s in SERVERS) + " |",
            "| --- | --- | " + " | ".join("---:" for _ in SERVERS) + " |"]
    for scenario, fields in [
            ("idle", ["held", "failed", "rss_before_kib", "rss_after_kib", "kib_per_conn"]),
            ("chat_sat", ["msgs_per_s", "server_us_per_msg", "p50_ms", "p99_ms", "server_cpu_pct", "gen_cpu_pct", "late_or_lost"])]:
        for f in fields:
            vals = [median(data, s, "ws", scenario, f) for s in SERVERS]
            if all(v is None for v in vals):
                continue
            out.append(f"| {scenario} | {f} | " + " | ".join(fmt(v, 2) for v in vals) + " |")
    return out


S2S_PAIRS = [
    # (pair as in the results, label)
    ("starling-starling", "Starling → Starling"),
    ("starling-ejabberd", "Starling → ejabberd"),
    ("ejabberd-starling", "ejabberd → Starling"),
    ("ejabberd-ejabberd", "ejabberd → ejabberd"),
]


def s2s_notes(path):
    """The `# ` lines bench/s2s.sh writes at the top and bottom of its results file."""
    return [line[2:].strip() for line in Path(path).read_text().splitlines() if line.startswith("# ")]


def s2s(data, notes):
    """Issue 18 item 6: chat between two servers over one s2s link (bench/s2s.sh)."""
    pairs = [(p, label) for p, label in S2S_PAIRS if (p, "off", "s2s_sat") in data]
    if not pairs:
        return []
    out = ["## Server-to-server (issue 18)", "",
           "`bench/s2s.sh`: N senders log in to server A (domain a.bench.test) and N receivers, "
           "the same user names, to server B (b.bench.test); sender i sends receiver i chat "
           "messages saturated as in chat_sat (16 in flight per sender, closed loop on arrival), "
           "so every message crosses one s2s connection A → B (`starling-bench s2s`). Client "
           "connections without TLS (as in TLS off's chat_sat); s2s over STARTTLS, required by "
           "both ends, with certificates from a test CA that each server trusts for s2s (EKU "
           "serverAuth + clientAuth), so both authenticate with SASL EXTERNAL; dialback stays "
           "configured as the fallback (the links below: what each Starling side reports in "
           "`starling s2s list`; ejabberd logs nothing about it at its warning level). Loopback "
           "only: A's s2s on 127.0.0.21:5269, B's on 127.0.0.22:5269, found through Starling's "
           "`[s2s.hosts]` and, for ejabberd (DNS SRV, then getaddrinfo), /etc/hosts lines added "
           "for the run. Both servers pinned to CPU 0, the generator alone on CPU 1: the pair "
           "shares one core, so msg/s is what one core carries when it does both halves of the "
           "path (A: c2s in + s2s out; B: s2s in + c2s out) and compares with `chat_sat` above, "
           "where one server does both halves of a local delivery; each side's CPU per message is "
           "read from its own `/proc/<pid>/stat` over the window. Every sender's first message "
           "has arrived before the clock starts (the link is up). A fresh pair of server "
           "processes per run; medians of the runs.", "",
           "| A → B | msg/s | p50 (ms) | p99 (ms) | A CPU/msg (µs) | B CPU/msg (µs) | A + B (µs) "
           "| A CPU (%) | B CPU (%) | generator CPU (%) | late or lost |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for pair, label in pairs:
        def m(key):
            return median(data, pair, "off", "s2s_sat", key)
        out.append(f"| {label} | {fmt(m('msgs_per_s'), 0)} | {fmt(m('p50_ms'), 1)} | {fmt(m('p99_ms'), 1)} "
                   f"| {fmt(m('a_us_per_msg'), 2)} | {fmt(m('b_us_per_msg'), 2)} | {fmt(m('server_us_per_msg'), 2)} "
                   f"| {fmt(m('a_cpu_pct'), 1)} | {fmt(m('b_cpu_pct'), 1)} | {fmt(m('gen_cpu_pct'), 1)} "
                   f"| {fmt(m('late_or_lost'), 0)} |")
    out += ["", "Runs (msg/s, A µs/msg, B µs/msg each) and the s2s connections the Starling sides "
            "listed after them (direction/authentication/TLS/bidi):", ""]
    for pair, label in pairs:
        runs = []
        for f in data[(pair, "off", "s2s_sat")]:
            if "error" in f:
                runs.append(f"error={f['error']}")
            else:
                runs.append(f"{fmt(float(f.get('msgs_per_s', 'nan')), 0)} msg/s, "
                            f"{f.get('a_us_per_msg', '–')}, {f.get('b_us_per_msg', '–')}")
        links = sorted({f"A `{f.get('a_links', '–')}`, B `{f.get('b_links', '–')}`"
                        for f in data.get((pair, "off", "s2s_link"), [])})
        out.append(f"- {label}: " + "; ".join(runs) + (" — links " + " / ".join(links) if links else ""))
    out += ["", "A server whose peer delivers less (an ejabberd at one end) runs at that lower "
            "rate, with fewer stanzas per wake-up and per write, so its CPU per message is higher "
            "than in a faster pair, as chat_10k's is above chat_sat's for a single server."]
    if notes:
        out += ["", "Run:", ""] + [f"- {n}" if not n.startswith("generator: ") else
                                   f"- generator: `{n[len('generator: '):]}`" for n in notes]
    return out


HOSTILE = [
    # (shape, fields shown)
    ("xml-prefix", ["out_per_in", "server_ns_per_byte", "closed"]),
    ("ns-children", ["out_per_in", "server_ns_per_byte", "closed"]),
    ("ns-attributes", ["out_per_in", "server_ns_per_byte", "closed"]),
    ("partial", ["held_per_in", "kib_per_conn", "closed"]),
    ("partial-ns", ["held_per_in", "kib_per_conn", "closed"]),
    ("pre-auth", ["held_per_in", "kib_per_conn", "closed", "connections"]),
]


def hostile(path):
    """Issue 11's hostile shapes (bench/hostile.sh): one line per server and shape."""
    if not path.exists():
        return []
    rows = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if "shape" in fields:
            rows[(parts[0], fields["shape"])] = fields
    servers = [s for s in ["ejabberd", "starling"] if any(k[0] == s for k in rows)]
    if not servers:
        return []
    out = ["", "## Hostile input (issue 11)", "",
           "`bench/hostile.sh`, TLS off, a fresh server per shape. `out_per_in`: bytes the "
           "recipient received ÷ bytes sent (amplification); `held_per_in`: server memory held ÷ "
           "bytes sent by connections that stop mid-stanza; `closed`: connections the server "
           "closed. See `starling-bench hostile --help` for the shapes.", "",
           "| Shape | Figure | " + " | ".join(NAMES[s] for s in servers) + " |",
           "| --- | --- | " + " | ".join("---:" for _ in servers) + " |"]
    for shape, keys in HOSTILE:
        for k in keys:
            vals = [rows.get((s, shape), {}).get(k, "–") for s in servers]
            if all(v == "–" for v in vals):
                continue
            out.append(f"| {shape} | {k} | " + " | ".join(vals) + " |")
    return out


def main():
    if sys.argv[1:2] == ["--s2s"]:
        path = sys.argv[2]
        print("\n".join(s2s(load(path), s2s_notes(path))))
        return
    out_dir = Path(sys.argv[1])
    data = load(out_dir / "results.txt")
    machine = (out_dir / "machine.txt").read_text().strip().splitlines()
    s2s_from = []
    for earlier in sys.argv[2:]:
        added = load(earlier, into=data)
        if any(scenario == "s2s_sat" for _, _, scenario in added):
            s2s_from += s2s_notes(earlier)
        if added:
            triples = sorted({f"{srv} {m}" for srv, m, _ in added})
            machine.append(f"from {earlier} (an earlier run): {len(added)} scenario figures of "
                           + ", ".join(triples))
    # Mode ws (issue 17) has its own section: two scenarios, beside TLS off.
    modes = sorted({m for (_, m, _) in data if m != "ws"}, key=lambda m: (m != "off", m))
    lines = ["# Benchmarks", "",
             "Written by `bench/compare.sh` (do not edit by hand; rerun it). Each server runs pinned to "
             "CPU 0 with `taskset`, the load generator `starling-bench` pinned to CPU 1; a fresh server "
             "process for every run of every scenario; each figure is the median of the runs. Server "
             "CPU is read from `/proc/<pid>/stat` (children included) over the measurement window, "
             "the generator's own CPU beside it. Users carry SCRAM-SHA-1 keys at 4096 iterations on "
             "every server; the generator caches salted passwords, as clients do.", "",
             "## Machine and versions", ""]
    lines += [f"- {m}" for m in machine]
    for mode in modes:
        title = "TLS off" if mode == "off" else "STARTTLS required"
        lines += ["", f"## {title}", ""] + table(data, mode)
        lines += ["", f"### {title}: every figure (medians)", ""] + detail(data, mode)
    lines += websocket(data)
    section = s2s(data, s2s_from)
    if section:
        lines += [""] + section
    lines += hostile(out_dir / "hostile" / "hostile.txt")
    lines += ["", "## Notes", "",
              "- Where the generator's CPU (gen_cpu_pct) is near 100% in the saturation run, the "
              "generator, not the server, is the limit: the server's figure is then a lower bound.",
              "- The idle figure is (RSS after − RSS before) ÷ connections, read 5 s after the "
              "logins; the kernel's socket buffers (~3.7 KB per socket) are outside RSS.",
              "- Presence runs a closed loop on each change's reflection to its sender (RFC 6121 "
              "§4.4.2). A server that reflects before it has broadcast lets a backlog grow, and its "
              "figure counts the broadcasts delivered in the window: compare broadcasts ÷ changes "
              "(50 when every contact got every change) in the presence rows below.",
              "- `pep` (XEP-0163): the presence scenario's ring users advertise "
              "`http://jabber.org/protocol/tune+notify` in XEP-0115 caps (and answer the server's "
              "disco#info query for them), each publishes one seed item (creating its node), and "
              "once every user has seen all its contacts online and a second has passed without "
              "traffic, all publish to their tune node in a closed loop on the publish IQ's result "
              "(item id `current`). `notifications_per_s` counts distinct "
              "notifications received in the window (to contacts and to the publisher's own "
              "resource); `duplicates` are second copies (ejabberd 23.01 and Prosody 0.12 notify "
              "the bare JID as well as the full JID: ejabberd the publisher's own, Prosody every "
              "recipient's), not counted. `expected` is Σ roster size (+1 when the publisher is "
              "notified) over the window's accepted publishes, `delivered` how many of those "
              "arrived within 2 s after the window, `lost` the difference. Servers run with PEP "
              "on (`FEATURES=pep`): ejabberd's mod_pubsub (pep plugin, Mnesia) with mod_caps, "
              "Prosody's mod_pep (internal file storage).",
              "- `muc` (XEP-0045, issue 16 item 6): rooms × occupants bench users, each in one "
              "room (nick = user name), join with no history; the first joiner of each room "
              "accepts the instant room (§10.1.2) before the others join. Once every occupant "
              "has seen its whole room, all post groupchat messages in a closed loop on their "
              "own reflection. `deliveries_per_s` counts this run's messages received in the "
              "window (each post reaches every occupant, the sender too); `expected` is Σ room "
              "size over the window's posts, `delivered` how many of those arrived, `lost` the "
              "difference; `p50_ms`/`p99_ms` post → delivery. `muc_flood`: one user joins a room "
              "of N occupants ten times (leaving in between): the time until its self-presence "
              "(status 110), which follows the N occupant presences (§7.2.3); its CPU per join "
              "includes the leave; ejabberd 23.01 sends the newcomer's self-presence before the "
              "occupants' (`presences_before_self` 0, against §7.2.3), so its figure is not the "
              "time the list takes. Servers run with `FEATURES=muc`: ejabberd's mod_muc (Mnesia, "
              "history of 20 kept in memory, no room archive), Prosody's muc component (no "
              "history kept), Starling's conference service (history of 20 in memory, no rate "
              "limits, `[muc] archive = false`: rooms unarchived as in the others), on "
              "conference.localhost. `muc_quiet`/`muc_noisy`: the same rooms post 1,000 posts/s "
              "in all (open loop), alone and while room 0's occupants are offered 5,000 posts/s "
              "more; the figures are the other rooms' (`noisy_*` the flooding room's: posts, "
              "deliveries/s, refusals). Each server runs with its default limits there "
              "(Starling: 200 messages/s per room, 10 per occupant; ejabberd: none), Prosody "
              "not (the quiet rate alone is beyond it). ejabberd delivers less than the quiet "
              "rate alone (50,000 deliveries/s offered), so its latencies are a backlog's.",
              "- `_sm` scenarios: every client enables XEP-0198 with resumption after binding and "
              "answers each `<r/>` at once; the idle clients acknowledge what they got at login. "
              "`idle_100k` holds 100,000 such connections from several 127.0.0.x source addresses "
              "(Starling only).",
              "- `chat_sat_full` (issue 13): chat_sat with every session enabling XEP-0198 and "
              "XEP-0280 carbons, and each server archiving every message (XEP-0313): Starling with "
              "`[archive] enabled = true` (SQLite, WAL); ejabberd with mod_mam `default: always`, "
              "`db_type: sql` (SQLite, made from Debian's lite.sql, WAL) and mod_carboncopy; Prosody "
              "with mod_mam (`default_archive_policy = true`, its internal file storage) and "
              "mod_carbons. Each run starts with an empty archive; `chat_sat_full_archive` is the "
              "archive's row count after the run (two rows per message: the sender's archive and "
              "the recipient's).",
              "- `mam_*` (issue 13): 100 users' archives filled with `starling-bench mam-fill` "
              "through Starling's archive store (pairs of users chat among their 10 nearest "
              "numbers; pseudo-word bodies of 1 to 15 words); ejabberd's SQL archive (SQLite, no "
              "full-text index) with the same shape of history by `ejabberd.sh archive-fill` "
              "(SQL inserts, ejabberd has no bulk API); then `mam-query` asks for "
              "the last 50 messages of one user's archive at a time (`mam_query`: latency from "
              "the IQ to its `<fin/>`, every `<result/>` read) or 8 at a time (`mam_query_8`). "
              "`bytes_per_row` is the growth of the database files over the fill per archived "
              "row (row, indexes, full-text index); a message between two local users is two rows.",
              "- `fast` (issue 14, Starling only, STARTTLS): 10,000 users log in over XEP-0388 SASL2 "
              "with SCRAM-SHA-1, XEP-0386 Bind2, XEP-0198 and a XEP-0484 FAST token request "
              "(`scram_*`), then three times all drop their connections and reconnect with FAST "
              "(HT-SHA-256-NONE) and inline resumption: one write and one answer after TLS "
              "(`fast_*`, the third round). Debian's Prosody 0.12 and ejabberd 23.01 offer neither "
              "SASL2 nor FAST. Every login and reconnect is a new TCP connection with a full TLS "
              "handshake, which costs most of the server's CPU in both.",
              "- Runs of the same scenario on this 2-core VM differ by up to ±15%; every figure is "
              "a median of the runs, and every ratio compares medians.",
              "", "## Commands", "",
              "Provisioning: `bench/servers/<server>.sh provision DIR bench N 0 pw` and `… ring R_USERS R pw`; "
              "start: `SERVER_CPU=0 bench/servers/<server>.sh start DIR PORT off|starttls`, for `chat_sat_full` "
              "and `mam_query` with `ARCHIVE=true` (Starling) or `FEATURES=full` (ejabberd, Prosody) "
              "and after `<server>.sh archive-reset DIR`; the archive's database for `mam_fill` is "
              "`DIR/starling.db` of a directory provisioned with `… provision DIR mam 100 0 pw`. "
              "Generator commands (identical for every server; PID is the server's):", ""]
    for f in sorted(out_dir.glob("commands-starling-*.txt")) or sorted(out_dir.glob("commands-*.txt"))[:1]:
        lines += ["```"] + f.read_text().strip().splitlines() + ["```", ""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
