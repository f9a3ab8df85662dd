// The catalog: every app berthd's catalogs offer, as cards with a button
// that follows the app through Install → progress → Open.

import { useState } from "preact/hooks";
import { api, iconUrl } from "../api";
import type { CatalogApp } from "../bindings/CatalogApp";
import { Empty, ErrorNote, JobProgress } from "../components";
import { capitalize, cardState, categories, searchApps } from "../logic";
import type { Store } from "../main";
import { AuditNote } from "./Installed";

export function CatalogView({ store }: { store: Store }) {
  const [query, setQuery] = useState("");
  const [category, setCategory] = useState("");
  const shown = searchApps(store.catalog, query).filter((a) => !category || a.category === category);
  return (
    <section>
      <header class="viewhead">
        <h1>Catalog</h1>
        <input
          type="search"
          class="search"
          placeholder="Search apps"
          aria-label="Search apps"
          data-testid="catalog-search"
          value={query}
          onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
        />
      </header>
      <div class="chips" role="group" aria-label="Categories">
        {["", ...categories(store.catalog)].map((c) => (
          <button key={c} class={`chip${category === c ? " active" : ""}`} onClick={() => setCategory(c)}>
            {c ? capitalize(c) : "All"}
          </button>
        ))}
      </div>
      {store.catalog.length === 0 ? (
        store.up && <Empty>No catalog yet. Add one with <code>berth catalog add DIR</code>.</Empty>
      ) : shown.length === 0 ? (
        <Empty>No app matches “{query}”.</Empty>
      ) : (
        <div class="grid" data-testid="catalog-grid">
          {shown.map((a) => (
            <Card key={`${a.catalog}/${a.id}`} app={a} store={store} />
          ))}
        </div>
      )}
    </section>
  );
}

function Card({ app, store }: { app: CatalogApp; store: Store }) {
  const installed = store.installed.find((i) => i.id === app.id);
  const job = store.jobs[app.id];
  const state = cardState(installed, job);
  const notice = store.notices[app.id];
  return (
    <article class="card" data-testid={`card-${app.id}`}>
      <div class="cardhead">
        <img class="icon" src={iconUrl(app.id)} alt="" width="48" height="48" loading="lazy" />
        <div class="grow">
          <h3>{app.title}</h3>
          <span class="category">{capitalize(app.category)}</span>
        </div>
      </div>
      <p class="description">{app.description}</p>
      {job ? (
        <JobProgress app={app.id} job={job} onCancel={job.job && job.kind !== "remove" ? () => store.cancel(app.id) : undefined} />
      ) : (
        <div class="cardfoot">
          <span class="muted small">{app.services.length > 1 ? `${app.services.length} services` : `Version ${app.version}`}</span>
          <div class="actions">
            {state.kind === "open" && <span class="badge ok" data-testid={`state-${app.id}`}>Running</span>}
            <button
              class={state.kind === "install" || state.kind === "open" ? "primary" : ""}
              data-testid={`action-${app.id}`}
              disabled={state.kind === "busy" || state.kind === "running"}
              onClick={() => {
                if (state.kind === "install") store.install(app.id);
                else if (state.kind === "open") store.run(() => api.openUrl(state.url));
                else if (state.kind === "stopped") store.run(() => api.startApp(app.id));
              }}
            >
              {state.label}
            </button>
          </div>
        </div>
      )}
      {notice?.kind === "error" && <ErrorNote error={notice.error} onClose={() => store.dismiss(app.id)} />}
      {notice?.kind === "audit" && <AuditNote app={app.id} notice={notice} onClose={() => store.dismiss(app.id)} />}
      {notice?.kind === "installed" && (
        <div class="note" data-testid={`notes-${app.id}`}>
          {notice.notes.map((n) => (
            <p key={n}>{n}</p>
          ))}
        </div>
      )}
    </article>
  );
}
