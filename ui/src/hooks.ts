import { useEffect } from "preact/hooks";
import { api } from "./api";

/**
 * Hold a subscription (`watch_*` command) while the component shows and
 * `deps` stay the same; end it afterwards, also when it was still being
 * made as the component went away.
 */
export function useSubscription(start: () => Promise<number>, onError: (e: unknown) => void, deps: unknown[]) {
  useEffect(() => {
    let id: number | undefined;
    let gone = false;
    start().then(
      (n) => {
        if (gone) void api.unwatch(n);
        else id = n;
      },
      (e) => !gone && onError(e),
    );
    return () => {
      gone = true;
      if (id !== undefined) void api.unwatch(id);
    };
  }, deps);
}
