import preact from "@preact/preset-vite"
import { defineConfig } from "vite"

// Served by `conclave serve` at /console/ under `default-src 'self'`: no inline script or style, no
// asset from anywhere else, and the module-preload polyfill (an inline helper) left out.
export default defineConfig({
  base: "/console/",
  plugins: [preact({ prerender: { enabled: false } })],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    sourcemap: false,
    reportCompressedSize: false
  }
})
