// The case panel: what the case is, where it came from (source records), what happened to it
// (timeline, photos), whether it may be a duplicate, what the source systems were told (write-back
// deliveries) and what the operator can do now. Another operator's action arrives as a delta and
// refreshes the panel in place; delivery states change without a delta (the worker acknowledges
// later), so they are also polled while something is on its way.

import { type Api, ApiError, type Me } from "./api";
import {
  ACTION,
  ATTENTION,
  DELIVERY_STAGE,
  DELIVERY_STATE,
  label,
  PHOTO_STAGE,
  PRIORITY,
  RETURN_REASONS,
  SOURCE,
  STATUS,
  t,
} from "./i18n";
import { countdown, el, when } from "./format";
import type { CaseState, CaseStore } from "./store";

// The lifecycle (dispatch/lifecycle.py RULES) and who may act (dispatch/access.py ROLE_ACTIONS):
// only offered here; the server decides and answers 403/409 otherwise.
const FROM: Record<string, string[]> = {
  register: ["reported"],
  reject: ["reported"],
  dispatch: ["registered", "returned"],
  acknowledge: ["dispatched"],
  return: ["dispatched", "in_progress"],
  handle: ["in_progress"],
  verify_pass: ["handled"],
  verify_fail: ["handled"],
  close: ["verified"],
  suspend: ["registered", "dispatched", "in_progress"],
  resume: ["suspended"],
  merge: ["reported", "registered"],
  unmerge: ["merged"],
  escalate: ["reported", "registered", "dispatched", "in_progress", "handled", "verified", "returned"],
  request_extension: ["dispatched", "in_progress"],
  approve_extension: ["dispatched", "in_progress"],
  deny_extension: ["dispatched", "in_progress"],
};
const OPERATOR = [
  "register",
  "reject",
  "dispatch",
  "handle",
  "verify_pass",
  "verify_fail",
  "close",
  "suspend",
  "resume",
  "merge",
  "unmerge",
  "approve_extension",
  "deny_extension",
];
const ROLE_ACTIONS: Record<string, string[]> = {
  inspector: ["verify_pass", "verify_fail"],
  operator: OPERATOR,
  supervisor: [...OPERATOR, "escalate"],
  unit_staff: ["acknowledge", "return", "handle", "request_extension"],
  leader: ["escalate"],
  admin: Object.keys(FROM),
};
const NEEDS_REASON = new Set(["reject", "return", "verify_fail", "suspend", "merge", "escalate", "request_extension", "deny_extension", "unmerge"]);
// Replaying a failed delivery needs this permission (web/access_policy.py).
const REPLAY_PERMISSION = "deliveries.manage";
// After a delta the planner may still be writing the deliveries it causes: look again for a while.
const DELTA_WATCH_MS = 10_000;
const POLL_SOON_MS = 1_500;
const POLL_INFLIGHT_MS = 4_000;

type PanelCase = CaseState & { address?: string | null; reported_at?: string | null };

interface TimelineLine {
  at: string;
  actor: string;
  action: string;
  from_status: string | null;
  to_status: string | null;
  reason: string | null;
  detail: Record<string, unknown>;
}

/** An `attachments` entry (dispatch/event_data.py Attachment; actions add `role`). */
interface Attachment {
  sha256?: string;
  url: string;
  content_type?: string | null;
  role?: string | null;
}

interface SourceRecord {
  id: number;
  source_system: string;
  source_record_id: string;
  source_category: { code?: string; label?: string };
  received_at: string;
  original_case_id: number | null;
  record: { attachments?: Attachment[]; native?: { photos_unhashed?: unknown } };
}

type DeliveryState = "pending" | "sent" | "acknowledged" | "failed";

interface Delivery {
  id: number;
  destination: string;
  record_id: string;
  kind: "writeback" | "forward";
  stage: string;
  state: DeliveryState;
  reason: string | null;
  attempts: number;
  http_status: number | null;
  created_at: string;
  next_attempt_at: string;
  last_attempt_at: string | null;
  acknowledged_at: string | null;
  failed_at: string | null;
  replays: number;
}

interface DestinationState {
  destination: string;
  record_id: string;
  state: DeliveryState;
  counts: Record<string, number>;
  last_stage: string;
  reason: string | null;
}

interface CaseDeliveries {
  destinations: DestinationState[];
  deliveries: Delivery[];
}

/** A photo of the case: where it is shown from and which moment of the case it shows. */
interface Photo {
  key: string;
  stage: string; // a PHOTO_STAGE code, or the timeline action it came with
  at: string;
  actor: string;
  url: string;
  upload: string | null; // our own upload's path (needs the token), else an external URL
}

// Our uploads are content-addressed (web/uploads_api.py): the name is the SHA-256 of the bytes.
// The app writes them as absolute URLs (they go to other systems too), so the host may differ from
// this page's; the same name on this server is the same photo.
const UPLOAD_PATH = /\/api\/v1\/uploads\/([0-9a-f]{64})\.(jpg|png|webp)$/;

function uploadPath(a: Attachment): string | null {
  let path: string;
  try {
    path = new URL(a.url, location.origin).pathname;
  } catch {
    return null;
  }
  const m = UPLOAD_PATH.exec(path);
  if (!m || (a.sha256 && a.sha256 !== m[1])) return null;
  return `/api/v1/uploads/${m[1]}.${m[2]}`;
}

/** Which moment a photo shows: the role the app gave it, else what the action was. */
function photoStage(action: string, role: string | null | undefined): string {
  if (role === "before" || role === "after") return role;
  if (action === "verify_pass" || action === "verify_fail") return "verify";
  if (action === "handle") return "after";
  if (action === "supplement") return "supplement";
  if (action === "reported") return "reported";
  return role === "evidence" ? "verify" : action;
}

function stageLabel(stage: string): string {
  return PHOTO_STAGE[stage] ? label(PHOTO_STAGE, stage) : label(ACTION, stage);
}

function fill(template: string, vars: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (_, k: string) => String(vars[k] ?? ""));
}

function isUrl(x: unknown): x is string {
  return typeof x === "string" && /^https?:\/\//.test(x);
}

interface Loaded {
  id: number;
  timeline: TimelineLine[] | null;
  sources: SourceRecord[] | null;
  deliveries: CaseDeliveries | null;
}

export class CasePanel {
  private caseId: number | null = null;
  private readonly extra = new Map<number, { address: string | null; reported_at: string | null }>();
  private readonly body: HTMLDivElement;
  private readonly lightbox: Lightbox;
  // What was last loaded for the case shown: sections render from it, so a re-render (a delta, the
  // address arriving) never blanks a section while its fresh copy is on the way.
  private data: Loaded = { id: -1, timeline: null, sources: null, deliveries: null };
  // Each load takes a ticket; an answer older than one already shown is dropped.
  private readonly tickets = { timeline: 0, sources: 0, deliveries: 0 };
  private readonly shown = { timeline: 0, sources: 0, deliveries: 0 };
  private sec: Record<"duplicates" | "sources" | "photos" | "deliveries" | "timeline", HTMLElement> | null = null;
  private current: PanelCase | null = null;
  // Photos fetched with the token, as blob: URLs; revoked when the panel leaves the case.
  private readonly blobs = new Map<string, Promise<string | null>>();
  private readonly titles = new Map<number, Promise<string | null>>();
  // Open cases listed as possibly duplicating the case shown (to notice when they are settled).
  private duplicatedBy = new Set<number>();
  private pollTimer: number | undefined;
  private readonly unfolded = new Map<string, boolean>(); // destination record → open, as the operator left it
  private pollUntil = 0;
  /** Opening another case from the panel (a duplicate's link); main.ts also centres the map. */
  onOpenCase: (caseId: number) => void = (id) => this.show(id);

  constructor(
    private readonly root: HTMLElement,
    private readonly api: Api,
    private readonly me: Me,
    private readonly store: CaseStore,
    private readonly categoryName: (code: string | null) => string,
  ) {
    this.body = el("div", { class: "panel-body" });
    const closeBtn = el("button", { class: "close", "data-testid": "panel-close" }, "×");
    closeBtn.addEventListener("click", () => this.hide());
    root.append(closeBtn, this.body);
    this.lightbox = new Lightbox();
    store.onChange((changed) => {
      if (this.caseId === null) return;
      if (changed === null || changed.includes(this.caseId)) {
        void this.render(true);
        this.watchDeliveries(this.caseId, DELTA_WATCH_MS);
      } else if (changed.some((id) => this.duplicatedBy.has(id) || this.store.cases.get(id)?.possible_duplicate_of === this.caseId)) {
        // A report that may duplicate the case shown came or was settled: only that list changes.
        this.fillDuplicates();
      }
    });
    window.setInterval(() => {
      const cd = this.body.querySelector<HTMLElement>(".cd");
      if (cd) cd.textContent = countdown(cd.dataset.deadline || null, Date.now());
    }, 1000);
  }

  show(caseId: number): void {
    if (caseId !== this.caseId) this.leave();
    this.caseId = caseId;
    this.root.classList.add("open");
    this.root.scrollTop = 0;
    void this.render(true);
    this.watchDeliveries(caseId, 0);
    // Deltas carry the state, not the report's address and time: read those once.
    if (!this.extra.has(caseId)) {
      void this.fetchCase(caseId).then((c) => {
        if (!c) return;
        this.extra.set(caseId, { address: c.address ?? null, reported_at: c.reported_at ?? null });
        if (this.caseId === caseId) void this.render(false);
      });
    }
  }

  hide(): void {
    this.leave();
    this.caseId = null;
    this.root.classList.remove("open");
  }

  /** Forget the case shown: its photos' blob URLs, its loaded sections, its polling. */
  private leave(): void {
    window.clearTimeout(this.pollTimer);
    this.pollUntil = 0;
    this.lightbox.close();
    for (const p of this.blobs.values()) void p.then((u) => u && URL.revokeObjectURL(u));
    this.blobs.clear();
    this.data = { id: -1, timeline: null, sources: null, deliveries: null };
    this.current = null;
    this.unfolded.clear();
  }

  private async render(reload: boolean): Promise<void> {
    const id = this.caseId;
    if (id === null) return;
    const known = this.store.cases.get(id) ?? (await this.fetchCase(id));
    if (this.caseId !== id) return;
    if (!known) {
      // Outside the caller's scope (a duplicate in the next street) or gone: say so.
      this.sec = null;
      this.body.replaceChildren(
        el("h2", { "data-testid": "panel-title" }, `#${id}`),
        el("p", { class: "muted", "data-testid": "panel-missing" }, t("caseUnavailable")),
      );
      return;
    }
    const c: PanelCase = { ...known, ...this.extra.get(id) };
    this.current = c;
    if (this.data.id !== id) this.data = { id, timeline: null, sources: null, deliveries: null };
    this.sec = {
      duplicates: el("section", { class: "duplicates", "data-testid": "panel-duplicate" }),
      sources: el("ul", { class: "sources", "data-testid": "panel-sources" }),
      photos: el("div", { class: "photos", "data-testid": "panel-photos" }),
      deliveries: el("div", { class: "deliveries", "data-testid": "panel-deliveries" }),
      timeline: el("ol", { class: "timeline", "data-testid": "panel-timeline" }),
    };
    this.body.replaceChildren(
      el("h2", { "data-testid": "panel-title" }, `#${c.case_id} ${c.title}`),
      el("div", { class: `badge big status-${c.status}`, "data-testid": "panel-status" }, label(STATUS, c.status)),
      this.details(c),
      this.sec.duplicates,
      el("h3", {}, t("actions")),
      this.actions(c),
      el("h3", {}, t("photos")),
      this.sec.photos,
      el("h3", {}, t("sources")),
      this.sec.sources,
      el("h3", {}, t("deliveries")),
      this.sec.deliveries,
      el("h3", {}, t("timeline")),
      this.sec.timeline,
    );
    this.fillDuplicates();
    this.fillSources();
    this.fillPhotos();
    this.fillDeliveries();
    this.fillTimeline();
    if (reload || this.data.timeline === null) {
      void this.load(id, "timeline", `/api/v1/cases/${id}/timeline`);
      void this.load(id, "sources", `/api/v1/cases/${id}/sources`);
      void this.loadDeliveries(id);
    }
  }

  private async load(id: number, kind: "timeline" | "sources", path: string): Promise<void> {
    const ticket = ++this.tickets[kind];
    let got: unknown;
    try {
      got = await this.api.request<unknown>("GET", path);
    } catch {
      return; // the next delta or opening tries again
    }
    if (this.caseId !== id || this.data.id !== id || ticket < this.shown[kind]) return;
    this.shown[kind] = ticket;
    if (kind === "timeline") {
      this.data.timeline = got as TimelineLine[];
      this.fillTimeline();
      this.fillDuplicates(); // the similarity score is in the timeline
    } else {
      this.data.sources = got as SourceRecord[];
      this.fillSources();
    }
    this.fillPhotos();
  }

  private async loadDeliveries(id: number): Promise<void> {
    const ticket = ++this.tickets.deliveries;
    let got: CaseDeliveries;
    try {
      got = await this.api.request<CaseDeliveries>("GET", `/api/v1/cases/${id}/deliveries`);
    } catch {
      return;
    }
    if (this.caseId !== id || this.data.id !== id || ticket < this.shown.deliveries) return;
    this.shown.deliveries = ticket;
    this.data.deliveries = got;
    this.fillDeliveries();
  }

  /** Poll the deliveries for ``windowMs`` more, and for as long as any is on its way. */
  private watchDeliveries(id: number, windowMs: number): void {
    this.pollUntil = Math.max(this.pollUntil, Date.now() + windowMs);
    this.schedulePoll(id);
  }

  private schedulePoll(id: number): void {
    window.clearTimeout(this.pollTimer);
    if (this.caseId !== id) return;
    const soon = Date.now() < this.pollUntil;
    const inflight = (this.data.deliveries?.deliveries ?? []).some((d) => d.state === "pending" || d.state === "sent");
    if (!soon && !inflight) return;
    this.pollTimer = window.setTimeout(
      () => void this.loadDeliveries(id).finally(() => this.schedulePoll(id)),
      soon ? POLL_SOON_MS : POLL_INFLIGHT_MS,
    );
  }

  private async fetchCase(id: number): Promise<PanelCase | null> {
    try {
      const r = await this.api.request<Record<string, unknown>>("GET", `/api/v1/cases/${id}`);
      return {
        case_id: r.id as number,
        delta_id: 0,
        status: r.status as string,
        category: r.category as string | null,
        category_group: null,
        priority: r.priority as string,
        unit: r.unit as string | null,
        street: r.street_code as string | null,
        community: r.community_code as string | null,
        grid: r.grid_code as string | null,
        attention: r.attention as string | null,
        merged_into: r.merged_into as number | null,
        possible_duplicate_of: r.possible_duplicate_of as number | null,
        deadline_kind: r.deadline_kind as string | null,
        deadline_at: r.deadline_at as string | null,
        handle_deadline_at: r.handle_deadline_at as string | null,
        title: r.title as string,
        address: r.address as string | null,
        reported_at: r.reported_at as string,
        lon: r.lon as number | null,
        lat: r.lat as number | null,
        sources: r.sources as string[],
      };
    } catch {
      return null;
    }
  }

  /** Another case's title for a link: from the live picture, else asked once. */
  private titleOf(id: number): Promise<string | null> {
    const live = this.store.cases.get(id);
    if (live) return Promise.resolve(live.title);
    let p = this.titles.get(id);
    if (!p) {
      p = this.fetchCase(id).then((c) => c?.title ?? null);
      this.titles.set(id, p);
    }
    return p;
  }

  private caseLink(id: number, testid: string): HTMLAnchorElement {
    const a = el("a", { href: "#", class: "case-link", "data-testid": testid, "data-case-id": String(id) }, `#${id}`);
    a.addEventListener("click", (e) => {
      e.preventDefault();
      this.onOpenCase(id);
    });
    void this.titleOf(id).then((title) => {
      if (title) a.textContent = `#${id} ${title}`;
    });
    return a;
  }

  private details(c: PanelCase): HTMLElement {
    const rows: [string, Node | string][] = [
      [t("category"), this.categoryName(c.category)],
      [t("priority"), label(PRIORITY, c.priority)],
      [t("unit"), c.unit ?? "—"],
      [t("area"), [c.street, c.community, c.grid].filter(Boolean).join(" / ") || "—"],
      [t("address"), c.address ?? "—"],
      [t("reported"), when(c.reported_at)],
      [t("deadline"), el("span", { class: "cd", "data-deadline": c.deadline_at ?? "" }, countdown(c.deadline_at, Date.now()))],
    ];
    if (c.attention) rows.push([t("attention"), label(ATTENTION, c.attention)]);
    if (c.merged_into) rows.push([t("mergedInto"), this.caseLink(c.merged_into, "merged-into-link")]);
    return el("dl", { class: "details" }, ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  private allowed(c: PanelCase, action: string): boolean {
    return (ROLE_ACTIONS[this.me.role] ?? []).includes(action) && (FROM[action] ?? []).includes(c.status);
  }

  private actions(c: PanelCase): HTMLElement {
    const box = el("div", { class: "actions", "data-testid": "panel-actions" });
    const form = el("div", { class: "action-form" });
    for (const action of Object.keys(FROM).filter((a) => this.allowed(c, a))) {
      const btn = el("button", { "data-action": action }, label(ACTION, action));
      // A merge most likely goes into the case the pipeline suspected: offer it.
      const preset = action === "merge" && c.possible_duplicate_of ? { mergeInto: c.possible_duplicate_of } : {};
      btn.addEventListener("click", () => this.openForm(form, c, action, preset));
      box.append(btn);
    }
    box.append(form);
    return box;
  }

  private openForm(form: HTMLElement, c: PanelCase, action: string, preset: { reason?: string; mergeInto?: number } = {}): void {
    const fields: HTMLElement[] = [];
    const reason = el("input", { name: "reason", placeholder: t("reason") });
    reason.value = preset.reason ?? "";
    const kind = el("select", { name: "return_reason" });
    kind.append(...Object.keys(RETURN_REASONS).map((k) => el("option", { value: k }, label(RETURN_REASONS, k))));
    const mergeInto = el("input", { name: "merge_into", type: "number", placeholder: t("mergeInto") });
    if (preset.mergeInto) mergeInto.value = String(preset.mergeInto);
    const unit = el("input", { name: "unit", placeholder: t("unitOptional") });
    if (NEEDS_REASON.has(action) || preset.reason) fields.push(reason);
    if (action === "return") fields.push(kind);
    if (action === "merge") fields.push(mergeInto);
    if (action === "dispatch") fields.push(unit);
    const submit = el("button", { class: "primary", "data-testid": "action-submit" }, `${label(ACTION, action)} · ${t("submit")}`);
    const result = el("div", { class: "result", "data-testid": "action-result" });
    submit.addEventListener("click", async () => {
      submit.setAttribute("disabled", "");
      const body: Record<string, unknown> = { action };
      if (reason.value.trim()) body.reason = reason.value.trim();
      if (action === "return") body.return_reason = kind.value;
      if (action === "merge" && mergeInto.value) body.merge_into = Number(mergeInto.value);
      if (action === "dispatch" && unit.value.trim()) body.unit = unit.value.trim();
      try {
        await this.api.request("POST", `/api/v1/cases/${c.case_id}/actions`, body);
        result.textContent = t("done");
        result.className = "result ok";
      } catch (err) {
        result.textContent = t("failed") + (err instanceof ApiError ? err.message : String(err));
        result.className = "result error";
      } finally {
        submit.removeAttribute("disabled");
      }
    });
    form.replaceChildren(...fields, submit, result);
  }

  // ---- possible duplicates (多网融合) -------------------------------------------------------

  private fillDuplicates(): void {
    const box = this.sec?.duplicates;
    const c = this.current;
    if (!box || !c) return;
    const parts: HTMLElement[] = [];
    const other = c.possible_duplicate_of ?? null;
    if (other !== null) {
      // The pipeline's own line says how alike they looked (dispatch/duplicates.py score).
      const line = (this.data.timeline ?? []).find((x) => x.action === "possible_duplicate" && x.detail.other_case === other);
      const score = typeof line?.detail.score === "number" ? line.detail.score : null;
      parts.push(
        el(
          "p",
          { class: "duplicate-of" },
          t("duplicateOf"),
          " ",
          this.caseLink(other, "duplicate-link"),
          score === null ? "" : el("span", { class: "score" }, ` ${t("similarity")} ${score.toFixed(2)}`),
        ),
      );
      if (c.attention === "possible_duplicate") {
        const buttons = el("div", { class: "actions" });
        const form = el("div", { class: "action-form" });
        if (this.allowed(c, "merge")) {
          const merge = el("button", { "data-testid": "duplicate-merge" }, `${t("mergeWith")} #${other}`);
          merge.addEventListener("click", () => this.openForm(form, c, "merge", { mergeInto: other, reason: `${t("sameProblem")} #${other}` }));
          buttons.append(merge);
        }
        if (this.allowed(c, "register")) {
          // Not the same problem: the case goes on as its own (立案), which settles the question.
          const distinct = el("button", { "data-testid": "duplicate-distinct" }, t("notDuplicate"));
          distinct.addEventListener("click", () => this.openForm(form, c, "register", { reason: `${t("notDuplicate")} (#${other})` }));
          buttons.append(distinct);
        }
        buttons.append(form);
        parts.push(buttons);
      } else {
        parts.push(el("p", { class: "muted" }, t("duplicateSettled")));
      }
    }
    const newer = [...this.store.cases.values()]
      .filter((x) => x.possible_duplicate_of === c.case_id && x.attention === "possible_duplicate")
      .map((x) => x.case_id)
      .sort((a, b) => a - b);
    this.duplicatedBy = new Set(newer);
    if (newer.length > 0) {
      parts.push(el("p", { class: "duplicate-of" }, t("duplicatesOfThis"), ...newer.flatMap((id) => [" ", this.caseLink(id, "duplicated-by-link")])));
    }
    box.hidden = parts.length === 0;
    box.replaceChildren(...(parts.length ? [el("h3", {}, t("duplicates")), ...parts] : []));
  }

  // ---- source records ------------------------------------------------------------------------

  private fillSources(): void {
    const list = this.sec?.sources;
    const c = this.current;
    if (!list || !c) return;
    const records = this.data.sources;
    if (records === null) {
      list.replaceChildren(...c.sources.map((s) => sourceLine(s)));
      return;
    }
    list.replaceChildren(
      ...records.map((r) => {
        const li = el(
          "li",
          { "data-source": `${r.source_system}:${r.source_record_id}` },
          el("b", {}, label(SOURCE, r.source_system)),
          " ",
          r.source_record_id,
          r.source_category.label ? el("span", { class: "muted" }, ` · ${r.source_category.label}`) : "",
          el("time", {}, when(r.received_at)),
        );
        if (r.original_case_id !== null && r.original_case_id !== c.case_id) {
          li.append(el("span", { class: "muted" }, ` · ${t("mergedFrom")} `), this.caseLink(r.original_case_id, "merged-from-link"));
        }
        return li;
      }),
    );
  }

  // ---- photos --------------------------------------------------------------------------------

  private photos(): Photo[] {
    const out: Photo[] = [];
    const seen = new Set<string>();
    const add = (a: Attachment, stage: string, at: string, actor: string): void => {
      if (!isUrl(a.url) && !uploadPath(a)) return;
      const key = `${stage}:${a.sha256 ?? a.url}`;
      if (seen.has(key)) return;
      seen.add(key);
      out.push({ key, stage, at, actor, url: a.url, upload: uploadPath(a) });
    };
    for (const r of this.data.sources ?? []) {
      for (const a of r.record.attachments ?? []) add(a, "reported", r.received_at, label(SOURCE, r.source_system));
      // Photos a source sent without a hash stay in `native` (connectors/formats/base.py).
      const unhashed = r.record.native?.photos_unhashed;
      for (const url of Array.isArray(unhashed) ? unhashed.filter(isUrl) : []) add({ url }, "reported", r.received_at, label(SOURCE, r.source_system));
    }
    for (const x of this.data.timeline ?? []) {
      const atts = x.detail.attachments;
      if (!Array.isArray(atts)) continue;
      for (const a of atts as Attachment[]) if (a && typeof a.url === "string") add(a, photoStage(x.action, a.role), x.at, x.actor);
    }
    return out;
  }

  private fillPhotos(): void {
    const box = this.sec?.photos;
    if (!box) return;
    if (this.data.sources === null && this.data.timeline === null) {
      box.replaceChildren(el("span", { class: "muted" }, t("loading")));
      return;
    }
    const photos = this.photos();
    if (photos.length === 0) {
      box.replaceChildren(el("span", { class: "muted" }, t("noPhotos")));
      return;
    }
    const ours = photos.filter((p) => p.upload !== null);
    box.replaceChildren(
      ...photos.map((p) => {
        const caption = el("span", { class: "stage" }, stageLabel(p.stage));
        const title = `${stageLabel(p.stage)} · ${when(p.at)} · ${p.actor}`;
        if (p.upload === null) {
          // A photo on a source system's own server: linked, not loaded into the operator's page
          // (the center may be offline, and the source's media server would see every viewer).
          let host = p.url;
          try {
            host = new URL(p.url).host;
          } catch {
            /* shown as it is */
          }
          return el(
            "a",
            { class: "thumb external", href: p.url, target: "_blank", rel: "noopener noreferrer", title, "data-testid": "panel-photo", "data-stage": p.stage },
            el("span", { class: "ext" }, `${t("externalPhoto")} ↗`),
            el("small", {}, host),
            caption,
          );
        }
        const img = el("img", { alt: title });
        const btn = el("button", { type: "button", class: "thumb", title, "data-testid": "panel-photo", "data-stage": p.stage }, img, caption);
        void this.objectUrl(p.upload).then((src) => {
          if (src) img.src = src;
          else btn.append(el("small", { class: "error" }, t("photoUnavailable")));
        });
        btn.addEventListener("click", () =>
          this.lightbox.open(
            ours.map((o) => ({ src: () => this.objectUrl(o.upload as string), caption: `${stageLabel(o.stage)} · ${when(o.at)} · ${o.actor}` })),
            ours.indexOf(p),
          ),
        );
        return btn;
      }),
    );
  }

  /** A photo of ours as a blob: URL (the uploads need the token, which an <img src> cannot send). */
  private objectUrl(path: string): Promise<string | null> {
    let p = this.blobs.get(path);
    if (!p) {
      p = this.api.blob(path).then(
        (b) => URL.createObjectURL(b),
        () => null,
      );
      this.blobs.set(path, p);
    }
    return p;
  }

  // ---- write-back deliveries -----------------------------------------------------------------

  private fillDeliveries(): void {
    const box = this.sec?.deliveries;
    if (!box) return;
    const got = this.data.deliveries;
    if (got === null) {
      box.replaceChildren(el("span", { class: "muted" }, t("loading")));
      return;
    }
    if (got.destinations.length === 0) {
      box.replaceChildren(el("span", { class: "muted" }, t("noDeliveries")));
      return;
    }
    const canReplay = this.me.permissions.includes(REPLAY_PERMISSION);
    box.replaceChildren(
      ...got.destinations.map((dest) => {
        const key = `${dest.destination}:${dest.record_id}`;
        const items = got.deliveries.filter((d) => d.destination === dest.destination && d.record_id === dest.record_id);
        const counts = (["acknowledged", "sent", "pending", "failed"] as const)
          .filter((s) => dest.counts[s])
          .map((s) => el("span", { class: `count state-${s}` }, `${label(DELIVERY_STATE, s)} ${dest.counts[s]}`));
        const details = el(
          "details",
          { class: `dest state-${dest.state}`, "data-key": key, "data-destination": dest.destination, "data-state": dest.state },
          el(
            "summary",
            {},
            el("b", {}, label(SOURCE, dest.destination)),
            " ",
            el("span", { class: "record" }, dest.record_id),
            " ",
            el("span", { class: `badge state-${dest.state}`, "data-testid": "destination-state" }, label(DELIVERY_STATE, dest.state)),
            " ",
            el("span", { class: "muted" }, label(DELIVERY_STAGE, dest.last_stage)),
            el("span", { class: "counts" }, ...counts),
          ),
          el("ol", { class: "delivery-list" }, ...items.map((d) => this.deliveryLine(d, canReplay))),
        );
        // Open what needs a look (failed, still on its way), fold what arrived; a destination the
        // operator opened or folded stays so across refreshes.
        details.open = this.unfolded.get(key) ?? dest.state !== "acknowledged";
        // (the summary's click, not "toggle": that also fires for the default set just above)
        details.querySelector("summary")?.addEventListener("click", () => this.unfolded.set(key, !details.open));
        return details;
      }),
    );
  }

  private deliveryLine(d: Delivery, canReplay: boolean): HTMLElement {
    const last = d.acknowledged_at ?? d.failed_at ?? d.last_attempt_at;
    const meta = [fill(t("attemptsN"), { n: d.attempts }), last ? when(last) : `${when(d.created_at)}`];
    if (d.state === "pending" && d.attempts > 0) meta.push(`${t("nextAttempt")} ${when(d.next_attempt_at)}`);
    if (d.http_status) meta.push(`HTTP ${d.http_status}`);
    if (d.replays > 0) meta.push(fill(t("replaysN"), { n: d.replays }));
    const li = el(
      "li",
      { "data-delivery-id": String(d.id), "data-state": d.state, "data-stage": d.stage },
      el("span", { class: "stage" }, label(DELIVERY_STAGE, d.stage)),
      " ",
      el("span", { class: `badge state-${d.state}` }, label(DELIVERY_STATE, d.state)),
      " ",
      el("span", { class: "muted" }, meta.join(" · ")),
    );
    if (d.reason && d.state !== "acknowledged") li.append(el("q", { class: "reason" }, d.reason));
    if (d.state === "failed" && canReplay) {
      const btn = el("button", { type: "button", "data-testid": "delivery-replay" }, t("replay"));
      const result = el("span", { class: "result" });
      btn.addEventListener("click", async () => {
        btn.setAttribute("disabled", "");
        const id = this.caseId;
        try {
          await this.api.request("POST", `/api/v1/deliveries/${d.id}/replay`, { reason: t("replayReason") });
          result.textContent = t("replayed");
          result.className = "result ok";
          if (id !== null) {
            await this.loadDeliveries(id);
            this.watchDeliveries(id, DELTA_WATCH_MS);
          }
        } catch (err) {
          result.textContent = t("failed") + (err instanceof ApiError ? err.message : String(err));
          result.className = "result error";
          btn.removeAttribute("disabled");
        }
      });
      li.append(" ", btn, result);
    }
    return li;
  }

  // ---- timeline ------------------------------------------------------------------------------

  private fillTimeline(): void {
    const list = this.sec?.timeline;
    const lines = this.data.timeline;
    if (!list || lines === null) return;
    list.replaceChildren(
      ...lines.map((x) =>
        el(
          "li",
          { "data-action": x.action },
          el("time", {}, when(x.at)),
          el("b", {}, label(ACTION, x.action)),
          // 上报 opens the trail (no status before it): "上报 → 上报" would say nothing.
          x.from_status && x.to_status && x.to_status !== x.from_status
            ? ` → ${label(STATUS, x.to_status)}`
            : "",
          el("span", { class: "actor" }, x.actor),
          x.reason ? el("q", {}, x.reason) : "",
        ),
      ),
    );
  }
}

function sourceLine(s: string): HTMLElement {
  const [system = "", record = ""] = s.split(":", 2);
  return el("li", { "data-source": s }, el("b", {}, label(SOURCE, system)), " ", record);
}

interface Slide {
  src: () => Promise<string | null>;
  caption: string;
}

/** A photo enlarged over the page: click outside or Esc closes, ←/→ step through the case's photos. */
class Lightbox {
  private readonly root: HTMLDivElement;
  private readonly img: HTMLImageElement;
  private readonly caption: HTMLElement;
  private slides: Slide[] = [];
  private index = 0;

  constructor() {
    this.img = el("img", { alt: "" });
    this.caption = el("div", { class: "caption" });
    const close = el("button", { type: "button", class: "close", "data-testid": "lightbox-close", title: t("close") }, "×");
    const prev = el("button", { type: "button", class: "prev", title: t("previous") }, "‹");
    const next = el("button", { type: "button", class: "next", title: t("next") }, "›");
    this.root = el("div", { class: "lightbox", "data-testid": "lightbox", role: "dialog", "aria-modal": "true" }, this.img, this.caption, prev, next, close);
    this.root.hidden = true;
    close.addEventListener("click", () => this.close());
    prev.addEventListener("click", () => this.step(-1));
    next.addEventListener("click", () => this.step(1));
    this.root.addEventListener("click", (e) => {
      if (e.target === this.root) this.close();
    });
    document.addEventListener("keydown", (e) => {
      if (this.root.hidden) return;
      if (e.key === "Escape") this.close();
      else if (e.key === "ArrowLeft") this.step(-1);
      else if (e.key === "ArrowRight") this.step(1);
    });
    document.body.append(this.root);
  }

  open(slides: Slide[], index: number): void {
    if (slides.length === 0) return;
    this.slides = slides;
    this.index = Math.max(0, index);
    this.root.hidden = false;
    this.root.classList.toggle("single", slides.length === 1);
    this.showCurrent();
  }

  close(): void {
    this.root.hidden = true;
    this.img.removeAttribute("src");
    this.slides = [];
  }

  private step(by: number): void {
    if (this.slides.length < 2) return;
    this.index = (this.index + by + this.slides.length) % this.slides.length;
    this.showCurrent();
  }

  private showCurrent(): void {
    const slide = this.slides[this.index];
    if (!slide) return;
    this.caption.textContent = `${slide.caption}  (${this.index + 1}/${this.slides.length})`;
    this.img.removeAttribute("src");
    const at = this.index;
    void slide.src().then((src) => {
      if (src && at === this.index && !this.root.hidden) this.img.src = src;
    });
  }
}
