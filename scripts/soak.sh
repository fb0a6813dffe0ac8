#!/usr/bin/env bash
# Soak test: `yollayah watch --json` against ollama-sim for MINUTES while faults and placements
# are staged at random (seeded) through the sim's /__sim/ control API, then checks what the
# watch reported against what was staged. Not run in CI (it takes minutes); see
# docs/fuzzing-and-soak.md.
#
#   scripts/soak.sh [MINUTES]        (default 20; fractions such as 2.5 work)
#
# Environment: SOAK_SEED (default 20261122), SOAK_TICK_MS (watchdog tick, default 500),
# SOAK_REWARM_TICKS (ticks the model may take to be back in /api/ps after a fault cleared,
# default 40), SOAK_MAX_RSS_GROWTH_KIB (default 16384), SOAK_DIR (work dir, default a temp dir;
# it keeps watch.ndjson, incidents.json, sim.log, summary.txt), SOAK_KINDS (comma-separated
# subset of ps_lies_gpu,vram_partial,restart,runtime_oom,second_client; default all).
#
# Everything listens on and talks to 127.0.0.1 only. Exit 0 when every check passed, 1 when a
# check failed (the summary lists the mismatches), 2 when the setup failed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything runs inside main, which bash parses completely before running it, so editing this
# file while a long soak runs cannot change what the running soak does.
main() {
minutes="${1:-20}"
seed="${SOAK_SEED:-20261122}"
tick_ms="${SOAK_TICK_MS:-500}"
rewarm_ticks="${SOAK_REWARM_TICKS:-40}"
max_rss_growth_kib="${SOAK_MAX_RSS_GROWTH_KIB:-16384}"
dir="${SOAK_DIR:-$(mktemp -d /tmp/yollayah-soak.XXXXXX)}"
mkdir -p "$dir"
echo "== soak: ${minutes} min, seed $seed, tick ${tick_ms} ms, work dir $dir"

echo "== building release ollama-sim and yollayah"
cargo build --release --locked -p ollama-sim -p yollayah-cli 2>&1 | tail -n 2
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
sim_bin="$target_dir/release/ollama-sim"
cli_bin="$target_dir/release/yollayah"

# The default demo machine with a fast token rate and load time, so a 20-minute soak goes
# through many streams and loads.
sed -e 's/^tokens_per_second = .*/tokens_per_second = 2000.0/' \
    -e 's/^load_ms = .*/load_ms = 300/' \
    crates/ollama-sim/scenarios/default.toml >"$dir/scenario.toml"

# A private config and XDG tree: the user's own config, persona and history stay untouched.
mkdir -p "$dir/xdg/config" "$dir/xdg/data" "$dir/xdg/state"
cat >"$dir/config.toml" <<EOF
[watchdog]
tick_ms = $tick_ms
EOF

sim_pid=""
watch_pid=""
cleanup() {
    # Only the two processes this script started, by pid.
    if [ -n "$watch_pid" ] && kill -0 "$watch_pid" 2>/dev/null; then kill "$watch_pid" 2>/dev/null || true; fi
    if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then kill "$sim_pid" 2>/dev/null || true; fi
    wait 2>/dev/null || true
}
trap cleanup EXIT

"$sim_bin" --listen 127.0.0.1:0 --scenario "$dir/scenario.toml" >"$dir/sim.url" 2>"$dir/sim.log" &
sim_pid=$!
url=""
for _ in $(seq 1 100); do
    url="$(head -n 1 "$dir/sim.url" 2>/dev/null || true)"
    [ -n "$url" ] && break
    sleep 0.1
done
case "$url" in
    http://127.0.0.1:*) ;;
    *) echo "ollama-sim did not start (url: '$url'); see $dir/sim.log" >&2; exit 2 ;;
esac
echo "== ollama-sim at $url (pid $sim_pid)"

XDG_CONFIG_HOME="$dir/xdg/config" XDG_DATA_HOME="$dir/xdg/data" XDG_STATE_HOME="$dir/xdg/state" \
    "$cli_bin" --url "$url" --config "$dir/config.toml" watch --json --gpu-source sim \
    >"$dir/watch.ndjson" 2>"$dir/watch.log" &
watch_pid=$!
echo "== yollayah watch pid $watch_pid"

set +e
python3 - "$url" "$watch_pid" "$minutes" "$seed" "$tick_ms" "$rewarm_ticks" \
    "$max_rss_growth_kib" "$dir" "${SOAK_KINDS:-}" <<'PY'
"""Stages incidents one at a time, records them, then checks the watch's NDJSON against them.

Each episode runs to completion (fault staged, held, cleared, model back) before the next
starts, so every watch event can be attributed to exactly one episode by the time it was read.
"""
import json, os, random, sys, threading, time, urllib.request, urllib.error

url, watch_pid, minutes, seed, tick_ms, rewarm_ticks, max_growth, out, kinds = sys.argv[1:]
watch_pid, seed, tick_ms, rewarm_ticks, max_growth = map(int, (watch_pid, seed, tick_ms, rewarm_ticks, max_growth))
duration = float(minutes) * 60
tick = tick_ms / 1000
MODEL = "llama3.2:3b"       # the bundled persona's model
SECOND = "qwen2.5:7b"
BASE_VRAM = [
    {"name": "Xorg", "pid": 1841, "bytes": 190840832, "kind": "graphics", "gpu": 0},
    {"name": "firefox", "pid": 3377, "bytes": 367001600, "kind": "graphics", "gpu": 0},
]
HOG = {"name": "blender", "pid": 4242, "bytes": 9_400_000_000, "kind": "compute", "gpu": 0}
rng = random.Random(seed)
t0 = time.monotonic()
def now(): return time.monotonic() - t0

def req(method, path, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    r = urllib.request.Request(url + path, data=data, method=method)
    if body is not None:
        r.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(r, timeout=timeout) as resp:
        return resp.status, resp.read()

def get_json(path):
    return json.loads(req("GET", path, timeout=5)[1])

def post(path, body=None):
    try:
        return req("POST", path, body if body is not None else {}, timeout=60)[0]
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None

def stats():
    try:
        return get_json("/__sim/stats")
    except (OSError, ValueError):
        return None

def ours(st):
    return next((m for m in (st or {}).get("loaded", []) if m["name"] == MODEL), None)

def ps_ours():
    try:
        ps = get_json("/api/ps")
    except (OSError, ValueError):
        return None
    return next((m for m in ps.get("models", []) if m["name"] == MODEL), None)

def rss_kib():
    with open(f"/proc/{watch_pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None

# ---- tail the watch's NDJSON, stamping each event with the time it was read -------------
events = []
stop_tail = threading.Event()
def tail():
    pos, buf = 0, b""
    path = os.path.join(out, "watch.ndjson")
    while not stop_tail.is_set():
        with open(path, "rb") as f:
            f.seek(pos)
            chunk = f.read()
            pos += len(chunk)
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    events.append((now(), json.loads(line)))
                except ValueError:
                    events.append((now(), {"type": "unparseable", "line": line[:200].decode("utf-8", "replace")}))
        time.sleep(0.05)
threading.Thread(target=tail, daemon=True).start()

def wait_until(pred, timeout, step=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step or tick / 2)
    return None

def on_gpu(st):
    m = ours(st)
    return m is not None and m["gpu_layers"] >= m["total_layers"] and m["size_vram"] == m["size"]

rewarm_timeout = rewarm_ticks * tick

def check_back(ep, label):
    """After a fault cleared: is the model back in /api/ps within the allowed ticks?"""
    t = now()
    ok = wait_until(lambda: ours(stats()), rewarm_timeout)
    ep.setdefault("rewarms", []).append({"after": label, "ok": bool(ok), "secs": round(now() - t, 2)})
    return ok

def settle():
    """Precondition of every episode: the model fully on the GPU and the watch has seen it."""
    ok = wait_until(lambda: on_gpu(stats()), rewarm_timeout)
    time.sleep(3 * tick)
    return bool(ok)

# ---- episodes -------------------------------------------------------------------------
def ep_ps_lies(ep):
    post("/__sim/fault", {"kind": "ps_lies_gpu", "model": MODEL})
    ep["expect_alerts"] = 1
    time.sleep(rng.uniform(6, 12) * tick)
    post("/__sim/clear")
    ep["cleared"] = now()
    time.sleep(4 * tick)

def ep_partial(ep):
    post("/__sim/other-vram", BASE_VRAM + [HOG])
    post("/api/generate", {"model": MODEL, "keep_alive": 0})       # unload: watchdog re-warms
    ep["unload"] = now()
    back = check_back(ep, "unload under VRAM pressure")
    st = ours(stats()) if back else None
    partial = bool(st) and st["gpu_layers"] < st["total_layers"]
    ep["placement"] = f'{st["gpu_layers"]}/{st["total_layers"]} layers' if st else "not loaded"
    ep["expect_alerts"] = 1 if partial else 0
    time.sleep(rng.uniform(6, 12) * tick)
    post("/__sim/other-vram", BASE_VRAM)
    post("/api/generate", {"model": MODEL, "keep_alive": 0})
    ep["cleared"] = now()
    check_back(ep, "unload after freeing VRAM")
    wait_until(lambda: on_gpu(stats()), rewarm_timeout)
    time.sleep(4 * tick)

def ep_restart(ep):
    ms = rng.randint(int(6 * tick_ms), int(16 * tick_ms))
    ep["outage_ms"] = ms
    ep["expect_down"] = 1
    post(f"/__sim/stop-for?ms={ms}")
    time.sleep(ms / 1000 + 0.2)
    ep["cleared"] = now()
    check_back(ep, "restart")
    time.sleep(4 * tick)

def ep_oom(ep):
    post("/__sim/fault", {"kind": "runtime_oom"})
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}],
            "keep_alive": -1}  # no load options, like the bundled persona: no reload
    try:
        _, text = req("POST", "/api/chat", body, timeout=60)
        ep["chat"] = "OOM line seen" if b"out of memory" in text else "no OOM line"
    except (OSError, urllib.error.HTTPError) as e:
        ep["chat"] = f"chat failed: {e}"
    ep["cleared"] = now()
    check_back(ep, "runtime OOM")
    time.sleep(4 * tick)

def ep_second_client(ep):
    post("/api/generate", {"model": SECOND, "keep_alive": "1m"})
    # Another client touching our model with a short keep_alive (and our options, so no reload).
    post("/api/generate", {"model": MODEL, "keep_alive": "1m"})
    ep["cleared"] = now()
    # Reasserted when /api/ps shows a "Forever" expiry again (more than 20 years ahead).
    def reasserted():
        m = ps_ours()
        return m is not None and m.get("expires_at", "0")[:4] > str(time.gmtime().tm_year + 20)
    t = now()
    ok = wait_until(reasserted, rewarm_timeout)
    ep.setdefault("rewarms", []).append({"after": "keep_alive 1m by another client", "ok": bool(ok), "secs": round(now() - t, 2)})
    time.sleep(rng.uniform(4, 10) * tick)
    post("/api/generate", {"model": SECOND, "keep_alive": 0})
    time.sleep(4 * tick)

EPISODES = [("ps_lies_gpu", ep_ps_lies), ("vram_partial", ep_partial), ("restart", ep_restart),
            ("runtime_oom", ep_oom), ("second_client", ep_second_client)]
ACTIVE = [e for e in EPISODES if not kinds or e[0] in kinds.split(",")]

episodes = []
setup_ok = settle()
rss_start = rss_kib()
print(f"initial warm {'ok' if setup_ok else 'FAILED'}; watch RSS {rss_start} KiB", flush=True)
deadline = duration
i = 0
while setup_ok and now() < deadline and i < 10_000:
    i += 1
    kind, fn = ACTIVE[rng.randrange(len(ACTIVE))]
    ep = {"n": i, "kind": kind, "expect_alerts": 0, "expect_down": 0}
    ep["precondition"] = settle()
    ep["start"] = now()
    fn(ep)
    ep["end"] = now()
    episodes.append(ep)
    print(f"[{ep['end']:7.1f}s] #{i} {kind}: " + ", ".join(
        f"{k}={round(v, 1) if isinstance(v, float) else v}" for k, v in ep.items()
        if k not in ("n", "kind", "start", "end")), flush=True)
    gap = rng.uniform(5, 15)
    time.sleep(max(0.0, min(gap, deadline - now())))
time.sleep(4 * tick)
rss_end = rss_kib()
stop_tail.set()
time.sleep(0.2)

# ---- checks -----------------------------------------------------------------------------
def window(t):
    """The episode an event read at time t belongs to (an episode owns up to the next start)."""
    owner = None
    for ep in episodes:
        if ep["start"] <= t:
            owner = ep
    return owner

mismatches = []
raised, resolved, downs = {}, {}, {}
unparseable = 0
incident_ids = {}
for t, ev in events:
    typ = ev.get("type")
    if typ == "unparseable":
        unparseable += 1
        continue
    ep = window(t)
    key = ep["n"] if ep else 0
    if typ == "alert_raised":
        raised.setdefault(key, []).append(ev)
        incident_ids[ev["incident"]] = key
    elif typ == "alert_resolved":
        resolved.setdefault(key, []).append(ev)
    elif typ == "ollama_down":
        downs.setdefault(key, []).append(ev)
if unparseable:
    mismatches.append(f"{unparseable} watch lines were not JSON")
for k in (0,):
    for ev in raised.get(k, []):
        mismatches.append(f"alert before the first episode: {ev.get('title')}")
    for ev in downs.get(k, []):
        mismatches.append("OllamaDown before the first episode")
for ep in episodes:
    n = ep["n"]
    got = raised.get(n, [])
    if len(got) != ep["expect_alerts"]:
        mismatches.append(f"#{n} {ep['kind']}: {len(got)} alert(s) raised, {ep['expect_alerts']} expected"
                          + "".join(f"; got [{a.get('code')}] {a.get('title')}" for a in got))
    res = resolved.get(n, [])
    want_ids = {a["incident"] for a in got}
    res_ids = {a["incident"] for a in res}
    if want_ids != res_ids:
        mismatches.append(f"#{n} {ep['kind']}: resolutions {sorted(res_ids)} for alerts {sorted(want_ids)}")
    d = len(downs.get(n, []))
    if d != ep["expect_down"]:
        mismatches.append(f"#{n} {ep['kind']}: {d} OllamaDown event(s), {ep['expect_down']} outage(s) staged")
    for rw in ep.get("rewarms", []):
        if not rw["ok"]:
            mismatches.append(f"#{n} {ep['kind']}: model not back within {rewarm_ticks} ticks after {rw['after']}")
    if not ep["precondition"]:
        mismatches.append(f"#{n} {ep['kind']}: model was not fully on the GPU before the episode")
if not setup_ok:
    mismatches.append("the model never got warm at start")
growth = (rss_end - rss_start) if (rss_start and rss_end) else None
if growth is None:
    mismatches.append("watch process gone before the end (no RSS)")
elif growth > max_growth:
    mismatches.append(f"watch RSS grew by {growth} KiB (> {max_growth} KiB)")

total_alerts = sum(len(v) for v in raised.values())
total_res = sum(len(v) for v in resolved.values())
total_down = sum(len(v) for v in downs.values())
lines = [f"soak summary: {minutes} min, seed {seed}, tick {tick_ms} ms, {len(episodes)} episodes, {len(events)} watch events", ""]
lines.append(f"{'kind':<14}{'staged':>7}{'incidents':>10}{'alerts':>8}{'resolved':>9}{'outages':>8}{'down ev':>8}{'rewarms':>8}{'missed':>7}")
for kind, _ in EPISODES:
    eps = [e for e in episodes if e["kind"] == kind]
    rw = [r for e in eps for r in e.get("rewarms", [])]
    lines.append(f"{kind:<14}{len(eps):>7}{sum(e['expect_alerts'] for e in eps):>10}"
                 f"{sum(len(raised.get(e['n'], [])) for e in eps):>8}{sum(len(resolved.get(e['n'], [])) for e in eps):>9}"
                 f"{sum(e['expect_down'] for e in eps):>8}{sum(len(downs.get(e['n'], [])) for e in eps):>8}"
                 f"{sum(r['ok'] for r in rw):>8}{sum(not r['ok'] for r in rw):>7}")
lines.append(f"{'total':<14}{len(episodes):>7}{sum(e['expect_alerts'] for e in episodes):>10}{total_alerts:>8}{total_res:>9}"
             f"{sum(e['expect_down'] for e in episodes):>8}{total_down:>8}")
slow = max((r["secs"] for e in episodes for r in e.get("rewarms", []) if r["ok"]), default=0)
lines.append("")
lines.append(f"watch RSS: start {rss_start} KiB, end {rss_end} KiB, growth {growth} KiB")
lines.append(f"slowest recovery: {slow} s (limit {rewarm_timeout:.1f} s = {rewarm_ticks} ticks)")
lines.append("")
lines.append("mismatches: none" if not mismatches else "MISMATCHES:")
lines += [f"  - {m}" for m in mismatches]
text = "\n".join(lines)
print(text)
with open(os.path.join(out, "summary.txt"), "w") as f:
    f.write(text + "\n")
with open(os.path.join(out, "incidents.json"), "w") as f:
    json.dump({"episodes": episodes, "events": [{"t": round(t, 3), "event": e} for t, e in events
               if e.get("type") != "snapshot"]}, f, indent=1)
sys.exit(1 if mismatches else 0)
PY
rc=$?
set -e
echo "== work dir: $dir (watch.ndjson, incidents.json, summary.txt, sim.log)"
return "$rc"
}
main "$@"
exit $?
