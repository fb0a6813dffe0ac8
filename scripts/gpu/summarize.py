"""One-line summaries of yollayah's JSON output, for the proof logs.

usage: summarize.py doctor FILE.json | summarize.py watch FILE.ndjson
Reads fields with .get() so that it keeps working as the report format grows.
"""
import json
import sys

MIB = 1 << 20


def mib(b):
    return "?" if b is None else f"{b / MIB:.0f}MiB"


def doctor(path):
    try:
        r = json.load(open(path))
    except (OSError, ValueError) as e:
        print(f"  doctor: unreadable ({e})")
        return
    extra = "".join(f" {k}={r[k]}" for k in ("scope", "observation_scope") if k in r)
    print(f"  doctor: verdict={r.get('verdict')} exit={r.get('exit_code')}{extra}")
    for d in r.get("diagnoses", []):
        p = d.get("placement", {})
        codes = ",".join(f.get("code", "?") for f in d.get("findings", []))
        print(f"    {d.get('model')}: placement={json.dumps(p.get('placement'))} "
              f"ps={p.get('ps_processor')!r} cpu_share={p.get('cpu_share_pct')} "
              f"runner_pid={p.get('runner_pid')} runner_gpu={mib(p.get('runner_gpu_bytes'))} "
              f"nvml_agrees={p.get('nvml_agrees')} contradiction={p.get('contradiction')} "
              f"findings=[{codes}]")
    runners = r.get("runners", [])
    print(f"    runner entries: {len(runners)}")
    for rn in runners[:3]:
        print(f"    runner pid={rn.get('pid')} exe={rn.get('exe')} cpu={rn.get('cpu_percent')} "
              f"model={rn.get('model_path')}")
    if len(runners) > 3:
        # sysinfo lists a process's threads as processes too: one runner shows up many times.
        print(f"    ... {len(runners) - 3} more runner entries, pids {runners[3].get('pid')}.."
              f"{runners[-1].get('pid')}")


def watch(path):
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print(f"  watch: unreadable ({e})")
        return
    print(f"  watch: {len(lines)} events")
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            print(f"    (not json) {line[:160]}")
            continue
        t = e.get("type")
        if t == "snapshot":
            # The full snapshot is in the raw log; here only what a user would read.
            keep = {k: e[k] for k in ("at", "verdict", "headline", "scope", "open_incidents") if k in e}
            print(f"    snapshot {json.dumps(keep)[:300]}")
        else:
            print(f"    {t} {json.dumps({k: v for k, v in e.items() if k != 'type'})[:300]}")


{"doctor": doctor, "watch": watch}[sys.argv[1]](sys.argv[2])
