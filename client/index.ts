// The fleet's client library: what the CLI, the local fleet, benches and tests use to talk to a fleet.
export { FleetClient } from './fleet-client.ts';
export { packContext, type PackedContext } from './context-pack.ts';
export { auditTrail, pendingJobs, storedEvents, storedScanRequests } from './stored-events.ts';
