// The service worker: the app shell (page, scripts, styles, icons) from the phone's cache when
// the network is gone, so the app opens in a dead zone and the queue (IndexedDB) is there. API
// calls are never cached here: the queue handles writes, and the app keeps the last task lists
// and the taxonomy itself.
//
// Strategy: the page is network-first (a new build shows as soon as it is reachable), the hashed
// assets cache-first (a hash never changes content). Each build is a new worker (__BUILD__), which
// drops the caches of older builds when it activates.

interface ExtendableEvt extends Event {
  waitUntil(p: Promise<unknown>): void;
}
interface FetchEvt extends ExtendableEvt {
  readonly request: Request;
  respondWith(r: Promise<Response> | Response): void;
}
interface WorkerScope {
  addEventListener(type: "install" | "activate", fn: (e: ExtendableEvt) => void): void;
  addEventListener(type: "fetch", fn: (e: FetchEvt) => void): void;
  skipWaiting(): Promise<void>;
  readonly clients: { claim(): Promise<void> };
  readonly registration: { readonly scope: string };
}

const sw = self as unknown as WorkerScope;
const CACHE = `youhu-m-${__BUILD__}`;
const SCOPE = new URL(sw.registration.scope);
const SHELL = ["./", "./manifest.webmanifest", "./icon.svg", "./icon-192.png", "./icon-512.png"];

async function precache(): Promise<void> {
  const cache = await caches.open(CACHE);
  await cache.addAll(SHELL.map((u) => new URL(u, SCOPE).href));
  // Every file of this build (written by the build: vite.config.ts), hashed names included.
  const list = await fetch(new URL("./precache.json", SCOPE).href, { cache: "no-store" });
  const files = list.ok ? ((await list.json()) as string[]) : [];
  await cache.addAll(files.filter((f) => f !== "index.html").map((f) => new URL(f, SCOPE).href));
}

sw.addEventListener("install", (e) => {
  e.waitUntil(precache().then(() => sw.skipWaiting()));
});

sw.addEventListener("activate", (e) => {
  e.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("youhu-m-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => sw.clients.claim()),
  );
});

async function networkFirst(req: Request): Promise<Response> {
  const cache = await caches.open(CACHE);
  try {
    const fresh = await fetch(req);
    if (fresh.ok) await cache.put(req, fresh.clone());
    return fresh;
  } catch {
    const hit = (await cache.match(req)) ?? (await cache.match(new URL("./", SCOPE).href));
    return hit ?? Response.error();
  }
}

async function cacheFirst(req: Request): Promise<Response> {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(req);
  if (hit) return hit;
  const fresh = await fetch(req);
  if (fresh.ok) await cache.put(req, fresh.clone());
  return fresh;
}

sw.addEventListener("fetch", (e) => {
  const req = e.request;
  const url = new URL(req.url);
  // Only the app's own files: the API (and everything else) goes to the network untouched.
  if (req.method !== "GET" || url.origin !== SCOPE.origin || !url.pathname.startsWith(SCOPE.pathname)) return;
  if (req.mode === "navigate" || url.pathname === SCOPE.pathname || url.pathname.endsWith("/index.html")) {
    e.respondWith(networkFirst(req));
  } else {
    e.respondWith(cacheFirst(req));
  }
});
