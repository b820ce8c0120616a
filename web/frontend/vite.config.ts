import { defineConfig } from "vite";

// The build lands in web/static/center/, which FastAPI serves at "/". Relative asset URLs keep it
// working behind a path prefix too. Nothing is loaded from a CDN: the machines are offline at run time.
export default defineConfig({
  base: "./",
  build: {
    outDir: "../static/center",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2500,
    sourcemap: false,
  },
});
