export * from './archive';
export * from './delta';
