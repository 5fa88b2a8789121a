// The trace view: a waterfall of the spans with their nesting, virtualised
// (only the rows in sight are in the DOM, so 10,000 spans scroll as 10),
// collapsible, coloured by service, with errors and the critical path
// marked; the details of the selected span; search within the trace; and
// the download of the trace as the API gave it (OTLP JSON).
import { api, anyText, el, fmtDur, fmtTime, idHex, Colours, tenant } from './api.js';

const $ = (id) => document.getElementById(id);
const ROW = 24; // px, the height of a row: fixed, as .row in app.css
const OVERSCAN = 12;

let nav, showErr, showWarn;
let seq = 0;
let abort = null;
// The trace shown: spans in tree order, and the rows in sight.
let T = null;
let visible = []; // indexes into T.order
let sel = -1; // span index selected
let hits = null; // Set of span indexes matching the find box
let hitList = [];
let hitPos = -1;
let frame = 0;
let downloadURL = '';

export function initTrace({ navigate, showError, showWarnings }) {
  nav = navigate;
  showErr = showError;
  showWarn = showWarnings;
  const vp = $('rows-viewport');
  vp.addEventListener('scroll', () => {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; paint(); });
  }, { passive: true });
  window.addEventListener('resize', () => paint());
  $('rows').addEventListener('click', (e) => {
    const row = e.target.closest('.row');
    if (!row) return;
    const i = Number(row.dataset.i);
    if (e.target.closest('.tog')) toggle(i);
    select(i, false);
    $('waterfall').focus({ preventScroll: true });
  });
  $('waterfall').addEventListener('keydown', onKey);
  let timer = 0;
  $('find').addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(find, 120);
  });
  $('find').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); clearTimeout(timer); if (hits === null || $('find').dataset.q !== $('find').value) find(); jump(e.shiftKey ? -1 : 1); }
    if (e.key === 'Escape') { $('find').value = ''; find(); }
  });
  $('find-next').addEventListener('click', () => jump(1));
  $('find-prev').addEventListener('click', () => jump(-1));
  $('expand-all').addEventListener('click', () => { if (T) { for (const s of T.spans) s.collapsed = false; relayout(); } });
  $('collapse-all').addEventListener('click', () => {
    if (!T) return;
    for (const s of T.spans) s.collapsed = s.children.length > 0 && s.parent >= 0;
    relayout();
  });
}

export async function openTrace(id) {
  const my = ++seq;
  if (abort) abort.abort();
  abort = new AbortController();
  document.body.dataset.traceState = 'loading';
  performance.clearMarks();
  performance.mark('weft-trace-request');
  $('trace-title').textContent = 'Trace ' + id;
  $('trace-summary').textContent = 'Loading…';
  $('rows').replaceChildren();
  $('rows-sizer').style.height = '0px';
  $('details').replaceChildren(el('p', { class: 'status', text: 'Select a span to see its details.' }));
  $('find').value = '';
  $('find-count').textContent = '';
  T = null;
  try {
    if (!/^[0-9a-fA-F]{1,32}$/.test(id)) throw new Error(`"${id}" is not a trace ID: up to 32 hexadecimal digits`);
    const { json, text, warnings } = await api('/api/v2/traces/' + encodeURIComponent(id), {}, { signal: abort.signal });
    if (my !== seq) return;
    showWarn(warnings);
    performance.mark('weft-trace-fetched');
    T = build(json);
    T.id = id.toLowerCase();
    if (!T.spans.length) {
      // v2 answers a trace it does not know with 200 and no spans, as Tempo.
      T = null;
      $('trace-summary').textContent = '';
      document.body.dataset.traceState = 'empty';
      showErr(new Error(`Trace ${id} was not found: the API answered no spans for it${tenant() ? ' in tenant ' + tenant() : ''}. It may be older than the blocks kept, or not pushed yet.`));
      return;
    }
    T.partial = json.status === 'PARTIAL' || json.status === 1;
    T.message = json.message || '';
    setDownload(text, id);
    sel = -1;
    hits = null;
    hitList = [];
    relayout();
    summary();
    if (T.spans.length) select(T.order[0], true);
    performance.mark('weft-trace-rows');
    document.body.dataset.traceState = 'ready';
    // The frame after next: the rows have been painted.
    requestAnimationFrame(() => requestAnimationFrame(() => { if (my === seq) performance.mark('weft-trace-painted'); }));
  } catch (err) {
    if (my !== seq) return;
    $('trace-summary').textContent = '';
    document.body.dataset.traceState = 'error';
    showErr(err);
  }
}

function setDownload(text, id) {
  if (downloadURL) URL.revokeObjectURL(downloadURL);
  downloadURL = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = $('download');
  a.href = downloadURL;
  a.download = `trace-${id.toLowerCase()}.json`;
}

const kindName = (k) => {
  if (typeof k === 'number') return ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'][k] || String(k);
  return String(k || 'SPAN_KIND_UNSPECIFIED').replace(/^SPAN_KIND_/, '').toLowerCase();
};
const statusName = (c) => {
  if (typeof c === 'number') return ['unset', 'ok', 'error'][c] || String(c);
  return String(c || 'STATUS_CODE_UNSET').replace(/^STATUS_CODE_/, '').toLowerCase();
};
const big = (s) => { try { return BigInt(s || 0); } catch (e) { return 0n; } };

// build turns the v2 answer ({trace: {resourceSpans}}) into spans in tree
// order with depths, parents, children, the critical path and errors.
function build(json) {
  const rs = (json.trace && json.trace.resourceSpans) || json.resourceSpans || json.batches || [];
  const spans = [];
  let t0 = null, t1 = null;
  for (const r of rs) {
    const res = (r.resource && r.resource.attributes) || [];
    let svc = '';
    for (const kv of res) if (kv.key === 'service.name') svc = anyText(kv.value);
    for (const ss of r.scopeSpans || r.instrumentationLibrarySpans || []) {
      const scope = ss.scope || ss.instrumentationLibrary || {};
      for (const s of ss.spans || []) {
        const st = big(s.startTimeUnixNano), en = big(s.endTimeUnixNano);
        if (t0 === null || st < t0) t0 = st;
        if (t1 === null || en > t1) t1 = en;
        spans.push({ raw: s, res, scope, svc, st, en });
      }
    }
  }
  t0 = t0 || 0n;
  const out = spans.map((x, i) => {
    const s = x.raw;
    const status = s.status || {};
    const start = Number(x.st - t0), end = Math.max(Number(x.en - t0), start);
    return {
      i, id: idHex(s.spanId), pid: idHex(s.parentSpanId || ''), name: s.name || '', kind: kindName(s.kind),
      svc: x.svc, start, end, dur: end - start, startNs: x.st,
      code: statusName(status.code), msg: status.message || '',
      attrs: s.attributes || [], res: x.res, scope: x.scope, events: s.events || [], links: s.links || [],
      parent: -1, children: [], depth: 0, collapsed: false, crit: false, hay: '',
    };
  });
  const byID = new Map();
  for (const s of out) if (!byID.has(s.id)) byID.set(s.id, s.i);
  const roots = [];
  for (const s of out) {
    const p = s.pid ? byID.get(s.pid) : undefined;
    if (p === undefined || p === s.i) roots.push(s.i);
    else { s.parent = p; out[p].children.push(s.i); }
  }
  const byStart = (a, b) => out[a].start - out[b].start || out[a].i - out[b].i;
  for (const s of out) s.children.sort(byStart);
  roots.sort(byStart);
  // Tree order without recursion (a 10,000-deep chain must not overflow).
  const order = [];
  const seen = new Uint8Array(out.length);
  const walk = (root) => {
    const stack = [[root, 0]];
    while (stack.length) {
      const [i, d] = stack.pop();
      if (seen[i]) continue;
      seen[i] = 1;
      out[i].depth = d;
      order.push(i);
      const ch = out[i].children;
      for (let k = ch.length - 1; k >= 0; k--) stack.push([ch[k], d + 1]);
    }
  };
  for (const r of roots) walk(r);
  // Spans in a parent cycle are reached from no root: show them as roots.
  for (const s of out) if (!seen[s.i]) { s.parent = -1; roots.push(s.i); walk(s.i); }
  // The critical path: from the longest root, the child that ends last,
  // and so on down (the chain the end of the trace waits for).
  let cur = roots.reduce((a, b) => (a === -1 || out[b].dur > out[a].dur ? b : a), -1);
  let guard = 0;
  while (cur >= 0 && guard++ < out.length) {
    out[cur].crit = true;
    const ch = out[cur].children;
    let next = -1;
    for (const c of ch) if (next === -1 || out[c].end > out[next].end || (out[c].end === out[next].end && out[c].dur > out[next].dur)) next = c;
    cur = next;
  }
  const services = new Set(out.map((s) => s.svc));
  // Colours in tree order: the services met first (from the root down) all differ.
  const colours = new Colours(order.map((i) => out[i].svc));
  return { spans: out, order, roots, t0, colours, total: Math.max(1, Number((t1 || 0n) - t0)), services, errors: out.filter((s) => s.code === 'error').length };
}

function summary() {
  const root = T.spans[T.order[0]];
  $('trace-title').textContent = root ? `${root.svc}: ${root.name}` : 'Trace ' + T.id;
  const parts = [
    `Trace ${T.id}`,
    root ? fmtTime(Number(root.startNs / 1000000n)) : '',
    fmtDur(T.total),
  ];
  const summaryEl = $('trace-summary');
  summaryEl.replaceChildren(...[
    parts.filter(Boolean).join(' · ') + ' · ',
    el('span', { id: 'trace-span-count', 'data-count': String(T.spans.length), text: `${T.spans.length.toLocaleString('en')} span${T.spans.length === 1 ? '' : 's'}` }),
    ` · ${T.services.size} service${T.services.size === 1 ? '' : 's'} · `,
    el('span', { class: T.errors ? 'err-text' : '', text: `${T.errors} error${T.errors === 1 ? '' : 's'}` }),
    T.partial ? el('strong', { id: 'trace-partial', class: 'err-text', text: ' · partial answer: ' + (T.message || 'some spans are left out') }) : null,
  ].filter(Boolean));
  const ticks = $('ruler-ticks');
  ticks.replaceChildren(...[0, 0.25, 0.5, 0.75, 1].map((f) => el('span', { style: `left:${f * 100}%`, text: fmtDur(Math.round(T.total * f)) })));
}

// relayout recomputes the rows in sight after a collapse or expand.
function relayout() {
  visible = [];
  let hideDeeper = Infinity;
  for (const i of T.order) {
    const s = T.spans[i];
    if (s.depth > hideDeeper) continue;
    hideDeeper = s.collapsed ? s.depth : Infinity;
    visible.push(i);
  }
  $('rows-sizer').style.height = visible.length * ROW + 'px';
  $('waterfall').setAttribute('aria-rowcount', String(visible.length));
  paint();
}

// paint puts in the DOM the rows in sight (and a few around them).
function paint() {
  if (!T) return;
  const vp = $('rows-viewport');
  const first = Math.max(0, Math.floor(vp.scrollTop / ROW) - OVERSCAN);
  const last = Math.min(visible.length, Math.ceil((vp.scrollTop + vp.clientHeight) / ROW) + OVERSCAN);
  const rows = $('rows');
  rows.style.transform = `translateY(${first * ROW}px)`;
  const frag = document.createDocumentFragment();
  for (let k = first; k < last; k++) frag.append(row(T.spans[visible[k]]));
  rows.replaceChildren(frag);
  const wf = $('waterfall');
  if (sel >= 0) wf.setAttribute('aria-activedescendant', 'span-row-' + sel);
}

function row(s) {
  const colour = T.colours.get(s.svc);
  const left = (s.start / T.total) * 100;
  const width = Math.max((s.dur / T.total) * 100, 0.15);
  const label = fmtDur(s.dur);
  const onRight = left + width < 80;
  const inside = width >= 12; // else the label goes left of the bar
  const cls = ['row'];
  if (s.i === sel) cls.push('sel');
  if (hits && hits.has(s.i)) cls.push('hit');
  if (s.code === 'error') cls.push('is-error');
  if (s.crit) cls.push('is-critical');
  return el('div', {
    class: cls.join(' '), id: 'span-row-' + s.i, role: 'treeitem', 'data-i': String(s.i), 'data-span-id': s.id,
    'data-depth': String(s.depth), 'aria-level': String(s.depth + 1), 'aria-selected': String(s.i === sel),
    'aria-expanded': s.children.length ? String(!s.collapsed) : null,
    'aria-label': `${s.svc} ${s.name}, ${label}${s.code === 'error' ? ', error' : ''}${s.crit ? ', on the critical path' : ''}`,
  },
  el('div', { class: 'rname', style: `padding-left:${Math.min(s.depth, 40) * 14 + 2}px` },
    el('span', { class: 'tog', 'aria-hidden': 'true', text: s.children.length ? (s.collapsed ? '▸' : '▾') : '' }),
    s.code === 'error' ? el('span', { class: 'mark err', title: 'status error', text: '!' }) : null,
    el('span', { class: 'svc', style: `background:${colour}` }),
    el('span', { class: 'sname', text: s.svc }),
    el('span', { class: 'nm', text: s.name }),
    s.collapsed ? el('span', { class: 'more', title: 'spans folded below', text: `+${descendants(s)}` }) : null),
  el('div', { class: 'lane' },
    el('div', { class: 'bar' + (s.crit ? ' crit' : ''), style: `left:${left}%;width:${width}%;background:${colour}` }),
    el('span', { class: onRight || !inside ? 'dur' : 'dur in', style: onRight ? `left:${left + width}%` : inside ? `right:${Math.max(0, 100 - left - width)}%` : `right:${100 - left}%`, text: label })));
}

function descendants(s) {
  let n = 0;
  const stack = [...s.children];
  while (stack.length) { n++; stack.push(...T.spans[stack.pop()].children); }
  return n;
}

function toggle(i) {
  const s = T.spans[i];
  if (!s.children.length) return;
  s.collapsed = !s.collapsed;
  relayout();
}

// select makes span i the selected one, shows its details and, with
// reveal, scrolls it into sight (expanding its ancestors).
function select(i, reveal) {
  sel = i;
  if (reveal) {
    let changed = false;
    for (let p = T.spans[i].parent; p >= 0; p = T.spans[p].parent) if (T.spans[p].collapsed) { T.spans[p].collapsed = false; changed = true; }
    if (changed) relayout();
    const k = visible.indexOf(i);
    const vp = $('rows-viewport');
    if (k >= 0) {
      const top = k * ROW;
      if (top < vp.scrollTop) vp.scrollTop = top;
      else if (top + ROW > vp.scrollTop + vp.clientHeight) vp.scrollTop = top + ROW - vp.clientHeight;
    }
  }
  paint();
  details(T.spans[i]);
}

function onKey(e) {
  if (!T || !visible.length) return;
  const k = Math.max(0, visible.indexOf(sel));
  const page = Math.max(1, Math.floor($('rows-viewport').clientHeight / ROW) - 1);
  const s = T.spans[sel] || null;
  let to = -1;
  switch (e.key) {
    case 'ArrowDown': to = visible[Math.min(visible.length - 1, k + 1)]; break;
    case 'ArrowUp': to = visible[Math.max(0, k - 1)]; break;
    case 'PageDown': to = visible[Math.min(visible.length - 1, k + page)]; break;
    case 'PageUp': to = visible[Math.max(0, k - page)]; break;
    case 'Home': to = visible[0]; break;
    case 'End': to = visible[visible.length - 1]; break;
    case 'ArrowLeft':
      if (s && s.children.length && !s.collapsed) { toggle(sel); e.preventDefault(); return; }
      if (s && s.parent >= 0) to = s.parent;
      break;
    case 'ArrowRight':
      if (s && s.children.length && s.collapsed) { toggle(sel); e.preventDefault(); return; }
      if (s && s.children.length) to = s.children[0];
      break;
    case 'Enter': case ' ':
      if (s) { toggle(sel); e.preventDefault(); }
      return;
    default: return;
  }
  e.preventDefault();
  if (to >= 0) select(to, true);
}

function kvTable(kvs, section) {
  if (!kvs || !kvs.length) return el('p', { class: 'status', text: 'none' });
  const sorted = kvs.slice().sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return el('table', { 'data-section': section }, el('tbody', {}, ...sorted.map((kv) => el('tr', { 'data-key': kv.key }, el('td', { text: kv.key }), el('td', { class: 'mono', text: anyText(kv.value) })))));
}

function details(s) {
  const d = $('details');
  const rel = (ns) => '+' + fmtDur(ns);
  const parent = s.parent >= 0 ? T.spans[s.parent] : null;
  const info = [
    ['Service', s.svc], ['Span ID', s.id], ['Parent', parent ? `${parent.name} (${s.pid})` : (s.pid ? `${s.pid} (not in this trace)` : 'none: a root span')],
    ['Kind', s.kind], ['Start', `${fmtTime(Number(s.startNs / 1000000n))} (${rel(s.start)})`], ['Duration', fmtDur(s.dur)],
    ['Status', s.code + (s.msg ? ': ' + s.msg : '')], ['Critical path', s.crit ? 'yes' : 'no'],
  ];
  const scopeLabel = [s.scope.name || '(no name)', s.scope.version].filter(Boolean).join(' ');
  const linkItems = s.links.map((l) => {
    const tid = idHex(l.traceId), sid = idHex(l.spanId);
    const params = new URLSearchParams({ view: 'trace', id: tid });
    if (tenant()) params.set('tenant', tenant());
    return el('li', {}, el('a', { href: '?' + params, class: 'mono', text: tid }), ` span ${sid}`, kvTable(l.attributes, 'link-attributes'));
  });
  const eventItems = s.events.map((ev) => el('li', {}, el('strong', { text: ev.name || '(no name)' }), ' ' + rel(Number(big(ev.timeUnixNano) - T.t0)), kvTable(ev.attributes, 'event-attributes')));
  d.replaceChildren(
    el('h2', { id: 'details-title', text: s.name || '(no name)' }),
    el('table', { 'data-section': 'span' }, el('tbody', {}, ...info.map(([k, v]) => el('tr', { 'data-key': k }, el('td', { text: k }), el('td', { class: k === 'Status' && s.code === 'error' ? 'err-text' : '', text: v }))))),
    el('h3', { text: 'Span attributes' }), kvTable(s.attrs, 'span-attributes'),
    el('h3', { text: 'Resource attributes' }), kvTable(s.res, 'resource-attributes'),
    el('h3', { text: 'Scope: ' + scopeLabel }), kvTable(s.scope.attributes || [], 'scope-attributes'),
    el('h3', { text: `Events (${s.events.length})` }), eventItems.length ? el('ul', { 'data-section': 'events' }, ...eventItems) : el('p', { class: 'status', text: 'none' }),
    el('h3', { text: `Links (${s.links.length})` }), linkItems.length ? el('ul', { 'data-section': 'links' }, ...linkItems) : el('p', { class: 'status', text: 'none' }),
  );
  d.dataset.spanId = s.id;
}

// hay is what the find box looks in: name, service, IDs, status message,
// attribute keys and values, event names.
function hay(s) {
  if (s.hay) return s.hay;
  const parts = [s.name, s.svc, s.id, s.kind, s.code, s.msg];
  for (const kv of s.attrs) parts.push(kv.key + '=' + anyText(kv.value));
  for (const kv of s.res) parts.push(kv.key + '=' + anyText(kv.value));
  for (const ev of s.events) parts.push(ev.name || '');
  s.hay = parts.join('\u0001').toLowerCase();
  return s.hay;
}

function find() {
  if (!T) return;
  const q = $('find').value.trim().toLowerCase();
  $('find').dataset.q = $('find').value;
  if (!q) {
    hits = null; hitList = []; hitPos = -1;
    $('find-count').textContent = '';
    paint();
    return;
  }
  hits = new Set();
  hitList = [];
  for (const i of T.order) if (hay(T.spans[i]).includes(q)) { hits.add(i); hitList.push(i); }
  hitPos = -1;
  $('find-count').textContent = `${hitList.length} span${hitList.length === 1 ? '' : 's'} match`;
  $('find-count').dataset.count = String(hitList.length);
  paint();
}

function jump(d) {
  if (!hitList.length) return;
  hitPos = (hitPos + d + hitList.length) % hitList.length;
  select(hitList[hitPos], true);
  $('find-count').textContent = `${hitPos + 1} of ${hitList.length} span${hitList.length === 1 ? '' : 's'} matching`;
}
