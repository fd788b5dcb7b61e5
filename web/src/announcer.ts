// What a screen reader hears. The conversation log itself is not live (it would read every
// token); instead the page announces, politely, the moments that matter: an answer starting, a
// tool being used, an answer completed, and, assertively, errors.

let politeRegion: HTMLElement | null = null;
let assertiveRegion: HTMLElement | null = null;

export function installAnnouncer(polite: HTMLElement, assertive: HTMLElement): void {
  politeRegion = polite;
  assertiveRegion = assertive;
}

function speak(region: HTMLElement | null, text: string): void {
  if (region === null) return;
  // Emptied first, then filled on the next frame, so the same text twice is announced twice.
  region.textContent = "";
  window.setTimeout(() => {
    region.textContent = text;
  }, 50);
}

export function announce(text: string): void {
  speak(politeRegion, text);
}

export function announceError(text: string): void {
  speak(assertiveRegion, text);
}
