// The scenarios run on every peer in every repetition (each a function (peer, hook) -> figures),
// and which peers each applies to. idle, reload, workers2, fleet and store run in their own phases.
import bulk from './bulk.mjs';
import full from './full.mjs';
import fullHybrid, { appliesTo as hybridApplies } from './full-hybrid.mjs';
import { resumed, reuse } from './resumed.mjs';
import rtt from './rtt.mjs';

export const perRep = { full, resumed, reuse, bulk, rtt, 'full-hybrid': fullHybrid };
export const applies = (scenario, peer) => (scenario === 'full-hybrid' ? hybridApplies(peer) : true);
export const PHASES = ['idle', 'reload', 'workers2', 'fleet', 'store'];
