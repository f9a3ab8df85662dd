// The window: a sidebar with the views, a banner when berthd cannot be
// reached, and the state every view shares (catalog, installed apps, jobs
// in flight, what the last remove found).

import "./locale";
import { render } from "preact";
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import "uplot/dist/uPlot.min.css";
import "./styles.css";
import { api, asUiError } from "./api";
import type { AppInfo } from "./bindings/AppInfo";
import type { AuditReport } from "./bindings/AuditReport";
import type { CatalogApp } from "./bindings/CatalogApp";
import type { HelperStatus } from "./bindings/HelperStatus";
import type { JobEvent } from "./bindings/JobEvent";
import type { UiError } from "./bindings/UiError";
import { ErrorNote } from "./components";
import { useSubscription } from "./hooks";
import { advanceJob, newJob, parseView, type JobView, type View } from "./logic";
import { CatalogView } from "./views/Catalog";
import { DetailView } from "./views/Detail";
import { InstalledView } from "./views/Installed";
import { StorageView } from "./views/Storage";

export type { View } from "./logic";

/** What the window last learnt about an app from a finished job. */
export type Notice =
  | { kind: "audit"; title: string; report: AuditReport }
  | { kind: "installed"; notes: string[] }
  | { kind: "error"; error: UiError };

export interface Store {
  /** berthd answers; while it does not, the lists are not to be trusted. */
  up: boolean;
  catalog: CatalogApp[];
  installed: AppInfo[];
  jobs: Record<string, JobView>;
  notices: Record<string, Notice>;
  install: (app: string) => void;
  update: (app: string) => void;
  remove: (app: string, keepData: boolean) => void;
  cancel: (app: string) => void;
  run: (action: () => Promise<unknown>) => void;
  dismiss: (app: string) => void;
  go: (v: View) => void;
}

function App() {
  const [status, setStatus] = useState<HelperStatus | null>(null);
  const [view, go] = useState<View>({ name: "catalog" });
  const [catalog, setCatalog] = useState<CatalogApp[]>([]);
  const [installed, setInstalled] = useState<AppInfo[]>([]);
  const [jobs, setJobs] = useState<Record<string, JobView>>({});
  const [notices, setNotices] = useState<Record<string, Notice>>({});
  const [error, setError] = useState<UiError | null>(null);
  const up = status?.ok ?? false;

  // berthd's status: asked once, then pushed by the app on every change.
  useEffect(() => {
    api.startView().then((v) => go(parseView(v)), () => {});
    api.helperStatus().then(setStatus);
    const off = api.onHelperStatus(setStatus);
    return () => void off.then((f) => f());
  }, []);

  const loadCatalog = useCallback(() => {
    api.catalogApps().then(setCatalog, (e) => setError(asUiError(e)));
  }, []);

  // While berthd is up: the catalog once, the installed apps as they change.
  useEffect(() => {
    if (up) loadCatalog();
  }, [up]);
  useSubscription(
    () =>
      api.watchApps((e) => {
        // While berthd cannot be reached, show no stale list.
        setInstalled(e.event === "apps" ? e.data.apps : []);
      }),
    (e) => setError(asUiError(e)),
    [],
  );

  // Tell the app (and the start-up benchmark) once the catalog is on screen.
  useEffect(() => {
    if (catalog.length > 0 || (status && !status.ok)) requestAnimationFrame(() => api.ready());
  }, [catalog.length > 0, status !== null]);

  const setNotice = (app: string, n: Notice | null) =>
    setNotices((all) => {
      const next = { ...all };
      if (n) next[app] = n;
      else delete next[app];
      return next;
    });

  const follow = (app: string, kind: JobView["kind"]) => (e: JobEvent) => {
    switch (e.event) {
      case "started":
        setJobs((j) => ({ ...j, [app]: newJob(e.data.job, kind) }));
        break;
      case "progress":
        setJobs((j) => (j[app] ? { ...j, [app]: advanceJob(j[app], e.data.phase, e.data.layers, Date.now()) } : j));
        break;
      case "finished": {
        setJobs((j) => {
          const { [app]: _, ...rest } = j;
          return rest;
        });
        const end = e.data;
        const title = catalog.find((a) => a.id === app)?.title ?? app;
        if (end.error) setNotice(app, end.error.kind === "cancelled" ? null : { kind: "error", error: end.error });
        else if (end.audit) setNotice(app, { kind: "audit", title, report: end.audit });
        else if (end.installed) setNotice(app, end.installed.notes.length ? { kind: "installed", notes: end.installed.notes } : null);
        loadCatalog();
        break;
      }
    }
  };

  const startJob = (app: string, kind: JobView["kind"], start: () => Promise<string>) => {
    setNotice(app, null);
    setJobs((j) => ({ ...j, [app]: newJob("", kind) }));
    start().catch((e) => {
      setJobs((j) => {
        const { [app]: _, ...rest } = j;
        return rest;
      });
      setNotice(app, { kind: "error", error: asUiError(e) });
    });
  };

  const store: Store = {
    up,
    catalog,
    installed,
    jobs,
    notices,
    install: (app) => startJob(app, "install", () => api.install(app, follow(app, "install"))),
    update: (app) => startJob(app, "update", () => api.update(app, follow(app, "update"))),
    remove: (app, keepData) => startJob(app, "remove", () => api.uninstall(app, keepData, follow(app, "remove"))),
    cancel: (app) => {
      const job = jobs[app]?.job;
      if (job) api.cancelJob(job).catch((e) => setError(asUiError(e)));
    },
    run: (action) => void action().catch((e) => setError(asUiError(e))),
    dismiss: (app) => setNotice(app, null),
    go,
  };

  const nav = useMemo(
    () =>
      [
        ["catalog", "Catalog"],
        ["installed", `Installed${installed.length ? ` (${installed.length})` : ""}`],
        ["storage", "Storage"],
      ] as const,
    [installed.length],
  );
  const current = view.name === "app" ? "installed" : view.name;

  return (
    <div class="shell">
      <nav class="sidebar">
        <div class="brand">
          <img src="./berth.svg" alt="" width="28" height="28" />
          <span>Berth</span>
        </div>
        {nav.map(([name, label]) => (
          <button
            key={name}
            class={`navitem${current === name ? " active" : ""}`}
            data-testid={`nav-${name}`}
            aria-current={current === name ? "page" : undefined}
            onClick={() => go({ name } as View)}
          >
            {label}
          </button>
        ))}
        <div class="grow" />
        <HelperLine status={status} />
      </nav>
      <main class="content">
        {status && !status.ok && status.error && (
          <div class="banner" data-testid="helper-banner" role="alert">
            <strong>{status.error.message}</strong>
            {status.error.fix && <p>{status.error.fix}</p>}
            <p class="muted small">Berth checks again by itself and carries on once this is fixed.</p>
          </div>
        )}
        {error && <ErrorNote error={error} onClose={() => setError(null)} />}
        {view.name === "catalog" && <CatalogView store={store} />}
        {view.name === "installed" && <InstalledView store={store} />}
        {view.name === "app" && <DetailView store={store} id={view.id} />}
        {view.name === "storage" && <StorageView store={store} up={up} />}
      </main>
    </div>
  );
}

function HelperLine({ status }: { status: HelperStatus | null }) {
  if (!status) return <div class="helper muted small">Connecting…</div>;
  return (
    <div class="helper small" data-testid="helper-status" title={status.info ? `root ${status.info.root}` : ""}>
      <span class={`dot ${status.ok ? "ok" : "bad"}`} />
      {status.ok ? `berthd ${status.info?.version ?? ""}` : "berthd unavailable"}
    </div>
  );
}

render(<App />, document.getElementById("app")!);
