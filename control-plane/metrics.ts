// Prometheus metrics of the control plane. One Registry per instance (no module singletons, so
// tests can run several control planes in one process). No per-device labels (cardinality).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client's nodejs_active_*_total are gauges named as counters, which promtool check metrics
  // flags; nodejs_active_handles/requests/resources{type} carry the same counts, by type
  for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(n);
  return {
    registry,
    consoleStreams: new Gauge({
      name: 'hcp_console_streams',
      help: 'Open live streams of the console (GET /api/v1/events)',
      registers: [registry],
    }),
    consoleStreamDropped: new Counter({
      name: 'hcp_console_stream_dropped_total',
      help: 'Live streams ended by the control plane, by reason (slow_client: its queue was full; over_cap: refused at the connection cap)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    consoleStreamEvents: new Counter({
      name: 'hcp_console_stream_events_total',
      help: 'Events queued to live streams of the console',
      registers: [registry],
    }),
    commandWatchStreams: new Gauge({
      name: 'hcp_command_watch_streams',
      help: 'Open hcp.v1.Fleet/WatchCommands streams',
      registers: [registry],
    }),
    commandWatchDropped: new Counter({
      name: 'hcp_command_watch_dropped_total',
      help: 'WatchCommands streams ended by the control plane, by reason (slow_client: more states queued for it than HCP_WATCH_QUEUE)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    ingestSamples: new Counter({
      name: 'hcp_ingest_samples_total',
      help: 'Device samples written to the telemetry tables',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    ingestRejected: new Counter({
      name: 'hcp_ingest_rejected_total',
      help: 'Telemetry messages or samples dropped at ingest, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    ingestBatches: new Counter({
      name: 'hcp_ingest_batches_total',
      help: 'Telemetry batches accepted',
      registers: [registry],
    }),
    ingestSeqGaps: new Counter({
      name: 'hcp_ingest_seq_gap_batches_total',
      help: 'Batches missing between consecutive sequence numbers of one agent session',
      registers: [registry],
    }),
    ingestLag: new Histogram({
      name: 'hcp_ingest_lag_seconds',
      help: 'Time from a batch being sent by the agent to its commit (a replay: to its being found in the ledger)',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    ingestFlush: new Histogram({
      name: 'hcp_ingest_flush_seconds',
      help: 'Duration of one bulk write of buffered samples',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    ingestBuffered: new Gauge({
      name: 'hcp_ingest_buffered_samples',
      help: 'Samples waiting for the next bulk write',
      registers: [registry],
    }),
    ingestBufferedBytes: new Gauge({
      name: 'hcp_ingest_buffered_bytes',
      help: 'Wire bytes of the telemetry batches buffered and not yet committed (bounded by HCP_INGEST_MAX_BUFFER_BYTES)',
      registers: [registry],
    }),
    ingestNewestSample: new Gauge({
      name: 'hcp_ingest_newest_sample_timestamp_seconds',
      help: 'Sample time of the newest telemetry sample committed (freshness: now minus this)',
      registers: [registry],
    }),
    ingestCopyRefused: new Counter({
      name: 'hcp_ingest_copy_refused_total',
      help: 'Telemetry flushes whose COPY the database refused (a bad or already stored sample, or an abort such as a deadlock: the reason is not reported), written again by INSERT',
      registers: [registry],
    }),
    ingestCommittedSent: new Counter({
      name: 'hcp_ingest_committed_sent_total',
      help: 'TelemetryCommitted messages sent to agents (the contiguous committed seq of their stream)',
      registers: [registry],
    }),
    brokerRejected: new Counter({
      name: 'hcp_broker_rejected_publishes_total',
      help: 'Publishes the embedded broker refused, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    feedMessages: new Counter({
      name: 'hcp_feed_messages_total',
      help: 'Market and grid feed messages accepted, by feed',
      labelNames: ['feed'] as const,
      registers: [registry],
    }),
    feedRejected: new Counter({
      name: 'hcp_feed_rejected_total',
      help: 'Market and grid feed messages dropped, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    gridActions: new Counter({
      name: 'hcp_grid_actions_total',
      help: 'Grid under-frequency responses: curtails, restore stages, local trips reported by agents',
      labelNames: ['action'] as const,
      registers: [registry],
    }),
    economicDecisions: new Counter({
      name: 'hcp_economic_decisions_total',
      help: 'Economic engine decisions, by the rule that named them',
      labelNames: ['rule'] as const,
      registers: [registry],
    }),
    sitesOnline: new Gauge({ name: 'hcp_sites_online', help: 'Sites online', registers: [registry] }),
    devicesOnline: new Gauge({
      name: 'hcp_devices_online',
      help: 'Devices reporting, by kind',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    agentStreams: new Gauge({
      name: 'hcp_agent_streams',
      help: 'Open agent Connect streams',
      registers: [registry],
    }),
    agentMessagesRejected: new Counter({
      name: 'hcp_agent_messages_rejected_total',
      help: 'Messages on agent streams that were refused, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    commandTransitions: new Counter({
      name: 'hcp_command_transitions_total',
      help: 'Commands entering each state, by command type',
      labelNames: ['type', 'state'] as const,
      registers: [registry],
    }),
    commandRoundTrip: new Histogram({
      name: 'hcp_command_roundtrip_seconds',
      help: 'Time from a command being stored to its final state, by type and final state',
      labelNames: ['type', 'state'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    commandMessagesRejected: new Counter({
      name: 'hcp_command_results_rejected_total',
      help: 'Acks and results from agents that were refused, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    // The seed's names (docs/architecture.md), kept.
    allocations: new Counter({
      name: 'orchestrator_allocations_total',
      help: 'Allocate and release operations by outcome',
      labelNames: ['type', 'status'] as const,
      registers: [registry],
    }),
    allocationDuration: new Histogram({
      name: 'orchestrator_allocation_duration_seconds',
      help: 'Time from an allocate or release request to the agent confirming it',
      labelNames: ['type'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    activeWorkloads: new Gauge({
      name: 'orchestrator_active_workloads',
      help: 'Workloads running on GPUs',
      registers: [registry],
    }),
    // The embedded broker's defences (control-plane/mqtt/). No per-client labels.
    brokerRefusedConnections: new Counter({
      name: 'hcp_broker_refused_connections_total',
      help: 'MQTT connections the embedded broker refused, by reason (bad_credentials, anonymous, not_authorized, client_id, client_id_in_use, revoked, auth_error, tls, protocol_error)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    brokerRefusedSubscriptions: new Counter({
      name: 'hcp_broker_refused_subscriptions_total',
      help: 'Topic filters the embedded broker refused (SUBACK 0x80), by reason (forbidden, reserved), or closed the connection for (invalid_filter)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    brokerDroppedQueued: new Counter({
      name: 'hcp_broker_dropped_queued_messages_total',
      help: 'QoS>0 messages dropped from persistent sessions, by reason (queue_full, session_expired, revoked)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    brokerOversizedPackets: new Counter({
      name: 'hcp_broker_oversized_packets_total',
      help: 'Connections cut because a packet header announced more than HCP_MQTT_MAX_PACKET_BYTES',
      registers: [registry],
    }),
    brokerSessionsExpired: new Counter({
      name: 'hcp_broker_sessions_expired_total',
      help: 'Offline persistent sessions forgotten after HCP_MQTT_SESSION_EXPIRY_S',
      registers: [registry],
    }),
    dbRejectedRows: new Counter({
      name: 'hcp_db_rejected_rows_total',
      help: 'Rows the database refused for their content and that were dead-lettered (logged, not retried) so the rest of their batch was written, by writer',
      labelNames: ['writer'] as const,
      registers: [registry],
    }),
    dbDroppedRows: new Counter({
      name: 'hcp_db_dropped_rows_total',
      help: 'Rows a write-behind buffer dropped unwritten, by writer and why: buffer_full (the database was away past the bound) or closed (still unwritten at shutdown)',
      labelNames: ['writer', 'why'] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
