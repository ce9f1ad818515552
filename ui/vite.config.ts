import { defineConfig } from "vitest/config";

// `npm run build` makes ui/dist for the app. `--mode mock` makes ui/dist-mock: the same UI with
// canned data instead of the monitor, for looking at the pages in a plain browser.
export default defineConfig(({ mode }) => ({
  // Relative asset paths: the app serves ui/dist from its own origin, never from a server root.
  base: "./",
  // The window's words are the repository's locales/*.ftl (issue 25), one folder above ui/.
  server: { fs: { allow: [".."] } },
  build: {
    outDir: mode === "mock" ? "dist-mock" : "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    rollupOptions: {
      input: mode === "mock" ? "mock.html" : "index.html",
    },
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./test/setup.ts"],
    include: ["test/**/*.test.tsx", "test/**/*.test.ts"],
  },
}));
