import { defineConfig } from "vite";

// The build is served by the wardline binary under a CSP of
// `script-src 'self' 'wasm-unsafe-eval'`: no inline script, so module
// preload polyfills (inline) are off, and every asset is a file of its own.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    target: "es2022",
    // The service worker is its own entry at /sw.js (its scope is the
    // whole app); everything else is hashed under /assets/.
    rollupOptions: {
      input: { index: "index.html", sw: "src/sw.ts" },
      output: {
        entryFileNames: (chunk) => (chunk.name === "sw" ? "sw.js" : "assets/[name]-[hash].js"),
      },
    },
  },
  worker: { format: "es" },
});
