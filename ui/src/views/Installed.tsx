// Installed apps: state, address, CPU and memory now, and what can be done
// with each. Remove asks about the app's data, then shows the audit.

import { useState } from "preact/hooks";
import { api, iconUrl } from "../api";
import type { AppInfo } from "../bindings/AppInfo";
import { Dialog, Empty, ErrorNote, JobProgress, StateBadge } from "../components";
import { auditMessage, formatBytes, formatPercent } from "../logic";
import type { Notice, Store } from "../main";

export function InstalledView({ store }: { store: Store }) {
  const [removing, setRemoving] = useState<AppInfo | null>(null);
  const audits = Object.entries(store.notices).filter(
    ([id, n]) => n.kind === "audit" && !store.installed.some((a) => a.id === id),
  );
  return (
    <section>
      <header class="viewhead">
        <h1>Installed</h1>
      </header>
      {audits.map(([id, n]) => (
        <AuditNote key={id} app={id} notice={n as Extract<Notice, { kind: "audit" }>} onClose={() => store.dismiss(id)} />
      ))}
      {!store.up ? null : store.installed.length === 0 ? (
        <Empty>
          Nothing installed yet.{" "}
          <button class="link" onClick={() => store.go({ name: "catalog" })}>
            Browse the catalog
          </button>
        </Empty>
      ) : (
        <div class="list">
          {store.installed.map((a) => (
            <Row key={a.id} app={a} store={store} onRemove={() => setRemoving(a)} />
          ))}
        </div>
      )}
      {removing && (
        <RemoveDialog
          app={removing}
          onClose={() => setRemoving(null)}
          onRemove={(keepData) => {
            store.remove(removing.id, keepData);
            setRemoving(null);
          }}
        />
      )}
    </section>
  );
}

function Row({ app, store, onRemove }: { app: AppInfo; store: Store; onRemove: () => void }) {
  const job = store.jobs[app.id];
  const notice = store.notices[app.id];
  const running = app.state === "running" || app.state === "partly running";
  return (
    <article class="row" data-testid={`app-${app.id}`}>
      <img class="icon" src={iconUrl(app.id)} alt="" width="40" height="40" />
      <div class="rowmain">
        <div class="rowtitle">
          <button class="link title" data-testid={`details-${app.id}`} onClick={() => store.go({ name: "app", id: app.id })}>
            {app.title}
          </button>
          <StateBadge state={app.state} />
        </div>
        {app.url ? (
          <a
            href={app.url}
            class="mono small"
            data-testid={`url-${app.id}`}
            onClick={(e) => {
              e.preventDefault();
              store.run(() => api.openUrl(app.url));
            }}
          >
            {app.url}
          </a>
        ) : (
          <span class="muted small">no address</span>
        )}
      </div>
      <div class="metric" title="CPU now (100 % = one core)">
        <span class="muted small">CPU</span>
        {running ? formatPercent(app.cpu_percent) : "–"}
      </div>
      <div class="metric" title="Memory now">
        <span class="muted small">Memory</span>
        {running ? formatBytes(app.memory_bytes) : "–"}
      </div>
      <div class="actions">
        {job ? (
          <JobProgress app={app.id} job={job} onCancel={job.job && job.kind === "update" ? () => store.cancel(app.id) : undefined} />
        ) : (
          <>
            <button class="primary" disabled={!running || !app.url} data-testid={`open-${app.id}`} onClick={() => store.run(() => api.openUrl(app.url))}>
              Open
            </button>
            {running ? (
              <button data-testid={`stop-${app.id}`} onClick={() => store.run(() => api.stopApp(app.id))}>
                Stop
              </button>
            ) : (
              <button data-testid={`start-${app.id}`} onClick={() => store.run(() => api.startApp(app.id))}>
                Start
              </button>
            )}
            <button data-testid={`update-${app.id}`} onClick={() => store.update(app.id)}>
              Update
            </button>
            <button class="danger" data-testid={`remove-${app.id}`} onClick={onRemove}>
              Remove
            </button>
          </>
        )}
      </div>
      {notice?.kind === "error" && <ErrorNote error={notice.error} onClose={() => store.dismiss(app.id)} />}
    </article>
  );
}

function RemoveDialog({ app, onClose, onRemove }: { app: AppInfo; onClose: () => void; onRemove: (keepData: boolean) => void }) {
  const [keep, setKeep] = useState(true);
  const hasData = app.volumes.length > 0;
  return (
    <Dialog title={`Remove ${app.title}?`} onClose={onClose} testid="remove-dialog">
      <p>Its containers, network and images go. Keep this app's data?</p>
      {hasData ? (
        <fieldset class="choices">
          <label>
            <input type="radio" name="data" checked={keep} data-testid="keep-data" onChange={() => setKeep(true)} />
            Keep its data ({app.volumes.join(", ")}) for a later install
          </label>
          <label>
            <input type="radio" name="data" checked={!keep} data-testid="delete-data" onChange={() => setKeep(false)} />
            Delete its data too
          </label>
        </fieldset>
      ) : (
        <p class="muted">This app keeps no data of its own.</p>
      )}
      <div class="dialogfoot">
        <button onClick={onClose}>Cancel</button>
        <button class="danger" data-testid="confirm-remove" onClick={() => onRemove(hasData && keep)}>
          Remove
        </button>
      </div>
    </Dialog>
  );
}

export function AuditNote({ app, notice, onClose }: { app: string; notice: Extract<Notice, { kind: "audit" }>; onClose: () => void }) {
  const m = auditMessage(notice.report);
  return (
    <div class={`note ${m.ok ? "ok" : "warn"}`} data-testid={`audit-${app}`} role="status">
      <div>
        <strong data-testid="audit-message">
          {notice.title}: {m.title}
        </strong>
        {m.lines.length > 0 && (
          <ul class="small mono">
            {m.lines.map((l) => (
              <li key={l}>{l}</li>
            ))}
          </ul>
        )}
      </div>
      <button class="ghost" onClick={onClose} aria-label="Dismiss">
        ×
      </button>
    </div>
  );
}
