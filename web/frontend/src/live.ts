// The live feed (WS /api/v1/live): authenticate, subscribe, apply the stream; after any break,
// reconnect and resume after the last sequence number applied (the hub replays what was missed,
// or answers "resync" and sends a fresh snapshot). Pings are answered; a silent hub is left.
// Before the socket's token expires it gets a newer one (the hub closes it with 4401 otherwise).

import type { Api } from "./api";
import type { CaseState, CaseStore, Position } from "./store";

export type LiveState = "connecting" | "live" | "reconnecting";

interface Filters {
  areas?: string[];
  statuses?: string[];
  categories?: string[];
  sources?: string[];
  positions?: boolean;
}

type Msg =
  | { type: "welcome"; hub: string; seq: number; heartbeat_s: number; expires_in: number }
  | { type: "authed"; expires_in: number }
  | {
      type: "snapshot";
      hub: string;
      seq: number;
      cases: CaseState[];
      tombstones: Record<string, number>;
      positions: Position[];
      truncated: boolean;
    }
  | { type: "resumed"; hub: string; since: number; seq: number; replayed: number; positions: Position[] }
  | { type: "delta"; seq: number; delta: CaseState }
  | { type: "leave"; seq: number; case_id: number }
  | { type: "position"; position: Position }
  | { type: "resync"; reason: string }
  | { type: "ping"; t: number }
  | { type: "pong" }
  | { type: "error"; detail: unknown };

export class LiveFeed {
  private ws: WebSocket | null = null;
  private hub: string | null = null;
  private seq: number | null = null;
  private heartbeatMs = 15_000;
  private lastHeard = Date.now();
  private retry = 0;
  private stopped = false;
  private watchdog: number | undefined;
  private timer: number | undefined;
  private holdUntil = 0;
  private renewal: number | undefined;
  private sentToken: string | null = null;
  state: LiveState = "connecting";
  onState: (s: LiveState) => void = () => undefined;
  /** Counts for the status bar and the tests: deltas applied, resumes, resyncs. */
  readonly counters = { deltas: 0, resumed: 0, resyncs: 0, snapshots: 0 };

  constructor(
    private readonly api: Api,
    private readonly store: CaseStore,
    private readonly filters: Filters = {},
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
    this.watchdog = window.setInterval(() => {
      // A hub that sent nothing (not even a ping) for 2.5 intervals is gone: reconnect.
      if (this.ws && this.state === "live" && Date.now() - this.lastHeard > 2.5 * this.heartbeatMs) this.ws.close();
    }, 1000);
  }

  stop(): void {
    this.stopped = true;
    window.clearInterval(this.watchdog);
    this.ws?.close();
  }

  /** Break the connection as a network failure would, staying away ``holdMs`` (tests, drills). */
  drop(holdMs = 0): void {
    this.holdUntil = Date.now() + holdMs;
    this.ws?.close();
  }

  /** End a hold early: reconnect now. */
  reconnectNow(): void {
    this.holdUntil = 0;
    if (this.ws === null && !this.stopped) {
      window.clearTimeout(this.timer);
      this.connect();
    }
  }

  private setState(s: LiveState): void {
    this.state = s;
    this.onState(s);
  }

  private connect(): void {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/live`);
    this.ws = ws;
    ws.onopen = async () => {
      try {
        this.sentToken = await this.api.freshToken();
        ws.send(JSON.stringify({ type: "auth", token: this.sentToken }));
      } catch {
        ws.close();
      }
    };
    ws.onmessage = (ev: MessageEvent<string>) => {
      this.lastHeard = Date.now();
      const data = JSON.parse(ev.data) as Msg | Msg[];
      for (const m of Array.isArray(data) ? data : [data]) this.handle(ws, m);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      window.clearTimeout(this.renewal);
      if (this.stopped) return;
      this.setState("reconnecting");
      const force = ev.code === 4401; // token expired or session ended: refresh first
      const delay = Math.max(Math.min(10_000, 300 * 2 ** this.retry++), this.holdUntil - Date.now());
      this.timer = window.setTimeout(async () => {
        if (force) {
          try {
            await this.api.freshToken(true);
          } catch {
            return; // logged out
          }
        }
        if (!this.stopped) this.connect();
      }, delay);
    };
  }

  /** A minute before the socket's token expires (at half its life if shorter), send it a newer
   * token of the session: the REST client's if it has refreshed meanwhile, else a new refresh. */
  private renewBefore(ws: WebSocket, expiresIn: number): void {
    window.clearTimeout(this.renewal);
    this.renewal = window.setTimeout(
      async () => {
        if (this.ws !== ws) return;
        try {
          this.sentToken = await this.api.freshToken(this.api.token === this.sentToken);
          ws.send(JSON.stringify({ type: "auth", token: this.sentToken }));
        } catch {
          // logged out: the hub closes the socket
        }
      },
      Math.max(expiresIn / 2, expiresIn - 60) * 1000,
    );
  }

  private handle(ws: WebSocket, m: Msg): void {
    switch (m.type) {
      case "welcome":
        this.heartbeatMs = m.heartbeat_s * 1000;
        this.renewBefore(ws, m.expires_in);
        if (this.hub !== null && this.seq !== null) {
          ws.send(JSON.stringify({ type: "resume", since: this.seq, hub: this.hub, filters: this.filters }));
        } else {
          ws.send(JSON.stringify({ type: "subscribe", filters: this.filters }));
        }
        break;
      case "snapshot":
        this.hub = m.hub;
        this.seq = m.seq;
        this.counters.snapshots++;
        this.store.replace(m.cases, m.tombstones, m.positions, m.truncated);
        this.retry = 0;
        this.setState("live");
        break;
      case "resumed":
        this.hub = m.hub;
        this.counters.resumed++;
        for (const p of m.positions) this.store.position(p);
        this.retry = 0;
        this.setState("live");
        break;
      case "delta":
        this.seq = m.seq;
        if (this.store.apply(m.delta)) this.counters.deltas++;
        break;
      case "leave":
        this.seq = m.seq;
        this.store.leave(m.case_id);
        break;
      case "position":
        this.store.position(m.position);
        break;
      case "resync":
        this.counters.resyncs++; // a fresh snapshot follows
        break;
      case "authed":
        this.renewBefore(ws, m.expires_in);
        break;
      case "ping":
        ws.send(JSON.stringify({ type: "pong" }));
        break;
      case "pong":
      case "error":
        break;
    }
  }
}
