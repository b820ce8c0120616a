import { defineConfig, type Plugin } from "vite";

// precache.json: every file of the build, for the service worker to cache at install, so the whole
// app (including the map's worker script, which the page does not name) opens offline.
function precacheList(): Plugin {
  return {
    name: "youhu-precache-list",
    generateBundle(_options, bundle) {
      const files = Object.keys(bundle).filter((f) => f !== "sw.js" && !f.endsWith(".map"));
      this.emitFile({ type: "asset", fileName: "precache.json", source: JSON.stringify(files.sort()) });
    },
  };
}

// The build lands in web/static/mobile/, which FastAPI serves at "/m/". Two entries: the page and
// the service worker, which must keep a fixed name (sw.js) at the app's root so its scope is /m/.
// Nothing is loaded from a CDN: phones in the field are often offline.
export default defineConfig({
  base: "./",
  plugins: [precacheList()],
  define: {
    // A new build is a new service worker (byte-different), so phones pick up the new app.
    __BUILD__: JSON.stringify(new Date().toISOString()),
  },
  build: {
    outDir: "../static/mobile",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2500,
    sourcemap: false,
    rollupOptions: {
      input: { index: "index.html", sw: "src/sw.ts" }, // relative to this directory (the root)
      output: {
        entryFileNames: (chunk) => (chunk.name === "sw" ? "sw.js" : "assets/[name]-[hash].js"),
      },
    },
  },
});
