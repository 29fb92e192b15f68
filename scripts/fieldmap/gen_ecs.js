#!/usr/bin/env node
// Writes src/alert/fieldmap/ecs.json and ecs_nested.json from the
// `@elastic/ecs` npm package, with the selection and field properties that
// Kibana's `ecsFieldMap` applies (kbn-alerts-as-data-utils,
// src/field_maps/ecs_field_map.ts): fields of type constant_keyword, nested
// and flattened are left out, and so is every field below one of them and a
// fixed list of experimental fields; each kept field carries type, array,
// required, and scaling_factor / ignore_above / multi_fields where ECS sets
// them. ecs_nested.json lists the ECS fields of type nested (Kibana's
// `ecsNestedFieldNames`, used when stripping source documents).
//
// Usage (see src/alert/fieldmap/README.md):
//   npm pack @elastic/ecs@9.3.0 && tar xzf elastic-ecs-9.3.0.tgz
//   node scripts/fieldmap/gen_ecs.js ./package src/alert/fieldmap
'use strict';

const fs = require('fs');
const path = require('path');

const [pkgDir, outDir] = process.argv.slice(2);
if (!pkgDir || !outDir) {
  console.error('usage: gen_ecs.js <unpacked @elastic/ecs package dir> <output dir>');
  process.exit(2);
}
const ecs = require(path.resolve(pkgDir, 'build/commonjs/index.js'));
const flat = ecs.EcsFlat;

// Kibana leaves these types out of the alerts mapping.
const EXCLUDED_TYPES = new Set(['constant_keyword', 'nested', 'flattened']);
// Kibana's list of stage-2 (experimental) ECS fields it does not map.
const EXPERIMENTAL = new Set([
  'faas.trigger',
  'faas.trigger.request_id',
  'faas.trigger.type',
  'host.cpu.system.norm.pct',
  'host.cpu.user.norm.pct',
  'host.fsstats.total_size.total',
  'host.fsstats.total_size.used',
  'host.fsstats.total_size.used.pct',
  'host.load.norm.1',
  'host.load.norm.5',
  'host.load.norm.15',
  'host.memory.actual.used.bytes',
  'host.memory.actual.used.pct',
  'host.memory.total',
  'process.io.bytes',
]);

const excludedParents = Object.entries(flat)
  .filter(([, v]) => EXCLUDED_TYPES.has(v.type))
  .map(([k]) => `${k}.`);

const fields = {};
for (const [name, v] of Object.entries(flat)) {
  if (EXCLUDED_TYPES.has(v.type) || EXPERIMENTAL.has(name)) continue;
  if (excludedParents.some((p) => name.startsWith(p))) continue;
  const field = {
    type: v.type,
    array: (v.normalize || []).includes('array'),
    required: !!v.required,
  };
  if (v.scaling_factor) field.scaling_factor = v.scaling_factor;
  if (v.ignore_above) field.ignore_above = v.ignore_above;
  if (v.multi_fields) {
    field.multi_fields = v.multi_fields.map((m) => ({
      flat_name: m.flat_name,
      name: m.name,
      type: m.type,
    }));
  }
  fields[name] = field;
}

const nested = Object.entries(flat)
  .filter(([, v]) => v.type === 'nested')
  .map(([k]) => k);

// One field a line, so a regeneration diffs field by field.
const render = (source, entries) =>
  `{\n "_source": ${JSON.stringify(source)},\n "fields": ${entries}\n}\n`;
const source = { package: '@elastic/ecs', ecs_version: ecs.EcsVersion };
const fieldLines = Object.entries(fields).map(
  ([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`
);
fs.writeFileSync(
  path.join(outDir, 'ecs.json'),
  render(source, `{\n${fieldLines.join(',\n')}\n }`)
);
fs.writeFileSync(
  path.join(outDir, 'ecs_nested.json'),
  render(source, `[\n${nested.map((n) => `  ${JSON.stringify(n)}`).join(',\n')}\n ]`)
);
console.error(
  `ECS ${ecs.EcsVersion}: ${Object.keys(flat).length} fields, ${Object.keys(fields).length} kept, ${nested.length} nested`
);
