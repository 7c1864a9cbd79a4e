export { startCoordinator, type Coordinator } from './coordinator.ts';
export { CoordinatorOptions, type CoordinatorConfig } from './config.ts';
