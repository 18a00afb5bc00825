// The devices the page shows, kept as the core last described them. Pure, so it is easy to reason about:
// a snapshot replaces the whole list, a device message replaces (or adds) one entry.
import type { DeviceView, LiveMessage } from '../../electron/api/contract.js';

export type DeviceList = ReadonlyMap<string, DeviceView>;

export const emptyDeviceList: DeviceList = new Map();

export function applyLiveMessage(list: DeviceList, message: LiveMessage): DeviceList {
  switch (message.type) {
    case 'snapshot':
      return new Map(message.devices.map((device) => [device.id, device]));
    case 'device': {
      const next = new Map(list);
      next.set(message.device.id, message.device);
      return next;
    }
    case 'deployment':
      return list;
  }
}

/** Display order: by name (hostname, else id), then id, so rows do not jump when a device changes state. */
export function sortedDevices(list: DeviceList): DeviceView[] {
  const name = (device: DeviceView): string => device.info?.hostname ?? device.id;
  return [...list.values()].sort((a, b) => name(a).localeCompare(name(b)) || a.id.localeCompare(b.id));
}
