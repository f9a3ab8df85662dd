import { describe, expect, it } from "vitest";
import type { AppInfo } from "./bindings/AppInfo";
import type { CatalogApp } from "./bindings/CatalogApp";
import type { ContainerSample as Sample } from "./bindings/ContainerSample";
import {
  advanceJob, ago, auditMessage, cardState, categories, formatBytes, jobFraction, layerLine,
  mergeSamples, newJob, formatPercent, parseView, searchApps, toSeries, HISTORY_SECONDS,
} from "./logic";

const app = (id: string, title: string, description: string, category: string): CatalogApp => ({
  catalog: "demo", id, title, version: "1", description, category, website: "", services: [], images: [], installed: false,
});

const installed = (state: string, url = "http://127.0.0.1:8080/"): AppInfo => ({
  id: "hello", catalog: "demo", title: "Hello", version: "1", state, url, services: [], ports: [], volumes: [],
  installed: 0, cpu_percent: 0, memory_bytes: 0,
});

const sample = (time: number, over: Partial<Sample> = {}): Sample => ({
  time, cpu_ns: 0, cpu_percent: 0, memory_usage: 0, memory_limit: null, memory_working_set: 0, pids: 1, block_read: 0, block_write: 0, net_rx: 0, net_tx: 0, ...over,
});

describe("formatting", () => {
  it("shows sizes in powers of 1000 with sensible digits", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1536)).toBe("1.54 kB");
    expect(formatBytes(25_300_000)).toBe("25.3 MB");
    expect(formatBytes(195_800_000)).toBe("196 MB");
    expect(formatBytes(-1)).toBe("–");
  });
  it("shows small shares of a core with enough digits", () => {
    expect(formatPercent(0)).toBe("0 %");
    expect(formatPercent(0.04)).toBe("0.04 %");
    expect(formatPercent(2.345)).toBe("2.3 %");
    expect(formatPercent(153.2)).toBe("153 %");
  });
  it("says how long ago", () => {
    expect(ago(1000, 1030)).toBe("just now");
    expect(ago(1000, 1000 + 3 * 60 + 5)).toBe("3 minutes ago");
    expect(ago(0, 86400)).toBe("1 day ago");
  });
});

describe("catalog search", () => {
  const apps = [
    app("hello", "Hello", "A small web page", "demo"),
    app("notes", "Notes", "Write things down", "productivity"),
    app("grafana", "Grafana", "Dashboards for metrics", "monitoring"),
  ];
  it("matches every word anywhere, ignoring case", () => {
    expect(searchApps(apps, "").map((a) => a.id)).toEqual(["hello", "notes", "grafana"]);
    expect(searchApps(apps, "WEB").map((a) => a.id)).toEqual(["hello"]);
    expect(searchApps(apps, "dash metrics").map((a) => a.id)).toEqual(["grafana"]);
    expect(searchApps(apps, "dash notes")).toEqual([]);
    expect(searchApps(apps, "productivity").map((a) => a.id)).toEqual(["notes"]);
  });
  it("lists categories once, sorted", () => {
    expect(categories([...apps, app("x", "X", "", "demo")])).toEqual(["demo", "monitoring", "productivity"]);
  });
});

describe("job progress", () => {
  const layer = (done: number, total: number) => ({ digest: "sha256:0123456789abcdef", status: "downloading", done, total });
  it("sums layers and measures speed over the last seconds", () => {
    let j = newJob("/job/1", "install");
    expect(jobFraction(j)).toBeNull();
    j = advanceJob(j, "pulling", [layer(0, 1000), layer(0, 3000)], 10_000);
    expect(j.speed).toBe(0);
    j = advanceJob(j, "pulling", [layer(1000, 1000), layer(1000, 3000)], 11_000);
    expect(j.done).toBe(2000);
    expect(j.total).toBe(4000);
    expect(jobFraction(j)).toBe(0.5);
    expect(j.speed).toBe(2000);
    // Old points leave the window: the speed follows what happens now.
    j = advanceJob(j, "pulling", [layer(1000, 1000), layer(1000, 3000)], 15_000);
    expect(j.speed).toBe(0);
  });
  it("names a layer by its short digest", () => {
    expect(layerLine(layer(1500, 3000))).toBe("0123456789ab downloading 1.50 kB / 3.00 kB");
  });
});

describe("card button", () => {
  it("goes Install → busy → Open / Running / Start", () => {
    expect(cardState(undefined, undefined).label).toBe("Install");
    expect(cardState(undefined, newJob("/j", "install")).label).toBe("Installing…");
    expect(cardState(installed("running"), newJob("/j", "remove")).label).toBe("Removing…");
    const open = cardState(installed("running"), undefined);
    expect(open).toEqual({ kind: "open", label: "Open", url: "http://127.0.0.1:8080/" });
    expect(cardState(installed("running", ""), undefined).label).toBe("Running");
    expect(cardState(installed("stopped"), undefined).label).toBe("Start");
    expect(cardState(installed("installing"), undefined)).toEqual({ kind: "busy", label: "Installing…" });
  });
});

describe("audit", () => {
  it("says nothing is left, or exactly what is", () => {
    const clean = auditMessage({ clean: true, checked: ["mounts"], remaining: [], repaired: [], kept: [] });
    expect(clean).toEqual({ ok: true, title: "Removed — nothing left on this computer", lines: ["Checked: mounts."] });
    const kept = auditMessage({ clean: true, checked: [], remaining: [], repaired: [], kept: ["hello_site (/var/x)"] });
    expect(kept.lines).toEqual(["Kept on purpose: hello_site (/var/x)"]);
    const dirty = auditMessage({ clean: false, checked: [], remaining: ["mount /run/x", "link bv-1"], repaired: [], kept: [] });
    expect(dirty.ok).toBe(false);
    expect(dirty.title).toBe("Removed, but 2 things remain");
    expect(dirty.lines).toEqual(["mount /run/x", "link bv-1"]);
  });
});

describe("graph series", () => {
  it("merges without duplicates and keeps ten minutes", () => {
    const a = [sample(1000), sample(2000)];
    expect(mergeSamples(a, [sample(2000), sample(3000)]).map((s) => s.time)).toEqual([1000, 2000, 3000]);
    const long = Array.from({ length: HISTORY_SECONDS + 50 }, (_, i) => sample(i * 1000));
    const kept = mergeSamples([], long);
    expect(kept[0].time).toBe(49_000); // newest (649 s) minus ten minutes
    expect(kept.length).toBe(HISTORY_SECONDS + 1);
  });
  it("turns counters into rates per second", () => {
    const s = toSeries([
      sample(1000, { net_rx: 100, block_write: 0, cpu_percent: 5, memory_limit: 1000 }),
      sample(3000, { net_rx: 2100, block_write: 4000, cpu_percent: 7, memory_limit: 1000 }),
      // A restarted container's counters start again: no negative rate.
      sample(4000, { net_rx: 10 }),
    ]);
    expect(s.time).toEqual([1, 3, 4]);
    expect(s.rx).toEqual([0, 1000, 0]);
    expect(s.write).toEqual([0, 2000, 0]);
    expect(s.cpu).toEqual([5, 7, 0]);
    expect(s.memoryLimit).toEqual([1000, 1000, null]);
  });
});

describe("start view", () => {
  it("reads a view's name, and falls back to the catalog", () => {
    expect(parseView("app:hello")).toEqual({ name: "app", id: "hello" });
    expect(parseView("storage")).toEqual({ name: "storage" });
    expect(parseView("installed")).toEqual({ name: "installed" });
    expect(parseView("app:")).toEqual({ name: "catalog" });
    expect(parseView("nonsense")).toEqual({ name: "catalog" });
  });
});
