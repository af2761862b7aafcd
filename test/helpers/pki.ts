// The throwaway PKI lives in src/pki.ts (the demo uses it too).
export * from '../../src/pki.js';
