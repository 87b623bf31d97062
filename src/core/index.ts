export * from './errors';
export * from './codec';
export * from './catalog';
export * from './audio-paths';
export * from './client';
export * from './supervisor';
export * from './number';
