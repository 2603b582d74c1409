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
import { grpcError } from './status.js';

const STATUS: Record<ErrorCode, status> = {
  not_found: status.NOT_FOUND,
  invalid_argument: status.INVALID_ARGUMENT,
  conflict: status.FAILED_PRECONDITION,
  unavailable: status.UNAVAILABLE,
  unauthenticated: status.UNAUTHENTICATED,
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

export function createFleetService(d: { registry: Registry; ops: () => Operations; bus: () => CommandBus; log: Logger }) {
  const fail = (cb: sendUnaryData<never>, err: unknown) => {
    if (err instanceof HcpError) return cb(grpcError(STATUS[err.code], err.reason, err.message) as never, null);
    d.log.error({ err }, 'fleet call failed');
    cb(grpcError(status.INTERNAL, 'internal', 'internal error') as never, null);
  };
  const actor = (call: ServerUnaryCall<unknown, unknown>, given: string) => {
    if (given && /^[\w.:@-]{1,64}$/.test(given)) return `operator:${given}`;
    const peer = call.getPeer();
    return `grpc:${peer}`;
  };
  const reply = async (recs: CommandRecord[], wait: boolean): Promise<CommandsReply> => {
    const out = wait ? await d.bus().waitFinal(recs.map((r) => r.id), Math.max(0, Math.min(Math.max(...recs.map((r) => r.deadlineMs)) - Date.now(), 60_000))) : recs;
    return { commands: out.map(toCommandView) };
  };
  const unary = <Req, Res>(fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>) =>
    (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
      fn(call.request, call).then((r) => cb(null, r), (err) => fail(cb as sendUnaryData<never>, err));
    };

  const impl: FleetServer = {
    getStatus: unary(async () => {
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
    setMining: unary(async (req, call) =>
      reply(await d.ops().setMining({
        site: req.site, enabled: req.enabled, deviceIds: req.deviceIds, powerTargetW: req.powerTargetW || null,
        actor: actor(call, req.actor), deadlineS: req.deadlineS || undefined,
      }), req.wait)),
    curtail: unary(async (req, call) =>
      reply(await d.ops().curtail({ sites: req.sites, all: req.all, reason: req.reason, actor: actor(call, req.actor), deadlineS: req.deadlineS || undefined }), req.wait)),
    allocate: unary(async (req, call) =>
      reply(await d.ops().allocate({ workloadId: req.workloadId, deviceIds: req.deviceIds, actor: actor(call, req.actor) }), req.wait)),
    release: unary(async (req, call) => reply(await d.ops().release({ workloadId: req.workloadId, actor: actor(call, req.actor) }), req.wait)),
    watchCommands: (call) => {
      const site = call.request.site;
      if (site && !d.registry.site(site)) {
        call.emit('error', grpcError(status.NOT_FOUND, 'unknown_site', `site ${site} not found`));
        return;
      }
      const stop = d.bus().watch((r) => {
        if (!site || r.siteId === site) call.write(toCommandView(r));
      });
      call.on('cancelled', stop);
      call.on('close', stop);
    },
  };
  return { service: FleetService, impl, isFinal };
}
