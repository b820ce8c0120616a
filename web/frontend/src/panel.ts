// The case panel: what the case is, where it came from (source records), what happened to it
// (timeline) and what the operator can do now. Another operator's action arrives as a delta and
// refreshes the panel in place.

import { type Api, ApiError, type Me } from "./api";
import { ACTION, label, RETURN_REASONS, SOURCE, STATUS, t } from "./i18n";
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
  escalate: ["reported", "registered", "dispatched", "in_progress", "handled", "verified", "returned"],
  request_extension: ["dispatched", "in_progress"],
  approve_extension: ["dispatched", "in_progress"],
  deny_extension: ["dispatched", "in_progress"],
};
const OPERATOR = ["register", "reject", "dispatch", "handle", "verify_pass", "verify_fail", "close", "suspend", "resume", "merge", "approve_extension", "deny_extension"];
const ROLE_ACTIONS: Record<string, string[]> = {
  inspector: ["verify_pass", "verify_fail"],
  operator: OPERATOR,
  supervisor: [...OPERATOR, "escalate"],
  unit_staff: ["acknowledge", "return", "handle", "request_extension"],
  leader: ["escalate"],
  admin: Object.keys(FROM),
};
const NEEDS_REASON = new Set(["reject", "return", "verify_fail", "suspend", "merge", "escalate", "request_extension", "deny_extension", "unmerge"]);

interface TimelineLine {
  at: string;
  actor: string;
  action: string;
  from_status: string | null;
  to_status: string | null;
  reason: string | null;
}

export class CasePanel {
  private caseId: number | null = null;
  private timelineFor = -1;
  private readonly extra = new Map<number, { address: string | null; reported_at: string | null }>();
  private readonly body: HTMLDivElement;

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
    store.onChange((changed) => {
      if (this.caseId !== null && (changed === null || changed.includes(this.caseId))) this.render(true);
    });
    window.setInterval(() => {
      const cd = this.body.querySelector<HTMLElement>(".cd");
      if (cd) cd.textContent = countdown(cd.dataset.deadline || null, Date.now());
    }, 1000);
  }

  show(caseId: number): void {
    this.caseId = caseId;
    this.root.classList.add("open");
    void this.render(true);
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
    this.caseId = null;
    this.root.classList.remove("open");
  }

  private async render(reloadTimeline: boolean): Promise<void> {
    const id = this.caseId;
    if (id === null) return;
    const known = this.store.cases.get(id) ?? (await this.fetchCase(id));
    if (!known || this.caseId !== id) return;
    const c: CaseState = { ...known, ...this.extra.get(id) };
    this.body.replaceChildren(
      el("h2", { "data-testid": "panel-title" }, `#${c.case_id} ${c.title}`),
      el("div", { class: `badge big status-${c.status}`, "data-testid": "panel-status" }, label(STATUS, c.status)),
      this.details(c),
      el("h3", {}, t("sources")),
      el("ul", { class: "sources", "data-testid": "panel-sources" }, ...c.sources.map((s) => sourceLine(s))),
      el("h3", {}, t("actions")),
      this.actions(c),
      el("h3", {}, t("timeline")),
      el("ol", { class: "timeline", "data-testid": "panel-timeline" }),
    );
    if (reloadTimeline || this.timelineFor !== id) void this.loadTimeline(id);
  }

  private async fetchCase(id: number): Promise<CaseState | null> {
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

  private details(c: CaseState): HTMLElement {
    const rows: [string, Node | string][] = [
      [t("category"), this.categoryName(c.category)],
      [t("priority"), c.priority],
      [t("unit"), c.unit ?? "—"],
      [t("area"), [c.street, c.community, c.grid].filter(Boolean).join(" / ") || "—"],
      [t("address"), c.address ?? "—"],
      [t("reported"), when(c.reported_at)],
      [t("deadline"), el("span", { class: "cd", "data-deadline": c.deadline_at ?? "" }, countdown(c.deadline_at, Date.now()))],
    ];
    if (c.attention) rows.push([t("attention"), c.attention]);
    return el("dl", { class: "details" }, ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  private actions(c: CaseState): HTMLElement {
    const allowed = (ROLE_ACTIONS[this.me.role] ?? []).filter((a) => (FROM[a] ?? []).includes(c.status));
    const box = el("div", { class: "actions", "data-testid": "panel-actions" });
    const form = el("div", { class: "action-form" });
    for (const action of allowed) {
      const btn = el("button", { "data-action": action }, label(ACTION, action));
      btn.addEventListener("click", () => this.openForm(form, c, action));
      box.append(btn);
    }
    box.append(form);
    return box;
  }

  private openForm(form: HTMLElement, c: CaseState, action: string): void {
    const fields: HTMLElement[] = [];
    const reason = el("input", { name: "reason", placeholder: t("reason") });
    const kind = el("select", { name: "return_reason" });
    kind.append(...Object.keys(RETURN_REASONS).map((k) => el("option", { value: k }, label(RETURN_REASONS, k))));
    const mergeInto = el("input", { name: "merge_into", type: "number", placeholder: t("mergeInto") });
    const unit = el("input", { name: "unit", placeholder: t("unitOptional") });
    if (NEEDS_REASON.has(action)) fields.push(reason);
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

  private async loadTimeline(id: number): Promise<void> {
    this.timelineFor = id;
    let lines: TimelineLine[];
    try {
      lines = await this.api.request<TimelineLine[]>("GET", `/api/v1/cases/${id}/timeline`);
    } catch {
      return;
    }
    const list = this.body.querySelector("ol.timeline");
    if (!list || this.caseId !== id) return;
    list.replaceChildren(
      ...lines.map((x) =>
        el(
          "li",
          { "data-action": x.action },
          el("time", {}, when(x.at)),
          el("b", {}, label(ACTION, x.action)),
          x.to_status && x.to_status !== x.from_status ? ` → ${label(STATUS, x.to_status)}` : "",
          el("span", { class: "actor" }, x.actor),
          x.reason ? el("q", {}, x.reason) : "",
        ),
      ),
    );
  }
}

function sourceLine(s: string): HTMLElement {
  const [system = "", record = ""] = s.split(":", 2);
  return el("li", {}, el("b", {}, label(SOURCE, system)), " ", record);
}
