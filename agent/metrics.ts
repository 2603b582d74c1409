// The agent's own Prometheus metrics, served on its local /metrics. No per-device labels.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createAgentMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client's nodejs_active_*_total are gauges named as counters, which promtool check metrics
  // flags; nodejs_active_handles/requests/resources{type} carry the same counts, by type
  for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(n);
  return {
    registry,
    batchesPublished: new Counter({ name: 'hcp_agent_batches_published_total', help: 'Telemetry batches handed to the broker', registers: [registry] }),
    batchesSpooled: new Gauge({ name: 'hcp_agent_spooled_batches', help: 'Batches in the on-disk spool the control plane has not committed yet', registers: [registry] }),
    spoolBytes: new Gauge({ name: 'hcp_agent_spool_bytes', help: 'Bytes of the on-disk telemetry spool', registers: [registry] }),
    batchesDropped: new Counter({ name: 'hcp_agent_batches_dropped_total', help: 'Uncommitted batches lost because the spool reached its bound (its oldest segment deleted)', registers: [registry] }),
    spoolSegmentsDropped: new Counter({ name: 'hcp_agent_spool_segments_dropped_total', help: 'Spool segments deleted at the bound before they were committed', registers: [registry] }),
    spoolCorruptSkipped: new Counter({ name: 'hcp_agent_spool_corrupt_skipped_total', help: 'Spool segment tails skipped at a torn or corrupt record', registers: [registry] }),
    spoolPlaceholders: new Counter({ name: 'hcp_agent_spool_placeholders_total', help: 'Seqs filled with an empty batch after an unclean stop (handed out, possibly sent, not in the spool)', registers: [registry] }),
    batchesResent: new Counter({ name: 'hcp_agent_batches_resent_total', help: 'Batches sent again from the spool (not committed in time, or replayed after a restart)', registers: [registry] }),
    commitsIgnored: new Counter({ name: 'hcp_agent_telemetry_commits_ignored_total', help: 'Telemetry commits ignored: another stream, or ahead of what the spool has made', registers: [registry] }),
    readErrors: new Counter({ name: 'hcp_agent_device_read_errors_total', help: 'Device reads that failed, by driver and code', labelNames: ['driver', 'code'] as const, registers: [registry] }),
    readDuration: new Histogram({ name: 'hcp_agent_read_seconds', help: 'Time to read every device once', buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] }),
    devicesReporting: new Gauge({ name: 'hcp_agent_devices_reporting', help: 'Devices read successfully in the last tick', labelNames: ['kind'] as const, registers: [registry] }),
    mqttConnected: new Gauge({ name: 'hcp_agent_mqtt_connected', help: '1 while connected to the broker', registers: [registry] }),
    commands: new Counter({ name: 'hcp_agent_commands_total', help: 'Commands from the control plane, by type and outcome', labelNames: ['type', 'outcome'] as const, registers: [registry] }),
    gridTrips: new Counter({ name: 'hcp_agent_grid_trips_total', help: 'Local under-frequency trips fired', registers: [registry] }),
    gridTripSeconds: new Histogram({ name: 'hcp_agent_grid_trip_seconds', help: 'From the frequency reading arriving to every covered ASIC told to sleep', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [registry] }),
    gridReadingsRejected: new Counter({ name: 'hcp_agent_grid_readings_rejected_total', help: 'Frequency readings that were not { ts, hz }', registers: [registry] }),
    desiredActions: new Counter({ name: 'hcp_agent_desired_actions_total', help: 'Actions the local converger took toward the held desired state, by action (sleep, start, retarget) and outcome', labelNames: ['action', 'outcome'] as const, registers: [registry] }),
    desiredStates: new Counter({ name: 'hcp_agent_desired_states_total', help: 'Desired states from the control plane, by outcome (stored, same, older)', labelNames: ['outcome'] as const, registers: [registry] }),
    desiredVersion: new Gauge({ name: 'hcp_agent_desired_version', help: 'Version of the desired state held (0 = none)', registers: [registry] }),
    desiredDiffering: new Gauge({ name: 'hcp_agent_desired_differing', help: 'ASICs whose last reading differs from the held desired state', registers: [registry] }),
    grpcConnected: new Gauge({ name: 'hcp_agent_control_plane_connected', help: '1 while the Connect stream is open and acknowledged', registers: [registry] }),
  };
}

export type AgentMetrics = ReturnType<typeof createAgentMetrics>;
