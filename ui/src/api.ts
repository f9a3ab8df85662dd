// The page's only way to berthd: the app's Tauri commands, typed with the
// bindings generated from the Rust types.

import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { AppInfo } from "./bindings/AppInfo";
import type { CatalogApp } from "./bindings/CatalogApp";
import type { CatalogInfo } from "./bindings/CatalogInfo";
import type { HelperStatus } from "./bindings/HelperStatus";
import type { JobEvent } from "./bindings/JobEvent";
import type { LogEvent } from "./bindings/LogEvent";
import type { PruneReport } from "./bindings/PruneReport";
import type { StatsEvent } from "./bindings/StatsEvent";
import type { Storage } from "./bindings/Storage";
import type { UiError } from "./bindings/UiError";
import type { VolumePruneReport } from "./bindings/VolumePruneReport";
import type { AppsEvent } from "./bindings/AppsEvent";

/** A failed command's error; anything else becomes one too. */
export function asUiError(e: unknown): UiError {
  if (e && typeof e === "object" && "kind" in e && "message" in e) return e as UiError;
  return { kind: "failed", message: String(e), fix: "" };
}

export const api = {
  helperStatus: () => invoke<HelperStatus>("helper_status"),
  onHelperStatus: (f: (s: HelperStatus) => void): Promise<UnlistenFn> =>
    listen<HelperStatus>("helper-status", (e) => f(e.payload)),
  catalogApps: () => invoke<CatalogApp[]>("catalog_apps"),
  catalogs: () => invoke<CatalogInfo[]>("catalogs"),
  installedApps: () => invoke<AppInfo[]>("installed_apps"),
  appInfo: (app: string) => invoke<AppInfo>("app_info", { app }),
  startApp: (app: string) => invoke<void>("start_app", { app }),
  stopApp: (app: string) => invoke<void>("stop_app", { app }),
  restartApp: (app: string) => invoke<void>("restart_app", { app }),
  openUrl: (url: string) => invoke<void>("open_url", { url }),
  install: (app: string, f: (e: JobEvent) => void) =>
    invoke<string>("install_app", { app, onEvent: channel(f) }),
  update: (app: string, f: (e: JobEvent) => void) =>
    invoke<string>("update_app", { app, onEvent: channel(f) }),
  uninstall: (app: string, keepData: boolean, f: (e: JobEvent) => void) =>
    invoke<string>("uninstall_app", { app, keepData, onEvent: channel(f) }),
  cancelJob: (job: string) => invoke<void>("cancel_job", { job }),
  watchApps: (f: (e: AppsEvent) => void) => invoke<number>("watch_apps", { onEvent: channel(f) }),
  watchStats: (app: string, f: (e: StatsEvent) => void) =>
    invoke<number>("watch_stats", { app, onEvent: channel(f) }),
  watchLogs: (container: string, tail: number, f: (e: LogEvent) => void) =>
    invoke<number>("watch_logs", { container, tail, onEvent: channel(f) }),
  unwatch: (id: number) => invoke<void>("unwatch", { id }),
  storage: () => invoke<Storage>("storage"),
  removeImage: (name: string) => invoke<void>("remove_image", { name }),
  pruneImages: () => invoke<PruneReport>("prune_images"),
  removeVolume: (name: string) => invoke<void>("remove_volume", { name }),
  pruneVolumes: () => invoke<VolumePruneReport>("prune_volumes"),
  ready: () => invoke<void>("ready"),
  startView: () => invoke<string>("start_view"),
};

function channel<T>(f: (e: T) => void): Channel<T> {
  const c = new Channel<T>();
  c.onmessage = f;
  return c;
}

/** The address of an app's icon (see the app's `berth-icon` scheme). */
export function iconUrl(app: string): string {
  const windows = navigator.userAgent.includes("Windows");
  return windows ? `http://berth-icon.localhost/${app}` : `berth-icon://localhost/${app}`;
}
