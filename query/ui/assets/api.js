// The query API of the server that served the page, and small helpers
// shared by the views.

let currentTenant = '';

/** tenant is the X-Scope-OrgID sent with every request ('' sends none). */
export function tenant() { return currentTenant; }
export function setTenant(t) { currentTenant = (t || '').trim(); }

/** APIError is an answer of the API other than 2xx: message is its body, as worded. */
export class APIError extends Error {
  constructor(status, statusText, body) {
    super(body);
    this.name = 'APIError';
    this.status = status;
    this.statusText = statusText;
  }
}

/**
 * api GETs path (absolute, /api/...) with the query params given, and
 * returns {json, text, res}. It throws APIError with the body as the API
 * worded it for any non-2xx answer.
 */
export async function api(path, params = {}, { signal } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  }
  const headers = { Accept: 'application/json' };
  if (currentTenant) headers['X-Scope-OrgID'] = currentTenant;
  const res = await fetch(url, { headers, signal });
  const text = await res.text();
  if (!res.ok) throw new APIError(res.status, res.statusText, text.trim() || res.statusText);
  let json = {};
  if (text) {
    try { json = JSON.parse(text); } catch (e) { throw new Error(`cannot read the answer of ${path}: ${e.message}`); }
  }
  return { json, text, res, warnings: warnings(res, json) };
}

/**
 * warnings are what an answer says it lacks, as the API worded it: the
 * message of "status":"PARTIAL" (blocks it could not read) and the texts
 * of Warning headers (299 weft "...": partial, or cut at a byte limit).
 */
function warnings(res, json) {
  const out = [];
  if (json && json.status === 'PARTIAL' && json.message) out.push(String(json.message));
  const h = res.headers.get('Warning');
  if (h) {
    for (const m of h.matchAll(/\d{3} \S+ "([^"]*)"/g)) if (!out.includes(m[1])) out.push(m[1]);
  }
  return out;
}

const units = { s: 1, m: 60, h: 3600, d: 86400 };

/** parseRange turns "15m", "1h", "7d" into seconds (0 when not one). */
export function parseRange(s) {
  const m = /^(\d+)([smhd])$/.exec(s || '');
  return m ? Number(m[1]) * units[m[2]] : 0;
}

const whenUnits = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/**
 * parseWhen reads one end of a range as typed into From or To (or kept
 * in the URL): "now", "now-2h" (s, m, h, d, w), a local date and time
 * "2026-12-07 14:30" (or "2026-12-07T14:30", as a datetime-local input
 * writes it, seconds optional; a date alone is its midnight), or unix
 * seconds. It gives unix seconds, or throws an Error naming what it could
 * not read.
 */
export function parseWhen(text, now = Date.now() / 1000) {
  const s = String(text ?? '').trim();
  let m = /^now(?:\s*-\s*(\d+)\s*([smhdw]))?$/i.exec(s);
  if (m) return m[1] ? now - Number(m[1]) * whenUnits[m[2].toLowerCase()] : now;
  if (/^\d{9,11}$/.test(s)) return Number(s);
  m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(s);
  if (m) {
    const [y, mo, d, h = 0, mi = 0, se = 0] = m.slice(1).map((x) => Number(x || 0));
    const t = new Date(y, mo - 1, d, h, mi, se);
    if (t.getFullYear() === y && t.getMonth() === mo - 1 && t.getDate() === d && h < 24 && mi < 60 && se < 60) return t.getTime() / 1000;
  }
  throw new Error(s === '' ? 'is empty' : `"${s}" is not a time: write now, now-2h (s, m, h, d, w), or a local date and time such as 2026-12-07 14:30`);
}

/**
 * timeRange gives {start, end} in unix seconds from the params: from and
 * to (as typed: parseWhen), else start and end (unix seconds), else range
 * (or fallback) before now. A range that cannot be read, or that ends
 * before it starts, throws an Error saying so: it is never sent.
 */
export function timeRange(p, fallback = '1h') {
  const now = Date.now() / 1000;
  if (p.has('from') || p.has('to')) {
    const at = (key, label) => {
      try { return parseWhen(p.get(key) ?? '', now); } catch (e) { throw Object.assign(new Error(`The range's ${label} ${e.message}.`), { field: key }); }
    };
    const start = at('from', 'start (From)'), end = at('to', 'end (To)');
    if (end <= start) {
      throw new Error(`The range ends (To: ${fmtTime(end * 1000)}) ${end === start ? 'when' : 'before'} it starts (From: ${fmtTime(start * 1000)}): To must be later than From. Nothing was searched.`);
    }
    return { start: Math.floor(start), end: Math.ceil(end) };
  }
  const s = Number(p.get('start')), e = Number(p.get('end'));
  if (s > 0 && e > s) return { start: Math.floor(s), end: Math.ceil(e) };
  const end = Math.ceil(now);
  return { start: end - (parseRange(p.get('range')) || parseRange(fallback)), end };
}

/** fmtDur formats nanoseconds for people: 850 µs, 12.3 ms, 4.56 s, 2 m 5 s. */
export function fmtDur(ns) {
  if (!(ns >= 0)) return '–';
  if (ns < 1e3) return `${ns} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 1 : 0)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)} ms`;
  if (ns < 60e9) return `${(ns / 1e9).toFixed(2)} s`;
  const s = Math.round(ns / 1e9);
  return `${Math.floor(s / 60)} m ${s % 60} s`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** fmtTime formats unix milliseconds as local YYYY-MM-DD HH:MM:SS.mmm. */
export function fmtTime(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** idHex turns an ID of an OTLP JSON answer (base64, or already hex) into lowercase hex. */
export function idHex(s) {
  if (!s) return '';
  if (/^[0-9a-fA-F]+$/.test(s) && (s.length === 32 || s.length === 16)) return s.toLowerCase();
  try {
    const bin = atob(s);
    let out = '';
    for (let i = 0; i < bin.length; i++) out += bin.charCodeAt(i).toString(16).padStart(2, '0');
    return out;
  } catch (e) {
    return s;
  }
}

/** anyText renders an OTLP AnyValue as text. */
export function anyText(v) {
  if (!v || typeof v !== 'object') return '';
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return String(v.intValue);
  if ('doubleValue' in v) return String(v.doubleValue);
  if ('boolValue' in v) return String(v.boolValue);
  if ('bytesValue' in v) return idHex(v.bytesValue);
  if ('arrayValue' in v) return '[' + ((v.arrayValue && v.arrayValue.values) || []).map(anyText).join(', ') + ']';
  if ('kvlistValue' in v) return '{' + ((v.kvlistValue && v.kvlistValue.values) || []).map((kv) => `${kv.key}: ${anyText(kv.value)}`).join(', ') + '}';
  return '';
}

/** el makes an element with properties and children (strings become text). */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k === 'style') e.style.cssText = v; // CSSOM: allowed by the page's CSP
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'href' || k === 'title' || k === 'id' || k === 'tabindex' || k === 'scope') e.setAttribute(k, v === true ? '' : String(v));
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// palette: 14 hues about 25° apart, each as light as white text (the
// duration on a bar) allows at a contrast of at least 4.5:1 (4.7 here).
// They are in the order they are handed out: each is the hue farthest
// from those before it, so that the first 4 are about 90° apart, the
// first 8 at least 35°, all 14 at least 22°.
export const palette = ['#1479b8', '#bd550a', '#b936cd', '#298521', '#d92869', '#7264d2', '#597f0e', '#0f854a', '#887207', '#008181', '#cc2ba4', '#e02525', '#496dd8', '#9256ce'];

function hash(name) {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) { h ^= name.charCodeAt(i); h = Math.imul(h, 16777619); }
  return h >>> 0;
}

// seen gives each service the page (the browser tab) has shown a palette
// entry, in the order they were first shown, so that a service keeps its
// colour from one view to the next while it can.
const seen = (() => {
  try { return new Map(JSON.parse(sessionStorage.getItem('weft.colours') || '[]')); } catch (e) { return new Map(); }
})();
function preferred(name) {
  let k = seen.get(name);
  if (k === undefined) {
    k = seen.size < palette.length ? seen.size : hash(name) % palette.length;
    if (seen.size >= 500) return k; // a bounded memory
    seen.set(name, k);
    try { sessionStorage.setItem('weft.colours', JSON.stringify([...seen])); } catch (e) { /* kept in memory */ }
  }
  return k;
}

/**
 * Colours gives the services of one view (a trace, the map, a list of
 * results) their colours. A service takes the colour it had in the views
 * before if no service of this view has it yet, else the first palette
 * entry this view has not used: so the first palette.length services of
 * a view all differ, and the first few are far apart. After those, names
 * share entries. A service keeps the colour it got first in the view.
 */
export class Colours {
  constructor(names = []) {
    this.of = new Map();
    this.used = new Set();
    for (const n of names) this.get(n);
  }

  /** get gives name's colour, assigning it at the first call. */
  get(name) {
    name = String(name ?? '');
    let c = this.of.get(name);
    if (c) return c;
    let k = preferred(name);
    if (this.used.has(k) && this.used.size < palette.length) {
      k = 0;
      while (this.used.has(k)) k++;
    }
    this.used.add(k);
    c = palette[k];
    this.of.set(name, c);
    return c;
  }
}

/** quote writes s as a TraceQL string literal. */
export function quote(s) { return JSON.stringify(String(s)); }
