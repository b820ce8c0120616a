// REST client: tokens from /api/v1/auth/login, refreshed before they expire (the refresh token
// rotates on every use), kept in sessionStorage so a reload does not log the operator out.

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
  district_wide: boolean;
  streets: string[];
  grids: string[];
  unit: string | null;
  permissions: string[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const KEY = "youhu.tokens";

interface Stored {
  tokens: Tokens;
  expiresAt: number;
}

export class Api {
  private stored: Stored | null = null;
  private refreshing: Promise<void> | null = null;
  onLoggedOut: () => void = () => undefined;

  constructor() {
    const raw = sessionStorage.getItem(KEY);
    if (raw) this.stored = JSON.parse(raw) as Stored;
  }

  get token(): string | null {
    return this.stored?.tokens.access_token ?? null;
  }

  get loggedIn(): boolean {
    return this.stored !== null;
  }

  private keep(tokens: Tokens): void {
    this.stored = { tokens, expiresAt: Date.now() + tokens.expires_in * 1000 };
    sessionStorage.setItem(KEY, JSON.stringify(this.stored));
  }

  async login(username: string, password: string): Promise<void> {
    const r = await fetch("/api/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    if (!r.ok) throw new ApiError(r.status, await detail(r));
    this.keep((await r.json()) as Tokens);
  }

  logout(): void {
    const token = this.token;
    if (token) void fetch("/api/v1/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
    this.stored = null;
    sessionStorage.removeItem(KEY);
    this.onLoggedOut();
  }

  /** A token valid for at least another minute (refreshing it if needed). */
  async freshToken(force = false): Promise<string> {
    const s = this.stored;
    if (!s) throw new ApiError(401, "not logged in");
    if (force || s.expiresAt - Date.now() < 60_000) {
      this.refreshing ??= this.refresh().finally(() => {
        this.refreshing = null;
      });
      await this.refreshing;
    }
    const token = this.token;
    if (!token) throw new ApiError(401, "not logged in");
    return token;
  }

  private async refresh(): Promise<void> {
    const s = this.stored;
    if (!s) return;
    const r = await fetch("/api/v1/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: s.tokens.refresh_token }),
    });
    if (!r.ok) {
      this.logout();
      throw new ApiError(401, await detail(r));
    }
    this.keep((await r.json()) as Tokens);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.raw(method, path, body);
    return (await r.json()) as T;
  }

  async blob(path: string): Promise<Blob> {
    return (await this.raw("GET", path)).blob();
  }

  private async raw(method: string, path: string, body?: unknown): Promise<Response> {
    const send = async (token: string): Promise<Response> =>
      fetch(path, {
        method,
        headers: {
          Authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? null : JSON.stringify(body),
      });
    let r = await send(await this.freshToken());
    if (r.status === 401) r = await send(await this.freshToken(true));
    if (!r.ok) throw new ApiError(r.status, await detail(r));
    return r;
  }
}

async function detail(r: Response): Promise<string> {
  try {
    const body = (await r.json()) as { detail?: unknown };
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
  } catch {
    return `${r.status} ${r.statusText}`;
  }
}
