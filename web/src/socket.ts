// The WebSocket to the gateway: connecting, keep-alive, and reconnecting with backoff.
// It knows nothing of sessions or messages; the chat controller re-joins on every `open`.

import { type ClientFrame, CloseCode, parseServerFrame, type ServerFrame } from "./protocol";

export type ConnectionState =
  | { kind: "connecting" }
  | { kind: "open" }
  | { kind: "reconnecting"; attempt: number; retryAt: number; reason: string }
  | { kind: "signed_out" };

export interface SocketHandlers {
  /** The socket is open: the controller sends `join`. */
  open(): void;
  frame(frame: ServerFrame): void;
  state(state: ConnectionState): void;
  /** The socket closed; `reason` says why, for the user (e.g. the last frame was too large). */
  closed(reason: string): void;
}

export interface SocketOptions {
  url: string;
  /** Is the user still signed in? Asked when a handshake fails, since browsers hide the 403. */
  signedIn: () => Promise<boolean>;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** How often the page sends `ping` (the server closes a socket silent for 45 s with 4408). */
  pingIntervalMs?: number;
  /** Reconnect when nothing at all (frame, heartbeat, pong) was heard for this long. */
  silenceMs?: number;
}

/** Full-jitter exponential backoff: a random delay up to base·2^attempt, capped. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

const CLIENT_TIMEOUT = 4000; // our own close code: the server went silent
/** After 1012 (the server restarting) the page reconnects at once, spread over this much so a
 * restarting replica's sockets do not all arrive in the same millisecond. */
const RESTART_SPREAD_MS = 300;

export class ChatSocket {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private retryTimer: number | undefined;
  private pingTimer: number | undefined;
  private silenceTimer: number | undefined;
  private lastHeard = 0;
  private stopped = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly pingIntervalMs: number;
  private readonly silenceMs: number;

  constructor(
    private readonly options: SocketOptions,
    private readonly handlers: SocketHandlers,
  ) {
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 15_000;
    this.pingIntervalMs = options.pingIntervalMs ?? 15_000;
    this.silenceMs = options.silenceMs ?? 35_000;
    window.addEventListener("online", () => this.reconnectNow());
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.retryTimer);
    this.stopKeepAlive();
    this.ws?.close(CloseCode.NORMAL);
    this.ws = null;
  }

  /** Skip the wait of a pending reconnection. */
  reconnectNow(): void {
    if (this.stopped || this.ws !== null) return;
    window.clearTimeout(this.retryTimer);
    this.connect();
  }

  /** Send a frame; false if the socket is not open (the caller keeps the frame). */
  send(frame: ClientFrame): boolean {
    if (this.ws === null || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  private connect(): void {
    // One socket at a time: a second live socket would join the session again and show every
    // frame twice.
    window.clearTimeout(this.retryTimer);
    const previous = this.ws;
    this.ws = null;
    previous?.close(CloseCode.NORMAL);
    this.handlers.state({ kind: "connecting" });
    const ws = new WebSocket(this.options.url);
    let opened = false;
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      opened = true;
      this.attempt = 0;
      this.handlers.state({ kind: "open" });
      this.startKeepAlive();
      this.handlers.open();
    });
    ws.addEventListener("message", (event: MessageEvent<unknown>) => {
      if (this.ws !== ws || typeof event.data !== "string") return;
      this.lastHeard = Date.now();
      const frame = parseServerFrame(event.data);
      if (frame !== null) this.handlers.frame(frame);
    });
    ws.addEventListener("close", (event: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopKeepAlive();
      void this.afterClose(event.code, opened);
    });
  }

  private async afterClose(code: number, opened: boolean): Promise<void> {
    if (this.stopped) return;
    const signedOut = code === CloseCode.SIGNED_OUT || (!opened && !(await this.stillSignedIn()));
    // While the sign-in check was under way, "Reconnect now" or the browser going online may
    // have started the next connection (or the page stopped): that one owns the state now, and
    // scheduling another would leave two sockets joined to the session.
    if (this.stopped || this.ws !== null) return;
    if (signedOut) {
      this.stopped = true;
      this.handlers.state({ kind: "signed_out" });
      return;
    }
    this.handlers.closed(closeReason(code));
    // A restarting server (1012) has a replacement ready: the first retry goes at once.
    const delay =
      code === CloseCode.SERVICE_RESTART && this.attempt === 0
        ? Math.round(Math.random() * RESTART_SPREAD_MS)
        : backoffDelay(this.attempt, this.baseDelayMs, this.maxDelayMs);
    this.attempt += 1;
    this.handlers.state({
      kind: "reconnecting",
      attempt: this.attempt,
      retryAt: Date.now() + delay,
      reason: closeReason(code),
    });
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  private async stillSignedIn(): Promise<boolean> {
    try {
      return await this.options.signedIn();
    } catch {
      return true; // the server is unreachable: keep trying, it may be restarting
    }
  }

  /** `ping` every `pingIntervalMs`; the server sends `heartbeat` as often, so a socket that
   * hears nothing for `silenceMs` is dead (a network gone without a close) and is replaced. */
  private startKeepAlive(): void {
    this.stopKeepAlive();
    this.lastHeard = Date.now();
    this.pingTimer = window.setInterval(() => this.send({ type: "ping" }), this.pingIntervalMs);
    this.silenceTimer = window.setInterval(() => {
      if (Date.now() - this.lastHeard > this.silenceMs) this.abandon();
    }, 1000);
  }

  /** Give up on a silent socket now: its closing handshake may never finish (the network is
   * gone), so the page reconnects without waiting for its `close` event. */
  private abandon(): void {
    const ws = this.ws;
    if (ws === null) return;
    this.ws = null;
    this.stopKeepAlive();
    ws.close(CLIENT_TIMEOUT, "silent");
    void this.afterClose(CLIENT_TIMEOUT, true);
  }

  private stopKeepAlive(): void {
    window.clearInterval(this.pingTimer);
    window.clearInterval(this.silenceTimer);
  }
}

function closeReason(code: number): string {
  switch (code) {
    case CloseCode.TOO_LARGE:
      return "Your last message was too large to send.";
    case CloseCode.SERVICE_RESTART:
      return "The chat server is restarting.";
    case CloseCode.TOO_SLOW:
      return "The connection was too slow to keep up.";
    case CloseCode.TOO_MANY_SOCKETS:
      return "Too many chat tabs are open: close one.";
    case CloseCode.SILENT:
      return "The connection was idle for too long.";
    case CLIENT_TIMEOUT:
      return "The chat server stopped answering.";
    default:
      return "The connection to the chat server was lost.";
  }
}
