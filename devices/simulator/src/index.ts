export * from './simulator';
export * from './virtual-device';
