// The offline queue (发送队列): every report and task action goes through it, online or not, so
// nothing typed on the phone is lost and nothing is done twice.
//
// - An item is written to IndexedDB (with its photos as Blobs) before anything is sent.
// - Its id is made once, on the phone, and is the idempotency key of its request: the CloudEvent
//   `id` of a report (the pipeline drops a repeated (source, id)), the `Idempotency-Key` header of
//   an action or a supplement (the server answers a repeat with the first answer). Sending again
//   after a lost answer is therefore always safe, and the queue simply retries until it hears back.
// - Photos are uploaded first (content-addressed by SHA-256: a re-upload is harmless) and their
//   attachments saved into the item, then the request itself.
// - Network down, 5xx, 429: the item stays and the queue retries (on `online`, on a timer with
//   back-off, on demand). A definite refusal (400/403/404/409/413/415/422) marks it failed, with
//   the server's reason, visible in the queue tab, to retry or discard.

import { Api, ApiError, type Attachment, detail, LoggedOut, NetworkDown } from "./api";
import * as idb from "./idb";

export type PhotoRole = "before" | "after" | "evidence";

interface Base {
  id: string; // the idempotency key
  createdAt: number;
  state: "pending" | "failed";
  attempts: number;
  error?: string;
  summary: string;
  photos: Blob[];
  roles: (PhotoRole | null)[]; // per photo
  uploaded: Attachment[]; // photos[0..uploaded.length) are on the server
  answer?: unknown;
}

export interface ReportItem extends Base {
  kind: "report";
  event: CloudEventDraft;
}

export interface ActionItem extends Base {
  kind: "action";
  caseId: number;
  body: { action: string; reason?: string };
}

export interface SupplementItem extends Base {
  kind: "supplement";
  caseId: number;
  note: string;
}

export type Item = ReportItem | ActionItem | SupplementItem;

export interface CloudEventDraft {
  specversion: "1.0";
  id: string;
  source: string;
  type: string;
  time: string;
  datacontenttype: "application/json";
  data: Record<string, unknown> & { attachments?: Attachment[] };
}

export interface Sent {
  id: string;
  kind: Item["kind"];
  summary: string;
  at: number;
  caseId?: number;
}

const SENT_KEY = "youhu.m.sent";
const DEFINITE = new Set([400, 403, 404, 409, 413, 415, 422]);

export function newId(): string {
  return crypto.randomUUID();
}

export class Outbox {
  private items: Item[] = [];
  private flushing: Promise<void> | null = null;
  private timer: number | undefined;
  private backoffMs = 2_000;
  needsLogin = false;
  lastError = "";
  onChange: () => void = () => undefined;
  onSent: (s: Sent) => void = () => undefined;

  constructor(private readonly api: Api) {
    window.addEventListener("online", () => this.kick());
  }

  async load(): Promise<void> {
    this.items = (await idb.all<Item>()).sort((a, b) => a.createdAt - b.createdAt);
    this.onChange();
  }

  get list(): readonly Item[] {
    return this.items;
  }

  get pending(): number {
    return this.items.filter((i) => i.state === "pending").length;
  }

  sent(): Sent[] {
    return JSON.parse(localStorage.getItem(SENT_KEY) ?? "[]") as Sent[];
  }

  /** Keep the item on the phone first, then try to send it. */
  async add(item: Item): Promise<void> {
    await idb.put(item);
    this.items.push(item);
    this.onChange();
    this.kick();
  }

  async retry(id: string): Promise<void> {
    const item = this.items.find((i) => i.id === id);
    if (!item) return;
    item.state = "pending";
    delete item.error;
    await idb.put(item);
    this.onChange();
    this.kick();
  }

  async discard(id: string): Promise<void> {
    await idb.remove(id);
    this.items = this.items.filter((i) => i.id !== id);
    this.onChange();
  }

  /** Send what is pending, now (one pass; concurrent calls share it). */
  kick(): Promise<void> {
    window.clearTimeout(this.timer);
    this.flushing ??= this.flush().finally(() => {
      this.flushing = null;
      if (this.pending > 0 && !this.needsLogin) {
        this.timer = window.setTimeout(() => void this.kick(), this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, 60_000);
      }
    });
    return this.flushing;
  }

  private async flush(): Promise<void> {
    if (!this.api.loggedIn) {
      this.needsLogin = true;
      this.onChange();
      return;
    }
    this.needsLogin = false;
    const tried = new Set<string>(); // each item once per pass; items added meanwhile join the pass
    for (;;) {
      const item = this.items.find((i) => i.state === "pending" && !tried.has(i.id));
      if (!item) break;
      tried.add(item.id);
      try {
        await this.send(item);
        this.backoffMs = 2_000;
      } catch (err) {
        if (err instanceof NetworkDown) {
          this.lastError = err.message;
          break; // no network: everything waits for it
        }
        if (err instanceof LoggedOut) {
          this.needsLogin = true;
          break;
        }
        if (err instanceof ApiError && DEFINITE.has(err.status)) {
          item.state = "failed";
          item.error = `${err.status}: ${err.message}`;
          await idb.put(item);
          continue;
        }
        this.lastError = String(err); // 5xx, 429…: try again later
        break;
      } finally {
        this.onChange();
      }
    }
  }

  private async send(item: Item): Promise<void> {
    item.attempts += 1;
    while (item.uploaded.length < item.photos.length) {
      const blob = item.photos[item.uploaded.length];
      if (!blob) break;
      item.uploaded.push(await this.api.upload(blob));
      await idb.put(item); // a restart does not upload it again
    }
    const photos = item.uploaded.map((a, i) => (item.roles[i] ? { ...a, role: item.roles[i] } : a));
    let r: Response;
    if (item.kind === "report") {
      const event = { ...item.event, data: { ...item.event.data, attachments: item.uploaded } };
      r = await this.api.request("/api/v1/events", {
        method: "POST",
        headers: { "Content-Type": "application/cloudevents+json" },
        body: JSON.stringify(event),
      });
    } else {
      const path = item.kind === "action" ? "actions" : "supplements";
      const body = item.kind === "action" ? { ...item.body, attachments: photos } : { note: item.note, attachments: photos };
      r = await this.api.request(`/api/v1/cases/${item.caseId}/${path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": item.id },
        body: JSON.stringify(body),
      });
    }
    if (!r.ok) throw new ApiError(r.status, await detail(r));
    await idb.remove(item.id);
    this.items = this.items.filter((i) => i.id !== item.id);
    const done: Sent = { id: item.id, kind: item.kind, summary: item.summary, at: Date.now() };
    if (item.kind !== "report") done.caseId = item.caseId;
    localStorage.setItem(SENT_KEY, JSON.stringify([done, ...this.sent()].slice(0, 30)));
    this.onSent(done);
  }
}
