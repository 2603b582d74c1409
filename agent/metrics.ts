// The agent's own Prometheus metrics, served on its local /metrics. No per-device labels.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createAgentMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    batchesPublished: new Counter({ name: 'hcp_agent_batches_published_total', help: 'Telemetry batches handed to the broker', registers: [registry] }),
    batchesSpooled: new Gauge({ name: 'hcp_agent_spooled_batches', help: 'Batches waiting for the broker', registers: [registry] }),
    batchesDropped: new Counter({ name: 'hcp_agent_batches_dropped_total', help: 'Batches dropped because the spool was full', registers: [registry] }),
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
