// The grid trip settings on disk (--state-dir), so an agent that restarts while the control
// plane is unreachable is armed again from its first second. Written whole to a temporary file
// and renamed, so a crash mid-write leaves the previous settings, never half of them.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ArmGridTrip } from '../../proto/gen/hcp/v1/commands.js';

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
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `${FILE}.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(ArmGridTrip.toJSON(c)));
  renameSync(tmp, join(dir, FILE));
}
