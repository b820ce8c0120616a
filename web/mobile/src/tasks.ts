// 任务: what the logged-in person acts on (GET /api/v1/tasks) — inspectors verify (核查: pass, or
// fail with photos = 返工) and follow their own reports; unit staff sign for (签收) and report
// handling (处置) with before/after photos. Actions go through the offline queue with their
// Idempotency-Key; the lists reload on every live change (live.ts) or by polling.

import type { Api, CaseOut } from "./api";
import { h, toast, when } from "./dom";
import { type Key, statusLabel, t } from "./i18n";
import { PhotoPicker } from "./photos";
import { newId, type Outbox, type PhotoRole } from "./queue";

interface TasksOut {
  role: string;
  verify: CaseOut[];
  sign_for: CaseOut[];
  handling: CaseOut[];
  reported: CaseOut[];
}

const CACHE = "youhu.m.tasks";
const SECTIONS: [keyof Omit<TasksOut, "role">, Key][] = [
  ["verify", "tasksVerify"],
  ["sign_for", "tasksSignFor"],
  ["handling", "tasksHandling"],
  ["reported", "tasksReported"],
];

export class TasksScreen {
  readonly el: HTMLElement;
  private readonly body: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly queued = new Set<number>(); // acted on here, waiting in the queue
  private data: TasksOut | null;

  constructor(
    private readonly api: Api,
    private readonly outbox: Outbox,
  ) {
    const raw = localStorage.getItem(CACHE);
    this.data = raw ? (JSON.parse(raw) as TasksOut) : null;
    this.badge = h("span", { class: "pill", "data-testid": "live-state" }, t("polling"));
    const again = h("button", { class: "link" }, `⟳ ${t("refresh")}`);
    again.addEventListener("click", () => void this.reload());
    this.body = h("div", { class: "task-lists" });
    this.el = h(
      "section",
      { class: "screen tasks", "data-testid": "tasks-screen" },
      h("div", { class: "row" }, this.badge, again),
      this.body,
    );
    this.render();
  }

  setLive(live: boolean): void {
    this.badge.textContent = live ? t("live") : t("polling");
    this.badge.classList.toggle("on", live);
  }

  async reload(): Promise<void> {
    try {
      this.data = await this.api.json<TasksOut>("/api/v1/tasks");
      localStorage.setItem(CACHE, JSON.stringify(this.data));
      this.queued.clear();
    } catch {
      // offline: keep showing the last lists
    }
    this.render();
  }

  private render(): void {
    this.body.replaceChildren();
    const d = this.data;
    if (!d) return;
    for (const [name, title] of SECTIONS) {
      const cases = d[name].filter((c) => !this.queued.has(c.id));
      if (cases.length === 0 && (name === "sign_for" || name === "handling") && d.role !== "unit_staff") continue;
      if (cases.length === 0 && name === "verify" && d.role !== "inspector") continue;
      const list = h("ul", { class: "cards", "data-testid": `tasks-${name}` });
      for (const c of cases) list.append(this.card(name, c));
      if (cases.length === 0) list.append(h("li", { class: "muted small" }, t("noTasks")));
      this.body.append(h("h2", {}, `${t(title)} (${cases.length})`), list);
    }
  }

  private card(section: string, c: CaseOut): HTMLElement {
    const li = h(
      "li",
      { class: "card", "data-testid": `task-${c.id}`, "data-case": c.id },
      h("div", { class: "card-title" }, `#${c.id} · ${c.title}`),
      h(
        "div",
        { class: "muted small" },
        `${statusLabel(c.status)} · ${t("deadline")} ${when(c.deadline_at)}` +
          (c.rework_count ? ` · ${t("rework")} ${c.rework_count}` : ""),
      ),
      h("div", { class: "muted small" }, c.address ?? ""),
    );
    const actions = h("div", { class: "actions" });
    if (section === "verify") {
      actions.append(
        this.actionButton(c, "verify_pass", "verifyPass", { photos: "photosEvidence", role: "evidence" }),
        this.actionButton(c, "verify_fail", "verifyFail", {
          reason: "reasonFail",
          photos: "photosEvidence",
          role: "evidence",
        }),
      );
    } else if (section === "sign_for") {
      actions.append(this.actionButton(c, "acknowledge", "acknowledge", {}));
    } else if (section === "handling") {
      actions.append(this.actionButton(c, "handle", "handle", { reason: "reason", beforeAfter: true }));
    }
    if (actions.childElementCount) li.append(actions);
    return li;
  }

  private actionButton(
    c: CaseOut,
    action: string,
    title: Key,
    form: { reason?: Key; photos?: Key; role?: PhotoRole; beforeAfter?: boolean },
  ): HTMLElement {
    const b = h("button", { class: action === "verify_fail" ? "danger" : "primary", "data-testid": `${action}-${c.id}` }, t(title));
    b.addEventListener("click", () => {
      if (!form.reason && !form.photos && !form.beforeAfter) void this.queueAction(c, action, title, "", []);
      else this.sheet(c, action, title, form);
    });
    return b;
  }

  /** The form of an action that takes a note and photos, as a bottom sheet (one-handed). */
  private sheet(
    c: CaseOut,
    action: string,
    title: Key,
    form: { reason?: Key; photos?: Key; role?: PhotoRole; beforeAfter?: boolean },
  ): void {
    const reason = h("textarea", { rows: 3, "data-testid": "action-reason" });
    const pickers: [PhotoPicker, PhotoRole][] = form.beforeAfter
      ? [
          [new PhotoPicker(t("photosBefore"), "photos-before"), "before"],
          [new PhotoPicker(t("photosAfter"), "photos-after"), "after"],
        ]
      : form.photos
        ? [[new PhotoPicker(t(form.photos), "photos-evidence"), form.role ?? "evidence"]]
        : [];
    const submit = h("button", { class: "primary big", "data-testid": "action-submit" }, t("submit"));
    const cancel = h("button", { class: "link" }, t("cancel"));
    const sheet = h(
      "div",
      { class: "sheet", role: "dialog", "data-testid": "action-sheet" },
      h("h3", {}, `${t(title)} · #${c.id}`),
      form.reason ? h("label", { class: "field" }, t(form.reason), reason) : null,
      ...pickers.map(([p]) => p.el),
      submit,
      cancel,
    );
    const shade = h("div", { class: "shade" }, sheet);
    cancel.addEventListener("click", () => shade.remove());
    submit.addEventListener("click", () => {
      if (form.reason && action !== "verify_pass" && !reason.value.trim()) {
        toast(t(form.reason), "warn");
        return;
      }
      const photos = pickers.flatMap(([p, role]) => p.blobs.map((b) => [b, role] as [Blob, PhotoRole]));
      shade.remove();
      void this.queueAction(c, action, title, reason.value.trim(), photos);
    });
    document.body.append(shade);
  }

  private async queueAction(
    c: CaseOut,
    action: string,
    title: Key,
    reason: string,
    photos: [Blob, PhotoRole][],
  ): Promise<void> {
    const body: { action: string; reason?: string } = { action };
    if (reason) body.reason = reason;
    await this.outbox.add({
      kind: "action",
      id: newId(), // the Idempotency-Key: a resend after a lost answer acts no second time
      createdAt: Date.now(),
      state: "pending",
      attempts: 0,
      summary: `${t(title)} → #${c.id} ${c.title}`,
      photos: photos.map(([b]) => b),
      roles: photos.map(([, r]) => r),
      uploaded: [],
      caseId: c.id,
      body,
    });
    this.queued.add(c.id);
    this.render();
    toast(t("queued"));
  }
}
