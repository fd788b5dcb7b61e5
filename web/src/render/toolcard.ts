// A tool invocation shown inline: "Checking your user info…" while it runs, then a summary; its
// toggle (a button with aria-expanded) opens the input and output.

import type { JsonObject } from "../protocol";

interface ToolWords {
  running: string;
  done: string;
  failed: string;
}

const TOOL_WORDS: Record<string, ToolWords> = {
  who_am_i: {
    running: "Checking your user info…",
    done: "Checked your user info",
    failed: "Could not check your user info",
  },
};

function wordsFor(tool: string): ToolWords {
  return (
    TOOL_WORDS[tool] ?? { running: `Using ${tool}…`, done: `Used ${tool}`, failed: `${tool} failed` }
  );
}

export function runningLabel(tool: string): string {
  return wordsFor(tool).running;
}

let counter = 0;

function jsonBlock(label: string, value: JsonObject | null): HTMLElement {
  const wrap = document.createElement("div");
  const title = document.createElement("div");
  title.className = "text-xs font-semibold uppercase tracking-wide";
  title.textContent = label;
  const pre = document.createElement("pre");
  pre.className = "code-block mt-1 !p-2 text-xs overflow-x-auto whitespace-pre-wrap break-all";
  pre.tabIndex = 0;
  pre.textContent = value === null ? "(no output yet)" : JSON.stringify(value, null, 2);
  wrap.append(title, pre);
  return wrap;
}

export class ToolCard {
  readonly element: HTMLElement;
  private readonly toggle: HTMLButtonElement;
  private readonly icon: HTMLElement;
  private readonly summary: HTMLElement;
  private readonly details: HTMLElement;
  private readonly inner: HTMLElement;
  private input: JsonObject;

  constructor(
    readonly callId: string,
    readonly tool: string,
    input: JsonObject,
  ) {
    this.input = input;
    counter += 1;
    const detailsId = `tool-details-${counter}`;
    this.element = document.createElement("div");
    this.element.className = "tool-card card card-sm border border-base-300 bg-base-100 my-1";
    this.element.dataset["tool"] = tool;
    this.element.dataset["state"] = "running";

    this.toggle = document.createElement("button");
    this.toggle.type = "button";
    this.toggle.className =
      "tool-toggle flex w-full items-center gap-2 rounded-box px-3 py-2 text-left text-sm " +
      "hover:bg-base-200 cursor-pointer";
    this.toggle.setAttribute("aria-expanded", "false");
    this.toggle.setAttribute("aria-controls", detailsId);
    this.icon = document.createElement("span");
    this.icon.setAttribute("aria-hidden", "true");
    this.summary = document.createElement("span");
    this.summary.className = "tool-summary grow";
    const name = document.createElement("code");
    name.className = "badge badge-sm badge-ghost font-mono";
    name.textContent = tool;
    const chevron = document.createElement("span");
    chevron.className = "tool-chevron";
    chevron.setAttribute("aria-hidden", "true");
    chevron.textContent = "›";
    this.toggle.append(this.icon, this.summary, name, chevron);
    this.toggle.addEventListener("click", () => this.setOpen(!this.isOpen));

    this.details = document.createElement("div");
    this.details.className = "tool-details";
    this.details.id = detailsId;
    this.details.dataset["open"] = "false";
    this.inner = document.createElement("div");
    this.details.append(this.inner);
    this.element.append(this.toggle, this.details);
    this.running();
  }

  get isOpen(): boolean {
    return this.toggle.getAttribute("aria-expanded") === "true";
  }

  setOpen(open: boolean): void {
    this.toggle.setAttribute("aria-expanded", String(open));
    this.details.dataset["open"] = String(open);
  }

  private running(): void {
    this.icon.className = "loading loading-spinner loading-xs";
    this.icon.textContent = "";
    this.summary.textContent = wordsFor(this.tool).running;
    this.fill(null);
  }

  /** The tool answered; returns the summary shown (also what is announced). */
  finish(output: JsonObject | null, isError: boolean): string {
    const words = wordsFor(this.tool);
    this.element.dataset["state"] = isError ? "error" : "done";
    this.icon.className = isError ? "text-error font-bold" : "font-bold";
    this.icon.textContent = isError ? "!" : "✓";
    this.summary.textContent = isError ? words.failed : words.done;
    this.fill(output);
    return this.summary.textContent;
  }

  private fill(output: JsonObject | null): void {
    const box = document.createElement("div");
    box.className = "space-y-2 px-3 pb-3 pt-1";
    box.append(jsonBlock("Input", this.input), jsonBlock("Output", output));
    this.inner.replaceChildren(box);
  }
}
