// "Why was this slow?": an answer's timeline, under its bubble. A button in the answer's footer
// (aria-expanded) opens a panel; the timeline is fetched the first time it opens, never before.
// The segments are the consecutive steps of the answer's path and add up to its total.

import { announce } from "../announcer";
import { loginUrl, type MessageTimeline, type TimelineLoader, type TimelineSegment } from "../api";

/** Waits before asking again while a just-finished answer's timings are still being written. */
const RETRY_DELAYS_MS = [300, 600, 1200, 2400];
/** How long after an answer finished in this page its timings may still be arriving. */
const RECENT_MS = 20_000;

interface Words {
  label: string;
  detail: string;
}

/** What a segment is called and what happened during it (Tier 1: a tool; Tier 2: a model). */
export function segmentWords(name: string, tier: number | null): Words {
  const tool = tier === 1;
  switch (name) {
    case "routing":
      return { label: "Routing", detail: "choosing who answers" };
    case "dispatch":
      return { label: "Dispatch", detail: "handing the work to a queue" };
    case "queue_wait":
      return { label: "Queue wait", detail: "until a worker was free" };
    case "preparation":
      return { label: "Preparation", detail: "loading the conversation, checking the budget" };
    case "time_to_first_output":
      return tool
        ? { label: "Tool's first output", detail: "the tool starting" }
        : { label: "Model's first token", detail: "until the model started answering" };
    case "generation":
      return tool
        ? { label: "Tool's answer", detail: "the tool finishing" }
        : { label: "Generation", detail: "the rest of the answer" };
    case "persistence":
      return { label: "Saving", detail: "writing the answer to your history" };
    default:
      return { label: name.replaceAll("_", " "), detail: "" };
  }
}

/** Milliseconds for people: one decimal below 10 ms, whole milliseconds above. */
export function formatMs(ms: number): string {
  const value = Math.abs(ms) < 10 ? ms.toFixed(1) : String(Math.round(ms));
  return `${value} ms`;
}

/** The answer is finished and saved, so its path's hops are all there. */
export function isWritten(timeline: MessageTimeline): boolean {
  return timeline.status !== "pending" && timeline.hops.some((hop) => hop.name === "persisted");
}

/** Every hop a finished answer gets has been recorded, the delivery of its first output too
 * (reported by the gateway on its own, so it may arrive just after the answer is saved). */
export function isSettled(timeline: MessageTimeline): boolean {
  const hops = new Set(timeline.hops.map((hop) => hop.name));
  return isWritten(timeline) && (!hops.has("first_output") || hops.has("first_output_delivered"));
}

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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => window.setTimeout(resolve, ms));
}

let counter = 0;

export class TimelineDisclosure {
  readonly button: HTMLButtonElement;
  /** The panel's own line in the footer (a full-width flex item, so it wraps below). */
  readonly row: HTMLElement;
  private readonly panel: HTMLElement;
  /** A timeline with every hop recorded: not fetched again. */
  private settled: MessageTimeline | null = null;
  private loading = false;

  /** `finishedAt`: when the answer finished in this page (ms), null if restored from history. */
  constructor(
    private readonly messageId: string,
    private readonly load: TimelineLoader,
    private readonly finishedAt: number | null,
  ) {
    counter += 1;
    const panelId = `timeline-${counter}`;
    this.button = el("button", "timeline-toggle btn btn-xs btn-ghost");
    this.button.type = "button";
    this.button.title = "Where this answer's time went";
    this.button.setAttribute("aria-expanded", "false");
    this.button.setAttribute("aria-controls", panelId);
    this.button.innerHTML =
      '<svg aria-hidden="true" viewBox="0 0 24 24" width="12" height="12" fill="none" ' +
      'stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round">' +
      '<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/></svg>' +
      'Timeline<span class="sr-only"> of this answer</span>';
    this.button.addEventListener("click", () => this.setOpen(!this.isOpen));

    this.panel = el(
      "div",
      "timeline-panel max-w-md rounded-box border border-base-300 bg-base-100 " +
        "p-3 text-sm text-base-content",
    );
    this.panel.id = panelId;
    this.row = el("div", "timeline-row basis-full");
    this.row.hidden = true;
    this.row.append(this.panel);
  }

  get isOpen(): boolean {
    return this.button.getAttribute("aria-expanded") === "true";
  }

  setOpen(open: boolean): void {
    this.button.setAttribute("aria-expanded", String(open));
    this.row.hidden = !open;
    if (open && this.settled === null && !this.loading) void this.fetch();
    if (open) this.reveal();
  }

  /** Scroll the panel into view, after the log has followed its own new content. */
  private reveal(): void {
    window.requestAnimationFrame(() => {
      if (!this.row.hidden) this.panel.scrollIntoView({ block: "nearest" });
    });
  }

  private recent(): boolean {
    return this.finishedAt !== null && Date.now() - this.finishedAt < RECENT_MS;
  }

  /** Fetch, and while a just-finished answer's timings are still being written, ask again. */
  private async fetch(): Promise<void> {
    this.loading = true;
    this.panel.dataset["state"] = "loading";
    this.showProgress("Loading the timeline…");
    try {
      for (let attempt = 0; ; attempt += 1) {
        const result = await this.load(this.messageId);
        const delay = this.recent() ? RETRY_DELAYS_MS[attempt] : undefined;
        if (result.kind === "ok" && isSettled(result.timeline)) {
          this.settled = result.timeline;
          return this.show(result.timeline, false);
        }
        if ((result.kind === "ok" || result.kind === "not_found") && delay !== undefined) {
          this.panel.dataset["state"] = "writing";
          this.showProgress("The timings of this answer are still being written…");
          await sleep(delay);
          continue;
        }
        switch (result.kind) {
          case "ok":
            // Written but a hop never arrived (a delivery not reported): that is final.
            if (isWritten(result.timeline)) this.settled = result.timeline;
            return this.show(result.timeline, !isWritten(result.timeline));
          case "not_found":
            return this.problem(
              "not_found",
              "There is no timeline for this answer: its timings were not recorded, or it " +
                "belongs to another account (are you signed in as someone else in another tab?).",
            );
          case "signed_out":
            return this.problem("signed_out", "You are signed out. Sign in again to see the timeline.");
          case "failed":
            return this.problem("failed", `The timeline could not be loaded. ${result.message}`);
        }
      }
    } finally {
      this.loading = false;
    }
  }

  private showProgress(text: string): void {
    const line = el("p", "flex items-center gap-2");
    const spinner = el("span", "loading loading-spinner loading-xs");
    spinner.setAttribute("aria-hidden", "true");
    line.append(spinner, el("span", "", text));
    this.panel.replaceChildren(line);
  }

  private problem(state: "not_found" | "signed_out" | "failed", text: string): void {
    this.panel.dataset["state"] = state;
    const message = el("p", "timeline-problem", text);
    this.panel.replaceChildren(message);
    this.reveal();
    if (state === "signed_out") {
      const link = el("a", "link ms-1", "Sign in");
      link.href = loginUrl();
      message.append(link);
    } else if (state === "failed") {
      this.panel.append(this.retryButton("Try again"));
    }
    announce(text);
  }

  private retryButton(text: string): HTMLButtonElement {
    const button = el("button", "btn btn-xs btn-outline mt-2", text);
    button.type = "button";
    button.addEventListener("click", () => {
      void this.fetch();
      this.button.focus();
    });
    return button;
  }

  /** The segments (a bar and a table that add up to the total) and the first-words figures. */
  private show(timeline: MessageTimeline, partial: boolean): void {
    this.panel.dataset["state"] = partial ? "partial" : "loaded";
    const total = timeline.summary.total_ms;
    const title = el("p", "timeline-title mb-2 font-semibold", "Where the time went");
    title.id = `${this.panel.id}-title`;

    const table = el("table", "timeline-table w-full text-xs sm:text-sm");
    table.setAttribute("aria-labelledby", title.id);
    const head = el("thead", "sr-only");
    const headRow = el("tr");
    headRow.append(this.headerCell("Step"), this.headerCell("Time"));
    head.append(headRow);
    const body = el("tbody");
    for (const segment of timeline.segments) body.append(this.segmentRow(segment, timeline.tier));
    const foot = el("tfoot", "border-t border-base-300 font-semibold");
    const totalRow = el("tr", "timeline-total");
    const totalLabel = el("th", "py-1 text-left", "Total");
    totalLabel.scope = "row";
    const totalText = total === null ? "–" : formatMs(total);
    totalRow.append(totalLabel, el("td", "py-1 text-right tabular-nums whitespace-nowrap", totalText));
    foot.append(totalRow);
    table.append(head, body, foot);

    const parts: Node[] = [title, this.bar(timeline.segments), table];
    const seen = this.firstWords(timeline);
    if (seen !== null) parts.push(seen);
    if (partial) {
      parts.push(
        el(
          "p",
          "timeline-note mt-2",
          "Some timings of this answer are still being written: this is what was recorded so far.",
        ),
        this.retryButton("Refresh"),
      );
    }
    if (timeline.trace_id !== null) {
      // With tracing on: the id to look the turn up in Jaeger (docs/observability.md).
      const trace = el("p", "timeline-trace mt-1 text-xs break-all", "Trace id: ");
      trace.append(el("code", "font-mono", timeline.trace_id));
      parts.push(trace);
    }
    this.panel.replaceChildren(...parts);
    this.reveal();
    announce(this.spoken(timeline));
  }

  private headerCell(text: string): HTMLTableCellElement {
    const cell = el("th", "", text);
    cell.scope = "col";
    return cell;
  }

  private segmentRow(segment: TimelineSegment, tier: number | null): HTMLTableRowElement {
    const words = segmentWords(segment.name, tier);
    const row = el("tr", "timeline-segment align-baseline");
    row.dataset["segment"] = segment.name;
    const label = el("th", "py-0.5 pe-2 text-left font-normal");
    label.scope = "row";
    const swatch = el("span", `timeline-swatch tl-${segment.name} me-1.5`);
    swatch.setAttribute("aria-hidden", "true");
    label.append(swatch, el("span", "timeline-label font-medium", words.label));
    if (words.detail !== "") {
      label.append(el("span", "timeline-detail opacity-80", ` · ${words.detail}`));
    }
    const time = el("td", "timeline-ms py-0.5 text-right tabular-nums whitespace-nowrap");
    time.textContent = formatMs(segment.ms);
    row.append(label, time);
    return row;
  }

  /** The same segments as a stacked bar: decoration for sighted readers (the table says it all). */
  private bar(segments: TimelineSegment[]): HTMLElement {
    const bar = el(
      "div",
      "timeline-bar mb-2 flex h-2.5 w-full gap-px overflow-hidden rounded-full bg-base-300",
    );
    bar.setAttribute("aria-hidden", "true");
    for (const segment of segments) {
      const part = el("span", `tl-${segment.name} h-full min-w-0.5`);
      // CSSOM, not a style attribute: allowed by the page's Content-Security-Policy.
      part.style.flex = `${Math.max(segment.ms, 0)} 1 0`;
      bar.append(part);
    }
    return bar;
  }

  private firstWords(timeline: MessageTimeline): HTMLElement | null {
    const { first_output_seen_ms: seen, delivery_lag_ms: lag } = timeline.summary;
    if (seen === null && lag === null) return null;
    const line = el("p", "timeline-first-words mt-2 text-xs");
    const what = timeline.tier === 1 ? "The tool's first output" : "The first words";
    const parts = [];
    if (seen !== null) parts.push(`${what} reached your screen after ${formatMs(seen)}`);
    if (lag !== null) parts.push(`delivery lag (worker to your screen) ${formatMs(lag)}`);
    line.textContent = `${parts.join("; ")}.`;
    return line;
  }

  private spoken(timeline: MessageTimeline): string {
    const { total_ms: total, queue_wait_ms: queue, time_to_first_token_ms: ttft, delivery_lag_ms: lag } =
      timeline.summary;
    const parts: string[] = [];
    if (queue !== null) parts.push(`queue wait ${formatMs(queue)}`);
    if (ttft !== null) parts.push(`model's first token ${formatMs(ttft)}`);
    if (lag !== null) parts.push(`delivery lag ${formatMs(lag)}`);
    const head = `Timeline loaded: total ${total === null ? "not known yet" : formatMs(total)}`;
    return parts.length === 0 ? `${head}.` : `${head}; ${parts.join(", ")}.`;
  }
}
