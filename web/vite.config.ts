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
  },
  worker: { format: "es" },
});
