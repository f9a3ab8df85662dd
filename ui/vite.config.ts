import { defineConfig } from "vite";

// The page is served from the app binary (Tauri's custom protocol): no dev
// server, relative asset paths, and a target WebKitGTK 2.40+ understands.
export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { target: "safari15", outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 200 },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
} as any);
