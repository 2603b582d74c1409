// The desired state the agent holds, on disk (--state-dir), so an agent that restarts while the
// control plane is away converges its ASICs to the last one it was given. Replaced whole
// (state-file.ts), with the devices a local grid trip slept since then, which stay asleep until a
// newer desired state arrives.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DesiredState } from '../../proto/gen/hcp/v1/gateway.js';
import { replaceStateFile } from '../state-file.js';

export const DESIRED_FILE = 'desired-state.json';

export interface HeldDesired {
  desired: DesiredState;
  /** ASICs a grid trip slept while `desired` was held: not started again until a newer version */
  tripHeld: string[];
}

export function loadDesired(dir: string): HeldDesired | null {
  let text: string;
  try {
    text = readFileSync(join(dir, DESIRED_FILE), 'utf8');
  } catch {
    return null;
  }
  const o = JSON.parse(text) as { desired?: unknown; tripHeld?: unknown };
  if (!o || typeof o !== 'object' || !o.desired) throw new Error(`${DESIRED_FILE} has no desired state`);
  const tripHeld = Array.isArray(o.tripHeld) ? o.tripHeld.filter((x): x is string => typeof x === 'string') : [];
  return { desired: DesiredState.fromJSON(o.desired), tripHeld };
}

export function saveDesired(dir: string, h: HeldDesired): void {
  replaceStateFile(dir, DESIRED_FILE, JSON.stringify({ desired: DesiredState.toJSON(h.desired), tripHeld: h.tripHeld }));
}
