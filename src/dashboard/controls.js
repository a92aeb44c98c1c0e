// @ts-check
// A route card's operator controls: force its breakers open or closed or back to
// automatic, pause and resume it (POST /admin/routes/{name}/breaker, /pause,
// /resume, with the token as every admin call). What the card shows comes from
// the next /stats event, so the badge and the buttons say the relay's state,
// not what was clicked.
import { api } from './api.js';
import { h } from './dom.js';

/** An action that stops or overrides the route's own protection needs a second click within this long. */
const ARM_MS = 4000;

/** @type {Array<{ action: string, label: string, title: string, arm: boolean }>} */
const ACTIONS = [
  { action: 'breaker-open', label: 'open', title: "Force the route's breakers open: every call on it is refused at once", arm: true },
  { action: 'breaker-closed', label: 'closed', title: 'Force them closed: calls go even when they fail', arm: true },
  { action: 'breaker-auto', label: 'auto', title: 'Back to automatic: the breakers judge again, from a clean window', arm: false },
  { action: 'pause', label: 'Pause', title: 'Hold deliveries: the queue keeps accepting up to capacity', arm: true },
  { action: 'resume', label: 'Resume', title: 'Release held deliveries', arm: false },
];

/** @param {unknown} error */
function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Fills a card's `data-controls` slot with the buttons and a status line.
 * @param {HTMLElement} slot
 * @param {string} route
 * @returns {{ update: (control: { breaker: string, paused: boolean } | undefined) => void }}
 */
export function buildControls(slot, route) {
  /** @type {Map<string, HTMLButtonElement>} */
  const buttons = new Map();
  for (const { action, label, title, arm } of ACTIONS) {
    const button = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', 'data-action': action, title, 'aria-pressed': 'false' }, [label]));
    button.dataset.label = label;
    if (arm) button.dataset.arm = '';
    buttons.set(action, button);
  }
  const message = h('p', { class: 'message', role: 'status' });
  slot.append(
    h('div', { class: 'control-row' }, [h('span', { class: 'control-label' }, ['breaker']), buttons.get('breaker-open'), buttons.get('breaker-closed'), buttons.get('breaker-auto')]),
    h('div', { class: 'control-row' }, [h('span', { class: 'control-label' }, ['deliveries']), buttons.get('pause'), buttons.get('resume')]),
    message,
  );

  /**
   * @param {string} text
   * @param {'ok' | 'error' | 'info'} kind
   */
  const say = (text, kind) => {
    message.textContent = text;
    message.setAttribute('data-kind', kind);
  };

  /** @param {HTMLButtonElement} button */
  const act = async (button) => {
    const action = button.getAttribute('data-action') ?? '';
    if (button.hasAttribute('data-arm') && !button.hasAttribute('data-armed')) {
      button.setAttribute('data-armed', '');
      button.textContent = `${button.dataset.label}?`;
      say(`Click "${button.dataset.label}?" again to confirm.`, 'info');
      setTimeout(() => {
        button.removeAttribute('data-armed');
        button.textContent = button.dataset.label ?? '';
      }, ARM_MS);
      return;
    }
    button.removeAttribute('data-armed');
    button.textContent = button.dataset.label ?? '';
    const path = `/admin/routes/${encodeURIComponent(route)}`;
    button.disabled = true;
    try {
      if (action.startsWith('breaker-')) {
        const state = action.slice('breaker-'.length);
        await api('POST', `${path}/breaker`, { state });
        say(state === 'auto' ? 'Breakers back to automatic.' : `Breakers forced ${state}.`, 'ok');
      } else {
        await api('POST', `${path}/${action}`);
        say(action === 'pause' ? 'Paused: deliveries are held.' : 'Resumed.', 'ok');
      }
    } catch (error) {
      say(`${button.dataset.label} failed: ${messageOf(error)}`, 'error');
    } finally {
      button.disabled = false;
    }
  };
  slot.addEventListener('click', (event) => {
    const button = /** @type {HTMLElement} */ (event.target).closest('button[data-action]');
    if (button instanceof HTMLButtonElement) void act(button);
  });

  return {
    update(control) {
      const breaker = control?.breaker ?? 'auto';
      const paused = control?.paused ?? false;
      for (const state of ['open', 'closed', 'auto']) buttons.get(`breaker-${state}`)?.setAttribute('aria-pressed', String(breaker === state));
      buttons.get('pause')?.setAttribute('aria-pressed', String(paused));
      buttons.get('resume')?.setAttribute('aria-pressed', String(!paused));
    },
  };
}
