// Two pages (the chat and the sign-in form), built into dist/ with their assets in dist/assets/,
// which is where the gateway serves them from.
import { resolve } from "node:path";
import tailwindcss from "@tailwindcss/vite";
import { defineConfig } from "vite";

// The pages' Content-Security-Policy is a response header of the gateway, defined once in
// services/gateway/chat_gateway/headers.py, not a <meta> tag here: a meta policy cannot forbid
// framing (`frame-ancestors`), and two copies would drift. The dev server sends none.

// `npm run dev` serves the page with live reload and forwards the API and the WebSocket to a
// gateway started by `make run` (GATEWAY_URL to use another).
const gateway = process.env["GATEWAY_URL"] ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [tailwindcss()],
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
