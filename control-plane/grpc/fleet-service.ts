// hcp.v1.Fleet: the gRPC API for command clients. Same operations as REST, same checks; typed
// errors become gRPC statuses with the reason in the hcp-reason trailer.
import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
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
      const stop = d.bus.watch((r) => {
        if (!site || r.siteId === site) call.write(toCommandView(r));
      });
      const done = () => {
        stop();
        release();
      };
      call.on('cancelled', done);
      call.on('close', done);
      call.on('error', done);
    },
  };
  return { service: FleetService, impl, isFinal };
}
