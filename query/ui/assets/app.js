// weft's trace explorer. Plain ES modules, no dependencies: it talks to the
// query API of the server that served it (/api/...), never to anything else.
import { api, APIError, setTenant, tenant } from './api.js';
import { initSearch, runSearch } from './search.js';
import { initTrace, openTrace } from './trace.js';
import { initMap, runMap } from './map.js';

const $ = (id) => document.getElementById(id);

// Views are chosen by the query string, so that every state can be shared
// as a link: ?view=search&q=...&range=1h, ?view=trace&id=..., ?view=map.
function currentView(p) {
  const v = p.get('view');
  if (v === 'trace' || v === 'map' || v === 'search') return v;
  return p.get('id') ? 'trace' : 'search';
}

// closer is the button that hides a message box (Escape does too).
function closer(box) {
  return Object.assign(document.createElement('button'), {
    type: 'button', className: 'close', textContent: '×', title: 'Dismiss',
    onclick: () => { box.hidden = true; },
  });
}

export function showError(err) {
  const box = $('error');
  box.replaceChildren();
  if (!err) {
    box.hidden = true;
    return;
  }
  if (err instanceof APIError) {
    const code = document.createElement('strong');
    code.textContent = `${err.status} ${err.statusText}`.trim() + ': ';
    const msg = document.createElement('span');
    msg.className = 'msg';
    msg.textContent = err.message;
    box.append(closer(box), code, msg);
    box.dataset.status = String(err.status);
  } else if (err.name !== 'AbortError') {
    const msg = document.createElement('span');
    msg.className = 'msg';
    msg.textContent = String(err.message || err);
    box.append(closer(box), msg);
    delete box.dataset.status;
  } else {
    box.hidden = true;
    return;
  }
  box.hidden = false;
}

// showWarnings lists what answers said they lack (partial answers, cut
// answers), as the API worded it; an empty list hides the box.
export function showWarnings(list) {
  const box = $('warning');
  const uniq = [...new Set(list || [])];
  box.replaceChildren(...uniq.map((m) => Object.assign(document.createElement('p'), { className: 'msg', textContent: m })));
  if (uniq.length) box.prepend(closer(box), Object.assign(document.createElement('strong'), { textContent: 'Partial answer: ' }));
  box.hidden = uniq.length === 0;
}

// navigate moves to the URL built from params (a URLSearchParams or
// object) and renders it; replace keeps the history entry.
export function navigate(params, replace = false) {
  const p = new URLSearchParams(params);
  if (tenant() && !p.has('tenant')) p.set('tenant', tenant());
  const url = '?' + p.toString();
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  route();
}

let lastView = '';
function route() {
  const p = new URLSearchParams(location.search);
  if (p.has('tenant') && p.get('tenant') !== tenant()) {
    setTenant(p.get('tenant'));
    $('tenant').value = tenant();
  }
  const view = currentView(p);
  for (const v of ['search', 'trace', 'map']) $('view-' + v).hidden = v !== view;
  $('nav-search').toggleAttribute('aria-current', view === 'search');
  $('nav-map').toggleAttribute('aria-current', view === 'map');
  if (view === 'search') $('nav-search').setAttribute('aria-current', 'page');
  if (view === 'map') $('nav-map').setAttribute('aria-current', 'page');
  // The views' links keep the time range (and tenant) of this one.
  const keep = { };
  for (const k of ['range', 'from', 'to', 'tenant']) if (p.has(k)) keep[k] = p.get(k);
  $('nav-search').setAttribute('href', '?' + new URLSearchParams({ view: 'search', ...keep }));
  $('nav-map').setAttribute('href', '?' + new URLSearchParams({ view: 'map', ...keep }));
  showError(null);
  showWarnings([]);
  if (lastView && lastView !== view) $('main').focus({ preventScroll: true });
  lastView = view;
  if (view === 'search') {
    document.title = 'Search · weft';
    runSearch(p);
  } else if (view === 'trace') {
    document.title = 'Trace ' + (p.get('id') || '') + ' · weft';
    openTrace(p.get('id') || '');
  } else {
    document.title = 'Service map · weft';
    runMap(p);
  }
}

// In-page links (href="?...") move without reloading; a modified click
// (new tab, new window) is left to the browser.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || a.hasAttribute('download')) return;
  const href = a.getAttribute('href') || a.getAttribute('xlink:href');
  if (!href || !href.startsWith('?')) return;
  e.preventDefault();
  history.pushState(null, '', href);
  route();
});
window.addEventListener('popstate', route);
// Escape hides the messages, unless a box of the page uses it (the find
// box clears itself, the query box closes its completions).
document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape' || e.defaultPrevented || (e.target.closest && e.target.closest('input, select, textarea'))) return;
  $('error').hidden = true;
  $('warning').hidden = true;
});

async function start() {
  let cfg = { multitenancy: false, version: '' };
  try {
    const res = await fetch('ui/config.json', { cache: 'no-cache' });
    if (res.ok) cfg = await res.json();
  } catch (e) { /* the defaults serve */ }
  $('version').textContent = 'weft ' + (cfg.version || '');
  if (cfg.multitenancy) {
    $('tenant-box').hidden = false;
    const saved = new URLSearchParams(location.search).get('tenant') || localStorage.getItem('weft.tenant') || '';
    setTenant(saved);
    $('tenant').value = saved;
    const known = JSON.parse(localStorage.getItem('weft.tenants') || '[]');
    $('tenant-list').replaceChildren(...known.map((t) => Object.assign(document.createElement('option'), { value: t })));
    $('tenant').addEventListener('change', () => {
      const t = $('tenant').value.trim();
      setTenant(t);
      localStorage.setItem('weft.tenant', t);
      if (t && !known.includes(t)) {
        known.unshift(t);
        localStorage.setItem('weft.tenants', JSON.stringify(known.slice(0, 20)));
      }
      const p = new URLSearchParams(location.search);
      if (t) p.set('tenant', t); else p.delete('tenant');
      navigate(p, true);
    });
  }
  initSearch({ navigate, showError, showWarnings });
  initTrace({ navigate, showError, showWarnings });
  initMap({ navigate, showError, showWarnings });
  route();
}

start();
export { api };
