// @ts-check
// The dashboard's entry: the token form, the stats stream, and one render per event.
import { storedToken, storeToken, tokenRequired, whenUnauthorized } from './api.js';
import { drawLineChart } from './charts.js';
import { DlqPanel } from './dlq.js';
import { byId, duration, num, percent } from './dom.js';
import { History } from './history.js';
import { RouteCards } from './routes.js';
import { followStats } from './stream.js';

const history = new History();
const routes = new RouteCards();
const dlq = new DlqPanel();
const connection = byId('connection');
const tokenPanel = byId('token-panel');
const tokenMessage = byId('token-message');
const forgetButton = /** @type {HTMLButtonElement} */ (byId('forget-token'));
/** @type {{ stop: () => void } | undefined} */
let stream;

/**
 * @param {string} state
 * @param {string} text
 */
function showConnection(state, text) {
  connection.setAttribute('data-state', state);
  connection.textContent = text;
}

/** @param {string} [why] shown above the form */
function askForToken(why = '') {
  stream?.stop();
  stream = undefined;
  tokenPanel.hidden = false;
  tokenMessage.textContent = why;
  forgetButton.hidden = storedToken() === null;
  showConnection('unauthorized', 'token needed');
  byId('token-input').focus();
}

function start() {
  stream?.stop();
  tokenPanel.hidden = true;
  forgetButton.hidden = storedToken() === null;
  stream = followStats(storedToken, {
    onStats: render,
    onState: (state, detail) => {
      if (state === 'unauthorized') askForToken(storedToken() ? 'The relay refused that token.' : '');
      else if (state === 'live') showConnection('live', 'live');
      else if (state === 'connecting') showConnection('connecting', 'connecting…');
      else showConnection('retrying', `reconnecting${detail ? `: ${detail}` : ''}`);
    },
  });
}

/**
 * @param {string} selector
 * @param {string} text
 */
function setField(selector, text) {
  const el = document.querySelector(selector);
  if (el) el.textContent = text;
}

/** @param {any} stats a /stats document */
function render(stats) {
  history.add(stats);
  const now = Date.now();
  const latest = history.red.at(-1);
  byId('updated').textContent = `updated ${new Date(now).toLocaleTimeString()}`;
  setField('#overview [data-field=rps]', num(latest?.rps ?? stats.rate.rps, 1));
  setField('#overview [data-field=errors]', `${percent(stats.errors.rate)} (${stats.errors.count})`);
  setField('#overview [data-field=p50]', duration(stats.duration.p50Ms));
  setField('#overview [data-field=p99]', duration(stats.duration.p99Ms));
  setField('#overview [data-field=amplification]', `${num(stats.downstream.amplification, 2)}×`);
  setField('#overview [data-field=inflight]', `${stats.queue.busy} / ${stats.queue.concurrencyLimit}`);
  setField('#overview [data-field=queue]', `${stats.queue.depth} / ${stats.queue.capacity}`);
  setField('#overview [data-field=dlq]', stats.dlq.size === null ? 'store unavailable' : String(stats.dlq.size));
  const rangeMs = history.rangeMs(now);
  drawLineChart(/** @type {SVGSVGElement} */ (/** @type {unknown} */ (byId('chart-rps'))), {
    now,
    rangeMs,
    format: (v) => num(v, 1),
    series: [
      { key: 'rps', label: 'requests/s', values: history.red.map(({ t, rps }) => ({ t, v: rps })) },
      { key: 'errors', label: 'errors/s', values: history.red.map(({ t, errorsPerS }) => ({ t, v: errorsPerS })) },
    ],
  });
  drawLineChart(/** @type {SVGSVGElement} */ (/** @type {unknown} */ (byId('chart-latency'))), {
    now,
    rangeMs,
    format: (v) => duration(v),
    series: [
      { key: 'p50', label: 'p50', values: history.red.map(({ t, p50Ms }) => ({ t, v: p50Ms })) },
      { key: 'p99', label: 'p99', values: history.red.map(({ t, p99Ms }) => ({ t, v: p99Ms })) },
    ],
  });
  routes.render(stats, history, now);
  const states = stats.jobs.states;
  for (const state of ['queued', 'in_flight', 'delivered', 'dead']) setField(`#jobs [data-field=${state}]`, states ? String(states[state]) : '–');
  const jobQueue = stats.jobs.queue;
  setField('#jobs [data-field=capacity]', jobQueue.count === null ? '–' : `${jobQueue.count} / ${jobQueue.max ?? '∞'}`);
  dlq.sizeIs(stats.dlq.size);
}

byId('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ (byId('token-input'));
  const token = input.value.trim();
  if (!token) return;
  storeToken(token);
  input.value = '';
  start();
});

forgetButton.addEventListener('click', () => {
  storeToken(null);
  askForToken();
});

whenUnauthorized(() => askForToken('The relay refused the token.'));

if (tokenRequired() && storedToken() === null) askForToken();
else start();
