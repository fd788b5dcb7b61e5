// The browser WebSocket protocol, version 1: the frames of docs/protocol.md
// (packages/chat-shared/chat_shared/protocol.py holds the server's pydantic models).

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface UserInfo {
  id: string;
  org_id: string;
  email: string;
  name: string;
}

export interface HistoryToolCall {
  call_id: string;
  tool: string;
  input: JsonObject;
  output: JsonObject | null;
  is_error: boolean;
}

export interface HistoryMessage {
  message_id: string;
  role: "user" | "assistant";
  text: string;
  status: string; // complete | pending | error | stopped
  created_at: number; // seconds since the epoch
  model: string | null;
  provider: string | null;
  tool: string | null;
  error_code: string | null;
  error_message: string | null;
  tool_calls: HistoryToolCall[];
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cost_usd: string | number;
}

// -- client → server ---------------------------------------------------------------------------

/** The last event a client has of an answer: `seq` of `attempt` (0: none of it). */
export interface ResumePoint {
  message_id: string;
  seq: number;
  attempt: number;
}

export type ClientFrame =
  | { type: "join"; session_id?: string; after?: ResumePoint }
  | { type: "send"; text: string; client_message_id: string }
  | { type: "stop"; message_id: string }
  | { type: "ping" };

// -- server → client ---------------------------------------------------------------------------

export interface JoinedFrame {
  type: "joined";
  session_id: string;
  user: UserInfo;
  messages: HistoryMessage[];
  ended: boolean;
  previous_session_id: string | null;
}

export interface AcceptedFrame {
  type: "accepted";
  client_message_id: string;
  message_id: string;
  reply_message_id: string;
  correlation_id: string;
  session_id: string;
}

export interface TokenFrame {
  type: "token";
  message_id: string;
  seq: number;
  attempt?: number; // 1 when absent
  text: string;
}

export interface ToolCallFrame {
  type: "tool_call";
  message_id: string;
  seq: number;
  attempt?: number; // 1 when absent
  call_id: string;
  tool: string;
  input: JsonObject;
}

export interface ToolResultFrame {
  type: "tool_result";
  message_id: string;
  seq: number;
  attempt?: number; // 1 when absent
  call_id: string;
  output: JsonObject;
  is_error: boolean;
}

export interface CompleteFrame {
  type: "complete";
  message_id: string;
  seq: number;
  attempt?: number; // 1 when absent
  /** The whole answer: always rendered from here. */
  text: string;
  /** `stopped`: the user stopped it; `text` is what was generated until then. */
  status?: "complete" | "stopped";
  model: string | null;
  provider: string | null;
  tool: string | null;
  usage: Usage | null;
}

export interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
  message_id?: string | null;
  seq?: number | null;
  attempt?: number | null;
  client_message_id?: string | null;
  retryable: boolean;
  retry_after?: number | null; // seconds, with `rate_limited`
}

export interface SessionEndedFrame {
  type: "session_ended";
  session_id: string;
  reason: string;
}

export interface PongFrame {
  type: "pong";
}

/** Sent by the server every `HEARTBEAT_SECONDS` (15 s). */
export interface HeartbeatFrame {
  type: "heartbeat";
  at: number;
}

/** The answer starts again as `attempt` (its worker was lost): discard what was shown of it. */
export interface RetryingFrame {
  type: "retrying";
  message_id: string;
  attempt: number;
  message: string;
}

/** The answer waits for the one in progress (`BUSY_POLICY=queue`). */
export interface QueuedFrame {
  type: "queued";
  message_id: string;
  behind_message_id?: string | null;
}

/** What the client has of `message_id` cannot be continued without a gap. With `message` the
 * answer has ended (render it from that); without, discard the partial text and wait for
 * `complete`. */
export interface ResyncFrame {
  type: "resync";
  message_id: string;
  reason: string;
  message?: HistoryMessage | null;
}

export type ServerFrame =
  | JoinedFrame
  | AcceptedFrame
  | TokenFrame
  | ToolCallFrame
  | ToolResultFrame
  | CompleteFrame
  | ErrorFrame
  | SessionEndedFrame
  | PongFrame
  | HeartbeatFrame
  | RetryingFrame
  | QueuedFrame
  | ResyncFrame;

const SERVER_TYPES = new Set<string>([
  "joined",
  "accepted",
  "token",
  "tool_call",
  "tool_result",
  "complete",
  "error",
  "session_ended",
  "pong",
  "heartbeat",
  "retrying",
  "queued",
  "resync",
]);

/** A server frame from a text frame, or null for anything this client does not understand. */
export function parseServerFrame(raw: string): ServerFrame | null {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const type = (value as { type?: unknown }).type;
  return typeof type === "string" && SERVER_TYPES.has(type) ? (value as ServerFrame) : null;
}

/** Error codes the server sends (chat_shared.protocol.ErrorCode). */
export const ErrorCode = {
  badRequest: "bad_request",
  notJoined: "not_joined",
  forbidden: "forbidden",
  unavailable: "unavailable",
  budgetExceeded: "budget_exceeded",
  llmRateLimited: "llm_rate_limited",
  llmUnavailable: "llm_unavailable",
  llmError: "llm_error",
  rateLimited: "rate_limited",
  toolError: "tool_error",
  internal: "internal",
  busy: "busy",
  failed: "failed",
} as const;

/** WebSocket close codes the gateway uses. */
export const CloseCode = {
  normal: 1000,
  tooLarge: 1009,
  restarting: 1012,
  tryAgainLater: 1013,
  signedOut: 4401,
  clientSilent: 4408,
  tooManySockets: 4429,
} as const;
