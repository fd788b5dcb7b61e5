// The gateway's HTTP API used by the pages: who is signed in, signing in and out, and where an
// answer's time went (its timeline).

import type { UserInfo } from "./protocol";

export type LoginResult =
  | { ok: true; user: UserInfo }
  | { ok: false; message: string; retryAfter?: number };

const GENERIC_FAILURE = "Incorrect email or password.";

export async function currentUser(): Promise<UserInfo | null> {
  const response = await fetch("/api/me", { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) return null;
  if (!response.ok) throw new Error(`GET /api/me answered ${response.status}`);
  return (await response.json()) as UserInfo;
}

export async function login(email: string, password: string): Promise<LoginResult> {
  let response: Response;
  try {
    response = await fetch("/api/auth/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
  } catch {
    return { ok: false, message: "The server could not be reached. Check your connection and try again." };
  }
  if (response.ok) return { ok: true, user: (await response.json()) as UserInfo };
  if (response.status === 429) {
    const body = (await response.json().catch(() => ({}))) as { retry_after?: number };
    const wait = Math.max(1, Math.ceil(body.retry_after ?? 60));
    return {
      ok: false,
      message: `Too many sign-in attempts. Try again in ${wait} second${wait === 1 ? "" : "s"}.`,
      retryAfter: wait,
    };
  }
  if (response.status === 401 || response.status === 400 || response.status === 422) {
    return { ok: false, message: GENERIC_FAILURE };
  }
  return { ok: false, message: "Signing in failed on the server. Try again in a moment." };
}

export async function logout(): Promise<void> {
  await fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" });
}

/** Where to go after signing in: a path on this site only (never another origin). */
export function safeNext(value: string | null): string {
  if (value === null || !value.startsWith("/") || value.startsWith("//") || value.includes("\\")) {
    return "/";
  }
  return value;
}

export function loginUrl(): string {
  const next = `${location.pathname}${location.search}`;
  return next === "/" ? "/login" : `/login?next=${encodeURIComponent(next)}`;
}

// -- an answer's timeline (docs/observability.md, "The per-message timeline") ---------------------

export interface TimelineHop {
  name: string;
  at: number; // epoch seconds
  offset_ms: number; // since `received`
}

export interface TimelineSegment {
  name: string;
  start: string; // hop names
  end: string;
  ms: number;
}

export interface TimelineSummary {
  queue_wait_ms: number | null;
  time_to_first_token_ms: number | null;
  delivery_lag_ms: number | null;
  first_output_seen_ms: number | null;
  total_ms: number | null;
}

export interface MessageTimeline {
  message_id: string;
  correlation_id: string;
  trace_id: string | null;
  tier: number | null;
  status: string; // pending | complete | error
  hops: TimelineHop[];
  segments: TimelineSegment[];
  summary: TimelineSummary;
}

export type TimelineResult =
  | { kind: "ok"; timeline: MessageTimeline }
  /** Not one of the signed-in user's answers, or nothing recorded for it yet. */
  | { kind: "not_found" }
  | { kind: "signed_out" }
  | { kind: "failed"; message: string };

export type TimelineLoader = (messageId: string) => Promise<TimelineResult>;

/** `GET /api/messages/{id}/timeline`: fetched on demand, one answer at a time. */
export async function fetchTimeline(messageId: string): Promise<TimelineResult> {
  let response: Response;
  try {
    response = await fetch(`/api/messages/${encodeURIComponent(messageId)}/timeline`, {
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    return { kind: "failed", message: "The server could not be reached. Check your connection." };
  }
  if (response.ok) {
    try {
      return { kind: "ok", timeline: (await response.json()) as MessageTimeline };
    } catch {
      return { kind: "failed", message: "The server's answer could not be read." };
    }
  }
  if (response.status === 404) return { kind: "not_found" };
  if (response.status === 401) return { kind: "signed_out" };
  if (response.status === 503) {
    return { kind: "failed", message: "The chat history service did not answer in time." };
  }
  return { kind: "failed", message: `The server answered with an error (HTTP ${response.status}).` };
}
