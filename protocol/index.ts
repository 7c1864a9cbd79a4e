export * from './names.ts';
export * from './errors.ts';
export * from './fields.ts';
export * from './parse.ts';
export * from './request.ts';
export * from './job.ts';
export * from './state.ts';
export * from './events.ts';
