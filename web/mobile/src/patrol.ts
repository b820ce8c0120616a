// 巡查: while on patrol the phone sends its position (POST /api/v1/positions → youhu.positions.v1)
// every 30 s, or sooner after moving 50 m (but not more often than every 5 s). Positions are not
// queued offline: a live map has no use for where someone was ten minutes ago.

import { ApiError, type Api } from "./api";
import { h } from "./dom";
import { t } from "./i18n";

const EVERY_MS = 30_000;
const MOVED_M = 50;
const MIN_GAP_MS = 5_000;
const STALE_MS = 5 * 60_000;

interface Fix {
  lon: number;
  lat: number;
  accuracy: number;
  at: number;
}

function distanceM(a: Fix, b: Fix): number {
  const k = Math.PI / 180;
  const x = (b.lon - a.lon) * k * Math.cos(((a.lat + b.lat) / 2) * k);
  const y = (b.lat - a.lat) * k;
  return Math.sqrt(x * x + y * y) * 6_371_000;
}

export class PatrolScreen {
  readonly el: HTMLElement;
  private watch: number | null = null;
  private timer: number | undefined;
  private last: Fix | null = null;
  private sent: Fix | null = null;
  private sentAt = 0;
  private count = 0;
  private readonly state: HTMLElement;
  private readonly stats: HTMLElement;
  private readonly toggle: HTMLButtonElement;

  constructor(private readonly api: Api) {
    this.state = h("p", { class: "patrol-state", "data-testid": "patrol-state" }, t("patrolOff"));
    this.stats = h("p", { class: "muted", "data-testid": "patrol-stats" });
    this.toggle = h("button", { class: "primary big", "data-testid": "patrol-toggle" }, t("patrolStart"));
    this.toggle.addEventListener("click", () => (this.watch === null ? this.start() : this.stop()));
    this.el = h("section", { class: "screen patrol", "data-testid": "patrol-screen" }, this.state, this.toggle, this.stats);
  }

  private start(): void {
    this.watch = navigator.geolocation.watchPosition(
      (p) => {
        this.last = { lon: p.coords.longitude, lat: p.coords.latitude, accuracy: p.coords.accuracy, at: p.timestamp };
        void this.maybeSend();
      },
      () => (this.stats.textContent = t("noGps")),
      { enableHighAccuracy: true, maximumAge: 5_000 },
    );
    // A phone standing still may report no new fix: the timer still sends every 30 s.
    this.timer = window.setInterval(() => void this.maybeSend(), MIN_GAP_MS);
    this.state.textContent = t("patrolOn");
    this.state.classList.add("on");
    this.toggle.textContent = t("patrolStop");
  }

  private stop(): void {
    if (this.watch !== null) navigator.geolocation.clearWatch(this.watch);
    this.watch = null;
    window.clearInterval(this.timer);
    this.state.textContent = t("patrolOff");
    this.state.classList.remove("on");
    this.toggle.textContent = t("patrolStart");
  }

  private async maybeSend(): Promise<void> {
    const fix = this.last;
    const now = Date.now();
    if (!fix || now - fix.at > STALE_MS || now - this.sentAt < MIN_GAP_MS) return;
    const due = now - this.sentAt >= EVERY_MS || (this.sent !== null && distanceM(this.sent, fix) >= MOVED_M);
    if (!due) return;
    this.sentAt = now;
    try {
      await this.api.json("/api/v1/positions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          lon: fix.lon,
          lat: fix.lat,
          at: new Date(fix.at).toISOString(),
          accuracy_m: Math.round(fix.accuracy * 10) / 10,
        }),
      });
      this.sent = fix;
      this.count += 1;
      this.stats.textContent = `${t("positionsSent")}: ${this.count} · ${t("lastFix")} ${fix.lon.toFixed(5)}, ${fix.lat.toFixed(5)}`;
      this.stats.dataset.count = String(this.count);
    } catch (err) {
      this.stats.textContent = err instanceof ApiError ? `${err.status}: ${err.message}` : t("offline");
    }
  }
}
