// The search page: a TraceQL box completing tag names and values from the
// tag APIs, a time range, and the results table, filled progressively.
import { api, el, fmtDur, fmtTime, parseRange, tenant, timeRange, Colours } from './api.js';

const $ = (id) => document.getElementById(id);
let nav, showErr, showWarn;
let seq = 0;
let abort = null;

export function initSearch({ navigate, showError, showWarnings }) {
  nav = navigate;
  showErr = showError;
  showWarn = showWarnings;
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    closeComplete();
    const p = new URLSearchParams({ view: 'search', q: $('q').value });
    if ($('range').value === 'custom') {
      // A custom range goes in the URL as typed (now-2h stays relative
      // when shared); one that cannot be read is shown and not sent.
      p.set('from', $('from').value.trim());
      p.set('to', $('to').value.trim());
      try {
        timeRange(p);
      } catch (err) {
        markRange(err);
        showErr(err);
        return;
      }
    } else {
      p.set('range', $('range').value);
    }
    p.set('limit', $('limit').value);
    nav(p);
  });
  // A preset writes its From and To; typing in them makes the range custom.
  $('range').addEventListener('change', () => {
    if ($('range').value === 'custom') return;
    $('from').value = 'now-' + $('range').value;
    $('to').value = 'now';
    markRange(null);
  });
  for (const id of ['from', 'to']) $(id).addEventListener('input', () => { $('range').value = 'custom'; });
  initComplete();
}

// slices cuts [start, end] into the ranges searched one after the other,
// the most recent first, so that recent traces show at once and older
// ones stream in below them: the last 5 minutes, then up to a quarter of
// the range, then the rest.
export function slices(start, end) {
  const span = end - start;
  if (span <= 15 * 60) return [[start, end]];
  const cuts = [end, end - 5 * 60, Math.min(end - 5 * 60, end - Math.floor(span / 4)), start];
  const out = [];
  for (let i = 0; i + 1 < cuts.length; i++) if (cuts[i + 1] < cuts[i]) out.push([cuts[i + 1], cuts[i]]);
  return out;
}

// markRange flags From and To as invalid for err (null clears them):
// err.field names the one at fault, or neither for a range ending before
// it starts (both are).
function markRange(err) {
  for (const id of ['from', 'to']) {
    if (err && (!err.field || err.field === id)) $(id).setAttribute('aria-invalid', 'true');
    else $(id).removeAttribute('aria-invalid');
  }
}

export async function runSearch(p) {
  // Without a query (the landing page) the most recent traces are shown.
  const q = p.get('q') || '{ }';
  const range = parseRange(p.get('range')) ? p.get('range') : '1h';
  const limit = Math.max(1, Math.min(10000, Number(p.get('limit')) || 20));
  $('q').value = q;
  const preset = [...$('range').options].some((o) => o.value === range);
  if (p.has('from') || p.has('to')) {
    $('range').value = 'custom';
    $('from').value = p.get('from') ?? '';
    $('to').value = p.get('to') ?? '';
  } else {
    $('range').value = preset ? range : 'custom';
    $('from').value = 'now-' + range;
    $('to').value = 'now';
  }
  $('limit').value = String(limit);
  const tbody = $('results').tBodies[0];
  const my = ++seq;
  if (abort) abort.abort();
  abort = new AbortController();
  const signal = abort.signal;
  tbody.replaceChildren();
  let start, end;
  try {
    ({ start, end } = timeRange(p, range));
    markRange(null);
  } catch (err) {
    // A range that cannot be read (a link typed by hand) is not sent.
    $('results').dataset.state = 'error';
    $('search-status').textContent = '';
    markRange(err);
    showErr(err);
    return;
  }
  $('results').dataset.state = 'loading';
  const colours = new Colours();
  const seen = new Set();
  const warned = [];
  const t0 = performance.now();
  const parts = slices(start, end);
  let n = 0;
  try {
    for (let i = 0; i < parts.length && n < limit; i++) {
      const [s, e] = parts[i];
      $('search-status').textContent = `Searching ${i + 1} of ${parts.length} (${fmtTime(s * 1000)} – ${fmtTime(e * 1000)})… ${n} trace${n === 1 ? '' : 's'} so far`;
      const { json, warnings } = await api('/api/search', { q, start: s, end: e, limit: limit - n }, { signal });
      if (my !== seq) return;
      if (warnings.length) { warned.push(...warnings); showWarn(warned); }
      const traces = (json.traces || []).slice().sort((a, b) => Number(BigInt(b.startTimeUnixNano || 0) - BigInt(a.startTimeUnixNano || 0)));
      const rows = [];
      for (const t of traces) {
        if (seen.has(t.traceID) || n >= limit) continue;
        seen.add(t.traceID);
        n++;
        rows.push(resultRow(t, colours));
      }
      tbody.append(...rows);
    }
    const ms = Math.round(performance.now() - t0);
    $('search-status').textContent = n === 0 ? `No trace matches (${ms} ms).` : `${n} trace${n === 1 ? '' : 's'}${n >= limit ? ' (the limit)' : ''} in ${ms} ms.`;
    $('results').dataset.state = 'done';
    performance.mark('weft-search-done');
  } catch (err) {
    if (my !== seq) return;
    $('results').dataset.state = 'error';
    $('search-status').textContent = '';
    showErr(err);
  }
}

function resultRow(t, colours) {
  let spans = 0, errors = 0;
  for (const st of Object.values(t.serviceStats || {})) {
    spans += st.spanCount || 0;
    errors += st.errorCount || 0;
  }
  const params = new URLSearchParams({ view: 'trace', id: t.traceID });
  if (tenant()) params.set('tenant', tenant());
  const svc = t.rootServiceName || '';
  const start = Number(BigInt(t.startTimeUnixNano || 0) / 1000000n);
  return el('tr', { 'data-trace-id': t.traceID },
    el('td', { class: 'mono' }, el('a', { href: '?' + params, title: t.traceID, text: t.traceID.slice(0, 16) })),
    el('td', {}, el('span', { class: 'svcdot', style: `color:${colours.get(svc)}`, 'aria-hidden': 'true', text: '● ' }), svc || '<root span not yet received>'),
    el('td', { text: t.rootTraceName || '' }),
    el('td', { class: 'mono', text: start ? fmtTime(start) : '' }),
    el('td', { class: 'num', text: fmtDur((t.durationMs || 0) * 1e6) }),
    el('td', { class: 'num', 'data-spans': String(spans) }, String(spans), errors ? el('span', { class: 'err-text', title: `${errors} span(s) with status error`, text: ` (${errors} err)` }) : null),
  );
}

// --- completion -----------------------------------------------------------

let tagNames = null; // [{name, scope}]
let tagTenant = null;
const valueCache = new Map();
let items = [];
let active = -1;
let replaceFrom = 0;
let completeSeq = 0;

async function loadTagNames() {
  if (tagNames && tagTenant === tenant()) return tagNames;
  const { json } = await api('/api/v2/search/tags');
  const out = [];
  for (const sc of json.scopes || []) {
    for (const t of sc.tags || []) {
      out.push({ name: sc.name === 'intrinsic' ? t : `${sc.name}.${t}`, scope: sc.name });
    }
  }
  tagNames = out;
  tagTenant = tenant();
  return out;
}

async function loadValues(tag) {
  const key = tenant() + '\u0000' + tag;
  if (valueCache.has(key)) return valueCache.get(key);
  const { json } = await api('/api/v2/search/tag/' + encodeURIComponent(tag) + '/values');
  const vals = (json.tagValues || []).map((v) => ({ type: v.type, value: String(v.value) }));
  valueCache.set(key, vals);
  return vals;
}

// context reads what is being written at the cursor: a tag value after
// "tag =" (or !=, =~, !~, >, <...), or a tag name inside braces.
function context(text) {
  const v = /([A-Za-z_][\w.:\-/]*)\s*(=|!=|=~|!~|>=|<=|>|<)\s*("?)([^"{}&|()]*)$/.exec(text);
  if (v) return { kind: 'value', tag: v[1], quoted: v[3] === '"', word: v[4], from: text.length - v[4].length - v[3].length };
  const open = (text.match(/\{/g) || []).length - (text.match(/\}/g) || []).length;
  if (open <= 0) return null;
  const n = /(^|[\s{(&|!])([A-Za-z_.:][\w.:\-]*)?$/.exec(text);
  if (!n) return null;
  const word = n[2] || '';
  return { kind: 'name', word, from: text.length - word.length };
}

function initComplete() {
  const q = $('q');
  let timer = 0;
  q.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(suggest, 100);
  });
  q.addEventListener('keydown', (e) => {
    const open = !$('complete').hidden;
    if (e.key === ' ' && e.ctrlKey) { e.preventDefault(); suggest(); return; }
    if (!open) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const d = e.key === 'ArrowDown' ? 1 : -1;
      setActive((active + d + items.length) % items.length);
    } else if ((e.key === 'Enter' || e.key === 'Tab') && active >= 0) {
      e.preventDefault();
      accept(active);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      closeComplete();
    }
  });
  q.addEventListener('blur', () => setTimeout(closeComplete, 150));
  $('complete').addEventListener('mousedown', (e) => {
    const li = e.target.closest('li');
    if (!li) return;
    e.preventDefault();
    accept(Number(li.dataset.i));
  });
}

async function suggest() {
  const q = $('q');
  const text = q.value.slice(0, q.selectionStart ?? q.value.length);
  const ctx = context(text);
  const my = ++completeSeq;
  if (!ctx) { closeComplete(); return; }
  let list = [];
  try {
    if (ctx.kind === 'name') {
      const names = await loadTagNames();
      const w = ctx.word.toLowerCase();
      const starts = [], contains = [];
      for (const t of names) {
        const l = t.name.toLowerCase();
        if (l === w) continue;
        if (l.startsWith(w) || l.startsWith('resource.' + w) || l.startsWith('span.' + w)) starts.push(t);
        else if (w && l.includes(w)) contains.push(t);
      }
      list = starts.concat(contains).slice(0, 60).map((t) => ({ label: t.name, insert: t.name, note: t.scope }));
    } else {
      const vals = await loadValues(ctx.tag);
      const w = ctx.word.toLowerCase();
      list = vals.filter((v) => v.value.toLowerCase().includes(w) && v.value !== ctx.word)
        .slice(0, 60)
        .map((v) => ({ label: v.value, insert: v.type === 'string' ? JSON.stringify(v.value) : v.value, note: v.type }));
    }
  } catch (err) {
    list = [];
  }
  if (my !== completeSeq) return;
  if (!list.length) { closeComplete(); return; }
  items = list;
  replaceFrom = ctx.from;
  const ul = $('complete');
  ul.replaceChildren(...list.map((it, i) => el('li', { id: 'complete-' + i, role: 'option', 'data-i': String(i), 'aria-selected': 'false' }, it.label, el('small', { text: it.note }))));
  ul.hidden = false;
  q.setAttribute('aria-expanded', 'true');
  setActive(0);
}

function setActive(i) {
  active = i;
  const ul = $('complete');
  for (const li of ul.children) li.setAttribute('aria-selected', String(Number(li.dataset.i) === i));
  const li = ul.children[i];
  if (li) {
    li.scrollIntoView({ block: 'nearest' });
    $('q').setAttribute('aria-activedescendant', li.id);
  }
}

function accept(i) {
  const it = items[i];
  if (!it) return;
  const q = $('q');
  const cursor = q.selectionStart ?? q.value.length;
  const before = q.value.slice(0, replaceFrom);
  const after = q.value.slice(cursor);
  q.value = before + it.insert + after;
  const pos = before.length + it.insert.length;
  q.setSelectionRange(pos, pos);
  closeComplete();
  q.focus();
}

function closeComplete() {
  const ul = $('complete');
  ul.hidden = true;
  ul.replaceChildren();
  items = [];
  active = -1;
  $('q').setAttribute('aria-expanded', 'false');
  $('q').removeAttribute('aria-activedescendant');
}
