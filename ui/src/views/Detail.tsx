// One app: its services, live graphs (1 Hz, up to ten minutes back, from
// berthd's history) and each service's log as it is written.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, asUiError, iconUrl } from "../api";
import { useSubscription } from "../hooks";
import type { LogLine } from "../bindings/LogLine";
import type { ContainerSample as Sample } from "../bindings/ContainerSample";
import { Chart } from "../Chart";
import { Empty, StateBadge } from "../components";
import { formatBytes, formatPercent, formatRate, mergeSamples, toSeries, type Series } from "../logic";
import type { Store } from "../main";

const MAX_LOG_LINES = 1000;

export function DetailView({ store, id }: { store: Store; id: string }) {
  const app = store.installed.find((a) => a.id === id);
  const [samples, setSamples] = useState<Record<string, Sample[]>>({});
  const [service, setService] = useState<string>("");
  const [ended, setEnded] = useState("");

  // One subscription while the view is open.
  useSubscription(
    () =>
      api.watchStats(id, (e) => {
        if (e.event === "samples") {
          const { service, samples: fresh } = e.data;
          setSamples((all) => ({ ...all, [service]: mergeSamples(all[service] ?? [], fresh) }));
        } else setEnded(e.data.reason);
      }),
    (e) => setEnded(asUiError(e).message),
    [id],
  );

  const services = app?.services ?? [];
  const current = service || services[0]?.name || "";
  const series = useMemo(() => toSeries(samples[current] ?? []), [samples, current]);
  const now = series.time.length ? series.time[series.time.length - 1] : Date.now() / 1000;

  if (!app) {
    return (
      <section>
        <Empty>
          <span data-testid="detail-gone">{ended ? `${id}: ${ended}.` : `${id} is not installed.`}</span>{" "}
          <button class="link" onClick={() => store.go({ name: "installed" })}>
            Back to installed apps
          </button>
        </Empty>
      </section>
    );
  }
  const svc = services.find((s) => s.name === current);
  return (
    <section>
      <header class="viewhead">
        <button class="ghost" onClick={() => store.go({ name: "installed" })} aria-label="Back">
          ←
        </button>
        <img class="icon" src={iconUrl(app.id)} alt="" width="36" height="36" />
        <h1 data-testid="detail-title">{app.title}</h1>
        <StateBadge state={app.state} />
        <div class="grow" />
        {app.url && (
          <button class="primary" onClick={() => store.run(() => api.openUrl(app.url))}>
            Open
          </button>
        )}
      </header>
      <div class="tabs" role="tablist" aria-label="Services">
        {services.map((s) => (
          <button
            key={s.name}
            role="tab"
            aria-selected={s.name === current}
            class={`tab${s.name === current ? " active" : ""}`}
            data-testid={`service-${s.name}`}
            onClick={() => setService(s.name)}
          >
            {s.name} <span class="muted small">{s.state}</span>
          </button>
        ))}
      </div>
      {svc && (
        <p class="muted small">
          <span class="mono">{svc.image}</span> · {svc.container_name}
          {svc.address && ` · ${svc.address}`}
        </p>
      )}
      <div class="charts">
        {charts(series).map((c) => (
          <Chart key={c.id} testid={`chart-${c.id}`} now={now} {...c} data={[series.time, ...c.columns]} />
        ))}
      </div>
      {svc?.container_id && <Logs key={svc.container_id} container={svc.container_id} service={svc.name} />}
    </section>
  );
}

/** The graphs of one service, over the same time axis. */
function charts(s: Series) {
  return [
    { id: "cpu", title: "CPU", lines: [{ label: "CPU", color: "#3b82f6" }], columns: [s.cpu], format: formatPercent, floor: 1 },
    {
      id: "memory",
      title: "Memory",
      lines: [
        { label: "used", color: "#8b5cf6" },
        { label: "limit", color: "#ef4444", dash: true },
      ],
      columns: [s.memory, s.memoryLimit],
      format: formatBytes,
      floor: 1_000_000,
    },
    {
      id: "network",
      title: "Network",
      lines: [
        { label: "received", color: "#10b981" },
        { label: "sent", color: "#f59e0b" },
      ],
      columns: [s.rx, s.tx],
      format: formatRate,
      floor: 1000,
    },
    {
      id: "disk",
      title: "Disk",
      lines: [
        { label: "read", color: "#06b6d4" },
        { label: "written", color: "#ec4899" },
      ],
      columns: [s.read, s.write],
      format: formatRate,
      floor: 1000,
    },
    {
      id: "pids",
      title: "Processes",
      lines: [{ label: "processes", color: "#64748b" }],
      columns: [s.pids],
      format: (v: number) => (Number.isInteger(v) ? String(v) : ""),
      floor: 4,
    },
  ];
}

function Logs({ container, service }: { container: string; service: string }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [status, setStatus] = useState("following");
  const box = useRef<HTMLPreElement>(null);
  useSubscription(
    () =>
      api.watchLogs(container, 200, (e) => {
        if (e.event === "lines") setLines((l) => l.concat(e.data.lines).slice(-MAX_LOG_LINES));
        else setStatus(e.data.reason);
      }),
    (e) => setStatus(asUiError(e).message),
    [container],
  );
  useEffect(() => {
    const el = box.current;
    // Stay at the bottom unless the user scrolled up to read.
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 80) el.scrollTop = el.scrollHeight;
  }, [lines]);
  return (
    <div class="logs">
      <div class="logshead">
        <h2>Log of {service}</h2>
        <span class="muted small">{status}</span>
      </div>
      <pre ref={box} data-testid="logs" tabIndex={0}>
        {lines.length === 0 ? (
          <span class="muted">No output yet.</span>
        ) : (
          lines.map((l, i) => (
            <div key={i} class={l.stream === "stderr" ? "err" : ""}>
              <span class="muted">{l.time.slice(11, 19)} </span>
              {l.log}
            </div>
          ))
        )}
      </pre>
    </div>
  );
}
