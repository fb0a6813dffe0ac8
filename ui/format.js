// Small pure formatting helpers shared by the status strip, the message list and the
// conversation panel.

const GIB = 1024 ** 3;

/** "3.4" for 3.4 GiB given bytes. */
export function gib(bytes) {
  return (bytes / GIB).toFixed(1);
}

/** Badge text and tone for a snapshot verdict. */
export function verdictBadge(verdict) {
  switch (verdict && verdict.kind) {
    case "gpu":
      return { text: "GPU", tone: "good" };
    case "partial":
      return { text: `${Math.round(verdict.cpu_pct ?? 0)}% CPU`, tone: "warn" };
    case "cpu":
      return { text: "CPU", tone: "bad" };
    case "down":
      return { text: "down", tone: "bad" };
    case "warming":
      return { text: "warming", tone: "info" };
    case "not_loaded":
      return { text: "not loaded", tone: "idle" };
    case "unverified":
      // Ollama claims the GPU but nothing checked it (remote server, no runner found).
      return { text: "unverified", tone: "warn" };
    default:
      return { text: "unknown", tone: "idle" };
  }
}

/** Total VRAM used/total over all GPUs, or null when no GPU is visible. */
export function vramTotals(gpus) {
  if (!Array.isArray(gpus) || gpus.length === 0) return null;
  let used = 0;
  let total = 0;
  for (const g of gpus) {
    used += Number(g.memory_used) || 0;
    total += Number(g.memory_total) || 0;
  }
  return total > 0 ? { used, total } : null;
}

/** Mean utilisation over GPUs that report it, or null. */
export function meanUtil(gpus) {
  if (!Array.isArray(gpus)) return null;
  const vals = gpus.map((g) => g.utilization_gpu).filter((u) => typeof u === "number");
  return vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "narrow" });

/** "5 min. ago", "yesterday" … for an RFC3339 time. */
export function relativeTime(rfc3339, now = Date.now()) {
  const t = Date.parse(rfc3339);
  if (Number.isNaN(t)) return "";
  const s = Math.round((t - now) / 1000);
  const abs = Math.abs(s);
  if (abs < 60) return rtf.format(s, "second");
  if (abs < 3600) return rtf.format(Math.round(s / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(s / 3600), "hour");
  return rtf.format(Math.round(s / 86400), "day");
}

/** "42 tok/s" with sensible precision. */
export function tokPerSec(tps) {
  if (typeof tps !== "number" || !Number.isFinite(tps)) return "";
  return `${tps >= 10 ? Math.round(tps) : tps.toFixed(1)} tok/s`;
}
