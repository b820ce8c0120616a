// The operator's queue: open cases soonest deadline first, live countdowns, and the view filters
// (they apply to the map too).

import { label, SOURCE, STATUS, t } from "./i18n";
import { countdown, el } from "./format";
import { type CaseState, type CaseStore, type Risk, riskOf } from "./store";

export interface ViewFilter {
  status: string;
  risk: string;
  source: string;
  text: string;
}

const MAX_ROWS = 300; // a wall display shows far fewer; the map shows them all

export class Queue {
  readonly filter: ViewFilter = { status: "", risk: "", source: "", text: "" };
  private readonly list: HTMLUListElement;
  private readonly count: HTMLSpanElement;
  private pending = false;
  onFilter: () => void = () => undefined;

  constructor(
    root: HTMLElement,
    private readonly store: CaseStore,
    private readonly categoryName: (code: string | null) => string,
    private readonly onPick: (caseId: number) => void,
  ) {
    const statusSel = select("status", [["", t("all")], ...Object.keys(STATUS).map((s) => [s, label(STATUS, s)] as [string, string])]);
    const riskSel = select("risk", [
      ["", t("all")],
      ["overdue", t("overdue")],
      ["soon", t("soon")],
      ["ok", t("ok")],
    ]);
    const sourceSel = select("source", [["", t("all")], ...Object.keys(SOURCE).map((s) => [s, label(SOURCE, s)] as [string, string])]);
    const search = el("input", { type: "search", placeholder: t("search"), "data-testid": "queue-search" });
    const bind = (node: HTMLSelectElement | HTMLInputElement, key: keyof ViewFilter) =>
      node.addEventListener("input", () => {
        this.filter[key] = node.value.trim();
        this.refresh();
        this.onFilter();
      });
    bind(statusSel, "status");
    bind(riskSel, "risk");
    bind(sourceSel, "source");
    bind(search, "text");
    this.count = el("span", { class: "count", "data-testid": "queue-count" });
    this.list = el("ul", { class: "queue", "data-testid": "queue" });
    root.append(
      el("h2", {}, t("queue"), " ", this.count),
      el("div", { class: "filters" }, labelled(t("status"), statusSel), labelled(t("risk"), riskSel), labelled(t("source"), sourceSel), search),
      this.list,
    );
    store.onChange(() => this.refresh());
    window.setInterval(() => this.tick(), 1000);
  }

  visible(c: CaseState, now = Date.now()): boolean {
    const f = this.filter;
    if (f.status && c.status !== f.status) return false;
    if (f.risk && riskOf(c, now) !== (f.risk as Risk)) return false;
    if (f.source && !c.sources.some((s) => s.startsWith(`${f.source}:`))) return false;
    if (f.text && !`${c.title} ${c.address ?? ""} ${c.case_id}`.includes(f.text)) return false;
    return true;
  }

  refresh(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  private render(): void {
    const now = Date.now();
    const rows = [...this.store.cases.values()].filter((c) => this.visible(c, now));
    rows.sort((a, b) => deadlineOf(a) - deadlineOf(b) || b.case_id - a.case_id);
    this.count.textContent = `${rows.length} ${t("cases")}${this.store.truncated ? " " + t("truncated") : ""}`;
    this.list.replaceChildren(
      ...rows.slice(0, MAX_ROWS).map((c) => {
        const risk = riskOf(c, now);
        const li = el(
          "li",
          { class: `risk-${risk} status-${c.status}`, "data-case-id": String(c.case_id), tabindex: "0" },
          el("div", { class: "row1" }, el("span", { class: "badge" }, label(STATUS, c.status)), el("span", { class: "title" }, c.title)),
          el(
            "div",
            { class: "row2" },
            el("span", { class: "cat" }, this.categoryName(c.category)),
            el("span", { class: "cd", "data-deadline": c.deadline_at ?? "" }, countdown(c.deadline_at, now)),
          ),
        );
        li.addEventListener("click", () => this.onPick(c.case_id));
        return li;
      }),
    );
  }

  private tick(): void {
    const now = Date.now();
    for (const node of this.list.querySelectorAll<HTMLElement>(".cd")) {
      node.textContent = countdown(node.dataset.deadline || null, now);
    }
  }
}

function deadlineOf(c: CaseState): number {
  return c.deadline_at ? Date.parse(c.deadline_at) : Number.MAX_SAFE_INTEGER;
}

function select(name: string, options: [string, string][]): HTMLSelectElement {
  const s = el("select", { name, "data-testid": `filter-${name}` });
  s.append(...options.map(([v, text]) => el("option", { value: v }, text)));
  return s;
}

function labelled(text: string, node: HTMLElement): HTMLLabelElement {
  return el("label", {}, text, " ", node);
}
