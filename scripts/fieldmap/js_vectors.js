#!/usr/bin/env node
// Writes src/alert/strip/js_vectors.json: strings with the verdict Node.js
// gives them, the reference for src/alert/strip/{values,js_date}.rs.
//   date:   !isNaN(new Date(s).getTime())          (V8's date parser)
//   number: !Number.isNaN(Number(s))
//   ip:     ipaddr.isValid(s) || IPv4.parseCIDR(s) || IPv6.parseCIDR(s)
//           (Kibana's isValidIpType, with the ipaddr.js package)
// The strings are a fixed list plus seeded random combinations, so a
// regeneration with the same Node.js and ipaddr.js gives the same file.
//
// Usage: npm pack ipaddr.js@2.2.0 && tar xzf ipaddr.js-2.2.0.tgz
//        TZ=UTC node scripts/fieldmap/js_vectors.js ./package src/alert/strip/js_vectors.json
'use strict';

const fs = require('fs');
const path = require('path');

const [ipaddrDir, out] = process.argv.slice(2);
if (!ipaddrDir || !out) {
  console.error('usage: js_vectors.js <unpacked ipaddr.js package dir> <output file>');
  process.exit(2);
}
const ipaddr = require(path.resolve(ipaddrDir, 'lib/ipaddr.js'));

// A small seeded generator (mulberry32), so the corpus is stable.
let seed = 0x5eed;
const rand = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const randomString = (alphabet, maxLen) => {
  const n = 1 + Math.floor(rand() * maxLen);
  let s = '';
  for (let i = 0; i < n; i++) s += pick(alphabet);
  return s;
};

const dates = [
  '', ' ', '2020-12-12', '2022-10-12', '2024-05-01T10:00:00.000Z', '2024-05-01T10:00:00Z',
  '2024-05-01T10:00:00', '2024-05-01T10:00', '2024-05-01T24:00:00Z', '2024-05-01T24:00:01Z',
  '2024-05-01T10:00:00.123456789Z', '2024-05-01T10:00:00+01:00', '2024-05-01T10:00:00+0100',
  '2024-05-01T10:00:00+1', '2024-05-01 10:00:00', '2024-05-01 10:00:00 +0200', '2024/05/01',
  '05/01/2024', '5/1/24', 'May 1, 2024', '1 May 2024', 'Tue May 01 2024 10:00:00 GMT+0000 (UTC)',
  'Thu, 01 Jan 1970 00:00:00 GMT', '1', '0', '12', '13', '31', '32', '99', '100', '2024', '20240501',
  '1714557600000', '1714557600', 'non-valid', 'start', 'abc1', 'hello 2020', '2020 hello',
  '+002024-05-01', '-000000-01-01', '-000001-01-01', '+275760-09-13T00:00:00Z',
  '+275760-09-13T00:00:00.001Z', '-271821-04-20T00:00:00Z', '-271821-04-19T23:59:59.999Z',
  '2024-13-01', '2024-02-30', '2024-00-10', 'Jan', 'Jan 1', 'January 1 2024', 'Janx 1 2024',
  '10:00', '10:00 PM', '13:00 PM', '2024-05-01T', '2024-05-01T1', 'T10:00', '(comment) 2024-05-01',
  '2024-05-01 (comment)', '2024-05-01 10:00:00 EST', '2024-05-01 10:00 GMT+8', '2024-05-01 10:00 -08:00',
  '12:00:00.', '12:00:00.5 2024-01-01', '1.2', '1.2.3', '2024.05.01', '2024-05-01Z', 'Z', 'GMT',
  '2024 GMT', '2024-05-01T10:00:00.000Z extra', 'true', 'null', '1e3', '0x10', '--1', '2024--05',
];
const dateParts = [
  '2024', '24', '1', '0', '7', '12', '13', '31', '32', '99', '100', '+002024', '-000001', '05', '2024-05',
  '2024-05-01', '10:00', '10:00:00', '10:00:00.5', '25:00', '24:00', '9:5', 'PM', 'am', 'Z', 'GMT', 'UTC',
  'EST', '+01:00', '-0800', '+8', '-', '+', '.', ',', '/', ':', ' ', ' ', ' ', 'T', 't', 'May', 'dec',
  'Tue', 'hello', 'January', '(x)', ')', '(', 'ut', 'zz', '\t', '\u00a0',
];
for (let i = 0; i < 1500; i++) {
  const n = 1 + Math.floor(rand() * 6);
  let s = '';
  for (let j = 0; j < n; j++) s += pick(dateParts);
  dates.push(s);
}

const numbers = [
  '', ' ', '1234', '45.3', '-667.23', '24 ', ' 24', '\t12\n', '0x1F', '0X1f', '0b101', '0o17', '-0x10',
  '1e3', '1E-3', '.5', '5.', '.', 'e5', '1e', '+5', '-5', '+-5', 'Infinity', '-Infinity', '+Infinity',
  'infinity', 'NaN', '1_000', '\u00a07\ufeff', '\u00857', '\u20287\u2029', '\u180e7', '00012', '1.2.3',
  'non-valid', '12abc', '0x', '0b', '0o8', '0b2', '1e+5', '1e5.5', '..5',
];
const numberAlphabet = '0123456789.eE+-xXbBoO_ \tIn'.split('');
for (let i = 0; i < 1500; i++) numbers.push(randomString(numberAlphabet, 7));

const ips = [
  '', '127.0.0.1', '192.168.0.0', 'invalid-ip', '256.0.0.1', '1.2.3.4.5', '0x7f.0.0.1', '0177.0.0.1',
  '08.0.0.1', '127.1', '127.0.1', '2130706433', '4294967296', '127.16777216', '1.2.3.', '.1.2.3',
  '10.0.0.0/8', '10.0.0.0/08', '1.2.3.4/33', '1.2.3.4/', '/8', '::1', '::', '::1/128', '::1/129',
  'fe80::1%eth0', 'fe80::1%', 'fe80::1%eth-0', '::ffff:1.2.3.4', '::1.2.3.4', '1:2:3:4:5:6:7:8',
  '1:2:3:4:5:6:7:8:9', '1::2::3', '2001:db8::/32', '0000001::', 'g::1', ':::', '1.2.3.4%eth0',
  '01.02.03.04', '0x100.0.0.1', '1.2.3.0x4', '1.2.3.4 ', ' 1.2.3.4',
];
const ipAlphabet = '0123456789abcfx.:%/'.split('');
for (let i = 0; i < 1500; i++) ips.push(randomString(ipAlphabet, 12));
const v4parts = ['0', '1', '10', '255', '256', '010', '08', '0x1f', '0xff', '0x100', '4294967295', '16777215'];
for (let i = 0; i < 500; i++) {
  const n = 1 + Math.floor(rand() * 4);
  const parts = [];
  for (let j = 0; j < n; j++) parts.push(pick(v4parts));
  ips.push(parts.join('.') + (rand() < 0.2 ? `/${Math.floor(rand() * 40)}` : ''));
}

const cidr = (kind, s) => {
  try {
    ipaddr[kind].parseCIDR(s);
    return true;
  } catch (e) {
    return false;
  }
};
const isValidIp = (s) => ipaddr.isValid(s) || cidr('IPv4', s) || cidr('IPv6', s);

const uniq = (xs) => [...new Set(xs)];
const vectors = {
  _source: {
    node: process.version,
    ipaddr: require(path.resolve(ipaddrDir, 'package.json')).version,
    tz: process.env.TZ || '',
  },
  date: uniq(dates).map((s) => [s, !isNaN(new Date(s).getTime())]),
  number: uniq(numbers).map((s) => [s, !Number.isNaN(Number(s))]),
  ip: uniq(ips).map((s) => [s, isValidIp(s)]),
};
const lines = (xs) => xs.map((v) => `  ${JSON.stringify(v)}`).join(',\n');
fs.writeFileSync(
  out,
  `{\n "_source": ${JSON.stringify(vectors._source)},\n "date": [\n${lines(vectors.date)}\n ],\n` +
    ` "number": [\n${lines(vectors.number)}\n ],\n "ip": [\n${lines(vectors.ip)}\n ]\n}\n`
);
console.error(`${vectors.date.length} dates, ${vectors.number.length} numbers, ${vectors.ip.length} ips`);
