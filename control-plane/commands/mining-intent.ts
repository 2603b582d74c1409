// What each ASIC is meant to be doing, as the last successful mining command by an operator or
// the economic engine left it (a miner nobody has commanded mines: that is how S21s boot).
// Grid curtailments are not intent: when the grid recovers, the staged restore brings back
// exactly what was meant to mine before the event, not what telemetry happened to show.
import type { CommandRecord } from './model.js';

export interface MiningIntent {
  enabled: boolean;
  powerTargetW: number | null;
  actor: string;
  /** when it was last switched on or off (not retargeted); null = never by us */
  atMs: number | null;
}

export const GRID_ACTOR = 'system:grid';

export function createMiningIntent(asicsOf: (site: string) => string[]) {
  const intent = new Map<string, MiningIntent>();
  return {
    /** feed every command record; only succeeded mining commands by others than the grid count */
    observe(r: CommandRecord): void {
      if (r.state !== 'succeeded' || r.actor === GRID_ACTOR) return;
      const p = r.payload;
      const at = r.finishedAtMs ?? Date.now();
      // minimum on/off durations count from a switch, not from a new power target
      const set = (id: string, enabled: boolean, powerTargetW: number | null) => {
        const prev = intent.get(id);
        const switched = (prev?.enabled ?? true) !== enabled;
        intent.set(id, { enabled, powerTargetW, actor: r.actor, atMs: switched ? at : (prev?.atMs ?? null) });
      };
      if (p.type === 'set_mining') {
        for (const id of p.deviceIds.length ? p.deviceIds : asicsOf(r.siteId)) set(id, p.enabled, p.powerTargetW);
      } else if (p.type === 'curtail') {
        for (const id of asicsOf(r.siteId)) set(id, false, null);
      }
    },
    of: (deviceId: string): MiningIntent | undefined => intent.get(deviceId),
    /** the site's ASICs meant to mine */
    meantOn: (site: string): string[] => asicsOf(site).filter((id) => intent.get(id)?.enabled !== false),
  };
}

export type MiningIntents = ReturnType<typeof createMiningIntent>;
