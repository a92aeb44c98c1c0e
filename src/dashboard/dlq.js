// @ts-check
// The dead-letter queue: a table of entries (GET /dlq, oldest first), one
// opened in full (GET /dlq/{id}), replay, delete, and a redrive of the
// transient ones. Bodies and errors are shown as text only.
import { api } from './api.js';
import { byId, h, replace } from './dom.js';

const PAGE = 50;
/** A delete needs a second click within this long. */
const ARM_MS = 4000;

/** @param {string} iso */
function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export class DlqPanel {
  constructor() {
    this.rows = byId('dlq-rows');
    this.detail = byId('dlq-detail');
    this.message = byId('dlq-message');
    this.more = /** @type {HTMLButtonElement} */ (byId('dlq-more'));
    this.summary = byId('dlq-summary');
    /** @type {string | null} */
    this.cursor = null;
    /** @type {number | null} */
    this.knownSize = null;
    this.loading = false;
    this.reloadWanted = false;
    byId('dlq-refresh').addEventListener('click', () => void this.load());
    byId('dlq-redrive').addEventListener('click', () => void this.redrive());
    this.more.addEventListener('click', () => void this.load(true));
    this.rows.addEventListener('click', (event) => {
      const button = /** @type {HTMLElement} */ (event.target).closest('button[data-action]');
      if (button instanceof HTMLButtonElement) void this.act(button);
    });
  }

  /**
   * Follows the DLQ size from the stream; reloads the table when it changed.
   * @param {number | null} size
   */
  sizeIs(size) {
    if (size === this.knownSize) return;
    this.knownSize = size;
    void this.load();
  }

  /** @param {boolean} [append] the next page after the rows shown */
  async load(append = false) {
    if (this.loading) {
      this.reloadWanted = !append;
      return;
    }
    this.loading = true;
    try {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (append && this.cursor) query.set('cursor', this.cursor);
      const page = await api('GET', `/dlq?${query}`);
      const rows = page.items.map((/** @type {any} */ entry) => this.row(entry));
      if (append) this.rows.append(...rows);
      else replace(this.rows, rows.length > 0 ? rows : [h('tr', {}, [h('td', { colspan: 7, class: 'empty' }, ['The dead-letter queue is empty.'])])]);
      this.cursor = page.nextCursor;
      this.more.hidden = !page.nextCursor;
      const shown = this.rows.querySelectorAll('tr[data-id]').length;
      this.summary.textContent = `${shown} shown, oldest first${this.knownSize === null ? '' : `, ${this.knownSize} in all`}`;
    } catch (error) {
      this.say(`Could not list the DLQ: ${messageOf(error)}`, 'error');
    } finally {
      this.loading = false;
    }
    if (this.reloadWanted) {
      this.reloadWanted = false;
      await this.load();
    }
  }

  /** @param {any} entry a GET /dlq summary */
  row(entry) {
    const attempts = Array.isArray(entry.attempts) ? entry.attempts.length : 0;
    const button = (/** @type {string} */ action, /** @type {string} */ label) => h('button', { type: 'button', 'data-action': action, 'data-id': entry.id }, [label]);
    return h('tr', { 'data-id': entry.id }, [
      h('td', { class: 'mono' }, [entry.id]),
      h('td', { class: 'when' }, [when(entry.createdAt)]),
      h('td', {}, [entry.route]),
      h('td', { class: 'mono' }, [`${entry.method} /${String(entry.path ?? '').replace(/^\//, '')}`]),
      h('td', {}, [`${entry.status ?? '–'} ${entry.reason ?? ''}`]),
      h('td', { class: 'error-text' }, [`${attempts} attempt(s): ${entry.lastError ?? ''}`]),
      h('td', { class: 'actions' }, [button('open', 'Open'), button('replay', 'Replay'), button('delete', 'Delete')]),
    ]);
  }

  /** @param {HTMLButtonElement} button */
  async act(button) {
    const id = button.getAttribute('data-id') ?? '';
    const action = button.getAttribute('data-action');
    const path = `/dlq/${encodeURIComponent(id)}`;
    if (action === 'delete' && !button.hasAttribute('data-armed')) {
      button.setAttribute('data-armed', '');
      button.textContent = 'Really delete?';
      setTimeout(() => {
        button.removeAttribute('data-armed');
        button.textContent = 'Delete';
      }, ARM_MS);
      return;
    }
    button.disabled = true;
    try {
      if (action === 'open') {
        this.show(await api('GET', path));
      } else if (action === 'replay') {
        this.say(`Replaying ${id}…`, 'info');
        const answer = await api('POST', `${path}/replay`);
        this.say(`Replayed ${id}: delivered, status ${answer.status} after ${answer.attempts} attempt(s).`, 'ok');
        await this.load();
      } else if (action === 'delete') {
        await api('DELETE', path);
        this.say(`Deleted ${id}.`, 'ok');
        await this.load();
      }
    } catch (error) {
      this.say(`${action} ${id} failed: ${messageOf(error)}`, 'error');
    } finally {
      button.disabled = false;
    }
  }

  async redrive() {
    try {
      const task = await api('POST', '/dlq/redrive', { reason: 'transient' });
      this.say(`Redrive of transient entries started (task ${task.id}, at most ${task.limit}, ${task.ratePerSecond}/s): they go back to the job queue.`, 'ok');
    } catch (error) {
      this.say(`Redrive failed: ${messageOf(error)}`, 'error');
    }
  }

  /** @param {any} entry a GET /dlq/{id} document */
  show(entry) {
    const close = h('button', { type: 'button' }, ['Close']);
    close.addEventListener('click', () => {
      this.detail.hidden = true;
      replace(this.detail, []);
    });
    replace(this.detail, [
      h('header', {}, [h('h3', {}, [`Entry ${entry.id}`]), close]),
      h('pre', { class: 'entry' }, [JSON.stringify(entry, null, 2)]),
    ]);
    this.detail.hidden = false;
  }

  /**
   * @param {string} text
   * @param {'ok' | 'error' | 'info'} kind
   */
  say(text, kind) {
    this.message.textContent = text;
    this.message.setAttribute('data-kind', kind);
  }
}

/** @param {unknown} error */
function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}
