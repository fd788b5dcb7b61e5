// The conversation controller: turns the user's actions into client frames and the server's
// frames into changes of the view. One instance per page.

import { announce, announceError } from "./announcer";
import type { TimelineLoader } from "./api";
import {
  type AcceptedFrame,
  type ClientFrame,
  type CompleteFrame,
  ErrorCode,
  type ErrorFrame,
  type HistoryMessage,
  type JoinedFrame,
  type QueuedFrame,
  type ResumePoint,
  type ResyncFrame,
  type RetryingFrame,
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
  /** Whether an answer is streaming or waiting to (e.g. to show a Stop control). */
  busy(streaming: boolean): void;
  /** Put text the server did not take back into the message box. */
  restoreDraft(text: string): void;
}

/** An answer in progress, as far as this page has it. */
interface Answer {
  bubble: AssistantBubble;
  /** The attempt shown; events of an earlier one are dropped, a later one starts afresh. */
  attempt: number;
  lastSeq: number;
  /** Frames were missed and cannot be replayed: show nothing more until `complete`. */
  gap: boolean;
  question: string | null;
  /** The user's bubble of the question, when this page sent it. */
  asked: UserBubble | null;
}

/** Events of an answer: each carries its position in the answer and its attempt. */
interface Sequenced {
  message_id: string;
  seq: number;
  attempt?: number | null;
}

const ANNOUNCE_LIMIT = 600;
const ENDED_NOTICE =
  "This session ended after a period of inactivity. Your next message starts a new session.";
const RETRYING_NOTE = "The answer was interrupted; starting again…";
const QUEUED_NOTE = "Waiting for the previous answer to finish…";
const RESYNC_NOTE =
  "Reconnected — part of this answer could not be replayed; the full answer appears when it finishes.";

function summaryForSpeech(text: string): string {
  const clean = text.replace(/\s+/g, " ").trim();
  return clean.length <= ANNOUNCE_LIMIT ? clean : `${clean.slice(0, ANNOUNCE_LIMIT)}… (continued in the conversation)`;
}

export class ChatController {
  private readonly socket: ChatSocket;
  private readonly outbox = new Outbox();
  private readonly userBubbles = new Map<string, UserBubble>();
  private answers = new Map<string, Answer>();
  /** Answers that have ended: late or repeated frames for them are ignored. */
  private readonly finished = new Set<string>();
  /** Stops asked for while the socket was not joined: sent after the next `joined`. */
  private readonly pendingStops = new Set<string>();
  /** The answer whose partial text the last `join` asked to continue (`after`). */
  private resuming: string | null = null;
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

  /** Stop the oldest answer in progress (the one streaming; else the next one waiting). */
  stop(): void {
    const answer = this.answers.values().next().value;
    if (answer === undefined) return;
    const messageId = answer.bubble.messageId;
    answer.bubble.setNote("Stopping…", "complete");
    announce("Stopping the answer.");
    if (!(this.joined && this.socket.send({ type: "stop", message_id: messageId }))) {
      this.pendingStops.add(messageId);
    }
  }

  /** Leave the current session and start an empty one. */
  newSession(): void {
    this.wantFreshSession = true;
    this.sessionId = null;
    this.resuming = null;
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

  /** After a reconnection, the join names the answer being streamed and how far this page has
   * it, so only the rest is sent. A page load has no answers yet: history and the server's
   * replay of answers still pending (from their start) give it everything. */
  private join(): void {
    this.joined = false;
    const sessionId = this.wantFreshSession ? null : this.sessionId;
    const after = sessionId === null ? null : this.resumePoint();
    this.resuming = after?.message_id ?? null;
    let frame: ClientFrame = { type: "join" };
    if (sessionId !== null) frame = { type: "join", session_id: sessionId };
    if (sessionId !== null && after !== null) frame = { type: "join", session_id: sessionId, after };
    this.socket.send(frame);
  }

  private resumePoint(): ResumePoint | null {
    for (const answer of this.answers.values()) {
      if (!answer.gap && answer.lastSeq > 0) {
        return { message_id: answer.bubble.messageId, seq: answer.lastSeq, attempt: answer.attempt };
      }
    }
    return null;
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
        this.next(frame)?.bubble.appendText(frame.text);
        return;
      }
      case "tool_call": {
        const answer = this.next(frame);
        if (answer === null) return;
        answer.bubble.toolCall(frame.call_id, frame.tool, frame.input);
        announce(`Using the ${frame.tool} tool: ${runningLabel(frame.tool)}`);
        return;
      }
      case "tool_result": {
        const answer = this.next(frame);
        if (answer === null) return;
        const summary = answer.bubble.toolResult(frame.call_id, frame.output, frame.is_error);
        if (summary !== null) announce(summary);
        return;
      }
      case "retrying":
        return this.onRetrying(frame);
      case "queued":
        return this.onQueued(frame);
      case "resync":
        return this.onResync(frame);
      case "complete":
        return this.onComplete(frame);
      case "error":
        return this.onError(frame);
      case "session_ended":
        return this.onSessionEnded(frame);
      case "pong":
      case "heartbeat":
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
    for (const messageId of this.pendingStops) {
      if (this.answers.has(messageId)) this.socket.send({ type: "stop", message_id: messageId });
    }
    this.pendingStops.clear();
  }

  /** The conversation from history, replacing what was shown (first load, or after a
   * reconnection, when frames may have been missed). Unconfirmed messages are kept. */
  private renderHistory(messages: HistoryMessage[]): void {
    this.view.log.clear();
    const previous = this.answers;
    this.answers = new Map();
    this.finished.clear();
    let question: string | null = null;
    let asked: UserBubble | null = null;
    const arrived = new Set<string>();
    for (const message of messages) {
      if (message.role === "user") {
        question = message.text;
        arrived.add(message.text);
        asked = this.view.log.add(new UserBubble(message.text, new Date(message.created_at * 1000)));
        continue;
      }
      const id = message.message_id;
      const pending = message.status === "pending";
      const kept = previous.get(id);
      if (pending && kept !== undefined && id === this.resuming) {
        // The join asked for the rest of this answer: its partial text stays.
        this.view.log.add(kept.bubble);
        this.answers.set(id, { ...kept, question, asked });
        continue;
      }
      const createdAt = new Date(message.created_at * 1000);
      const bubble = this.view.log.add(new AssistantBubble(id, createdAt, this.loadTimeline));
      bubble.fromHistory(message, (text) => this.send(text));
      if (pending) {
        // The server replays it from its start.
        this.answers.set(id, { bubble, attempt: 1, lastSeq: 0, gap: false, question, asked });
      } else {
        this.finished.add(id);
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
    const asked = this.userBubbles.get(frame.client_message_id) ?? null;
    asked?.setStatus("sent");
    this.userBubbles.delete(frame.client_message_id);
    const answer = this.answerFor(frame.reply_message_id);
    answer.question = item?.text ?? null;
    answer.asked = asked;
    announce("The assistant is answering.");
  }

  /** The answer a frame belongs to; one started elsewhere (another tab) gets a bubble too. */
  private answerFor(messageId: string): Answer {
    let answer = this.answers.get(messageId);
    if (answer === undefined) {
      const bubble = this.view.log.add(new AssistantBubble(messageId, new Date(), this.loadTimeline));
      answer = { bubble, attempt: 1, lastSeq: 0, gap: false, question: null, asked: null };
      this.answers.set(messageId, answer);
      this.updateBusy();
    }
    return answer;
  }

  /** The answer an event continues, or null when it must not be shown: an event of an ended
   * answer, of an earlier attempt, one this page already has (a replay overlapping what it
   * saw), or one after a gap (shown by `complete`, which carries the whole text). An event of a
   * later attempt than shown starts the answer afresh. */
  private next(frame: Sequenced): Answer | null {
    if (this.finished.has(frame.message_id)) return null;
    const answer = this.answerFor(frame.message_id);
    const attempt = frame.attempt ?? 1;
    if (attempt < answer.attempt) return null;
    if (attempt > answer.attempt) this.restart(answer, attempt, null);
    if (answer.gap || frame.seq <= answer.lastSeq) return null;
    if (frame.seq !== answer.lastSeq + 1) {
      answer.gap = true;
      answer.bubble.awaitCompletion();
      return null;
    }
    answer.lastSeq = frame.seq;
    return answer;
  }

  /** Discard what is shown of an answer: it starts again as `attempt`. */
  private restart(answer: Answer, attempt: number, note: string | null): void {
    answer.attempt = attempt;
    answer.lastSeq = 0;
    answer.gap = false;
    answer.bubble.discard();
    if (note !== null) {
      answer.bubble.setNote(note, "complete");
      announce(note);
    }
  }

  private onRetrying(frame: RetryingFrame): void {
    if (this.finished.has(frame.message_id)) return;
    const answer = this.answerFor(frame.message_id);
    // Already showing this attempt (a replay repeats its `retrying`): nothing to discard.
    if (frame.attempt < answer.attempt || (frame.attempt === answer.attempt && answer.lastSeq > 0)) {
      return;
    }
    this.restart(answer, frame.attempt, frame.message || RETRYING_NOTE);
  }

  private onQueued(frame: QueuedFrame): void {
    if (this.finished.has(frame.message_id)) return;
    const answer = this.answerFor(frame.message_id);
    if (answer.lastSeq > 0) return;
    answer.bubble.setNote(QUEUED_NOTE, "content");
    announce(QUEUED_NOTE);
  }

  private onResync(frame: ResyncFrame): void {
    const id = frame.message_id;
    if (frame.message) {
      // The answer has ended: it is shown whole, from history, in place of what was shown.
      const message = frame.message;
      const bubble = new AssistantBubble(id, new Date(message.created_at * 1000), this.loadTimeline);
      const shown = this.answers.get(id)?.bubble.element ?? this.view.log.find(id);
      if (shown) shown.replaceWith(bubble.element);
      else this.view.log.add(bubble);
      bubble.fromHistory(message, (text) => this.send(text));
      this.answers.delete(id);
      this.finished.add(id);
      this.updateBusy();
      this.announceEnd(bubble, message.status, message.error_message);
      return;
    }
    if (this.finished.has(id)) return;
    const answer = this.answerFor(id);
    answer.gap = true;
    answer.bubble.discard();
    answer.bubble.setNote(RESYNC_NOTE, "complete");
    announce(RESYNC_NOTE);
  }

  private onComplete(frame: CompleteFrame): void {
    if (this.finished.has(frame.message_id)) return;
    const answer = this.answerFor(frame.message_id);
    answer.bubble.complete(frame);
    this.answers.delete(frame.message_id);
    this.finished.add(frame.message_id);
    this.updateBusy();
    this.announceEnd(answer.bubble, frame.status ?? "complete", null);
  }

  private announceEnd(bubble: AssistantBubble, status: string, error: string | null): void {
    const text = summaryForSpeech(bubble.plainText());
    if (status === "stopped") {
      announce(text ? `Stopped. The answer so far: ${text}` : "Stopped before the assistant wrote anything.");
    } else if (status === "error") {
      announceError(`The answer failed. ${error ?? ""}`.trim());
    } else {
      announce(`The assistant answered: ${text}`);
    }
  }

  private onError(frame: ErrorFrame): void {
    if (frame.message_id) {
      if (this.finished.has(frame.message_id)) return;
      const answer = this.answerFor(frame.message_id);
      if ((frame.attempt ?? answer.attempt) < answer.attempt) return;
      if (frame.code === ErrorCode.BUSY) return this.onBusy(answer, frame);
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
      this.finished.add(frame.message_id);
      this.updateBusy();
      announceError(`${errorTitle(frame.code)}. ${frame.message}`);
      return;
    }
    if (frame.client_message_id) {
      const item = this.outbox.get(frame.client_message_id);
      if (frame.code === ErrorCode.BUSY && item !== undefined) {
        this.outbox.forget(frame.client_message_id);
        this.notTaken(item.text, this.userBubbles.get(frame.client_message_id) ?? null, frame.message);
        this.userBubbles.delete(frame.client_message_id);
        return;
      }
      this.outbox.failed(frame.client_message_id);
      this.userBubbles
        .get(frame.client_message_id)
        ?.setStatus("failed", frame.message, item ? () => this.retry(item) : undefined);
      announceError(`Your message was not sent: ${frame.message}`);
      return;
    }
    if (frame.code === ErrorCode.FORBIDDEN) {
      // The remembered session is not this user's (or is gone): start a new one.
      this.sessionId = null;
      storeSessionId(null);
      this.socket.send({ type: "join" });
      return;
    }
    this.view.log.notice(frame.message);
    announceError(frame.message);
  }

  /** The session was answering another message (`BUSY_POLICY=reject`): this one was not
   * taken. Its text goes back into the message box; its empty answer goes. */
  private onBusy(answer: Answer, frame: ErrorFrame): void {
    const id = answer.bubble.messageId;
    answer.bubble.element.remove();
    this.answers.delete(id);
    this.finished.add(id);
    this.updateBusy();
    // Asked from another tab: that tab has the text; this one has nothing to put back.
    if (answer.question !== null) this.notTaken(answer.question, answer.asked, frame.message);
  }

  private notTaken(text: string, asked: UserBubble | null, reason: string): void {
    asked?.setStatus("failed", `${reason} Your message is back in the message box.`);
    this.view.restoreDraft(text);
    announceError(`Your message was not sent: ${reason} It is back in the message box.`);
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
