// The chat page: wires the DOM, the composer, the theme and the conversation controller.

import "./styles.css";
import { installAnnouncer } from "./announcer";
import { currentUser, fetchTimeline, loginUrl, logout } from "./api";
import { ChatController } from "./chat";
import { installComposer } from "./composer";
import { byId } from "./dom";
import type { UserInfo } from "./protocol";
import { LogView } from "./render/messages";
import type { ConnectionState } from "./socket";
import { storeSessionId } from "./state";
import { installTheme } from "./theme";

const input = byId("message", HTMLTextAreaElement);
const connection = byId("connection", HTMLElement);
const banner = byId("banner", HTMLElement);
const bannerText = byId("banner-text", HTMLElement);
const userName = byId("user-name", HTMLElement);
const stop = byId("stop", HTMLButtonElement);

installTheme(byId("theme-toggle", HTMLButtonElement));
installAnnouncer(byId("announcer", HTMLElement), byId("alerter", HTMLElement));

let countdown: number | undefined;

function showConnection(state: ConnectionState): void {
  window.clearInterval(countdown);
  connection.dataset["state"] = state.kind;
  const labels: Record<ConnectionState["kind"], string> = {
    connecting: "Connecting…",
    open: "Connected",
    reconnecting: "Reconnecting…",
    signed_out: "Signed out",
  };
  connection.textContent = labels[state.kind];
  // On a phone, "Connected" gives way to the header's buttons; trouble is always shown.
  connection.className = `badge badge-sm ${state.kind === "open" ? "badge-ghost max-sm:hidden" : "badge-warning"}`;
  banner.hidden = state.kind !== "reconnecting";
  if (state.kind === "reconnecting") {
    banner.dataset["attempt"] = String(state.attempt);
    banner.dataset["retryAt"] = String(state.retryAt);
    const tick = (): void => {
      const seconds = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
      bannerText.textContent = `${state.reason} Reconnecting${seconds > 0 ? ` in ${seconds} s` : ""}…`;
    };
    tick();
    countdown = window.setInterval(tick, 1000);
  }
  if (state.kind === "signed_out") {
    storeSessionId(null);
    location.assign(loginUrl());
  }
}

function showUser(user: UserInfo): void {
  userName.textContent = user.name;
  userName.title = user.email;
}

const socketUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const chat = new ChatController(
  {
    log: new LogView(byId("log", HTMLElement), byId("messages", HTMLElement), byId("empty", HTMLElement)),
    connection: showConnection,
    user: showUser,
    busy: (streaming) => {
      stop.hidden = !streaming;
    },
    restoreDraft: (text) => {
      const current = input.value.trim();
      input.value = current === "" ? text : `${text}\n\n${current}`;
      input.dispatchEvent(new Event("input")); // the box grows to fit
      input.focus();
    },
  },
  socketUrl,
  async () => (await currentUser()) !== null,
  fetchTimeline,
);

installComposer(
  { form: byId("composer", HTMLFormElement), input, counter: byId("counter", HTMLElement) },
  (text) => chat.send(text),
);

for (const button of document.querySelectorAll<HTMLButtonElement>("[data-suggest]")) {
  button.addEventListener("click", () => {
    chat.send(button.dataset["suggest"] ?? "");
    input.focus();
  });
}
// Stop: the button, or Escape in the message box while an answer is in progress. The focus
// goes (back) to the message box, which stays usable.
function stopAnswer(): void {
  chat.stop();
  input.focus();
}
stop.addEventListener("click", stopAnswer);
input.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !stop.hidden && !event.isComposing) {
    event.preventDefault();
    stopAnswer();
  }
});
byId("reconnect-now", HTMLButtonElement).addEventListener("click", () => chat.reconnectNow());
byId("new-chat", HTMLButtonElement).addEventListener("click", () => {
  chat.newSession();
  input.focus();
});
byId("sign-out", HTMLButtonElement).addEventListener("click", () => {
  storeSessionId(null);
  void logout().finally(() => location.assign("/login"));
});

chat.start();
input.focus();
