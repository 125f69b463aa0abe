#!/usr/bin/env node
// Times twilio-node's validateRequest on a webhook fixture, valid and with a wrong
// signature, and prints one JSON line with nanoseconds per call (the fastest of several
// rounds, the first discarded as warm-up).
// usage: node compare.js NODE_PREFIX FIXTURE.json
'use strict';
const path = require('path');
const fs = require('fs');

const [prefix, fixturePath] = process.argv.slice(2);
const modules = path.join(path.resolve(prefix), 'node_modules');
const twilio = require(path.join(modules, 'twilio'));
const version = require(path.join(modules, 'twilio', 'package.json')).version;
const f = JSON.parse(fs.readFileSync(fixturePath, 'utf8'));

// Form pairs as the object Express or Koa would hand over (repeated keys as arrays).
const params = {};
for (const [k, v] of f.form) params[k] = k in params ? [].concat(params[k], v) : v;
const WRONG = 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=';

if (!twilio.validateRequest(f.token, f.signature, f.url, params)) {
  throw new Error('the fixture does not verify with twilio-node');
}
if (twilio.validateRequest(f.token, WRONG, f.url, params)) {
  throw new Error('a wrong signature verifies with twilio-node');
}

function nsPerCall(roundMs, fn) {
  let calls = 0;
  const t0 = process.hrtime.bigint();
  while (process.hrtime.bigint() - t0 < 50_000_000n) {
    fn();
    calls++;
  }
  const calibration = Number(process.hrtime.bigint() - t0);
  const perRound = Math.max(1, Math.floor((calls * roundMs * 1e6) / calibration));
  let best = Infinity;
  let sink = 0;
  for (let i = 0; i < 6; i++) {
    const start = process.hrtime.bigint();
    for (let j = 0; j < perRound; j++) sink += fn() ? 1 : 0;
    const ns = Number(process.hrtime.bigint() - start) / perRound;
    if (i > 0) best = Math.min(best, ns);
  }
  if (sink < 0) console.error(sink);
  return best;
}

const valid = nsPerCall(300, () => twilio.validateRequest(f.token, f.signature, f.url, params));
const invalid = nsPerCall(300, () => twilio.validateRequest(f.token, WRONG, f.url, params));
console.log(JSON.stringify({
  impl: `twilio-node ${version} (validateRequest)`,
  valid_ns: Number(valid.toFixed(1)),
  invalid_ns: Number(invalid.toFixed(1)),
}));
