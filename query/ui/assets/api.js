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

/** timeRange gives {start, end} in unix seconds from the params start/end or range. */
export function timeRange(p, fallback = '1h') {
  const s = Number(p.get('start')), e = Number(p.get('end'));
  if (s > 0 && e > s) return { start: Math.floor(s), end: Math.ceil(e) };
  const end = Math.ceil(Date.now() / 1000);
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

// Each gives white text (the duration on a bar) a contrast of at least 4.5:1.
const palette = ['#1f6fa8', '#b34e00', '#237f23', '#7b4fa0', '#8c564b', '#c2185b', '#5f6b6d', '#706400', '#00707a', '#3f51b5', '#ad1457', '#2e6b32', '#a84a00', '#6a1b9a', '#00695c', '#795548'];
/** serviceColour gives a service a stable colour from the palette. */
export function serviceColour(name) {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) { h ^= name.charCodeAt(i); h = Math.imul(h, 16777619); }
  return palette[(h >>> 0) % palette.length];
}

/** quote writes s as a TraceQL string literal. */
export function quote(s) { return JSON.stringify(String(s)); }
