// Certificates for TLS tests, made the way an operator makes them: `npm run certs` (scripts/
// certs.ts) run as a process into a temporary directory.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './processes.js';

/** runs the certs script; its stdout */
export function runCertsScript(args: string[]): string {
  return execFileSync(process.execPath, ['--import', 'tsx', 'scripts/certs.ts', ...args], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe', timeout: 60_000 });
}

export interface TestCerts {
  dir: string;
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  client(site: string): { cert: Buffer; key: Buffer };
  remove(): void;
}

/** a fresh CA, a server certificate and a client certificate per site */
export function makeTestCerts(clients: string[] = []): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'hcp-certs-'));
  runCertsScript(['--out', dir, ...clients.flatMap((c) => ['--client', c])]);
  const read = (f: string) => readFileSync(join(dir, f));
  return {
    dir,
    ca: read('ca.pem'),
    serverCert: read('server.pem'),
    serverKey: read('server.key'),
    client: (site) => ({ cert: read(`clients/${site}.pem`), key: read(`clients/${site}.key`) }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
