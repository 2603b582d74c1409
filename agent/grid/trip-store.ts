// The grid trip settings on disk (--state-dir), so an agent that restarts while the control
// plane is unreachable is armed again from its first second. Replaced whole (state-file.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ArmGridTrip } from '../../proto/gen/hcp/v1/commands.js';
import { replaceStateFile } from '../state-file.js';

const FILE = 'grid-trip.json';

export function loadTrip(dir: string): ArmGridTrip | null {
  let text: string;
  try {
    text = readFileSync(join(dir, FILE), 'utf8');
  } catch {
    return null;
  }
  return ArmGridTrip.fromJSON(JSON.parse(text));
}

export function saveTrip(dir: string, c: ArmGridTrip): void {
  replaceStateFile(dir, FILE, JSON.stringify(ArmGridTrip.toJSON(c)));
}
