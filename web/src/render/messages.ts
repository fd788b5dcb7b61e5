// The conversation's DOM: the log, user and assistant bubbles (DaisyUI chat), notices.
// Each bubble owns its element; streaming touches only its own bubble.

import type { TimelineLoader } from "../api";
import type { CompleteFrame, HistoryMessage, HistoryToolCall, JsonObject } from "../protocol";
import { copyToClipboard } from "./clipboard";
import { MarkdownView } from "./markdown";
import { TimelineDisclosure } from "./timeline";
import { ToolCard } from "./toolcard";

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = "",
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function timeOf(date: Date): HTMLTimeElement {
  const time = el("time", "text-xs opacity-80 ms-2");
  time.dateTime = date.toISOString();
  time.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return time;
}

export interface Answerer {
  text: string;
  title: string;
  kind: "tool" | "scripted" | "claude" | "other";
}

/** Who answered, in words: an offline scripted answer must never look like Claude's. */
export function describeAnswerer(
  provider: string | null,
  model: string | null,
  tool: string | null,
): Answerer | null {
  if (provider === "scripted") {
    return {
      text: `Offline scripted model (${model ?? "scripted"}), not an AI`,
      title: "Generated locally by the offline scripted model: no AI model was called.",
      kind: "scripted",
    };
  }
  if (provider === "anthropic") {
    return {
      text: `Claude (${model ?? "unknown model"})`,
      title: "Answered by Anthropic's Claude.",
      kind: "claude",
    };
  }
  if (provider !== null || model !== null) {
    return {
      text: [provider, model].filter(Boolean).join(" · "),
      title: "The model that answered.",
      kind: "other",
    };
  }
  if (tool !== null) {
    return {
      text: `The ${tool} tool, no AI model`,
      title: "Answered by a tool directly: no AI model was called.",
      kind: "tool",
    };
  }
  return null;
}

// -- user messages ---------------------------------------------------------------------------

export type SendStatus = "queued" | "sending" | "sent" | "failed";

export class UserBubble {
  readonly element: HTMLElement;
  private readonly status: HTMLElement;
  /** Why it was not sent, while it is marked so. */
  failure: string | undefined;

  constructor(
    readonly text: string,
    createdAt: Date,
  ) {
    this.element = el("article", "chat chat-end");
    this.element.setAttribute("aria-label", "Your message");
    this.element.dataset["role"] = "user";
    const header = el("div", "chat-header", "You");
    header.append(timeOf(createdAt));
    const bubble = el("div", "chat-bubble chat-bubble-primary whitespace-pre-wrap break-words");
    bubble.textContent = text;
    this.status = el("div", "chat-footer text-xs");
    this.element.append(header, bubble, this.status);
  }

  setStatus(status: SendStatus, detail?: string, retry?: () => void): void {
    this.element.dataset["status"] = status;
    this.status.replaceChildren();
    if (status === "queued") this.status.textContent = "Waiting for the connection…";
    if (status === "sending") this.status.textContent = "Sending…";
    this.failure = status === "failed" ? (detail ?? "unknown error") : undefined;
    if (status === "failed") {
      const reason = el("span", "text-error font-medium", `Not sent: ${detail ?? "unknown error"}`);
      this.status.append(reason);
      if (retry !== undefined) {
        const button = el("button", "btn btn-xs btn-outline ms-2", "Retry");
        button.type = "button";
        button.addEventListener("click", retry, { once: true });
        this.status.append(button);
      }
    }
  }
}

// -- assistant messages ----------------------------------------------------------------------

export interface ErrorView {
  code: string;
  message: string;
  retry?: (() => void) | undefined;
  suggest?: ((text: string) => void) | undefined;
}

const ERROR_TITLES: Record<string, string> = {
  budget_exceeded: "Your organisation's AI budget is used up",
  llm_rate_limited: "The AI model is busy",
  llm_unavailable: "The AI model could not be reached",
  llm_error: "The AI model stopped with an error",
  tool_error: "The tool failed",
  unavailable: "The chat service is not answering",
  rate_limited: "Too many messages",
  internal: "Something went wrong on our side",
  busy: "An answer is still being written",
  failed: "This message could not be answered",
};

export function errorTitle(code: string): string {
  return ERROR_TITLES[code] ?? "Something went wrong";
}

export class AssistantBubble {
  readonly element: HTMLElement;
  readonly markdown = new MarkdownView();
  private readonly bubble: HTMLElement;
  private readonly tools: HTMLElement;
  private readonly footer: HTMLElement;
  private readonly actions: HTMLElement;
  private typing: HTMLElement | null = null;
  /** A line about the answer's progress ("Waiting for the previous answer…"), and until when. */
  private note: { element: HTMLElement; until: "content" | "complete" } | null = null;
  private readonly cards = new Map<string, ToolCard>();
  /** "Why was this slow?": shown once the answer has finished. */
  private timeline: TimelineDisclosure | null = null;

  /** `loadTimeline`: where the answer's timeline comes from (none: no timeline button). */
  constructor(
    readonly messageId: string,
    createdAt: Date,
    private readonly loadTimeline: TimelineLoader | null = null,
  ) {
    this.element = el("article", "chat chat-start");
    this.element.setAttribute("aria-label", "Assistant's answer");
    this.element.dataset["role"] = "assistant";
    this.element.dataset["messageId"] = messageId;
    this.element.dataset["state"] = "waiting";
    const header = el("div", "chat-header", "Assistant");
    header.append(timeOf(createdAt));
    this.bubble = el("div", "chat-bubble w-full max-w-[min(48rem,92%)]");
    this.tools = el("div", "tool-cards empty:hidden mb-1");
    this.bubble.append(this.tools, this.markdown.element);
    this.footer = el("div", "chat-footer flex flex-wrap items-center gap-2 text-xs");
    this.actions = el("div", "message-actions flex gap-1");
    this.element.append(header, this.bubble, this.footer);
    this.showTyping();
  }

  get state(): string {
    return this.element.dataset["state"] ?? "";
  }

  private setState(state: "waiting" | "streaming" | "done" | "stopped" | "error"): void {
    this.element.dataset["state"] = state;
  }

  private showTyping(): void {
    if (this.typing !== null) return;
    this.typing = el("span", "typing-indicator flex items-center gap-2");
    const dots = el("span", "loading loading-dots loading-sm");
    dots.setAttribute("aria-hidden", "true");
    this.typing.append(dots, el("span", "sr-only", "The assistant is answering"));
    this.bubble.append(this.typing);
  }

  private hideTyping(): void {
    this.typing?.remove();
    this.typing = null;
  }

  /** Show `text` in the bubble until its first content (`content`) or until it ends. */
  setNote(text: string, until: "content" | "complete"): void {
    this.clearNote();
    const element = el("p", "answer-note text-sm italic", text);
    this.bubble.insertBefore(element, this.tools);
    this.note = { element, until };
  }

  private clearNote(when: "content" | "complete" = "complete"): void {
    if (this.note === null || (when === "content" && this.note.until !== "content")) return;
    this.note.element.remove();
    this.note = null;
  }

  get noteText(): string | null {
    return this.note?.element.textContent ?? null;
  }

  /** Discard what was shown (a new attempt, or a part that cannot be replayed) and wait. */
  discard(): void {
    this.markdown.set("");
    this.cards.clear();
    this.tools.replaceChildren();
    this.awaitCompletion();
  }

  appendText(delta: string): void {
    this.clearNote("content");
    this.hideTyping();
    this.setState("streaming");
    this.markdown.append(delta);
  }

  /** Wait for `complete` without showing text (some tokens were missed while reconnecting). */
  awaitCompletion(): void {
    this.setState("waiting");
    this.showTyping();
  }

  toolCall(callId: string, tool: string, input: JsonObject): ToolCard {
    this.clearNote("content");
    const card = new ToolCard(callId, tool, input);
    this.cards.set(callId, card);
    this.tools.append(card.element);
    return card;
  }

  toolResult(callId: string, output: JsonObject | null, isError: boolean): string | null {
    return this.cards.get(callId)?.finish(output, isError) ?? null;
  }

  /** `finishedAt`: when it finished in this page (now), or null for an answer from history. */
  complete(
    frame: Pick<CompleteFrame, "text" | "model" | "provider" | "tool" | "status">,
    finishedAt: number | null = Date.now(),
  ): void {
    this.hideTyping();
    this.clearNote();
    this.markdown.set(frame.text);
    const stopped = frame.status === "stopped";
    if (stopped && frame.text.trim() === "") {
      this.setNote("Stopped before the assistant wrote anything.", "complete");
    }
    this.setState(stopped ? "stopped" : "done");
    this.showFooter(describeAnswerer(frame.provider, frame.model, frame.tool), finishedAt, stopped);
  }

  fail(
    error: ErrorView,
    partialText: string | null = null,
    finishedAt: number | null = Date.now(),
  ): void {
    this.hideTyping();
    this.clearNote();
    if (partialText !== null) this.markdown.set(partialText);
    this.setState("error");
    this.element.dataset["errorCode"] = error.code;
    const budget = error.code === "budget_exceeded";
    const alert = el("div", `answer-error alert ${budget ? "alert-warning" : "alert-error"} mt-2`);
    const body = el("div", "flex flex-col gap-1");
    body.append(el("p", "font-semibold", errorTitle(error.code)), el("p", "", error.message));
    const buttons = el("div", "flex flex-wrap gap-2 mt-1");
    if (budget && error.suggest !== undefined) {
      const suggest = error.suggest;
      const whoami = el("button", "btn btn-sm", "Ask “who am I”");
      whoami.type = "button";
      whoami.addEventListener("click", () => suggest("who am I"));
      buttons.append(whoami);
    }
    if (error.retry !== undefined) {
      const retry = el("button", "btn btn-sm", "Try again");
      retry.type = "button";
      retry.addEventListener("click", error.retry, { once: true });
      buttons.append(retry);
    }
    if (buttons.childElementCount > 0) body.append(buttons);
    alert.append(body);
    this.bubble.append(alert);
    this.showFooter(null, finishedAt);
  }

  private showFooter(answerer: Answerer | null, finishedAt: number | null, stopped = false): void {
    this.footer.replaceChildren();
    if (stopped) {
      const mark = el("span", "stopped-mark badge badge-sm badge-outline", "Stopped");
      mark.title = "You stopped this answer: it shows what was written until then.";
      this.footer.append(mark);
    }
    if (answerer !== null) {
      const label = el("span", "answerer", answerer.text);
      label.title = answerer.title;
      label.dataset["kind"] = answerer.kind;
      this.footer.append(label);
    }
    this.actions.replaceChildren();
    if (this.markdown.source.trim() !== "") {
      const copy = el("button", "btn btn-xs btn-ghost");
      copy.type = "button";
      copy.innerHTML = 'Copy<span class="sr-only"> answer</span>';
      copy.addEventListener("click", () => {
        void copyToClipboard(this.markdown.source, copy, "answer");
      });
      this.actions.append(copy);
    }
    this.timeline = null;
    if (this.loadTimeline !== null) {
      this.timeline = new TimelineDisclosure(this.messageId, this.loadTimeline, finishedAt);
      this.actions.append(this.timeline.button);
    }
    if (this.actions.childElementCount > 0) this.footer.append(this.actions);
    // The timeline's panel takes a line of its own, under the footer's label and buttons.
    if (this.timeline !== null) this.footer.append(this.timeline.row);
  }

  plainText(): string {
    return this.markdown.element.textContent ?? "";
  }

  fromHistory(message: HistoryMessage, suggest: (text: string) => void): void {
    for (const call of message.tool_calls) this.restoreCall(call);
    if (message.status === "pending") {
      this.awaitCompletion();
    } else if (message.status === "error") {
      this.fail(
        {
          code: message.error_code ?? "internal",
          message: message.error_message ?? "This answer failed.",
          suggest,
        },
        message.text || null,
        null,
      );
    } else {
      this.complete({ ...message, status: message.status === "stopped" ? "stopped" : "complete" }, null);
    }
  }

  private restoreCall(call: HistoryToolCall): void {
    this.toolCall(call.call_id, call.tool, call.input);
    if (call.output !== null || call.is_error) this.toolResult(call.call_id, call.output, call.is_error);
  }
}

// -- the log ---------------------------------------------------------------------------------

export class LogView {
  private pinned = true;

  constructor(
    log: HTMLElement,
    private readonly list: HTMLElement,
    private readonly emptyState: HTMLElement,
  ) {
    log.addEventListener("scroll", () => {
      this.pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 64;
    });
    // Follow new content while the reader is at the bottom; leave them be if they scrolled up.
    new MutationObserver(() => {
      if (this.pinned) log.scrollTop = log.scrollHeight;
      this.showEmptyState();
    }).observe(list, { childList: true, subtree: true, characterData: true });
  }

  private showEmptyState(): void {
    this.emptyState.hidden = this.list.childElementCount > 0;
  }

  clear(): void {
    this.list.replaceChildren();
    this.pinned = true;
    this.showEmptyState();
  }

  add<T extends { element: HTMLElement }>(item: T): T {
    this.pinned = true;
    this.list.append(item.element);
    return item;
  }

  /** The element of an assistant's answer shown in the log, if it is. */
  find(messageId: string): HTMLElement | null {
    return this.list.querySelector<HTMLElement>(`[data-message-id="${CSS.escape(messageId)}"]`);
  }

  notice(text: string, kind: "info" | "ended" = "info"): HTMLElement {
    const notice = el("div", "notice flex justify-center my-3");
    notice.dataset["kind"] = kind;
    const badge = el(
      "p",
      "rounded-box border border-base-300 bg-base-200 px-3 py-2 text-sm text-center max-w-prose",
      text,
    );
    notice.append(badge);
    this.list.append(notice);
    return notice;
  }
}
