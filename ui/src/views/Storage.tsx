// Storage: the images and volumes berthd keeps, their sizes, who uses
// them, and the buttons that free space.

import { useEffect, useState } from "preact/hooks";
import { api, asUiError } from "../api";
import type { Storage } from "../bindings/Storage";
import type { UiError } from "../bindings/UiError";
import { Empty, ErrorNote } from "../components";
import { ago, formatBytes } from "../logic";
import type { Store } from "../main";

export function StorageView({ store, up }: { store: Store; up: boolean }) {
  const [data, setData] = useState<Storage | null>(null);
  const [error, setError] = useState<UiError | null>(null);
  const [message, setMessage] = useState("");
  const load = () => api.storage().then(setData, (e) => setError(asUiError(e)));
  // Again whenever the set of installed apps changes (an install pulls,
  // a remove frees).
  const installedKey = store.installed.map((a) => `${a.id}:${a.state}`).join(",");
  useEffect(() => {
    if (up) load();
  }, [up, installedKey]);

  const act = (f: () => Promise<string>) => {
    setError(null);
    f().then(
      (m) => {
        setMessage(m);
        load();
      },
      (e) => setError(asUiError(e)),
    );
  };
  const now = Date.now() / 1000;
  const unused = data?.images.filter((i) => i.used_by.length === 0) ?? [];
  const kept = data?.volumes.filter((v) => v.kept) ?? [];
  return (
    <section>
      <header class="viewhead">
        <h1>Storage</h1>
        {data && (
          <span class="muted" data-testid="storage-total">
            {formatBytes(data.info.storage_bytes)} used in {data.info.root}
          </span>
        )}
      </header>
      {error && <ErrorNote error={error} onClose={() => setError(null)} />}
      {message && (
        <div class="note ok" role="status" data-testid="storage-message">
          <span>{message}</span>
          <button class="ghost" onClick={() => setMessage("")} aria-label="Dismiss">
            ×
          </button>
        </div>
      )}
      <div class="sectionhead">
        <h2>Images</h2>
        <button
          data-testid="prune-images"
          onClick={() =>
            act(async () => {
              for (const i of unused) await api.removeImage(i.name);
              const r = await api.pruneImages();
              return `Removed ${unused.length} unused image${unused.length === 1 ? "" : "s"}, freed ${formatBytes(r.bytes_freed)}.`;
            })
          }
        >
          Remove unused images
        </button>
      </div>
      {data && data.images.length === 0 ? (
        <Empty>No images.</Empty>
      ) : (
        <table class="table" data-testid="storage-images">
          <thead>
            <tr>
              <th>Image</th>
              <th class="num">Size</th>
              <th>Pulled</th>
              <th>Used by</th>
            </tr>
          </thead>
          <tbody>
            {data?.images.map((i) => (
              <tr key={i.name}>
                <td class="mono">{i.name}</td>
                <td class="num">{formatBytes(i.size)}</td>
                <td>{ago(i.pulled, now)}</td>
                <td>{i.used_by.length ? i.used_by.join(", ") : <span class="muted">unused</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="sectionhead">
        <h2>Volumes</h2>
        <button
          data-testid="prune-volumes"
          disabled={kept.length === 0}
          onClick={() =>
            act(async () => {
              const r = await api.pruneVolumes();
              return `Deleted ${r.removed.length} kept volume${r.removed.length === 1 ? "" : "s"}, freed ${formatBytes(r.bytes_freed)}.`;
            })
          }
        >
          Delete kept data
        </button>
      </div>
      {data && data.volumes.length === 0 ? (
        <Empty>No volumes. Apps that keep data get one here.</Empty>
      ) : (
        <table class="table" data-testid="storage-volumes">
          <thead>
            <tr>
              <th>Volume</th>
              <th class="num">Size</th>
              <th>Used by</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {data?.volumes.map((v) => (
              <tr key={v.name} data-testid={`volume-${v.name}`}>
                <td class="mono" title={v.path}>
                  {v.name}
                </td>
                <td class="num">{formatBytes(v.size_bytes)}</td>
                <td>{v.kept ? <span class="muted">kept after {v.app} was removed</span> : v.used_by.join(", ")}</td>
                <td class="num">
                  {v.kept && (
                    <button
                      class="danger small"
                      onClick={() =>
                        act(async () => {
                          await api.removeVolume(v.name);
                          return `Deleted ${v.name}.`;
                        })
                      }
                    >
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
