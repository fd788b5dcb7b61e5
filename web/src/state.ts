// What the page remembers about the conversation, apart from its DOM: the session to re-join
// after a refresh or a reconnection, and the messages sent but not yet acknowledged.

const SESSION_KEY = "agentchat.session";

export function storedSessionId(): string | null {
  try {
    return localStorage.getItem(SESSION_KEY);
  } catch {
    return null; // storage disabled: every load starts a new session
  }
}

export function storeSessionId(sessionId: string | null): void {
  try {
    if (sessionId === null) localStorage.removeItem(SESSION_KEY);
    else localStorage.setItem(SESSION_KEY, sessionId);
  } catch {
    // storage disabled: nothing to remember
  }
}

export type OutgoingStatus = "queued" | "sending" | "accepted" | "failed";

export interface Outgoing {
  clientMessageId: string;
  text: string;
  status: OutgoingStatus;
  /** Written to a socket that closed before `accepted`: it may have arrived. */
  uncertain?: boolean;
}

/** A random id; `crypto.randomUUID` exists only in secure contexts (https, localhost). */
function newId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Messages the user sent, by `client_message_id`, until the server has accepted them. */
export class Outbox {
  private readonly items = new Map<string, Outgoing>();

  add(text: string): Outgoing {
    const item: Outgoing = { clientMessageId: newId(), text, status: "queued" };
    this.items.set(item.clientMessageId, item);
    return item;
  }

  get(clientMessageId: string): Outgoing | undefined {
    return this.items.get(clientMessageId);
  }

  accepted(clientMessageId: string): Outgoing | undefined {
    const item = this.items.get(clientMessageId);
    this.items.delete(clientMessageId);
    return item;
  }

  failed(clientMessageId: string): void {
    const item = this.items.get(clientMessageId);
    if (item !== undefined) item.status = "failed";
  }

  forget(clientMessageId: string): void {
    this.items.delete(clientMessageId);
  }

  /** Waiting for the socket, in the order they were written. */
  queued(): Outgoing[] {
    return [...this.items.values()].filter((item) => item.status === "queued");
  }

  /** Written to a socket that then closed before `accepted` came back. */
  inFlight(): Outgoing[] {
    return [...this.items.values()].filter((item) => item.status === "sending");
  }
}
