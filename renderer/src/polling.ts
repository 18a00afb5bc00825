// Fetching from the core again every few seconds while a view is shown: the camera picture, the package
// list. What the live link pushes is not polled.
import { useEffect } from 'preact/hooks';

/** Calls `load` at once and then every `periodMs` while the component is shown and `deps` stay the same,
 * and hands each answer to `onLoaded` or the error's message to `onError`; an answer that arrives after
 * the effect ended (another device chosen, the view closed) is dropped. `load` null: nothing to fetch. */
export function usePolling<T>(
  load: (() => Promise<T>) | null,
  onLoaded: (value: T) => void,
  onError: (message: string) => void,
  periodMs: number,
  deps: readonly unknown[],
): void {
  useEffect(() => {
    if (load === null) return;
    let stopped = false;
    const poll = (): void => {
      load().then(
        (value) => {
          if (!stopped) onLoaded(value);
        },
        (err: Error) => !stopped && onError(err.message),
      );
    };
    poll();
    const timer = setInterval(poll, periodMs);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
    // The callers name in deps what load and the callbacks read; the functions are new every render.
  }, [periodMs, ...deps]);
}
