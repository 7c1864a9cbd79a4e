export { startCoordinator, type Coordinator } from './coordinator.ts';
export { CoordinatorOptions, type CoordinatorConfig } from './config.ts';
export { TenancyConfig, TenantConfig } from './tenancy/tenants.ts';
