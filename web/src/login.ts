// The sign-in page: one form, one generic error message on failure.

import "./styles.css";
import { currentUser, login, safeNext } from "./api";
import { byId } from "./dom";
import { installTheme } from "./theme";

installTheme(null);

const form = byId("login-form", HTMLFormElement);
const email = byId("email", HTMLInputElement);
const password = byId("password", HTMLInputElement);
const error = byId("login-error", HTMLElement);
const submit = byId("sign-in", HTMLButtonElement);
const next = safeNext(new URLSearchParams(location.search).get("next"));

function showError(message: string): void {
  error.textContent = message;
  error.hidden = false;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  error.hidden = true;
  submit.disabled = true;
  submit.textContent = "Signing in…";
  void login(email.value.trim(), password.value).then((result) => {
    if (result.ok) {
      location.assign(next);
      return;
    }
    submit.disabled = false;
    submit.textContent = "Sign in";
    showError(result.message);
    password.value = "";
    password.focus();
  });
});

// Already signed in (e.g. the back button): go straight to the chat.
void currentUser()
  .then((user) => {
    if (user !== null) location.replace(next);
  })
  .catch(() => undefined);
email.focus();
