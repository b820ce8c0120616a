// 统计报表: the daily / monthly / annual table (#/report) shaped like the statistical tables
// district offices publish — a title with the period, 制表单位 and 制表时间 above, one row per
// street, unit, source or category, 合计 last, the definitions (说明) under it. The figures are the
// server's (GET /api/v1/center/report: the indicators plus 受理量, in the caller's scope); the page
// only lays them out. Printable (print CSS: just the sheet, A4 landscape) and exported as XLSX.

import type { Api } from "./api";
import { el } from "./format";
import { getLang, t } from "./i18n";

export interface ReportColumn {
  key: string;
  zh: string;
  en: string;
  kind: "count" | "rate" | "hours";
  note: string; // 口径, Chinese
  definition: string; // English
}
export interface ReportRow {
  key: string | null;
  name: string;
  name_en: string;
  values: Record<string, number | null>;
}
export interface Report {
  title: string;
  title_en: string;
  period: "day" | "month" | "year";
  period_label: string;
  period_label_en: string;
  from: string;
  to: string;
  as_of: string;
  tabulated_at: string;
  issuer: string;
  by: string;
  by_label: string;
  by_label_en: string;
  columns: ReportColumn[];
  rows: ReportRow[];
  total: ReportRow;
  notes: string[];
  notes_en: string[];
}

type Period = Report["period"];

/** How a value shows in the table: counts as they are, rates as percentages, hours to 0.1. */
export function formatValue(kind: ReportColumn["kind"], v: number | null | undefined): string {
  if (v === null || v === undefined) return "—";
  if (kind === "rate") return `${(v * 100).toFixed(2)}%`;
  if (kind === "hours") return v.toFixed(1);
  return String(v);
}

function shanghaiToday(): string {
  return new Date().toLocaleDateString("sv-SE", { timeZone: "Asia/Shanghai" }); // YYYY-MM-DD
}

function stamp(iso: string): string {
  return new Date(iso).toLocaleString("sv-SE", { timeZone: "Asia/Shanghai" }).slice(0, 16);
}

export class ReportPage {
  /** The report on screen (for the browser tests). */
  report: Report | null = null;
  loads = 0;
  private readonly period: HTMLSelectElement;
  private readonly day: HTMLInputElement;
  private readonly month: HTMLInputElement;
  private readonly year: HTMLInputElement;
  private readonly by: HTMLSelectElement;
  private readonly sheet: HTMLElement;
  private readonly status: HTMLSpanElement;
  private loaded = false;
  private seq = 0;

  constructor(
    root: HTMLElement,
    private readonly api: Api,
  ) {
    const today = shanghaiToday();
    this.period = el("select", { "data-testid": "report-period" });
    for (const [value, key] of [
      ["day", "reportDay"],
      ["month", "reportMonth"],
      ["year", "reportYear"],
    ] as const) {
      this.period.append(el("option", { value }, t(key)));
    }
    this.period.value = "month";
    this.day = el("input", { type: "date", "data-testid": "report-day", value: today, hidden: "" });
    this.month = el("input", { type: "month", "data-testid": "report-month", value: today.slice(0, 7) });
    this.year = el("input", { type: "number", min: "2000", max: "2100", step: "1", "data-testid": "report-year", value: today.slice(0, 4), hidden: "" });
    this.by = el("select", { "data-testid": "report-by" });
    for (const [value, key] of [
      ["street", "byStreet"],
      ["unit", "byUnit"],
      ["source", "bySource"],
      ["category", "byCategory"],
    ] as const) {
      this.by.append(el("option", { value }, t(key)));
    }
    const load = el("button", { class: "primary", type: "button", "data-testid": "report-load" }, t("load"));
    const print = el("button", { type: "button", "data-testid": "report-print" }, t("print"));
    const xlsx = el("button", { type: "button", "data-testid": "report-xlsx" }, t("exportXlsx"));
    this.status = el("span", { class: "report-status", "data-testid": "report-status" });
    this.sheet = el("article", { class: "report-sheet", "data-testid": "report-sheet" });

    this.period.addEventListener("change", () => {
      this.showPicker();
      void this.load();
    });
    for (const input of [this.day, this.month, this.year, this.by]) input.addEventListener("change", () => void this.load());
    load.addEventListener("click", () => void this.load());
    print.addEventListener("click", () => window.print());
    xlsx.addEventListener("click", () => void this.exportXlsx());
    root.append(
      el(
        "div",
        { class: "filters report-controls" },
        el("label", {}, t("period"), " ", this.period),
        this.day,
        this.month,
        this.year,
        el("label", {}, t("by"), " ", this.by),
        load,
        print,
        xlsx,
        this.status,
      ),
      this.sheet,
    );
  }

  private showPicker(): void {
    const p = this.period.value as Period;
    this.day.hidden = p !== "day";
    this.month.hidden = p !== "month";
    this.year.hidden = p !== "year";
  }

  query(): string {
    const p = this.period.value as Period;
    const q = new URLSearchParams({ period: p, by: this.by.value });
    const value = { day: this.day.value, month: this.month.value, year: this.year.value }[p];
    if (value) q.set(p, value);
    return q.toString();
  }

  /** Load the first time the page is shown; later visits keep what was on screen. */
  async show(): Promise<void> {
    if (!this.loaded) await this.load();
  }

  /** Fetch the table for the pickers' values and show it (a slower older answer is dropped). */
  async load(): Promise<void> {
    this.loaded = true;
    const seq = ++this.seq;
    this.status.textContent = "…";
    try {
      const report = await this.api.request<Report>("GET", `/api/v1/center/report?${this.query()}`);
      if (seq !== this.seq) return;
      this.report = report;
      this.loads += 1;
      this.status.textContent = "";
      this.render(report);
    } catch (err) {
      if (seq === this.seq) this.status.textContent = `${t("failed")}${err instanceof Error ? err.message : String(err)}`;
    }
  }

  private render(r: Report): void {
    const zh = getLang() === "zh";
    const cols = r.columns;
    const head = el(
      "tr",
      {},
      el("th", {}, t("serial")),
      el("th", {}, zh ? r.by_label : r.by_label_en),
      ...cols.map((c) => el("th", { title: zh ? c.note : c.definition, "data-col": c.key }, zh ? c.zh : c.en)),
    );
    // 合计 spans the number and name columns, as in the published tables.
    const line = (row: ReportRow, serial: string | null): HTMLTableRowElement =>
      el(
        "tr",
        { "data-key": row.key ?? "", class: serial === null ? "total" : "" },
        ...(serial === null
          ? [el("th", { scope: "row", colspan: "2" }, zh ? row.name : row.name_en)]
          : [el("td", { class: "serial" }, serial), el("th", { scope: "row" }, zh ? row.name : row.name_en)]),
        ...cols.map((c) =>
          el("td", { class: "num", "data-col": c.key, "data-value": JSON.stringify(row.values[c.key] ?? null) }, formatValue(c.kind, row.values[c.key])),
        ),
      );
    const body = r.rows.length
      ? r.rows.map((row, i) => line(row, String(i + 1)))
      : [el("tr", {}, el("td", { colspan: String(cols.length + 2) }, t("noRows")))];
    const table = el(
      "table",
      { class: "stats report", "data-testid": "report-table" },
      el("thead", {}, head),
      el("tbody", {}, ...body),
      el("tfoot", {}, line(r.total, null)),
    );
    this.sheet.replaceChildren(
      el("h2", { class: "report-title", "data-testid": "report-title" }, zh ? r.title : r.title_en),
      el(
        "div",
        { class: "report-meta" },
        el("span", { "data-testid": "report-range" }, `${t("periodRange")}：${zh ? r.period_label : r.period_label_en}`),
        el("span", { "data-testid": "report-issuer" }, `${t("issuer")}：${r.issuer}`),
        el("span", { "data-testid": "report-tabulated" }, `${t("tabulatedAt")}：${stamp(r.tabulated_at)}`),
      ),
      table,
      el("h3", {}, t("notes")),
      el("ol", { class: "report-notes", "data-testid": "report-notes" }, ...(zh ? r.notes : r.notes_en).map((n) => el("li", {}, n))),
    );
  }

  private async exportXlsx(): Promise<void> {
    const blob = await this.api.blob(`/api/v1/center/report.xlsx?${this.query()}`);
    const name = this.report ? `${this.report.title}${this.report.period_label}.xlsx` : "report.xlsx";
    const a = el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    a.remove();
    window.setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }
}
