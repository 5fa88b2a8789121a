// The service map: services and their call edges, with request rate,
// error rate and latency over the range, all from TraceQL metrics
// (/api/metrics/query, one value per series over the whole range).
// Clicking a service or an edge opens a search for its spans.
import { api, el, fmtDur, parseRange, quote, Colours, tenant, timeRange } from './api.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const MAX_EDGE_QUERIES = 30; // services whose outgoing edges are asked for
let nav, showErr, showWarn;
let seq = 0;
let abort = null;

export function initMap({ navigate, showError, showWarnings }) {
  nav = navigate;
  showErr = showError;
  showWarn = showWarnings;
  $('map-range').addEventListener('change', () => {
    if ($('map-range').value === 'custom') return;
    const p = new URLSearchParams({ view: 'map', range: $('map-range').value });
    nav(p);
  });
}

const svcOf = (series) => {
  for (const l of series.labels || []) if (l.key === 'resource.service.name') return l.value && 'stringValue' in l.value ? l.value.stringValue : String(Object.values(l.value || {})[0] ?? '');
  return '';
};
const labelOf = (series, key) => {
  for (const l of series.labels || []) if (l.key === key) return Object.values(l.value || {})[0];
  return undefined;
};

async function pool(tasks, n) {
  const out = new Array(tasks.length);
  let next = 0;
  const worker = async () => { while (next < tasks.length) { const k = next++; out[k] = await tasks[k](); } };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
  return out;
}

export async function runMap(p) {
  const my = ++seq;
  if (abort) abort.abort();
  abort = new AbortController();
  const signal = abort.signal;
  const range = parseRange(p.get('range')) ? p.get('range') : '1h';
  // A custom range (from, to: as the search page writes them) comes from
  // a link; the searches the map links to keep it.
  const custom = p.has('from') || p.has('to');
  const span = custom ? { from: p.get('from') ?? '', to: p.get('to') ?? '' } : { range };
  $('map-range').querySelector('option[value="custom"]').hidden = !custom;
  $('map-range').value = custom ? 'custom' : range;
  let start, end;
  try {
    ({ start, end } = timeRange(p, range));
  } catch (err) {
    $('map').replaceChildren();
    $('red').tBodies[0].replaceChildren();
    $('map-status').textContent = '';
    $('map').dataset.state = 'error';
    showErr(err);
    return;
  }
  const warned = [];
  const q = (query) => api('/api/metrics/query', { q: query, start, end }, { signal }).then((r) => {
    if (r.warnings.length && my === seq) { warned.push(...r.warnings); showWarn(warned); }
    return r.json.series || [];
  });
  $('map-status').textContent = 'Asking the metrics of every service…';
  $('map').dataset.state = 'loading';
  const t0 = performance.now();
  try {
    const [all, srv, errs, lat] = await Promise.all([
      q('{ } | rate() by (resource.service.name)'),
      q('{ kind = server } | rate() by (resource.service.name)'),
      q('{ kind = server && status = error } | rate() by (resource.service.name)'),
      q('{ kind = server } | quantile_over_time(duration, .5, .95) by (resource.service.name)'),
    ]);
    if (my !== seq) return;
    const svcs = new Map();
    const get = (name) => {
      if (!svcs.has(name)) svcs.set(name, { name, spans: 0, rate: 0, err: 0, p50: NaN, p95: NaN, server: false });
      return svcs.get(name);
    };
    for (const s of all) get(svcOf(s)).spans = s.value || 0;
    for (const s of srv) { const x = get(svcOf(s)); x.rate = s.value || 0; x.server = true; }
    for (const s of errs) get(svcOf(s)).err = s.value || 0;
    for (const s of lat) {
      const x = get(svcOf(s));
      const pq = Number(labelOf(s, 'p'));
      if (pq === 0.5) x.p50 = s.value; else if (pq === 0.95) x.p95 = s.value;
    }
    const list = [...svcs.values()].sort((a, b) => b.spans - a.spans || (a.name < b.name ? -1 : 1));
    $('map-status').textContent = `${list.length} service${list.length === 1 ? '' : 's'}; finding their calls…`;
    // Colours by name: the services of the map all differ (up to 14).
    const colours = new Colours(list.map((s) => s.name).sort());
    redTable(list, span, colours);
    // Edges: the spans of other services whose parent is in service s.
    const asked = list.slice(0, MAX_EDGE_QUERIES);
    const res = await pool(asked.map((s) => () => q(`{ resource.service.name = ${quote(s.name)} } > { resource.service.name != ${quote(s.name)} } | rate() by (resource.service.name)`)), 3);
    if (my !== seq) return;
    const edges = [];
    res.forEach((series, k) => {
      for (const s of series) {
        const to = svcOf(s);
        if (to !== asked[k].name && (s.value || 0) > 0) edges.push({ from: asked[k].name, to, rate: s.value });
      }
    });
    for (const e of edges) get(e.to);
    draw([...svcs.values()], edges, span, colours);
    const ms = Math.round(performance.now() - t0);
    $('map-status').textContent = `${svcs.size} service${svcs.size === 1 ? '' : 's'}, ${edges.length} call edge${edges.length === 1 ? '' : 's'} (${ms} ms)` +
      (list.length > MAX_EDGE_QUERIES ? `; calls shown from the ${MAX_EDGE_QUERIES} busiest services only` : '') + '.';
    $('map').dataset.state = 'done';
  } catch (err) {
    if (my !== seq) return;
    $('map-status').textContent = '';
    $('map').dataset.state = 'error';
    showErr(err);
  }
}

// searchHref links the search of q over span ({range} or {from, to}).
function searchHref(q, span) {
  const p = new URLSearchParams({ view: 'search', q, ...span });
  if (tenant()) p.set('tenant', tenant());
  return '?' + p;
}
const fmtRate = (r) => (r >= 100 ? r.toFixed(0) : r >= 1 ? r.toFixed(2) : r.toPrecision(2));
const fmtSec = (s) => (Number.isFinite(s) ? fmtDur(Math.round(s * 1e9)) : '–');

function redTable(list, span, colours) {
  $('red').tBodies[0].replaceChildren(...list.map((s) => el('tr', { 'data-service': s.name },
    el('td', {}, el('span', { 'aria-hidden': 'true', style: `color:${colours.get(s.name)}`, text: '● ' }),
      el('a', { href: searchHref(`{ resource.service.name = ${quote(s.name)} }`, span), text: s.name || '(no service.name)' })),
    el('td', { class: 'num', text: s.server ? fmtRate(s.rate) : '–' }),
    el('td', { class: 'num' + (s.err > 0 ? ' err-text' : ''), text: s.server ? `${((s.err / (s.rate || 1)) * 100).toFixed(1)}%` : '–' }),
    el('td', { class: 'num', text: fmtSec(s.p50) }),
    el('td', { class: 'num', text: fmtSec(s.p95) }),
    el('td', { class: 'num', text: fmtRate(s.spans) }))));
}

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children) if (c) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// draw lays the services out in columns: a service is one column to the
// right of the furthest service calling it (cycles are cut).
function draw(list, edges, span, colours) {
  const W = 250, H = 54, GX = 90, GY = 26, PAD = 20;
  const names = list.map((s) => s.name).sort();
  const layer = new Map(names.map((n) => [n, 0]));
  for (let round = 0; round < names.length; round++) {
    let moved = false;
    for (const e of edges) {
      if (e.from === e.to) continue;
      const want = layer.get(e.from) + 1;
      if (want > layer.get(e.to) && want < names.length) { layer.set(e.to, want); moved = true; }
    }
    if (!moved) break;
  }
  const cols = [];
  for (const n of names) (cols[layer.get(n)] ||= []).push(n);
  const pos = new Map();
  cols.forEach((col, x) => (col || []).forEach((n, y) => pos.set(n, { x: PAD + x * (W + GX), y: PAD + y * (H + GY) })));
  const width = PAD * 2 + Math.max(1, cols.length) * (W + GX) - GX;
  const height = PAD * 2 + Math.max(1, ...cols.map((c) => (c || []).length)) * (H + GY) - GY;
  const byName = new Map(list.map((s) => [s.name, s]));
  const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'group', 'aria-label': 'Services and their calls' },
    svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#6b7280' }))));
  for (const e of edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const back = x2 <= x1;
    const d = back
      ? `M${a.x + W / 2},${a.y + H} C${a.x + W / 2},${a.y + H + 60} ${b.x + W / 2},${b.y + H + 60} ${b.x + W / 2},${b.y + H}`
      : `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}`;
    const label = `${fmtRate(e.rate)}/s`;
    const q = `{ resource.service.name = ${quote(e.from)} } > { resource.service.name = ${quote(e.to)} }`;
    root.append(svg('a', { href: searchHref(q, span), class: 'edge', 'data-from': e.from, 'data-to': e.to, 'aria-label': `Calls from ${e.from} to ${e.to}: ${label}; search them` },
      svg('title', {}, `${e.from} → ${e.to}: ${label}`),
      svg('path', { d, 'marker-end': 'url(#arrow)' }),
      svg('path', { d, stroke: 'transparent', 'stroke-width': 12 }),
      svg('text', { x: back ? (a.x + b.x + W) / 2 : (x1 + x2) / 2, y: back ? Math.max(a.y, b.y) + H + 50 : (y1 + y2) / 2 - 6, 'text-anchor': 'middle' }, label)));
  }
  for (const n of names) {
    const s = byName.get(n), p = pos.get(n);
    const errPct = s.server && s.rate > 0 ? (s.err / s.rate) * 100 : 0;
    const sub = s.server ? `${fmtRate(s.rate)} req/s · ${errPct.toFixed(errPct > 0 && errPct < 1 ? 1 : 0)}% err · p95 ${fmtSec(s.p95)}` : `${fmtRate(s.spans)} spans/s`;
    root.append(svg('a', { href: searchHref(`{ resource.service.name = ${quote(n)} }`, span), class: 'node' + (errPct > 0 ? ' err' : ''), 'data-service': n, 'aria-label': `${n}: ${sub}; search its spans` },
      svg('title', {}, `${n}\n${sub}`),
      svg('rect', { x: p.x, y: p.y, width: W, height: H, rx: 6, class: 'box' }),
      svg('rect', { x: p.x, y: p.y, width: 6, height: H, fill: colours.get(n), stroke: 'none' }),
      svg('text', { x: p.x + 14, y: p.y + 22 }, n.length > 24 ? n.slice(0, 23) + '…' : n || '(no service.name)'),
      svg('text', { x: p.x + 14, y: p.y + 41, class: 'sub' }, sub)));
  }
  if (!names.length) {
    $('map').replaceChildren(el('p', { class: 'status', text: 'No spans in this range.' }));
    return;
  }
  $('map').replaceChildren(root);
}
