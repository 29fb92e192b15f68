#!/usr/bin/env python3
"""Kibana's alerts-index mapping per Kibana version, and what Elasticsearch's
put-mapping would refuse when that Kibana meets an index detectd created.

Kibana composes `.internal.alerts-security.alerts-<space>-*`'s mapping from
four component templates made of field maps (see src/alert/fieldmap/mod.rs);
on start it `PUT`s its own version's mapping onto an existing index
(`updateUnderlyingMapping`, alerting plugin's
`alerts_service/lib/create_concrete_write_index.ts`). Elasticsearch merges it
into the index's mapping and refuses the whole request when one field cannot
merge. This script rebuilds each Kibana version's mapping from data and
reports those fields.

Subcommands:

  gen ECS_REPO FIELDMAP_DIR
      For each candidate of FIELDMAP_DIR/kibana/versions.json (an ECS tag and
      the `ecsFieldMap` selection of the Kibana versions that use it): reads
      `generated/ecs/ecs_flat.yml` at the tag (`git show` in a clone of
      elastic/ecs), applies the selection, composes it with the Kibana maps
      of FIELDMAP_DIR and writes FIELDMAP_DIR/kibana/<candidate>.json, the
      signatures of every field of the composed mapping (see `signatures`),
      which the Rust test `alert::fieldmap::compat` checks our mapping
      against. Writes FIELDMAP_DIR/ecs_unshared.json: per field of ecs.json
      that some candidate does not map alike, those candidates.

  check FIELDMAP_DIR
      Composes our mapping per Kibana minor as alerts_mappings(Elasticsearch
      {major, minor}) does and prints, against the candidates of that minor
      and of every later one, the conflicting fields and the field count of
      the merged mapping.

Only Python's standard library and PyYAML (for ecs_flat.yml) are used.
"""
import copy
import json
import os
import subprocess
import sys

# --- Kibana's field maps -> mapping ------------------------------------------

# Kibana's ecsFieldMap drops these ECS types (and their children).
EXCLUDED_TYPES = ('constant_keyword', 'nested', 'flattened')
# ...and these stage-2 fields (kbn-alerts-as-data-utils ecs_field_map.ts,
# kibana#170571).
EXPERIMENTAL = (
    'faas.trigger', 'faas.trigger.request_id', 'faas.trigger.type',
    'host.cpu.system.norm.pct', 'host.cpu.user.norm.pct',
    'host.fsstats.total_size.total', 'host.fsstats.total_size.used',
    'host.fsstats.total_size.used.pct', 'host.load.norm.1', 'host.load.norm.5',
    'host.load.norm.15', 'host.memory.actual.used.bytes',
    'host.memory.actual.used.pct', 'host.memory.total', 'process.io.bytes',
)


def ecs_field_map(flat, variant):
    """Kibana's `ecsFieldMap` of one ECS `ecs_flat.yml`.

    variant:
      'main'       kbn-alerts-as-data-utils main: constant_keyword, nested and
                   flattened fields and their children and the experimental
                   list left out; type, scaling_factor, ignore_above,
                   multi_fields kept.
      'nested'     Kibana 8.12 .. 9.3: constant_keyword and the experimental
                   list left out; nested and flattened fields (and their
                   children) kept.
      'inclusive'  every ECS field, with doc_values and index too (a pre-8.8
                   `ecs_field_map.ts`): for looking at what such a selection
                   would clash on.
    """
    excluded = {'main': EXCLUDED_TYPES, 'nested': ('constant_keyword',),
                'inclusive': ()}[variant]
    experimental = () if variant == 'inclusive' else EXPERIMENTAL
    parents = [k + '.' for k, v in flat.items() if v['type'] in excluded]
    out = {}
    for name, v in flat.items():
        if v['type'] in excluded or name in experimental:
            continue
        if any(name.startswith(p) for p in parents):
            continue
        f = {'type': v['type'],
             'array': 'array' in (v.get('normalize') or []),
             'required': bool(v.get('required'))}
        if v.get('scaling_factor'):
            f['scaling_factor'] = v['scaling_factor']
        if v.get('ignore_above'):
            f['ignore_above'] = v['ignore_above']
        if v.get('multi_fields'):
            f['multi_fields'] = [{'flat_name': m['flat_name'], 'name': m['name'],
                                  'type': m['type']} for m in v['multi_fields']]
        if variant == 'inclusive':
            if v.get('doc_values') is not None:
                f['doc_values'] = v['doc_values']
            if v.get('index') is not None:
                f['index'] = v['index']
        out[name] = f
    return out


def load_fields(path, key='fields'):
    with open(path) as f:
        return json.load(f)[key]


def our_kibana_maps(fieldmap_dir):
    """The Kibana-side field maps detectd embeds, as the component maps after
    ECS: [security, legacy, framework]."""
    d = fieldmap_dir
    framework = load_fields(os.path.join(d, 'alert_framework.json'))
    legacy = load_fields(os.path.join(d, 'alert_legacy.json'))
    alerts = load_fields(os.path.join(d, 'security_alerts.json'))
    rules = load_fields(os.path.join(d, 'security_rules.json'))
    aliases = load_fields(os.path.join(d, 'signal_aad_mapping.json'), 'aliases')
    return [security_map(framework, legacy, alerts, rules, aliases), legacy, framework]


def security_map(framework, legacy, alerts, rules, aliases):
    """`securityRuleTypeFieldMap`: {...technical, ...alerts, ...rules, ...aliases}."""
    m = {}
    for part in (framework, legacy, alerts, rules):
        m.update(part)
    for name, path in aliases.items():
        m[name] = {'type': 'alias', 'required': False, 'path': path}
    return m


def our_mapping(fieldmap_dir):
    ecs = load_fields(os.path.join(fieldmap_dir, 'ecs.json'))
    return compose([ecs] + our_kibana_maps(fieldmap_dir))


def mapping_from_field_map(fm):
    """Kibana's mappingFromFieldMap: lodash.set of each field at its dotted
    path with `.properties.` between the parts."""
    props = {}
    for name, d in fm.items():
        if d.get('type') == 'unmapped':
            continue
        m = {k: v for k, v in d.items() if k not in ('required', 'array', 'multi_fields')}
        if d.get('multi_fields'):
            m['fields'] = {mf['name']: {'type': mf['type']} for mf in d['multi_fields']}
        path = []
        for i, part in enumerate(name.split('.')):
            if i:
                path.append('properties')
            path.append(part)
        node = props
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = m
        if name == '@timestamp':
            props['@timestamp']['ignore_malformed'] = False
    return props


def is_object(d):
    return d.get('type') in (None, 'object', 'nested')


def merge_properties(into, frm):
    """Composable-template merge: objects merge, a later leaf replaces."""
    for name, later in frm.items():
        earlier = into.get(name)
        if isinstance(earlier, dict) and is_object(earlier) and is_object(later):
            later = dict(later)
            lp = later.pop('properties', {})
            earlier.update(later)
            if lp:
                merge_properties(earlier.setdefault('properties', {}), lp)
        else:
            into[name] = copy.deepcopy(later)


def compose(maps):
    props = {}
    for fm in maps:
        merge_properties(props, mapping_from_field_map(fm))
    return props


# --- Elasticsearch's merge rules ---------------------------------------------

# Parameters whose value must be equal for two definitions of a field to
# merge (FieldMapper.Parameter with updateable=false; defaults compared when
# a side omits them). Updatable ones (ignore_above, ignore_malformed, meta,
# eager_global_ordinals, split_queries_on_whitespace, an alias's path,
# an object's dynamic) are not listed.
IMMUTABLE_DEFAULTS = {
    'index': True,
    'doc_values': True,
    'store': False,
    'scaling_factor': None,
    'format': None,
    'null_value': None,
    'normalizer': None,
    'index_options': None,
    'norms': None,
    'locale': None,
    'enabled': True,
}


def conflicts(existing, incoming, prefix=''):
    """Fields where putting `incoming` (properties) onto an index mapped with
    `existing` fails. Fields only one side has never conflict."""
    out = []
    for name, inc in incoming.items():
        if name not in existing:
            continue
        ex = existing[name]
        path = prefix + name
        eo, io = is_object(ex), is_object(inc)
        if eo != io:
            out.append((path, 'object vs leaf', kind(ex), kind(inc)))
            continue
        if eo:
            if kind(ex) != kind(inc):
                out.append((path, 'object kind', kind(ex), kind(inc)))
                continue
            if ex.get('enabled', True) != inc.get('enabled', True):
                out.append((path, 'enabled', ex.get('enabled', True), inc.get('enabled', True)))
            out += conflicts(ex.get('properties', {}), inc.get('properties', {}), path + '.')
            continue
        out += leaf_conflicts(path, ex, inc)
        ef, inf = ex.get('fields', {}), inc.get('fields', {})
        for sub in inf:
            if sub in ef:
                out += leaf_conflicts(path + '.' + sub, ef[sub], inf[sub])
    return out


def kind(d):
    return d.get('type', 'object')


def leaf_conflicts(path, ex, inc):
    if ex.get('type') != inc.get('type'):
        return [(path, 'type', ex.get('type'), inc.get('type'))]
    out = []
    for p, default in IMMUTABLE_DEFAULTS.items():
        a, b = ex.get(p, default), inc.get(p, default)
        if a != b:
            out.append((path, p, a, b))
    return out


def union(existing, incoming):
    """The index mapping after a successful put-mapping (fields are only added)."""
    u = copy.deepcopy(existing)
    _union(u, incoming)
    return u


def _union(into, frm):
    for name, inc in frm.items():
        ex = into.get(name)
        if ex is None:
            into[name] = copy.deepcopy(inc)
        elif is_object(ex) and is_object(inc):
            _union(ex.setdefault('properties', {}), inc.get('properties', {}))
        elif not is_object(ex) and not is_object(inc):
            fields = ex.setdefault('fields', {}) if inc.get('fields') else ex.get('fields')
            for sub, d in inc.get('fields', {}).items():
                fields.setdefault(sub, d)


def count_fields(props):
    """index.mapping.total_fields.limit's count: objects, leaves, aliases and
    multi-fields below the root."""
    n = 0
    for d in props.values():
        n += 1 + len(d.get('fields', {})) + count_fields(d.get('properties', {}))
    return n


# --- data for the Rust test --------------------------------------------------

def signature(d):
    """One field's definition as the parts put-mapping compares: its type
    (object / nested for objects), the immutable parameters it sets and its
    multi-fields' types, e.g. `long index=false doc_values=false` or
    `keyword fields.text=match_only_text`."""
    parts = [kind(d)]
    for p in IMMUTABLE_DEFAULTS:
        if p in d:
            parts.append('%s=%s' % (p, json.dumps(d[p])))
    for sub, sd in sorted(d.get('fields', {}).items()):
        parts.append('fields.%s=%s' % (sub, sd.get('type')))
    return ' '.join(parts)


def signatures(props, prefix='', out=None):
    out = {} if out is None else out
    for name, d in props.items():
        out[prefix + name] = signature(d)
        if is_object(d):
            signatures(d.get('properties', {}), prefix + name + '.', out)
    return out


def ecs_flat(ecs_repo, tag):
    import yaml  # PyYAML
    text = subprocess.check_output(
        ['git', '-C', ecs_repo, 'show', '%s:generated/ecs/ecs_flat.yml' % tag])
    return yaml.safe_load(text)


def candidate_field_map(flat, selection):
    if selection == 's811':
        # Kibana 8.8 .. 8.11: constant_keyword fields (and children) left out
        # (kibana#155075), no stage-2 list yet (kibana#170571 is 8.12).
        excluded = [k + '.' for k, v in flat.items() if v['type'] == 'constant_keyword']
        fm = ecs_field_map(flat, 'nested')
        for name in EXPERIMENTAL:
            if name in flat and not any(name.startswith(p) for p in excluded):
                fm[name] = ecs_field_map({name: flat[name]}, 'inclusive')[name]
                fm[name].pop('doc_values', None)
                fm[name].pop('index', None)
        return {k: fm[k] for k in flat if k in fm}
    return ecs_field_map(flat, selection)


def ecs_signature(d):
    """An ECS field-map entry's parts that must agree for it to be shared."""
    return (d['type'], d.get('scaling_factor'), d.get('doc_values'), d.get('index'),
            tuple((m['name'], m['type']) for m in d.get('multi_fields', [])))


def write_json(path, source, body_key, body):
    lines = ['  %s: %s' % (json.dumps(k), json.dumps(v)) for k, v in body.items()] \
        if isinstance(body, dict) else ['  %s' % json.dumps(v) for v in body]
    open_, close = ('{', '}') if isinstance(body, dict) else ('[', ']')
    with open(path, 'w') as f:
        f.write('{\n "_source": %s,\n "%s": %s\n%s\n %s\n}\n' % (
            json.dumps(source), body_key, open_, ',\n'.join(lines), close))


def gen(ecs_repo, fieldmap_dir):
    out_dir = os.path.join(fieldmap_dir, 'kibana')
    with open(os.path.join(out_dir, 'versions.json')) as f:
        versions = json.load(f)
    ours_ecs = load_fields(os.path.join(fieldmap_dir, 'ecs.json'))
    kibana_maps = our_kibana_maps(fieldmap_dir)
    unshared = {}
    for name, cand in versions['candidates'].items():
        flat = ecs_flat(ecs_repo, cand['ecs_tag'])
        fm = candidate_field_map(flat, cand['selection'])
        for k, d in ours_ecs.items():
            if k not in fm or ecs_signature(fm[k]) != ecs_signature(d):
                unshared.setdefault(k, []).append(name)
        composed = compose([fm] + kibana_maps)
        source = {
            'ecs': cand['ecs_tag'], 'selection': cand['selection'],
            'made_by': 'scripts/fieldmap/kibana_compat.py gen',
            'what': 'field signatures of the composed alerts mapping: ECS from elastic/ecs '
                    'generated/ecs/ecs_flat.yml at the tag with this selection, then the '
                    'Kibana maps of src/alert/fieldmap (main) as the later components',
            'total_fields': count_fields(composed),
        }
        write_json(os.path.join(out_dir, name + '.json'), source, 'fields',
                   dict(sorted(signatures(composed).items())))
        print('%s: %d ECS fields, %d in the composed mapping' % (
            name, len(fm), count_fields(composed)), file=sys.stderr)
    write_json(os.path.join(fieldmap_dir, 'ecs_unshared.json'),
               {'made_by': 'scripts/fieldmap/kibana_compat.py gen',
                'what': 'the fields of ecs.json that some candidates of kibana/versions.json '
                        'do not map, or map otherwise (type, scaling_factor, doc_values, index, '
                        'multi-field types), with those candidates: on a cluster whose Kibana '
                        'version lists one of them, the field is left unmapped'},
               'fields', {k: unshared[k] for k in ours_ecs if k in unshared})
    print('%d of %d ECS fields not shared by every candidate' % (len(unshared), len(ours_ecs)),
          file=sys.stderr)


def ours_for(fieldmap_dir, versions, minor):
    """Our mapping for a cluster of Kibana minor `minor`, as the Rust code
    makes it (for `check`)."""
    ours_ecs = load_fields(os.path.join(fieldmap_dir, 'ecs.json'))
    unshared = load_fields(os.path.join(fieldmap_dir, 'ecs_unshared.json'))
    cands = set(versions['kibana'][minor]['candidates'])
    ecs = {k: d for k, d in ours_ecs.items() if not cands & set(unshared.get(k, []))}
    return compose([ecs] + our_kibana_maps(fieldmap_dir))


def check(fieldmap_dir):
    """Prints what the Rust test asserts, for a quick look: per Kibana minor,
    our mapping against the candidates of that minor and of every later one."""
    out_dir = os.path.join(fieldmap_dir, 'kibana')
    with open(os.path.join(out_dir, 'versions.json')) as f:
        versions = json.load(f)
    theirs = {name: load_fields(os.path.join(out_dir, name + '.json'))
              for name in versions['candidates']}
    minors = list(versions['kibana'])
    for i, minor in enumerate(minors):
        mine = signatures(ours_for(fieldmap_dir, versions, minor))
        nfields = len(mine) + sum(s.count(' fields.') for s in mine.values())
        print('Kibana %s: our mapping has %d fields' % (minor, nfields))
        for later in minors[i:]:
            for name in versions['kibana'][later]['candidates']:
                t = theirs[name]
                clash = [(k, mine[k], v) for k, v in t.items()
                         if k in mine and sig_conflict(mine[k], v)]
                merged = {**t, **mine}
                union = len(merged) + sum(s.count(' fields.') for s in merged.values())
                print('   vs %-5s %-20s union %4d (theirs %4d) conflicts %d %s' % (
                    later, name, union,
                    len(t) + sum(s.count(' fields.') for s in t.values()),
                    len(clash), clash[:3]))


def sig_conflict(a, b):
    pa, pb = a.split(' '), b.split(' ')
    if pa[0] != pb[0]:
        return True
    fa = dict(p.split('=', 1) for p in pa[1:])
    fb = dict(p.split('=', 1) for p in pb[1:])
    for k in set(fa) | set(fb):
        if k.startswith('fields.'):
            if k in fa and k in fb and fa[k] != fb[k]:
                return True
            continue
        default = json.dumps(IMMUTABLE_DEFAULTS.get(k))
        if fa.get(k, default) != fb.get(k, default):
            return True
    return False


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == 'gen':
        gen(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == 'check':
        check(sys.argv[2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
