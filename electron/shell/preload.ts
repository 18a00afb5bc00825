// The only bridge between the sandboxed UI and the shell: read-only facts, no Node, no IPC yet.
// Later capabilities add named, typed functions here (never a raw ipcRenderer).
import { contextBridge } from 'electron';

export interface ShellBridge {
  platform: string;
  versions: { electron: string; chrome: string };
}

const bridge: ShellBridge = {
  platform: process.platform,
  versions: { electron: process.versions.electron ?? '', chrome: process.versions.chrome ?? '' },
};

contextBridge.exposeInMainWorld('whittleShell', bridge);
