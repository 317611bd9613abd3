#!/usr/bin/env python3
"""The sampler and judge of scripts/soak.sh (not run alone).

sample PID METRICS_URL OUT_CSV CLIENT_PID: every 10 s while the client runs, one line of the
  server's RSS, open fds, live sessions and ledger terms (from /proc and /stats.json).
judge OUT_DIR: fits least-squares slopes over the samples after the warm-up, checks the
  server's final counters balance exactly, prints the report and exits 1 on a failure.
"""
import csv
import json
import os
import sys
import time
import urllib.request

FIELDS = ["t", "rss_kb", "fds", "sessions", "datagrams_in", "session_datagrams",
          "endpoint_datagrams", "handoffs_received", "handed_off", "handoff_lost",
          "kernel_drops", "drops"]


def totals(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.load(r)
    t = {}
    for shard in doc["shards"]:
        for src in (shard.get("counters") or {}, shard.get("app") or {}):
            for k, v in src.items():
                if isinstance(v, int):
                    t[k] = t.get(k, 0) + v
    return t


def row(t0, pid, t):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    g = lambda k: t.get(k, 0)
    drops = sum(v for k, v in t.items() if k.startswith("session_drop") or k.startswith("drop_"))
    return [round(time.time() - t0, 1), rss, fds, g("sessions"), g("datagrams_in"),
            g("session_datagrams"), g("session_endpoint_datagrams"),
            g("session_handoffs_received"), g("session_handed_off"),
            g("session_handoff_full") + g("session_handoff_closed"), g("kernel_drops"), drops]


def sample(pid, url, out, client_pid):
    t0 = time.time()
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        while os.path.exists(f"/proc/{client_pid}") and os.path.exists(f"/proc/{pid}"):
            try:
                w.writerow(row(t0, pid, totals(url)))
                f.flush()
            except (OSError, ValueError, KeyError, StopIteration) as e:
                print(f"soak: sample failed: {e}", file=sys.stderr)
            for _ in range(100):
                if not os.path.exists(f"/proc/{client_pid}"):
                    break
                time.sleep(0.1)


def slope(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return 0.0 if sxx == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def final_totals(stdout):
    t = {}
    for line in stdout.splitlines():
        if line.startswith("final shard ") or line.startswith("app shard "):
            for f in line.split(": ", 1)[1].split():
                k, _, v = f.partition("=")
                if v.isdigit():
                    t[k] = t.get(k, 0) + int(v)
    return t


def judge(d):
    with open(os.path.join(d, "samples.csv")) as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    with open(os.path.join(d, "client.json")) as f:
        client = json.load(f)
    with open(os.path.join(d, "server.out")) as f:
        fin = final_totals(f.read())
    failures = []
    if len(rows) < 6:
        failures.append(f"only {len(rows)} samples")
        rows = rows or [dict.fromkeys(FIELDS, 0.0)]
    # Warm-up: the first 10% (at least a minute) is allocation and table growth.
    span = rows[-1]["t"]
    warm = max(60.0, 0.1 * span)
    steady = [r for r in rows if r["t"] >= warm] or rows
    xs = [r["t"] for r in steady]
    window = max(xs[-1] - xs[0], 1.0)
    print(f"soak: {len(rows)} samples over {span / 60:.1f} min; slopes over the {len(steady)} "
          f"after {warm:.0f} s of warm-up ({window / 60:.1f} min)")
    limits = {
        # Growth over the window allowed: allocator noise, not a leak.
        "rss_kb": lambda mean: max(1024.0, 0.02 * mean),
        "fds": lambda mean: 0.5,
        "sessions": lambda mean: max(4.0, 0.05 * mean),
    }
    for k, limit in limits.items():
        ys = [r[k] for r in steady]
        s = slope(xs, ys)
        mean = sum(ys) / len(ys)
        growth = s * window
        ok = growth <= limit(mean)
        print(f"  {k:<9} first {ys[0]:>10.0f} last {ys[-1]:>10.0f} min {min(ys):>10.0f} "
              f"max {max(ys):>10.0f}  slope {s * 3600:+.1f}/h  growth over window "
              f"{growth:+.1f} (limit {limit(mean):.1f}) {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"{k} grows: {growth:+.1f} over the window")
    # In-run ledger, sampled live: reported, not judged (the shard's counters and its app's are
    # read at different turns, and a handoff may be in flight between shards). The drained
    # server's final counters below are judged exactly.
    gaps = [r["datagrams_in"] - r["session_datagrams"] for r in rows]
    inflight = [r["handed_off"] - r["handoffs_received"] for r in rows]
    print(f"  live ledger: read - taken by sessions: max {max(gaps):.0f}; handoffs in flight: "
          f"max {max(inflight):.0f}")
    # Final ledger, exact, from the drained server's counters.
    t = lambda k: fin.get(k, 0)
    eqs = {
        "datagrams_in = session_datagrams": (t("datagrams_in"), t("session_datagrams")),
        "session_endpoint_datagrams = session_datagrams + session_handoffs_received":
            (t("session_endpoint_datagrams"), t("session_datagrams") + t("session_handoffs_received")),
        # Handoffs the mesh refused (full, closed) are drops with their own reasons: they never
        # count as handed off, nor reach the owner.
        "session_handed_off = session_handoffs_received":
            (t("session_handed_off"), t("session_handoffs_received")),
    }
    if not fin:
        failures.append("no final counters from the server")
    for name, (a, b) in eqs.items():
        print(f"  final ledger {name}: {a} = {b} gap {a - b} {'ok' if a == b else 'FAIL'}")
        if a != b:
            failures.append(f"final ledger gap {a - b}: {name}")
    print(f"  final: datagrams_in {t('datagrams_in')} sessions_accepted {t('sessions_accepted')} "
          f"sessions {t('sessions')} echoed {t('echoed')} kernel_drops {t('kernel_drops')}")
    print(f"  client: {json.dumps(client, sort_keys=True)}")
    if client.get("duplicates", 0) or client.get("unknown", 0):
        failures.append("the client got a duplicate or unknown echo")
    if client.get("echoed", 0) == 0 or client.get("connected", 0) == 0:
        failures.append("no traffic")
    if failures:
        print("soak: FAIL: " + "; ".join(failures))
        return 1
    print("soak: ok (flat, ledger balanced)")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    elif sys.argv[1] == "judge":
        sys.exit(judge(sys.argv[2]))
    else:
        sys.exit(__doc__)
