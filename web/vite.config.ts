// Two pages (the chat and the sign-in form), built into dist/ with their assets in dist/assets/,
// which is where the gateway serves them from.
import { resolve } from "node:path";
import tailwindcss from "@tailwindcss/vite";
import { defineConfig, type Plugin } from "vite";

// Only our own scripts and styles may run, and the page talks only to its own origin (which
// includes its WebSocket). A second line of defence behind DOMPurify. Added to built pages only:
// the dev server injects inline styles.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join("; ");

function contentSecurityPolicy(): Plugin {
  return {
    name: "content-security-policy",
    apply: "build",
    transformIndexHtml: () => [
      {
        tag: "meta",
        attrs: { "http-equiv": "Content-Security-Policy", content: CONTENT_SECURITY_POLICY },
        injectTo: "head-prepend",
      },
    ],
  };
}

// `npm run dev` serves the page with live reload and forwards the API and the WebSocket to a
// gateway started by `make run` (GATEWAY_URL to use another).
const gateway = process.env["GATEWAY_URL"] ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [tailwindcss(), contentSecurityPolicy()],
  server: {
    proxy: {
      "/api": gateway,
      "/ws": { target: gateway.replace(/^http/, "ws"), ws: true },
    },
  },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    sourcemap: true,
    target: "es2022",
    rollupOptions: {
      input: {
        chat: resolve(import.meta.dirname, "index.html"),
        login: resolve(import.meta.dirname, "login.html"),
      },
    },
  },
});
