// The one place the control plane reads process.env. Every bad value is reported at once and the
// process exits non-zero (docs/conventions.md: options are validated and rejected up front).
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const ms = z.coerce.number().int().min(1);

export const ControlPlaneConfigSchema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  HCP_DATA_DIR: z.string().min(1).default('./data'),
  HCP_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  HCP_HTTP_PORT: port.default(8080),
  HCP_GRPC_HOST: z.string().min(1).default('127.0.0.1'),
  HCP_GRPC_PORT: port.default(50051),
  /** 'embedded' runs Aedes in-process; 'external' only subscribes to HCP_MQTT_URL */
  HCP_BROKER: z.enum(['embedded', 'external']).default('embedded'),
  HCP_MQTT_HOST: z.string().min(1).default('127.0.0.1'),
  HCP_MQTT_PORT: port.default(1883),
  HCP_MQTT_URL: z.string().regex(/^mqtts?:\/\//, 'must be an mqtt:// or mqtts:// URL').optional(),
  /** the embedded broker's mqtts listener, when TLS is on (HCP_TLS_CERT/HCP_TLS_KEY) */
  HCP_MQTT_TLS_PORT: port.default(8883),
  /**
   * anonymous MQTT clients (Mosquitto 2.0's convention): 'auto' lets them read telemetry and
   * status and publish market and grid topics only while every listener is on loopback; 'off'
   * never. Nobody anonymous ever publishes a site's telemetry or status.
   */
  HCP_MQTT_ANONYMOUS: z.enum(['auto', 'off']).default('auto'),
  /** a packet larger than this is refused at its fixed header, before its body is read */
  HCP_MQTT_MAX_PACKET_BYTES: z.coerce.number().int().min(1024).max(268_435_455).default(1024 * 1024),
  /** QoS 1 messages kept for one offline persistent session; older ones are dropped and counted */
  HCP_MQTT_MAX_QUEUED: z.coerce.number().int().min(1).max(10_000_000).default(1000),
  /** an offline persistent session is forgotten after this long (external: the expiry ingest asks for) */
  HCP_MQTT_SESSION_EXPIRY_S: z.coerce.number().int().min(1).default(3600),
  /**
   * HCP_BROKER=external: ingest's login at the broker (docs/scaling.md has the broker's ACL). The
   * password comes from HCP_MQTT_PASSWORD_FILE (preferred) or HCP_MQTT_PASSWORD; one is required.
   */
  HCP_MQTT_USERNAME: z.string().min(1).max(256).default('hcp_ingest'),
  HCP_MQTT_PASSWORD: z.string().min(1).optional(),
  HCP_MQTT_PASSWORD_FILE: z.string().min(1).optional(),
  /** HCP_BROKER=external with an mqtts:// URL: PEM CA to trust for the broker (else the system's) */
  HCP_MQTT_CA_FILE: z.string().min(1).optional(),
  /**
   * HCP_BROKER=external: the replicas take telemetry through the MQTT 5 shared subscription
   * $share/<group>/hcp/v1/sites/+/telemetry, each batch to one of them; 'off' = every replica
   * subscribes plainly (one replica only)
   */
  HCP_MQTT_SHARE_GROUP: z.string().regex(/^[^/+#\s]{1,64}$/, "must be a group name without '/', '+', '#' or spaces, or 'off'").default('hcp-ingest'),
  /**
   * ingest's MQTT client id, unique per replica and stable across its restarts so its persistent
   * session is picked up again; default hcp-ingest-<hostname>-<gRPC port> (plus a random suffix
   * when the gRPC port is 0: such a replica has no stable identity)
   */
  HCP_MQTT_CLIENT_ID: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1 to 128 of A-Z a-z 0-9 _ . : -').optional(),
  /**
   * makes sure an admin key with this value exists at start (bootstrap); without it, and with no
   * admin key at all, one is generated and written to HCP_DATA_DIR/admin.key (mode 0600)
   */
  HCP_ADMIN_KEY: z.string().regex(/^hcp_[A-Za-z0-9_-]{20,200}$/, 'must be an HCP key: hcp_ followed by at least 20 of A-Z a-z 0-9 _ -').optional(),
  /** TLS for REST (https), gRPC and the broker (mqtts): PEM files; both or neither */
  HCP_TLS_CERT: z.string().min(1).optional(),
  HCP_TLS_KEY: z.string().min(1).optional(),
  /** PEM CA: client certificates (mTLS) are then required on gRPC and mqtts, and checked against it */
  HCP_TLS_CLIENT_CA: z.string().min(1).optional(),
  /** REST request bodies larger than this are answered 413 before they are read */
  HCP_HTTP_BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).max(1024 * 1024 * 1024).default(1024 * 1024),
  /** per-key token bucket on REST and gRPC: sustained requests per second, and the burst */
  HCP_RATE_LIMIT_PER_S: z.coerce.number().positive().default(50),
  HCP_RATE_LIMIT_BURST: z.coerce.number().int().min(1).default(100),
  /** browser origins allowed by CORS, comma-separated; none = CORS off */
  HCP_CORS_ORIGINS: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((o) => o.trim()).filter(Boolean))
    .refine((os) => os.every((o) => /^https?:\/\/[^/\s]+$/.test(o)), 'must be origins like https://console.example.com, separated by commas'),
  /** PostgreSQL: API queries running longer than this are cancelled */
  HCP_API_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(100).default(5000),
  /** the telemetry endpoint refuses a query that would scan more stored samples than this */
  HCP_TELEMETRY_MAX_SCAN_ROWS: z.coerce.number().int().min(1000).default(2_000_000),
  /** the console's live stream (GET /api/v1/events): open streams at most, events queued per stream before a slow one is dropped, and the heartbeat */
  HCP_EVENTS_MAX_STREAMS: z.coerce.number().int().min(1).default(200),
  HCP_EVENTS_QUEUE: z.coerce.number().int().min(10).default(2000),
  /**
   * command states queued for one WatchCommands stream before a watcher that reads too slowly is
   * ended (RESOURCE_EXHAUSTED, reason slow_client); a curtail of the whole fleet queues a few per site in one turn
   */
  HCP_WATCH_QUEUE: z.coerce.number().int().min(10).default(50_000),
  /** how long a watcher ended as too slow may take to read its status before its stream is reset */
  HCP_WATCH_GRACE_MS: z.coerce.number().int().min(100).default(10_000),
  HCP_EVENTS_HEARTBEAT_MS: ms.default(15000),
  /** the built console (web/dist); the console is not served when it has no index.html */
  HCP_WEB_DIR: z.string().min(1).optional(),
  /** open ?wait requests, gRPC waits and WatchCommands streams, together */
  HCP_MAX_WAITERS: z.coerce.number().int().min(1).default(1000),
  /** sites the control plane keeps, and devices one site may announce */
  HCP_MAX_SITES: z.coerce.number().int().min(1).default(1000),
  HCP_MAX_DEVICES_PER_SITE: z.coerce.number().int().min(1).max(1_000_000).default(20_000),
  HCP_HEARTBEAT_MS: ms.default(2000),
  /** a site or device with no sign of life for this long is offline */
  HCP_STALE_AFTER_MS: ms.default(10000),
  HCP_INGEST_FLUSH_MS: ms.default(250),
  /** samples of whole batches one telemetry flush takes at most; a full flush is written at once */
  HCP_INGEST_MAX_ROWS: ms.default(10000),
  /** telemetry flushes in flight at once, each a transaction on its own connection (bench: npm run bench:ingest) */
  HCP_INGEST_FLUSHES: z.coerce.number().int().min(1).max(16).default(2),
  /** samples by COPY on PostgreSQL (off: by INSERT … unnest, as on PGlite) */
  HCP_INGEST_COPY: z.enum(['on', 'off']).default('on'),
  /**
   * the telemetry writer's buffer, in wire bytes of batches not yet committed; a batch past it is
   * refused and its agent sends it again (docs/reliability.md "Control plane: acknowledge after commit")
   */
  HCP_INGEST_MAX_BUFFER_BYTES: z.coerce.number().int().min(64 * 1024).default(32 * 1024 * 1024),
  /** a batch sent longer ago than this is backlog, and may fill only HCP_INGEST_BACKLOG_SHARE of the buffer */
  HCP_INGEST_BACKLOG_AGE_MS: ms.default(10_000),
  HCP_INGEST_BACKLOG_SHARE: z.coerce.number().gt(0).max(1).default(0.5),
  /** ledger rows of committed batches are kept this long (past the agent's 24 h spool) */
  HCP_INGEST_LEDGER_RETENTION_S: z.coerce.number().int().min(3600).default(48 * 3600),
  /**
   * development only: an agent credential for a site that does not exist creates it on hello.
   * Otherwise a site exists when an admin creates it or its credential.
   */
  HCP_AUTO_REGISTER_SITES: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
  /** grid under-frequency response (ERCOT: load trips at 59.7 Hz; grid/frequency-guard.ts) */
  HCP_GRID_TRIP_HZ: z.coerce.number().min(40).max(70).default(59.7),
  HCP_GRID_RECOVER_HZ: z.coerce.number().min(40).max(70).default(59.95),
  HCP_GRID_RESTORE_HOLD_S: z.coerce.number().min(0).default(60),
  HCP_GRID_RESTORE_STAGES: z.coerce.number().int().min(1).max(100).default(4),
  HCP_GRID_RESTORE_STAGE_S: z.coerce.number().min(0).default(30),
  /** regions whose agents arm their local under-frequency trip; comma-separated, or 'none' */
  HCP_GRID_TRIP_REGIONS: z
    .string()
    .default('ercot')
    .transform((v) => (v.trim() === 'none' ? [] : v.split(',').map((r) => r.trim()).filter(Boolean)))
    .refine((rs) => rs.every((r) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(r)), 'must be region ids separated by commas'),
  /**
   * ASIC starts per site are limited to this many kW per minute (PUT /api/v1/sites/:id/ramp sets
   * one site's); 0 = a quarter of the site's capacity per minute (no limit where none is set).
   * Curtailment is never ramp-limited.
   */
  HCP_RAMP_KW_PER_MIN: z.coerce.number().min(0).default(0),
  /** the ramp limit's sliding window (the kW allowed in it scale with it); shorter for tests and demos */
  HCP_RAMP_WINDOW_S: z.coerce.number().min(1).max(3600).default(60),
  /** the reconcilers' interval (each also runs at once when a claim changes) */
  HCP_RECONCILE_MS: ms.default(2000),
  /** how long an S21 takes from wake to hashing, before the reconciler retries a start */
  HCP_RECONCILE_START_S: z.coerce.number().min(1).default(300),
  /** scheduler: running batch/training work younger than this is not preempted by batch/training */
  HCP_SCHED_MIN_RUNTIME_S: z.coerce.number().int().min(0).default(60),
  /** scheduler: a site offline this long has its workloads requeued elsewhere */
  HCP_SCHED_SITE_GRACE_S: z.coerce.number().int().min(0).default(30),
  /** scheduler: queue rank improves one priority level per this many seconds waited (0 = strict priority) */
  HCP_SCHED_AGING_S: z.coerce.number().int().min(0).default(300),
  /** scheduler: minimum spacing of placement passes */
  HCP_SCHED_PASS_MS: ms.default(20),
  /** scheduler: a workload whose Allocate failed this many times is failed */
  HCP_SCHED_MAX_ALLOCATE_ATTEMPTS: z.coerce.number().int().min(1).default(5),
  /** the economic engine: 'off' leaves every site as operators set it */
  HCP_ECONOMICS: z.enum(['on', 'off']).default('on'),
  HCP_ECONOMICS_INTERVAL_MS: z.coerce.number().int().min(1000).default(60_000),
  /** the engine's model of the fleet: S21 start-up time and minimum on/off durations */
  HCP_ECONOMICS_STARTUP_S: z.coerce.number().min(0).default(240),
  HCP_ECONOMICS_MIN_ON_S: z.coerce.number().min(0).default(900),
  HCP_ECONOMICS_MIN_OFF_S: z.coerce.number().min(0).default(600),
  /** a price this many times break-even sheds inside the minimum on time */
  HCP_ECONOMICS_SPIKE_MULTIPLE: z.coerce.number().min(1).default(3),
  /** several control planes on one database: the leader lease's ttl and renewal (ha/lease.ts) */
  HCP_LEASE_TTL_MS: z.coerce.number().int().min(500).default(4000),
  HCP_LEASE_RENEW_MS: z.coerce.number().int().min(100).default(1000),
  /** this replica's name in the lease and /api/v1/status; default host:pid:random */
  HCP_REPLICA_ID: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 of A-Z a-z 0-9 . _ : -').optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type ControlPlaneConfig = z.infer<typeof ControlPlaneConfigSchema>;

export class ConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export function loadControlPlaneConfig(env: NodeJS.ProcessEnv = process.env): ControlPlaneConfig {
  const picked = Object.fromEntries(
    Object.keys(ControlPlaneConfigSchema.shape)
      .filter((k) => env[k] !== undefined && env[k] !== '')
      .map((k) => [k, env[k]]),
  );
  const r = ControlPlaneConfigSchema.safeParse(picked);
  if (!r.success) {
    throw new ConfigError(r.error.issues.map((i) => {
      const key = String(i.path[0]);
      return `${i.path.join('.')}: ${i.message} (got ${shownValue(key, picked[key])})`;
    }));
  }
  if (!r.data.HCP_TLS_CERT !== !r.data.HCP_TLS_KEY) throw new ConfigError(['HCP_TLS_CERT and HCP_TLS_KEY: give both or neither']);
  if (r.data.HCP_TLS_CLIENT_CA && !r.data.HCP_TLS_CERT) throw new ConfigError(['HCP_TLS_CLIENT_CA: needs HCP_TLS_CERT and HCP_TLS_KEY']);
  if (r.data.HCP_MQTT_PASSWORD && r.data.HCP_MQTT_PASSWORD_FILE) throw new ConfigError(['HCP_MQTT_PASSWORD_FILE: give the broker password one way, HCP_MQTT_PASSWORD or HCP_MQTT_PASSWORD_FILE']);
  if (r.data.HCP_BROKER === 'external' && !r.data.HCP_MQTT_PASSWORD && !r.data.HCP_MQTT_PASSWORD_FILE) {
    throw new ConfigError(['HCP_MQTT_PASSWORD_FILE: HCP_BROKER=external needs ingest\'s broker login (HCP_MQTT_USERNAME and HCP_MQTT_PASSWORD_FILE or HCP_MQTT_PASSWORD)']);
  }
  return r.data;
}

/** config values that are secrets, or carry one, are never printed */
function shownValue(key: string, v: unknown): string {
  if (key === 'HCP_ADMIN_KEY' || key === 'HCP_MQTT_PASSWORD') return '(a value, not shown)';
  if (key === 'DATABASE_URL' && typeof v === 'string') return JSON.stringify(redactUrl(v));
  return JSON.stringify(v);
}

/** a URL with its password replaced by *** (for logs and messages) */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@\s]*@/i, '$1:***@');
}

export function isLoopbackHost(h: string): boolean {
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** ingest's MQTT client id (HCP_MQTT_CLIENT_ID, else one unique to this host and gRPC port) */
export function ingestClientIdOf(c: ControlPlaneConfig, hostname: string, random: () => string): string {
  if (c.HCP_MQTT_CLIENT_ID) return c.HCP_MQTT_CLIENT_ID;
  const host = hostname.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64) || 'host';
  return c.HCP_GRPC_PORT === 0 ? `hcp-ingest-${host}-0-${random()}` : `hcp-ingest-${host}-${c.HCP_GRPC_PORT}`;
}

/** the broker URL ingest subscribes to */
export function mqttUrlOf(c: ControlPlaneConfig, embeddedPort: number): string {
  if (c.HCP_BROKER === 'external') return c.HCP_MQTT_URL ?? `mqtt://${c.HCP_MQTT_HOST}:${c.HCP_MQTT_PORT}`;
  return `mqtt://127.0.0.1:${embeddedPort}`;
}
