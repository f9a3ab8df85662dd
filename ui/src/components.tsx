// Small pieces the views share.

import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";
import type { UiError } from "./bindings/UiError";
import type { JobView } from "./logic";
import { formatBytes, formatRate, jobFraction, layerLine } from "./logic";

export function ErrorNote({ error, onClose }: { error: UiError; onClose?: () => void }) {
  return (
    <div class="note error" role="alert" data-testid="error-note">
      <div>
        <strong>{error.message}</strong>
        {error.fix && <p>{error.fix}</p>}
      </div>
      {onClose && (
        <button class="ghost" onClick={onClose} aria-label="Dismiss">
          ×
        </button>
      )}
    </div>
  );
}

export function ProgressBar({ fraction, label }: { fraction: number | null; label?: string }) {
  return (
    <div
      class={`bar${fraction === null ? " indeterminate" : ""}`}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={fraction === null ? undefined : Math.round(fraction * 100)}
    >
      <div style={{ width: `${Math.round((fraction ?? 0.3) * 100)}%` }} />
    </div>
  );
}

/** A job in progress: overall bar, bytes and speed, each layer, Cancel. */
export function JobProgress({ app, job, onCancel }: { app: string; job: JobView; onCancel?: () => void }) {
  const fraction = jobFraction(job);
  return (
    <div class="job" data-testid={`progress-${app}`}>
      <div class="job-head">
        <span class="phase">{job.phase}</span>
        {onCancel && (
          <button class="ghost small" data-testid={`cancel-${app}`} onClick={onCancel}>
            Cancel
          </button>
        )}
      </div>
      <ProgressBar fraction={fraction} label={`${app}: ${job.phase}`} />
      {job.total > 0 && (
        <div class="muted small">
          {formatBytes(job.done)} of {formatBytes(job.total)}
          {job.speed > 0 && ` · ${formatRate(job.speed)}`}
        </div>
      )}
      {job.layers.length > 0 && (
        <details class="layers">
          <summary class="small muted">{job.layers.length} layers</summary>
          <ul>
            {job.layers.map((l) => (
              <li key={l.digest} class="mono small">
                <ProgressBar fraction={l.total > 0 ? l.done / l.total : null} />
                {layerLine(l)}
              </li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}

/** A modal dialog; Escape or the backdrop closes it. */
export function Dialog({ title, children, onClose, testid }: {
  title: string;
  children: ComponentChildren;
  onClose: () => void;
  testid?: string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const key = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", key);
    ref.current?.querySelector<HTMLElement>("button, input")?.focus();
    return () => window.removeEventListener("keydown", key);
  }, []);
  return (
    <div class="backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div class="dialog" role="dialog" aria-modal="true" aria-label={title} ref={ref} data-testid={testid}>
        <h2>{title}</h2>
        {children}
      </div>
    </div>
  );
}

export function StateBadge({ state }: { state: string }) {
  const tone = state === "running" ? "ok" : state === "stopped" || state === "exited" ? "off" : "warn";
  return <span class={`badge ${tone}`}>{state}</span>;
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}
