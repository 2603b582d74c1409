// `npm run certs`: a development CA and the certificates HCP's TLS needs, made with the openssl
// CLI (no npm dependency). Writes into --out (default data/certs):
//   ca.pem / ca.key              the CA; kept when it exists, so what it issued stays valid
//   server.pem / server.key      the control plane (REST https, gRPC, mqtts)
//   clients/<site>.pem / .key    one per --client, CN = the site id (mTLS)
// Run again, it changes nothing that is still right: a leaf is reissued only when it is missing,
// was not issued by the current CA, does not match its key, lacks a wanted SAN or has less than
// 30 days left; client certificates already in clients/ are checked as well. --force makes a new
// CA and reissues every certificate.
//
// Parameters: EC P-256 keys, ECDSA with SHA-256, 127-bit random serials (CA/Browser Forum
// Baseline Requirements §7.1: at least 64 bits of CSPRNG output). Extensions per RFC 5280
// §4.2.1: the CA has basicConstraints CA:TRUE (critical, pathlen 0: it signs leaves only) and
// keyUsage keyCertSign/cRLSign; a leaf has CA:FALSE, keyUsage digitalSignature (an ECDSA key
// signs the handshake; there is no key encipherment) and extendedKeyUsage serverAuth or
// clientAuth (§4.2.1.12), so a client certificate cannot serve and the server's cannot log in.
// Leaves live 825 days: the CA/Browser Forum's limit from March 2018 (Ballot 193), which Apple
// platforms enforce for TLS server certificates from private CAs too (support.apple.com/HT210176).
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isValidSiteId } from '../proto/topics.js';

const USAGE = `npm run certs -- [options]: a development CA, a server certificate and client certificates.

  --out DIR        where to write [data/certs]
  --san NAME       another DNS name or IP address for the server certificate (repeatable);
                   it always has localhost, 127.0.0.1, ::1 and control-plane
  --client SITE    a client certificate for mTLS, CN = the site id: clients/SITE.pem/.key (repeatable)
  --force          a new CA, and every certificate reissued (those issued before stop working)
  -h, --help       this

Existing files that are still right are kept; keys are written mode 0600.`;

const DEFAULT_SANS = ['localhost', '127.0.0.1', '::1', 'control-plane'];
const CA_DAYS = 3650;
const LEAF_DAYS = 825;
const RENEW_WITHIN_MS = 30 * 86_400_000;
const DNS_NAME = /^(\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** the extensions of each kind of certificate; [req] and [dn] only satisfy `openssl req` */
const EXTENSIONS = `[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = @server_sans
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
`;

class UsageError extends Error {
  readonly code = 'invalid_arguments';
}

function openssl(args: string[]): Buffer {
  try {
    return execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('the openssl command is not installed (apt-get install openssl)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString().trim() || String(err)}`);
  }
}

/** write-then-rename, so an interrupted run never leaves half a file; keys 0600 from creation */
function writeFile(path: string, data: Buffer | string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode); // the umask may have narrowed it; a key must not be wider than 0600 either way
  renameSync(tmp, path);
}

/** a positive 127-bit serial */
function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return `0x${b.toString('hex')}`;
}

/** an IP the way node's X509Certificate prints it in subjectAltName */
function ipAsPrinted(ip: string): string {
  if (isIP(ip) === 4) return ip;
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const groups = (s: string | undefined) => (s ? s.split(':') : []);
  const expand = (gs: string[]) =>
    gs.flatMap((g) => {
      if (isIP(g) !== 4) return [g];
      const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    });
  const h = expand(groups(head));
  const t = expand(groups(tail));
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return all.map((g) => parseInt(g, 16).toString(16).toUpperCase()).join(':');
}

const sanEntry = (name: string) => (isIP(name) ? `IP Address:${ipAsPrinted(name)}` : `DNS:${name}`);

interface CertsOptions {
  out: string;
  sans: string[];
  clients: string[];
  force: boolean;
}

interface Written {
  file: string;
  action: 'kept' | 'wrote';
  note: string;
}

interface Ca {
  cert: X509Certificate;
  certPath: string;
  keyPath: string;
}

/** why a leaf must be issued again, or null when it is still right */
function leafProblem(certPath: string, keyPath: string, ca: Ca, wantSans: string[]): string | null {
  if (!existsSync(certPath) || !existsSync(keyPath)) return 'new';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(certPath));
    if (!cert.checkPrivateKey(createPrivateKey(readFileSync(keyPath)))) return 'did not match its key';
  } catch {
    return 'was unreadable';
  }
  if (!cert.checkIssued(ca.cert) || !cert.verify(ca.cert.publicKey)) return 'was issued by another CA';
  if (Date.parse(cert.validTo) - Date.now() < RENEW_WITHIN_MS) return 'was expiring';
  const present = new Set((cert.subjectAltName ?? '').split(', '));
  const missing = wantSans.filter((s) => !present.has(sanEntry(s)));
  return missing.length ? `lacked ${missing.join(', ')}` : null;
}

/** makes or keeps everything; returns what it did to each file */
function makeCerts(o: CertsOptions): Written[] {
  const out = resolve(o.out);
  mkdirSync(join(out, 'clients'), { recursive: true });
  const work = mkdtempSync(join(out, '.work-')); // on the same filesystem, so rename works; 0700
  const done: Written[] = [];
  try {
    const cnf = join(work, 'openssl.cnf');
    const sans = [...new Set([...DEFAULT_SANS, ...o.sans])];
    const sanLines = sans.map((s, i) => (isIP(s) ? `IP.${i + 1} = ${s}` : `DNS.${i + 1} = ${s}`));
    writeFileSync(cnf, `${EXTENSIONS}[server_sans]\n${sanLines.join('\n')}\n`);

    const ca = ensureCa(out, work, cnf, o.force, done);
    const issue = (name: string, kind: 'server' | 'client', cn: string, wantSans: string[]) => {
      const certPath = join(out, `${name}.pem`);
      const keyPath = join(out, `${name}.key`);
      const problem = o.force ? 'forced' : leafProblem(certPath, keyPath, ca, wantSans);
      if (problem === null) {
        done.push({ file: certPath, action: 'kept', note: `${kind}, ${cn}` });
        return;
      }
      const key = join(work, 'leaf.key');
      const csr = join(work, 'leaf.csr');
      const crt = join(work, 'leaf.pem');
      writeFile(key, openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']), 0o600);
      openssl(['req', '-new', '-config', cnf, '-key', key, '-subj', `/O=HCP/CN=${cn}`, '-out', csr]);
      openssl([
        'x509', '-req', '-in', csr, '-CA', ca.certPath, '-CAkey', ca.keyPath, '-set_serial', serial(),
        '-days', String(LEAF_DAYS), '-sha256', '-extfile', cnf, '-extensions', kind, '-out', crt,
      ]);
      writeFile(keyPath, readFileSync(key), 0o600);
      writeFile(certPath, readFileSync(crt), 0o644);
      done.push({ file: certPath, action: 'wrote', note: `${kind}, ${cn}${problem === 'new' ? '' : problem === 'forced' ? ' (--force)' : ` (it ${problem})`}` });
    };

    issue('server', 'server', 'HCP control plane', sans);
    done.at(-1)!.note += `, SANs ${sans.join(' ')}`;
    // Client certificates already there are checked too: a new CA orphans them all, and one
    // close to expiry is renewed.
    const clients = new Set(o.clients);
    for (const f of readdirSync(join(out, 'clients'))) if (f.endsWith('.pem') && isValidSiteId(f.slice(0, -4))) clients.add(f.slice(0, -4));
    for (const site of [...clients].sort()) issue(join('clients', site), 'client', site, []);
    return done;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function ensureCa(out: string, work: string, cnf: string, force: boolean, done: Written[]): Ca {
  const certPath = join(out, 'ca.pem');
  const keyPath = join(out, 'ca.key');
  if (!force && (existsSync(certPath) || existsSync(keyPath))) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(readFileSync(certPath));
      if (!cert.ca || !cert.checkPrivateKey(createPrivateKey(readFileSync(keyPath)))) throw new Error('not a CA with its key');
    } catch (err) {
      throw new Error(`${certPath} and ${keyPath} are not a usable CA and its key (${(err as Error).message}); --force makes a new CA`);
    }
    done.push({ file: certPath, action: 'kept', note: `CA ${cert.subject.replace(/\n/g, ', ')}, until ${cert.validTo}` });
    return { cert, certPath, keyPath };
  }
  // A name of its own, so two development CAs are told apart in every error message.
  const cn = `HCP development CA ${randomBytes(4).toString('hex')}`;
  const key = join(work, 'ca.key');
  writeFile(key, openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']), 0o600);
  const crt = join(work, 'ca.pem');
  openssl([
    'req', '-x509', '-new', '-config', cnf, '-extensions', 'ca', '-key', key, '-subj', `/O=HCP/CN=${cn}`,
    '-set_serial', serial(), '-days', String(CA_DAYS), '-sha256', '-out', crt,
  ]);
  writeFile(keyPath, readFileSync(key), 0o600);
  writeFile(certPath, readFileSync(crt), 0o644);
  done.push({ file: certPath, action: 'wrote', note: `CA O=HCP, CN=${cn}` });
  return { cert: new X509Certificate(readFileSync(certPath)), certPath, keyPath };
}

function parseCertsArgs(argv: string[]): CertsOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string', default: 'data/certs' },
        san: { type: 'string', multiple: true, default: [] },
        client: { type: 'string', multiple: true, default: [] },
        force: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const problems: string[] = [];
  for (const s of values.san) if (!isIP(s) && !DNS_NAME.test(s)) problems.push(`--san ${JSON.stringify(s)}: not a DNS name or an IP address`);
  for (const c of values.client) if (!isValidSiteId(c)) problems.push(`--client ${JSON.stringify(c)}: not a site id (lowercase letters, digits and dashes, e.g. texas-1)`);
  if (problems.length) throw new UsageError(problems.join('\n'));
  // DNS names compare case-insensitively (RFC 4343); stored lowercase, a rerun finds them as given
  return { out: values.out, sans: values.san.map((n) => (isIP(n) ? n : n.toLowerCase())), clients: values.client, force: values.force };
}

function shown(p: string): string {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith('..') && !isAbsolute(r) ? r : p;
}

function report(o: CertsOptions, done: Written[]): string {
  const out = resolve(o.out);
  const f = (name: string) => shown(join(out, name));
  const lines = [`Development certificates in ${shown(out)}:`];
  for (const w of done) {
    const base = w.file.slice(0, -4);
    lines.push(`  ${w.action === 'wrote' ? 'wrote' : 'kept '} ${shown(base)}.pem, .key  ${w.note}`);
  }
  const site = [...new Set(done.map((w) => /clients\/([^/]+)\.pem$/.exec(w.file)?.[1]).filter(Boolean))][0];
  lines.push(
    '',
    'Control plane (REST https, gRPC and mqtts):',
    `  HCP_TLS_CERT=${f('server.pem')} HCP_TLS_KEY=${f('server.key')} npm run control-plane`,
    `  add HCP_TLS_CLIENT_CA=${f('ca.pem')} to require client certificates (mTLS) on gRPC and mqtts`,
    'Agent:',
    `  npm run agent -- --site ${site ?? '<site>'} --tls --ca-file ${f('ca.pem')}` +
      (site ? ` --cert-file ${f(`clients/${site}.pem`)} --key-file ${f(`clients/${site}.key`)}` : '') +
      ' --mqtt mqtts://localhost:8883 …',
    'Check:',
    `  curl --cacert ${f('ca.pem')} https://localhost:8080/health`,
    `  grpcurl -cacert ${f('ca.pem')}${site ? ` -cert ${f(`clients/${site}.pem`)} -key ${f(`clients/${site}.key`)}` : ''} localhost:50051 list`,
  );
  if (!site) lines.push('(--client SITE makes a client certificate for mTLS)');
  return lines.join('\n');
}

function main(): void {
  let o;
  try {
    o = parseCertsArgs(process.argv.slice(2));
    if (o === 'help') {
      console.log(USAGE);
      return;
    }
    console.log(report(o, makeCerts(o)));
  } catch (err) {
    console.error(`certs: ${(err as Error).message}`);
    if (err instanceof UsageError) console.error(`\n${USAGE}`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  }
}

main();
