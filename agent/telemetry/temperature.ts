// The device temperature from the kernel's thermal zones (/sys/class/thermal/thermal_zone*/temp, in
// millidegrees Celsius). Boards expose one zone or several (CPU, GPU, PMIC); the hottest one is what
// throttles, so that is the one reported.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const THERMAL_ROOT = '/sys/class/thermal';

/** Paths of the zones' temp files under root, found once; empty where the kernel exposes none. */
export function thermalZones(root: string = THERMAL_ROOT): string[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  return names
    .filter((n) => /^thermal_zone\d+$/.test(n))
    .sort()
    .map((n) => join(root, n, 'temp'));
}

/** One zone's temperature, degrees Celsius to a tenth; undefined when the file is unreadable or holds no
 * plausible value (some zones report errors or placeholders such as -273200 while a sensor sleeps). */
export function readZoneCelsius(path: string): number | undefined {
  let milli: number;
  try {
    milli = Number(readFileSync(path, 'utf8').trim());
  } catch {
    return undefined;
  }
  const c = milli / 1000;
  if (!Number.isFinite(c) || c < -100 || c > 300) return undefined;
  return Math.round(c * 10) / 10;
}

/** Returns a reader of the hottest zone, degrees Celsius; it returns undefined when no zone reads a
 * plausible value. */
export function temperatureReader(root: string = THERMAL_ROOT): () => number | undefined {
  const zones = thermalZones(root);
  return () => {
    let hottest: number | undefined;
    for (const path of zones) {
      const c = readZoneCelsius(path);
      if (c !== undefined && (hottest === undefined || c > hottest)) hottest = c;
    }
    return hottest;
  };
}
