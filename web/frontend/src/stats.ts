// Statistics (考核指标) from GET /api/v1/indicators: one table, CSV export in the browser,
// XLSX from the server (same query, same scope).

import type { Api } from "./api";
import { t } from "./i18n";
import { el } from "./format";

interface Row {
  key: Record<string, string | null>;
  counts: Record<string, number>;
  rates: Record<string, number | null>;
}
interface Report {
  as_of: string;
  by: string[];
  rows: Row[];
  definitions: Record<string, string>;
}

const DIMENSIONS = ["street", "unit", "source", "category", "group", "period"];

export class StatsPage {
  private readonly table: HTMLTableElement;
  private report: Report | null = null;
  private readonly by: HTMLSelectElement;
  private readonly period: HTMLSelectElement;
  private readonly from: HTMLInputElement;
  private readonly to: HTMLInputElement;

  constructor(
    root: HTMLElement,
    private readonly api: Api,
  ) {
    this.by = el("select", { "data-testid": "stats-by" });
    this.by.append(...DIMENSIONS.map((d) => el("option", { value: d }, d)));
    this.period = el("select", {});
    this.period.append(...["day", "week", "month"].map((p) => el("option", { value: p }, p)));
    this.period.value = "month";
    this.from = el("input", { type: "date" });
    this.to = el("input", { type: "date" });
    const load = el("button", { class: "primary", "data-testid": "stats-load" }, t("load"));
    load.addEventListener("click", () => void this.load());
    const csv = el("button", { "data-testid": "stats-csv" }, t("exportCsv"));
    csv.addEventListener("click", () => this.exportCsv());
    const xlsx = el("button", { "data-testid": "stats-xlsx" }, t("exportXlsx"));
    xlsx.addEventListener("click", () => void this.exportXlsx());
    this.table = el("table", { class: "stats", "data-testid": "stats-table" });
    root.append(
      el("div", { class: "filters" }, el("label", {}, t("by"), " ", this.by), el("label", {}, t("period"), " ", this.period), el("label", {}, t("from"), " ", this.from), el("label", {}, t("to"), " ", this.to), load, csv, xlsx),
      this.table,
    );
  }

  private query(): string {
    const q = new URLSearchParams({ by: this.by.value, period: this.period.value });
    if (this.from.value) q.set("from", this.from.value);
    if (this.to.value) q.set("to", this.to.value);
    return q.toString();
  }

  async load(): Promise<void> {
    this.report = await this.api.request<Report>("GET", `/api/v1/indicators?${this.query()}`);
    this.render();
  }

  private columns(): { counts: string[]; rates: string[] } {
    const first = this.report?.rows[0];
    return { counts: first ? Object.keys(first.counts) : [], rates: first ? Object.keys(first.rates) : [] };
  }

  private render(): void {
    const r = this.report;
    if (!r) return;
    const { counts, rates } = this.columns();
    const head = el("tr", {}, ...[...r.by, ...counts, ...rates].map((h) => el("th", { title: r.definitions[h] ?? "" }, h)));
    const body = r.rows.map((row) =>
      el(
        "tr",
        {},
        ...r.by.map((d) => el("td", {}, row.key[d] ?? "—")),
        ...counts.map((c) => el("td", { class: "num" }, String(row.counts[c]))),
        ...rates.map((c) => el("td", { class: "num" }, fmtRate(c, row.rates[c] ?? null))),
      ),
    );
    this.table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...(body.length ? body : [el("tr", {}, el("td", {}, t("noRows")))])));
  }

  private exportCsv(): void {
    const r = this.report;
    if (!r) return;
    const { counts, rates } = this.columns();
    const lines = [[...r.by, ...counts, ...rates]];
    for (const row of r.rows) {
      lines.push([...r.by.map((d) => row.key[d] ?? ""), ...counts.map((c) => String(row.counts[c])), ...rates.map((c) => String(row.rates[c] ?? ""))]);
    }
    const text = lines.map((l) => l.map(csvCell).join(",")).join("\r\n");
    // A BOM so that spreadsheet programs read the Chinese names as UTF-8.
    download(new Blob(["\ufeff" + text], { type: "text/csv;charset=utf-8" }), `indicators-${this.by.value}.csv`);
  }

  private async exportXlsx(): Promise<void> {
    download(await this.api.blob(`/api/v1/center/indicators.xlsx?${this.query()}`), `indicators-${this.by.value}.xlsx`);
  }
}

function fmtRate(name: string, v: number | null): string {
  if (v === null) return "—";
  return name.includes("hours") || name.includes("time") ? v.toFixed(1) : `${(v * 100).toFixed(1)}%`;
}

function csvCell(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function download(blob: Blob, name: string): void {
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
