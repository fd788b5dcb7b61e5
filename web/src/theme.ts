// Light and dark themes: the system's preference until the user picks one with the toggle.

const THEME_KEY = "agentchat.theme";
type Theme = "light" | "dark";

function stored(): Theme | null {
  try {
    const value = localStorage.getItem(THEME_KEY);
    return value === "light" || value === "dark" ? value : null;
  } catch {
    return null;
  }
}

function systemTheme(): Theme {
  return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function apply(theme: Theme, toggle: HTMLButtonElement | null): void {
  document.documentElement.dataset["theme"] = theme;
  toggle?.setAttribute("aria-pressed", String(theme === "dark"));
}

/** Apply the theme now and wire the toggle (a button named "Dark theme", aria-pressed). */
export function installTheme(toggle: HTMLButtonElement | null): void {
  apply(stored() ?? systemTheme(), toggle);
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (stored() === null) apply(systemTheme(), toggle);
  });
  toggle?.addEventListener("click", () => {
    const next: Theme = document.documentElement.dataset["theme"] === "dark" ? "light" : "dark";
    try {
      localStorage.setItem(THEME_KEY, next);
    } catch {
      // not remembered; still applied
    }
    apply(next, toggle);
  });
}
