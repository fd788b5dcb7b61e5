// The browser WebSocket protocol, version 1 (docs/protocol.md). Its frames, codes and constants
// are generated from the server's pydantic models (packages/chat-contracts/chat_contracts/
// protocol.py, codes.py) into generated/protocol.ts by `make generate`; this module adds only
// the logic the page needs around them.

import { SERVER_FRAME_TYPES, type ServerFrame } from "./generated/protocol";

export * from "./generated/protocol";

const SERVER_TYPES: ReadonlySet<string> = new Set<string>(SERVER_FRAME_TYPES);

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
