// Assistant text as Markdown: parsed by marked, highlighted by highlight.js, sanitised by
// DOMPurify. A model's output is untrusted: raw HTML in it is shown as text, images become links
// (a remote image would be fetched, and could leak what the page shows), and DOMPurify removes
// whatever else could run.
//
// While an answer streams, `MarkdownView` re-parses only that message's text, at most once per
// animation frame, and replaces only the blocks that changed (in practice the last one): earlier
// blocks and every other message are left alone.

import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import css from "highlight.js/lib/languages/css";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import { Marked, type Token } from "marked";
import { copyToClipboard } from "./clipboard";

const LANGUAGES = { bash, css, go, java, javascript, json, markdown, python, rust, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
hljs.registerAliases(["sh", "shell", "console"], { languageName: "bash" });
hljs.registerAliases(["js"], { languageName: "javascript" });
hljs.registerAliases(["ts"], { languageName: "typescript" });
hljs.registerAliases(["html"], { languageName: "xml" });
hljs.registerAliases(["py"], { languageName: "python" });
hljs.registerAliases(["yml"], { languageName: "yaml" });

export function escapeHtml(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

function languageOf(info: string | undefined): string {
  const name = (info ?? "").trim().split(/\s+/)[0]?.toLowerCase() ?? "";
  return /^[a-z0-9_+#.-]{1,20}$/.test(name) ? name : "";
}

const marked = new Marked({
  gfm: true,
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
    image({ href, text }) {
      const label = text || href;
      return `<a href="${escapeHtml(href)}">${escapeHtml(`Image: ${label}`)}</a>`;
    },
    checkbox({ checked }) {
      return checked ? "☑ " : "☐ ";
    },
    code({ text, lang }) {
      const language = languageOf(lang);
      const body = hljs.getLanguage(language)
        ? hljs.highlight(text, { language, ignoreIllegals: true }).value
        : escapeHtml(text);
      return `<pre data-language="${escapeHtml(language)}"><code class="hljs">${body}</code></pre>`;
    },
  },
});

const PURIFY_CONFIG = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "img", "svg", "math"],
  FORBID_ATTR: ["style", "id", "tabindex"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
};

/** Sanitised DOM for a piece of HTML produced by marked. */
function sanitise(html: string): DocumentFragment {
  return DOMPurify.sanitize(html, { ...PURIFY_CONFIG, RETURN_DOM_FRAGMENT: true });
}

/** What the page adds around rendered Markdown: copy buttons, scrollable tables, safe links. */
function enhance(root: DocumentFragment): void {
  for (const link of root.querySelectorAll("a")) {
    link.target = "_blank";
    link.rel = "noopener noreferrer nofollow";
  }
  for (const table of root.querySelectorAll("table")) {
    const wrap = document.createElement("div");
    wrap.className = "table-wrap";
    wrap.tabIndex = 0; // a wide table scrolls: keyboard users must be able to reach it
    wrap.setAttribute("role", "region");
    wrap.setAttribute("aria-label", "Table");
    table.replaceWith(wrap);
    wrap.append(table);
  }
  for (const pre of root.querySelectorAll("pre")) {
    pre.tabIndex = 0;
    const block = document.createElement("div");
    block.className = "code-block";
    const bar = document.createElement("div");
    bar.className = "code-bar";
    const language = document.createElement("span");
    language.textContent = pre.dataset["language"] || "code";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "btn btn-xs btn-ghost";
    copy.innerHTML = 'Copy<span class="sr-only"> code</span>';
    copy.addEventListener("click", () => {
      void copyToClipboard(pre.textContent ?? "", copy, "code");
    });
    bar.append(language, copy);
    pre.replaceWith(block);
    block.append(bar, pre);
  }
}

/** Render Markdown into a fragment of safe DOM. */
export function renderMarkdown(text: string): DocumentFragment {
  const fragment = sanitise(marked.parse(text, { async: false }));
  enhance(fragment);
  return fragment;
}

interface Block {
  raw: string;
  nodes: Node[];
}

/** One message's Markdown, re-rendered block by block as its text grows. */
export class MarkdownView {
  readonly element: HTMLDivElement;
  private text = "";
  private blocks: Block[] = [];
  private frame: number | null = null;

  constructor() {
    this.element = document.createElement("div");
    this.element.className = "md";
  }

  get source(): string {
    return this.text;
  }

  /** Append streamed text; the DOM follows at the next animation frame. */
  append(delta: string): void {
    this.text += delta;
    if (this.frame === null) {
      this.frame = requestAnimationFrame(() => {
        this.frame = null;
        this.render();
      });
    }
  }

  /** Replace the text (history, or the authoritative text of `complete`) and render now. */
  set(text: string): void {
    this.text = text;
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    this.frame = null;
    this.render();
  }

  private render(): void {
    const tokens: Token[] = marked.lexer(this.text);
    let same = 0;
    while (
      same < tokens.length &&
      same < this.blocks.length &&
      this.blocks[same]?.raw === tokens[same]?.raw
    ) {
      same += 1;
    }
    for (const block of this.blocks.splice(same)) {
      for (const node of block.nodes) node.parentNode?.removeChild(node);
    }
    for (const token of tokens.slice(same)) {
      const fragment = sanitise(marked.parser([token]));
      enhance(fragment);
      const nodes = [...fragment.childNodes];
      this.element.append(fragment);
      this.blocks.push({ raw: token.raw, nodes });
    }
  }
}
