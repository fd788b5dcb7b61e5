// The conversation controller: turns the user's actions into client frames and the server's
// frames into changes of the view. One instance per page.

import { announce, announceError } from "./announcer";
import type { TimelineLoader } from "./api";
import {
  type AcceptedFrame,
  type CompleteFrame,
  ErrorCode,
  type ErrorFrame,
  type HistoryMessage,
  type JoinedFrame,
  type ServerFrame,
  type SessionEndedFrame,
  type UserInfo,
} from "./protocol";
import { AssistantBubble, errorTitle, type LogView, UserBubble } from "./render/messages";
import { runningLabel } from "./render/toolcard";
import { ChatSocket, type ConnectionState } from "./socket";
import { type Outgoing, Outbox, storedSessionId, storeSessionId } from "./state";

export interface ChatView {
  log: LogView;
  connection(state: ConnectionState): void;
  user(user: UserInfo): void;
  /** Whether an answer is streaming (e.g. to show a Stop control). */
  busy(streaming: boolean): void;
}

interface Answer {
  bubble: AssistantBubble;
  lastSeq: number;
  /** Frames were missed (reconnection): show nothing more until `complete`. */
  gap: boolean;
  question: string | null;
}

const ANNOUNCE_LIMIT = 600;
const ENDED_NOTICE =
  "This session ended after a period of inactivity. Your next message starts a new session.";

function summaryForSpeech(text: string): string {
  const clean = text.replace(/\s+/g, " ").trim();
  return clean.length <= ANNOUNCE_LIMIT ? clean : `${clean.slice(0, ANNOUNCE_LIMIT)}… (continued in the conversation)`;
}

export class ChatController {
  private readonly socket: ChatSocket;
  private readonly outbox = new Outbox();
  private readonly userBubbles = new Map<string, UserBubble>();
  private readonly answers = new Map<string, Answer>();
  private sessionId: string | null = storedSessionId();
  private joined = false;
  private wantFreshSession = false;
  private wasDisconnected = false;

  constructor(
    private readonly view: ChatView,
    socketUrl: string,
    signedIn: () => Promise<boolean>,
    /** An answer's timeline, fetched when its button is opened. */
    private readonly loadTimeline: TimelineLoader | null = null,
  ) {
    this.socket = new ChatSocket(
      { url: socketUrl, signedIn },
      {
        open: () => this.join(),
        frame: (frame) => this.onFrame(frame),
        state: (state) => this.onConnection(state),
        closed: (reason) => this.onClosed(reason),
      },
    );
  }

  start(): void {
    this.socket.start();
  }

  reconnectNow(): void {
    this.socket.reconnectNow();
  }

  /** Send what the user wrote. It is shown at once and kept until the server accepts it. */
  send(text: string): void {
    const item = this.outbox.add(text);
    const bubble = this.view.log.add(new UserBubble(text, new Date()));
    this.userBubbles.set(item.clientMessageId, bubble);
    this.transmit(item);
  }

  /** Leave the current session and start an empty one. */
  newSession(): void {
    this.wantFreshSession = true;
    this.sessionId = null;
    storeSessionId(null);
    if (!this.socket.send({ type: "join" })) return;
    this.joined = false;
  }

  private transmit(item: Outgoing): void {
    const bubble = this.userBubbles.get(item.clientMessageId);
    const sent =
      this.joined &&
      this.socket.send({ type: "send", text: item.text, client_message_id: item.clientMessageId });
    item.status = sent ? "sending" : "queued";
    bubble?.setStatus(item.status);
  }

  private retry(item: Outgoing): void {
    item.status = "queued";
    delete item.uncertain;
    this.transmit(item);
  }

  private join(): void {
    this.joined = false;
    const sessionId = this.wantFreshSession ? null : this.sessionId;
    this.socket.send(sessionId === null ? { type: "join" } : { type: "join", session_id: sessionId });
  }

  // -- connection ------------------------------------------------------------------------------

  private onConnection(state: ConnectionState): void {
    this.view.connection(state);
    if (state.kind === "reconnecting" && !this.wasDisconnected) {
      this.wasDisconnected = true;
      announceError(`${state.reason} Reconnecting…`);
    }
  }

  private onClosed(reason: string): void {
    this.joined = false;
    // Written to a socket that closed before the server confirmed: it may or may not have
    // arrived. The re-join's history tells; until then it is marked, with a Retry.
    for (const item of this.outbox.inFlight()) {
      item.status = "failed";
      item.uncertain = true;
      this.userBubbles
        .get(item.clientMessageId)
        ?.setStatus("failed", `the connection dropped before the server confirmed it (${reason})`, () =>
          this.retry(item),
        );
    }
  }

  // -- frames ----------------------------------------------------------------------------------

  private onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case "joined":
        return this.onJoined(frame);
      case "accepted":
        return this.onAccepted(frame);
      case "token": {
        const answer = this.answerFor(frame.message_id);
        if (this.inOrder(answer, frame.seq)) answer.bubble.appendText(frame.text);
        return;
      }
      case "tool_call": {
        const answer = this.answerFor(frame.message_id);
        if (!this.inOrder(answer, frame.seq)) return;
        answer.bubble.toolCall(frame.call_id, frame.tool, frame.input);
        announce(`Using the ${frame.tool} tool: ${runningLabel(frame.tool)}`);
        return;
      }
      case "tool_result": {
        const answer = this.answerFor(frame.message_id);
        if (!this.inOrder(answer, frame.seq)) return;
        const summary = answer.bubble.toolResult(frame.call_id, frame.output, frame.is_error);
        if (summary !== null) announce(summary);
        return;
      }
      case "complete":
        return this.onComplete(frame);
      case "error":
        return this.onError(frame);
      case "session_ended":
        return this.onSessionEnded(frame);
      case "pong":
        return;
    }
  }

  private onJoined(frame: JoinedFrame): void {
    const continuing = frame.previous_session_id !== null && frame.previous_session_id === this.sessionId;
    this.sessionId = frame.session_id;
    this.wantFreshSession = false;
    storeSessionId(frame.session_id);
    this.joined = true;
    this.view.user(frame.user);
    if (continuing) {
      // The old session had ended; this message opened a new one. The old history stays.
      this.view.log.notice("A new session has started.");
      announce("A new session has started.");
    } else {
      this.renderHistory(frame.messages);
      if (frame.ended) this.view.log.notice(ENDED_NOTICE, "ended");
      if (this.wasDisconnected) announce("Reconnected.");
    }
    this.wasDisconnected = false;
    for (const item of this.outbox.queued()) this.transmit(item);
  }

  /** The conversation from history, replacing what was shown (first load, or after a
   * reconnection, when frames may have been missed). Unconfirmed messages are kept. */
  private renderHistory(messages: HistoryMessage[]): void {
    this.view.log.clear();
    this.answers.clear();
    let question: string | null = null;
    const arrived = new Set<string>();
    for (const message of messages) {
      if (message.role === "user") {
        question = message.text;
        arrived.add(message.text);
        this.view.log.add(new UserBubble(message.text, new Date(message.created_at * 1000)));
        continue;
      }
      const createdAt = new Date(message.created_at * 1000);
      const bubble = this.view.log.add(
        new AssistantBubble(message.message_id, createdAt, this.loadTimeline),
      );
      bubble.fromHistory(message, (text) => this.send(text));
      if (message.status === "pending") {
        this.answers.set(message.message_id, { bubble, lastSeq: 0, gap: true, question });
      }
    }
    // Messages not confirmed before a disconnection: shown again after the history, unless the
    // history shows they did arrive.
    const unconfirmed = [...this.userBubbles.entries()].filter(([id]) => this.outbox.get(id));
    this.userBubbles.clear();
    for (const [id, old] of unconfirmed) {
      const item = this.outbox.get(id);
      if (item === undefined) continue;
      if (item.status === "failed" && item.uncertain === true && arrived.has(item.text)) {
        this.outbox.forget(id);
        continue;
      }
      const bubble = this.view.log.add(new UserBubble(old.text, new Date()));
      this.userBubbles.set(id, bubble);
      if (item.status === "failed") {
        const reason = item.uncertain ? "the connection dropped before the server confirmed it" : old.failure;
        bubble.setStatus("failed", reason, () => this.retry(item));
      } else {
        bubble.setStatus(item.status === "sending" ? "sending" : "queued");
      }
    }
    this.updateBusy();
  }

  private onAccepted(frame: AcceptedFrame): void {
    const item = this.outbox.accepted(frame.client_message_id);
    this.userBubbles.get(frame.client_message_id)?.setStatus("sent");
    this.userBubbles.delete(frame.client_message_id);
    const answer = this.answerFor(frame.reply_message_id);
    answer.question = item?.text ?? null;
    announce("The assistant is answering.");
  }

  /** The answer a frame belongs to; one started elsewhere (another tab) gets a bubble too. */
  private answerFor(messageId: string): Answer {
    let answer = this.answers.get(messageId);
    if (answer === undefined) {
      const bubble = this.view.log.add(new AssistantBubble(messageId, new Date(), this.loadTimeline));
      answer = { bubble, lastSeq: 0, gap: false, question: null };
      this.answers.set(messageId, answer);
      this.updateBusy();
    }
    return answer;
  }

  /** Events of an answer come in `seq` order; after a gap, wait for `complete`. */
  private inOrder(answer: Answer, seq: number): boolean {
    if (answer.gap) return false;
    if (seq !== answer.lastSeq + 1) {
      answer.gap = true;
      answer.bubble.awaitCompletion();
      return false;
    }
    answer.lastSeq = seq;
    return true;
  }

  private onComplete(frame: CompleteFrame): void {
    const answer = this.answerFor(frame.message_id);
    answer.bubble.complete(frame);
    this.answers.delete(frame.message_id);
    this.updateBusy();
    announce(`The assistant answered: ${summaryForSpeech(answer.bubble.plainText())}`);
  }

  private onError(frame: ErrorFrame): void {
    if (frame.message_id) {
      const answer = this.answerFor(frame.message_id);
      const question = answer.question;
      answer.bubble.fail(
        {
          code: frame.code,
          message: frame.message,
          retry: frame.retryable && question !== null ? () => this.send(question) : undefined,
          suggest: (text) => this.send(text),
        },
        answer.bubble.markdown.source || null,
      );
      this.answers.delete(frame.message_id);
      this.updateBusy();
      announceError(`${errorTitle(frame.code)}. ${frame.message}`);
      return;
    }
    if (frame.client_message_id) {
      const item = this.outbox.get(frame.client_message_id);
      this.outbox.failed(frame.client_message_id);
      this.userBubbles
        .get(frame.client_message_id)
        ?.setStatus("failed", frame.message, item ? () => this.retry(item) : undefined);
      announceError(`Your message was not sent: ${frame.message}`);
      return;
    }
    if (frame.code === ErrorCode.forbidden) {
      // The remembered session is not this user's (or is gone): start a new one.
      this.sessionId = null;
      storeSessionId(null);
      this.socket.send({ type: "join" });
      return;
    }
    this.view.log.notice(frame.message);
    announceError(frame.message);
  }

  private onSessionEnded(frame: SessionEndedFrame): void {
    if (frame.session_id !== this.sessionId) return;
    this.view.log.notice(ENDED_NOTICE, "ended");
    announce(ENDED_NOTICE);
  }

  private updateBusy(): void {
    this.view.busy(this.answers.size > 0);
  }
}
