// Task changes arrive live through the WebSocket hub (WS /api/v1/live: auth first, then subscribe);
// any case delta in the caller's scope means "look at the task lists again". When the hub cannot
// be reached the app polls instead, and keeps trying the hub with back-off. Before the socket's
// token expires it gets a newer one (the hub closes it with 4401 otherwise).

import type { Api } from "./api";

export type LiveState = "live" | "polling";

const POLL_MS = 30_000;

export class Live {
  state: LiveState = "polling";
  private ws: WebSocket | null = null;
  private retryMs = 2_000;
  private poll: number | undefined;
  private pending: number | undefined;
  private stopped = false;
  private renewal: number | undefined;
  private sentToken: string | null = null;
  onState: (s: LiveState) => void = () => undefined;

  constructor(
    private readonly api: Api,
    private readonly onChange: () => void,
  ) {}

  start(): void {
    this.poll = window.setInterval(() => {
      if (this.state !== "live") this.onChange();
    }, POLL_MS);
    void this.connect();
  }

  private set(s: LiveState): void {
    this.state = s;
    this.onState(s);
  }

  private changed(): void {
    // Deltas come in bursts (a case and its merged twin): one reload for the burst.
    window.clearTimeout(this.pending);
    this.pending = window.setTimeout(() => this.onChange(), 300);
  }

  private async connect(): Promise<void> {
    let token: string;
    try {
      token = await this.api.freshToken();
    } catch {
      window.setTimeout(() => void this.connect(), this.retryMs);
      return;
    }
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/live`);
    this.ws = ws;
    this.sentToken = token;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "auth", token }));
      ws.send(JSON.stringify({ type: "subscribe", filters: { positions: false } }));
    };
    ws.onmessage = (e) => {
      const data = JSON.parse(String(e.data)) as unknown;
      const msgs = (Array.isArray(data) ? data : [data]) as { type: string; t?: number; expires_in?: number }[];
      for (const m of msgs) {
        if (m.type === "ping") ws.send(JSON.stringify({ type: "pong", t: m.t }));
        else if ((m.type === "welcome" || m.type === "authed") && m.expires_in !== undefined)
          this.renewBefore(ws, m.expires_in);
        else if (m.type === "snapshot" || m.type === "resumed") {
          this.retryMs = 2_000;
          this.set("live");
          this.changed();
        } else if (m.type === "delta" || m.type === "leave") this.changed();
      }
    };
    ws.onclose = () => {
      this.ws = null;
      window.clearTimeout(this.renewal);
      if (this.stopped) return;
      this.set("polling");
      window.setTimeout(() => void this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 60_000);
    };
  }

  /** A minute before the socket's token expires (at half its life if shorter), send it a newer
   * token of the session: the API client's if it has refreshed meanwhile, else a new refresh. */
  private renewBefore(ws: WebSocket, expiresIn: number): void {
    window.clearTimeout(this.renewal);
    this.renewal = window.setTimeout(
      async () => {
        if (this.ws !== ws) return;
        try {
          this.sentToken = await this.api.freshToken(this.api.token === this.sentToken);
          ws.send(JSON.stringify({ type: "auth", token: this.sentToken }));
        } catch {
          // offline or logged out: the hub closes the socket and the app polls meanwhile
        }
      },
      Math.max(expiresIn / 2, expiresIn - 60) * 1000,
    );
  }

  stop(): void {
    this.stopped = true;
    window.clearInterval(this.poll);
    this.ws?.close();
  }
}
