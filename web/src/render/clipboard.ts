// Copy buttons: copy, then say so on the button and to screen readers for a moment.

import { announce, announceError } from "../announcer";

export async function copyToClipboard(
  text: string,
  button: HTMLButtonElement,
  what: string,
): Promise<void> {
  const original = button.innerHTML;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
    announce(`The ${what} was copied.`);
  } catch {
    button.textContent = "Copy failed";
    announceError(`The ${what} could not be copied: the browser refused access to the clipboard.`);
  }
  window.setTimeout(() => {
    button.innerHTML = original;
  }, 2000);
}
