// REST client of the app. Tokens are kept in localStorage (not sessionStorage like the command
// center): an inspector who closes the app in a dead zone must still be able to send the queue
// later without typing the password again. The refresh token rotates on every use.

export interface Tokens {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

export interface Me {
  id: number;
  username: string;
  role: string;
  actor: string;
  grids: string[];
  unit: string | null;
  permissions: string[];
}

export interface Attachment {
  sha256: string;
  url: string;
  content_type: string;
}

export interface CaseOut {
  id: number;
  status: string;
  category: string | null;
  title: string;
  address: string | null;
  priority: string;
  reported_at: string;
  lon: number | null;
  lat: number | null;
  sources: string[];
  unit: string | null;
  grid_code: string | null;
  deadline_at: string | null;
  rework_count: number;
  distance_m?: number;
}

/** The server answered (with a status); `NetworkDown` is thrown when it could not be reached. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class NetworkDown extends Error {}

/** The refresh token was refused: a person must log in again (the queue waits meanwhile). */
export class LoggedOut extends Error {}

const KEY = "youhu.m.session";

interface Stored {
  tokens: Tokens;
  expiresAt: number;
  me: Me | null;
}

export async function detail(r: Response): Promise<string> {
  try {
    const body = (await r.json()) as { detail?: unknown };
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
  } catch {
    return `${r.status} ${r.statusText}`;
  }
}

async function reach(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    throw new NetworkDown(String(err));
  }
}

export class Api {
  private stored: Stored | null = null;
  private refreshing: Promise<void> | null = null;
  onLoggedOut: () => void = () => undefined;

  constructor() {
    const raw = localStorage.getItem(KEY);
    if (raw) this.stored = JSON.parse(raw) as Stored;
  }

  get token(): string | null {
    return this.stored?.tokens.access_token ?? null;
  }

  get loggedIn(): boolean {
    return this.stored !== null;
  }

  get me(): Me | null {
    return this.stored?.me ?? null;
  }

  private save(): void {
    if (this.stored) localStorage.setItem(KEY, JSON.stringify(this.stored));
    else localStorage.removeItem(KEY);
  }

  private keep(tokens: Tokens): void {
    this.stored = { tokens, expiresAt: Date.now() + tokens.expires_in * 1000, me: this.stored?.me ?? null };
    this.save();
  }

  async login(username: string, password: string): Promise<void> {
    const r = await reach("/api/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    if (!r.ok) throw new ApiError(r.status, await detail(r));
    this.stored = null;
    this.keep((await r.json()) as Tokens);
    await this.loadMe();
  }

  async loadMe(): Promise<Me> {
    const me = await this.json<Me>("/api/v1/auth/me");
    if (this.stored) {
      this.stored.me = me;
      this.save();
    }
    return me;
  }

  logout(): void {
    const token = this.token;
    if (token)
      void fetch("/api/v1/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } }).catch(
        () => undefined,
      );
    this.stored = null;
    this.save();
    this.onLoggedOut();
  }

  /** A token valid for at least another minute (refreshing it when needed). */
  async freshToken(force = false): Promise<string> {
    if (!this.stored) throw new LoggedOut("not logged in");
    if (force || Date.now() > this.stored.expiresAt - 60_000) {
      this.refreshing ??= this.refresh().finally(() => (this.refreshing = null));
      await this.refreshing;
    }
    return this.stored.tokens.access_token;
  }

  private async refresh(): Promise<void> {
    if (!this.stored) throw new LoggedOut("not logged in");
    const r = await reach("/api/v1/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: this.stored.tokens.refresh_token }),
    });
    if (r.status === 401) {
      // The session ended (expired, revoked or re-used): the person logs in again; the queue stays.
      this.stored = null;
      this.save();
      this.onLoggedOut();
      throw new LoggedOut(await detail(r));
    }
    if (!r.ok) throw new ApiError(r.status, await detail(r));
    this.keep((await r.json()) as Tokens);
  }

  /** fetch with the access token; one retry after a refresh when the token was refused. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.freshToken(attempt > 0);
      const headers = new Headers(init.headers);
      headers.set("Authorization", `Bearer ${token}`);
      const r = await reach(path, { ...init, headers });
      if (r.status === 401 && attempt === 0) continue;
      return r;
    }
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const r = await this.request(path, init);
    if (!r.ok) throw new ApiError(r.status, await detail(r));
    return (await r.json()) as T;
  }

  async upload(photo: Blob): Promise<Attachment> {
    const form = new FormData();
    form.append("file", photo, "photo.jpg");
    const up = await this.json<Attachment>("/api/v1/uploads", { method: "POST", body: form });
    // Absolute: the forwarded record and write-backs reach systems that do not know our origin.
    return { sha256: up.sha256, url: new URL(up.url, location.origin).href, content_type: up.content_type };
  }
}
