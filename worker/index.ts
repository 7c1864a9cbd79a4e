export { startWorker, type Worker } from './worker.ts';
export { WorkerOptions, type WorkerConfig } from './config.ts';
