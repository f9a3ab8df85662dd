// The page's logic, kept apart from the views so Vitest can check it
// without a window: formatting, search, job progress and speed, what a
// card's button says, series for the graphs, the audit's words.

import type { AppInfo } from "./bindings/AppInfo";
import type { AuditReport } from "./bindings/AuditReport";
import type { CatalogApp } from "./bindings/CatalogApp";
import type { LayerProgress } from "./bindings/LayerProgress";
import type { ContainerSample as Sample } from "./bindings/ContainerSample";

const UNITS = ["B", "kB", "MB", "GB", "TB"];

/** 1536 → "1.5 kB" (powers of 1000, as file managers show sizes). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "–";
  let i = 0;
  while (n >= 1000 && i < UNITS.length - 1) {
    n /= 1000;
    i++;
  }
  const digits = i === 0 || n >= 100 ? 0 : n >= 10 ? 1 : 2;
  return `${n.toFixed(digits)} ${UNITS[i]}`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

export function formatPercent(p: number): string {
  const digits = p === 0 || p >= 10 ? 0 : p < 1 ? 2 : 1;
  return `${p.toFixed(digits)} %`;
}

/** Apps whose title, id, description or category contain every word typed. */
export function searchApps(apps: CatalogApp[], query: string): CatalogApp[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return apps;
  return apps.filter((a) => {
    const text = `${a.title} ${a.id} ${a.description} ${a.category}`.toLowerCase();
    return words.every((w) => text.includes(w));
  });
}

/** Categories present, sorted, for the filter chips. */
export function categories(apps: CatalogApp[]): string[] {
  return [...new Set(apps.map((a) => a.category).filter(Boolean))].sort();
}

/** Where a job is, as a card shows it. */
export interface JobView {
  job: string;
  kind: "install" | "update" | "remove";
  phase: string;
  layers: LayerProgress[];
  done: number;
  total: number;
  /** Bytes per second over the last few seconds. */
  speed: number;
  /** Recent (time ms, bytes done) points the speed is taken from. */
  history: [number, number][];
}

export function newJob(job: string, kind: JobView["kind"]): JobView {
  return { job, kind, phase: "starting", layers: [], done: 0, total: 0, speed: 0, history: [] };
}

const SPEED_WINDOW_MS = 3000;

/** The job after a progress report arriving at `now`. */
export function advanceJob(j: JobView, phase: string, layers: LayerProgress[], now: number): JobView {
  const done = layers.reduce((s, l) => s + l.done, 0);
  const total = layers.reduce((s, l) => s + l.total, 0);
  const history = [...j.history, [now, done] as [number, number]].filter(
    ([t]) => now - t <= SPEED_WINDOW_MS,
  );
  const [t0, d0] = history[0];
  const speed = now > t0 ? ((done - d0) * 1000) / (now - t0) : 0;
  return { ...j, phase, layers, done, total, speed: Math.max(0, speed), history };
}

/** 0..1, or null while the total is not known yet. */
export function jobFraction(j: JobView): number | null {
  return j.total > 0 ? Math.min(1, j.done / j.total) : null;
}

/** A layer's line: short digest, status, bytes. */
export function layerLine(l: LayerProgress): string {
  const id = l.digest.replace(/^sha256:/, "").slice(0, 12);
  const bytes = l.total > 0 ? `${formatBytes(l.done)} / ${formatBytes(l.total)}` : formatBytes(l.done);
  return `${id} ${l.status} ${bytes}`;
}

export type CardState =
  | { kind: "install"; label: "Install" }
  | { kind: "busy"; label: string }
  | { kind: "open"; label: "Open"; url: string }
  | { kind: "running"; label: "Running" }
  | { kind: "stopped"; label: "Start" };

/** What a catalog card's button says and does. */
export function cardState(installed: AppInfo | undefined, job: JobView | undefined): CardState {
  if (job) {
    const label = job.kind === "remove" ? "Removing…" : job.kind === "update" ? "Updating…" : "Installing…";
    return { kind: "busy", label };
  }
  if (!installed) return { kind: "install", label: "Install" };
  switch (installed.state) {
    case "running":
    case "partly running":
      return installed.url ? { kind: "open", label: "Open", url: installed.url } : { kind: "running", label: "Running" };
    case "stopped":
      return { kind: "stopped", label: "Start" };
    default:
      return { kind: "busy", label: `${capitalize(installed.state)}…` };
  }
}

export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** What the window says after a remove. */
export function auditMessage(r: AuditReport): { ok: boolean; title: string; lines: string[] } {
  if (r.clean) {
    const lines = r.checked.length ? [`Checked: ${r.checked.join(", ")}.`] : [];
    if (r.kept.length) lines.push(`Kept on purpose: ${r.kept.join(", ")}`);
    return { ok: true, title: "Removed — nothing left on this computer", lines };
  }
  return { ok: false, title: `Removed, but ${r.remaining.length} thing${r.remaining.length === 1 ? "" : "s"} remain`, lines: r.remaining };
}

/** Up to ten minutes of history per service. */
export const HISTORY_SECONDS = 600;

/** Samples merged in time order without duplicates, trimmed to the window. */
export function mergeSamples(old: Sample[], fresh: Sample[]): Sample[] {
  const last = old.length ? old[old.length - 1].time : -Infinity;
  const merged = old.concat(fresh.filter((s) => s.time > last));
  const newest = merged.length ? merged[merged.length - 1].time : 0;
  const from = newest - HISTORY_SECONDS * 1000;
  let i = 0;
  while (i < merged.length && merged[i].time < from) i++;
  return i ? merged.slice(i) : merged;
}

/** What the graphs draw, column by column (uPlot's data layout). */
export interface Series {
  /** Seconds since the epoch. */
  time: number[];
  cpu: number[];
  memory: number[];
  memoryLimit: (number | null)[];
  rx: number[];
  tx: number[];
  read: number[];
  write: number[];
  pids: number[];
}

/** Counters become rates per second between neighbouring samples. */
export function toSeries(samples: Sample[]): Series {
  const s: Series = { time: [], cpu: [], memory: [], memoryLimit: [], rx: [], tx: [], read: [], write: [], pids: [] };
  const rate = (a: number, b: number, dt: number) => (dt > 0 && b >= a ? (b - a) / dt : 0);
  samples.forEach((x, i) => {
    const p = i > 0 ? samples[i - 1] : undefined;
    const dt = p ? (x.time - p.time) / 1000 : 0;
    s.time.push(x.time / 1000);
    s.cpu.push(x.cpu_percent);
    s.memory.push(x.memory_usage);
    s.memoryLimit.push(x.memory_limit ?? null);
    s.rx.push(p ? rate(p.net_rx, x.net_rx, dt) : 0);
    s.tx.push(p ? rate(p.net_tx, x.net_tx, dt) : 0);
    s.read.push(p ? rate(p.block_read, x.block_read, dt) : 0);
    s.write.push(p ? rate(p.block_write, x.block_write, dt) : 0);
    s.pids.push(x.pids);
  });
  return s;
}

/** "3 minutes ago", for install times and image dates. */
export function ago(seconds: number, nowSeconds: number): string {
  const d = Math.max(0, nowSeconds - seconds);
  if (d < 60) return "just now";
  const steps: [number, string][] = [[86400, "day"], [3600, "hour"], [60, "minute"]];
  for (const [n, name] of steps) {
    if (d >= n) {
      const k = Math.floor(d / n);
      return `${k} ${name}${k === 1 ? "" : "s"} ago`;
    }
  }
  return "just now";
}

/** Where the window is. */
export type View = { name: "catalog" } | { name: "installed" } | { name: "storage" } | { name: "app"; id: string };

/** A view from its name: `catalog`, `installed`, `storage` or `app:<id>`. */
export function parseView(v: string): View {
  if (v.startsWith("app:") && v.length > 4) return { name: "app", id: v.slice(4) };
  if (v === "installed" || v === "storage") return { name: v };
  return { name: "catalog" };
}
