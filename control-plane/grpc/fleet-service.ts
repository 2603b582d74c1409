// hcp.v1.Fleet: the gRPC API for command clients. Same operations as REST, same checks; typed
// errors become gRPC statuses with the reason in the hcp-reason trailer.
import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import http2 from 'node:http2';
import type { Logger } from 'pino';
import { CommandState, FleetService, type CommandsReply, type CommandView, type FleetServer } from '../../proto/gen/hcp/v1/fleet.js';
import type { CommandBus } from '../commands/bus.js';
import { isFinal, type CommandRecord } from '../commands/model.js';
import type { Operations } from '../commands/operations.js';
import { HcpError, type ErrorCode } from '../errors.js';
import { statusView } from '../http/views.js';
import type { Registry } from '../registry/registry.js';
import type { KeyRing } from '../auth/key-ring.js';
import type { RateLimiter } from '../auth/rate-limit.js';
import { actorOf, type Permission, type Principal } from '../auth/roles.js';
import type { WaitGate } from '../commands/wait-gate.js';
import { runInRequest } from '../request-context.js';
import { authorizeCall, requestIdOf } from './auth.js';
import { holdsNul, isMalformed, malformedReason } from './malformed.js';
import { grpcError } from './status.js';

const STATUS: Record<ErrorCode, status> = {
  not_found: status.NOT_FOUND,
  invalid_argument: status.INVALID_ARGUMENT,
  conflict: status.FAILED_PRECONDITION,
  unavailable: status.UNAVAILABLE,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  rate_limited: status.RESOURCE_EXHAUSTED,
  payload_too_large: status.RESOURCE_EXHAUSTED,
  internal: status.INTERNAL,
};

const STATE: Record<string, CommandState> = {
  pending: CommandState.COMMAND_STATE_PENDING,
  sent: CommandState.COMMAND_STATE_SENT,
  acked: CommandState.COMMAND_STATE_ACKED,
  succeeded: CommandState.COMMAND_STATE_SUCCEEDED,
  failed: CommandState.COMMAND_STATE_FAILED,
  expired: CommandState.COMMAND_STATE_EXPIRED,
};

export function toCommandView(r: CommandRecord): CommandView {
  return {
    id: r.id, site: r.siteId, type: r.payload.type, state: STATE[r.state] ?? CommandState.COMMAND_STATE_UNSPECIFIED, actor: r.actor,
    reasonCode: r.reasonCode ?? '', message: r.message ?? '', createdAtMs: r.createdAtMs, deadlineMs: r.deadlineMs,
    finishedAtMs: r.finishedAtMs ?? 0, devices: r.devices ?? [],
  };
}

const malformed = (m: Parameters<typeof malformedReason>[0]) =>
  new HcpError('invalid_argument', `the request is not a valid message of this method: ${malformedReason(m)}`, 'malformed_message');

/** what no request may be, whatever its method: undecodable, or holding a NUL */
function badRequest(request: unknown): HcpError | null {
  if (isMalformed(request)) return malformed(request);
  if (holdsNul(request)) return new HcpError('invalid_argument', 'a string field holds a NUL character (U+0000), which no HCP value may contain', 'nul_character');
  return null;
}

import type { OperatorControls } from '../claims/operator.js';
import type { Metrics } from '../metrics.js';

export interface FleetServiceDeps {
  registry: Registry;
  ops: Operations;
  bus: CommandBus;
  /** mining and curtail are operator claims (claims/operator.ts) */
  operator: OperatorControls;
  log: Logger;
  ring: KeyRing;
  limiter: RateLimiter;
  waiters: WaitGate;
  metrics?: Pick<Metrics, 'commandWatchStreams' | 'commandWatchDropped'>;
  /** states queued for one WatchCommands stream before it is ended as too slow (HCP_WATCH_QUEUE) */
  watchQueue?: number;
  /** how long a watcher ended as too slow has to read its status before its stream is reset */
  watchGraceMs?: number;
}

/**
 * Resets a server stream's HTTP/2 stream (RST_STREAM CANCEL). grpc-js gives a handler no way to
 * abort a call whose status is queued behind unread data, so this reaches its stream through the
 * call's internals (grpc-js 1.14: call.call.stream); test/watch-commands.int.test.ts fails if
 * that path moves.
 */
function resetStream(call: object): void {
  const stream = (call as { call?: { stream?: { destroyed?: boolean; close?: (code: number) => void } } }).call?.stream;
  if (stream && !stream.destroyed) stream.close?.(http2.constants.NGHTTP2_CANCEL);
}

export function createFleetService(d: FleetServiceDeps) {
  const fail = (cb: sendUnaryData<never>, err: unknown) => {
    if (err instanceof HcpError) return cb(grpcError(STATUS[err.code], err.reason, err.message) as never, null);
    d.log.error({ err }, 'fleet call failed');
    cb(grpcError(status.INTERNAL, 'internal', 'internal error') as never, null);
  };
  const reply = async (recs: CommandRecord[], wait: boolean, claimIds: string[] = []): Promise<CommandsReply> => {
    // over the waiters' cap the commands stand as submitted: answered now, not refused
    const release = wait ? d.waiters.enter() : null;
    try {
      const out = release ? await d.bus.waitFinal(recs.map((r) => r.id), Math.max(0, Math.min(Math.max(...recs.map((r) => r.deadlineMs)) - Date.now(), 60_000))) : recs;
      return { commands: out.map(toCommandView), claimIds };
    } finally {
      release?.();
    }
  };
  /** a unary call: its key checked for the permission, run under its request id, audited as the key */
  const unary = <Req, Res>(needed: Permission, fn: (req: Req, actor: string) => Promise<Res>) =>
    (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
      let principal: Principal;
      try {
        principal = authorizeCall(d, call.metadata, needed);
      } catch (err) {
        return fail(cb as sendUnaryData<never>, err);
      }
      const bad = badRequest(call.request);
      if (bad) return fail(cb as sendUnaryData<never>, bad);
      runInRequest({ requestId: requestIdOf(call.metadata), principal }, () =>
        fn(call.request, actorOf(principal)).then((r) => cb(null, r), (err) => fail(cb as sendUnaryData<never>, err)));
    };

  const impl: FleetServer = {
    getStatus: unary('fleet.read', async () => {
      const v = statusView(d.registry);
      return {
        sites: v.sites.map((s) => ({
          id: s.id, online: s.online, gpus: s.gpus, asics: s.asics, gpusOnline: s.gpus_online, asicsOnline: s.asics_online,
          gpusBusy: s.gpus_busy, asicsMining: s.asics_mining, hashrateThs: s.hashrate_ths, powerW: s.power_w,
        })),
        sitesOnline: v.fleet.sites_online, devicesOnline: v.fleet.devices_online, hashrateThs: v.fleet.hashrate_ths,
        powerW: v.fleet.power_w, gpuUtilizationPct: v.fleet.gpu_utilization_pct ?? 0,
      };
    }),
    // The requests' `actor` field is ignored: the audit actor is the caller's key.
    setMining: unary('fleet.control', async (req, actor) => {
      if (!d.registry.site(req.site)) throw new HcpError('not_found', `site ${JSON.stringify(req.site)} not found`, 'unknown_site');
      const { claim, commands } = await d.operator.setMining({
        site: req.site, enabled: req.enabled, deviceIds: req.deviceIds, powerTargetW: req.powerTargetW || null, actor, reason: req.reason || undefined,
        expiresAtMs: req.durationS ? Date.now() + req.durationS * 1000 : null,
      });
      return reply(commands, req.wait, [claim.id]);
    }),
    curtail: unary('fleet.control', async (req, actor) => {
      const { claims, commands } = await d.operator.curtail({ sites: req.sites, all: req.all, reason: req.reason, actor, expiresAtMs: req.durationS ? Date.now() + req.durationS * 1000 : null });
      return reply(commands, req.wait, claims.map((c) => c.id));
    }),
    allocate: unary('fleet.control', async (req, actor) =>
      reply(await d.ops.allocate({ workloadId: req.workloadId, deviceIds: req.deviceIds, actor }), req.wait)),
    release: unary('fleet.control', async (req, actor) => reply(await d.ops.release({ workloadId: req.workloadId, actor }), req.wait)),
    watchCommands: (call) => {
      const refuse = (err: HcpError) => call.emit('error', grpcError(STATUS[err.code], err.reason, err.message));
      try {
        authorizeCall(d, call.metadata, 'fleet.read');
      } catch (err) {
        return refuse(err as HcpError);
      }
      const bad = badRequest(call.request);
      if (bad) return refuse(bad);
      const site = call.request.site;
      if (site && !d.registry.site(site)) return refuse(new HcpError('not_found', `site ${site} not found`, 'unknown_site'));
      const release = d.waiters.enter();
      if (!release) return refuse(new HcpError('rate_limited', 'too many open command watchers (HCP_MAX_WAITERS)', 'too_many_waiters'));
      // What the client has not read waits in the call's buffer (HTTP/2 flow control holds it
      // there): a watcher that reads more slowly than states come is ended, not buffered without
      // end. Its status (RESOURCE_EXHAUSTED, slow_client) follows what was queued, so a client
      // that reads again hears why, and may watch again and read what it missed from
      // GET /api/v1/commands; one that still has not read it after watchGraceMs has its stream
      // reset. Its place under HCP_MAX_WAITERS is held until the stream is gone.
      const watchQueue = d.watchQueue ?? 50_000;
      let listening = true;
      let closed = false;
      let grace: NodeJS.Timeout | undefined;
      const stop = d.bus.watch((r) => {
        if (!listening || (site && r.siteId !== site)) return;
        if (call.writableLength < watchQueue) {
          call.write(toCommandView(r));
          return;
        }
        listening = false;
        stop();
        d.metrics?.commandWatchDropped.inc({ reason: 'slow_client' });
        d.log.warn({ queued: call.writableLength, site: site || undefined }, 'WatchCommands stream ended: the client reads too slowly');
        call.emit('error', grpcError(status.RESOURCE_EXHAUSTED, 'slow_client', `more than ${watchQueue} command states were queued for this stream unread; watch again and read what was missed from GET /api/v1/commands`));
        grace = setTimeout(() => resetStream(call), d.watchGraceMs ?? 10_000);
        grace.unref();
      });
      d.metrics?.commandWatchStreams.inc();
      const gone = () => {
        if (closed) return;
        closed = true;
        listening = false;
        clearTimeout(grace);
        stop();
        release();
        d.metrics?.commandWatchStreams.dec();
      };
      call.on('cancelled', gone);
      call.on('close', gone);
      call.on('finish', gone);
    },
  };
  return { service: FleetService, impl, isFinal };
}
