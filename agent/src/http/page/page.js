// The agent's live page. It reads the API like any client: GET /v1/status, long-polled with
// its ETag so any change answers at once, then the new events by seq. Everything shown is
// set with textContent: names are safe, but reasons and event data are whatever was written.
'use strict';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'podsignal-token';
const SHOWN_EVENTS = 50;
// At most four refreshes a second, however busy the directory is.
const MIN_GAP_MS = 250;
const RETRY_MS = 2000;

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let lastSeq = null;

class NeedToken extends Error {}

const pause = (ms) => new Promise((done) => setTimeout(done, ms));

async function request(path, headers = {}) {
  if (token) headers.Authorization = 'Bearer ' + token;
  const r = await fetch(path, { headers, cache: 'no-store' });
  if (r.status === 401) throw new NeedToken((await r.json()).message);
  return r;
}

async function get(path, headers) {
  const r = await request(path, headers);
  if (r.status >= 400) throw new Error(path + ': ' + r.status + ' ' + (await r.text()));
  return r;
}

function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function row(cells, attrs) {
  const tr = el('tr', null, attrs);
  for (const c of cells) tr.append(c instanceof Node ? c : el('td', c));
  return tr;
}

const who = (id) => (id ? id.source || id.pid + '@' + id.hostname : '');
const clock = (ms) => new Date(ms).toISOString().slice(11, 23);

function fill(id, rows, empty) {
  const body = $(id);
  body.replaceChildren(...rows);
  if (!rows.length) body.append(row([el('td', empty, { colspan: 4, class: 'none' })]));
}

function stateCell(state) {
  return el('td', state, { class: 'state ' + state });
}

function readinessRows(list) {
  return list.map((r) => {
    const state = r.ready ? 'ready' : r.record ? 'unready' : 'missing';
    return row([r.name, stateCell(state), r.why, who(r.record && r.record.writer)],
      { 'data-name': r.name, 'data-state': state });
  });
}

function lockRows(list, heldWord) {
  return list.map((l) => {
    const current = l.held && l.holder && !l.holder.released_ms;
    const state = l.held ? heldWord : 'free';
    const holder = current ? who(l.holder.holder) : l.held_outside_podsignal ? 'outside podsignal' : '';
    return row([l.name, stateCell(state), holder, l.last_token],
      { 'data-name': l.name, 'data-state': state, title: l.problem || '' });
  });
}

function render(s) {
  const phase = s.phase ? s.phase.phase : 'starting';
  $('phase').textContent = 'phase ' + phase;
  $('phase').dataset.phase = phase;
  $('dir').textContent = s.dir;
  fill('readiness', readinessRows(s.readiness), 'no readiness records');
  fill('locks', lockRows(s.locks, 'held'), 'no locks');
  fill('leaders', lockRows(s.leaders, 'led'), 'no campaigns');
  $('problems').replaceChildren(...s.problems.map((p) => el('li', p)));
  $('problems-box').hidden = !s.problems.length;
  $('data').hidden = false;
}

async function loadEvents(extent) {
  if (lastSeq !== null && extent.last_seq <= lastSeq) return;
  // The newest ones: after a burst, the ones in between are skipped, not shown late.
  const since = Math.max(lastSeq ?? 0, extent.last_seq - SHOWN_EVENTS);
  const events = await (await get('/v1/events?since=' + since + '&limit=' + SHOWN_EVENTS)).json();
  const list = $('events');
  for (const e of events) {
    const data = e.data === undefined || e.data === null ? '' : JSON.stringify(e.data);
    const li = el('li', null, { 'data-seq': e.seq, 'data-kind': e.kind });
    li.append(el('time', clock(e.time_ms)), ' ', el('b', e.kind), ' ', el('span', e.source, { class: 'who' }), ' ', el('code', data));
    list.prepend(li);
    lastSeq = e.seq;
  }
  while (list.children.length > SHOWN_EVENTS) list.lastChild.remove();
  lastSeq = Math.max(lastSeq ?? 0, extent.last_seq);
}

// The timeline is drawn by the agent (GET /v1/timeline, SVG); an agent without it answers
// 404 and the panel stays hidden. The SVG is parsed as data, never as HTML: scripts in it
// would not run, and the page's CSP allows none.
async function loadTimeline() {
  const r = await request('/v1/timeline');
  if (!r.ok) return;
  const doc = new DOMParser().parseFromString(await r.text(), 'image/svg+xml');
  if (doc.querySelector('parsererror')) return;
  $('timeline').replaceChildren(document.importNode(doc.documentElement, true));
  $('timeline-box').hidden = false;
}

function showLink(state, text) {
  $('link').dataset.state = state;
  $('link').textContent = text;
}

async function follow() {
  let etag = null;
  for (;;) {
    try {
      const r = await get('/v1/status' + (etag ? '?wait=60s' : ''), etag ? { 'If-None-Match': etag } : {});
      if (r.status === 200) {
        etag = r.headers.get('ETag');
        const s = await r.json();
        render(s);
        await loadEvents(s.events);
        await loadTimeline();
      }
      showLink('live', 'live');
      await pause(MIN_GAP_MS);
    } catch (e) {
      if (e instanceof NeedToken) return askToken(token ? e.message : '');
      etag = null;
      showLink('down', 'reconnecting: ' + e.message);
      await pause(RETRY_MS);
    }
  }
}

function askToken(problem) {
  showLink('token', 'needs a token');
  $('token-problem').textContent = problem;
  $('token').hidden = false;
  $('token-value').focus();
}

$('token').addEventListener('submit', (ev) => {
  ev.preventDefault();
  token = $('token-value').value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token').hidden = true;
  follow();
});

follow();
