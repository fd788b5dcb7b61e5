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

export type ClientFrame =
  | { type: "join"; session_id?: string }
  | { type: "send"; text: string; client_message_id: string }
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
  text: string;
}

export interface ToolCallFrame {
  type: "tool_call";
  message_id: string;
  seq: number;
  call_id: string;
  tool: string;
  input: JsonObject;
}

export interface ToolResultFrame {
  type: "tool_result";
  message_id: string;
  seq: number;
  call_id: string;
  output: JsonObject;
  is_error: boolean;
}

export interface CompleteFrame {
  type: "complete";
  message_id: string;
  seq: number;
  text: string;
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

export type ServerFrame =
  | JoinedFrame
  | AcceptedFrame
  | TokenFrame
  | ToolCallFrame
  | ToolResultFrame
  | CompleteFrame
  | ErrorFrame
  | SessionEndedFrame
  | PongFrame;

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
} as const;

/** WebSocket close codes the gateway uses. */
export const CloseCode = {
  normal: 1000,
  tooLarge: 1009,
  restarting: 1012,
  tryAgainLater: 1013,
  signedOut: 4401,
  tooManySockets: 4429,
} as const;
