// The sign-in form: the API token, checked by the server before the tab keeps it.

import { keepToken, login } from '../api.js';
import { h } from '../dom.js';

/// `message` says why the form is shown again; `signedIn` runs once the token is accepted.
export function signInView(message, signedIn) {
  const error = h('p', { id: 'login-error', class: 'error', role: 'alert', text: message || '' });
  if (!message) error.hidden = true;
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'current-password',
    required: true, 'aria-describedby': 'login-error token-help',
  });
  const form = h('form', { id: 'login', class: 'card narrow' },
    h('h1', { text: 'Sign in' }),
    h('label', { for: 'token', text: 'API token' }),
    input,
    h('p', { id: 'token-help', class: 'hint',
      text: 'The server\'s CALLFEED_API_TOKEN. It stays in this tab (sessionStorage) and is sent only as a header.' }),
    error,
    h('button', { type: 'submit', text: 'Sign in' }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    const status = await login(t);
    if (status === 204) {
      keepToken(t);
      signedIn();
      return;
    }
    input.value = '';
    error.hidden = false;
    error.textContent = status === 401
      ? 'This token is not accepted (401). Use the CALLFEED_API_TOKEN the server was started with.'
      : status === 0
        ? 'The server does not answer. Is callfeed serve running?'
        : 'The server answered ' + status + '.';
    input.focus();
  });
  return { el: form, focus: () => input.focus() };
}
