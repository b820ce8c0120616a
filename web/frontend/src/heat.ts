// The heat map (热力图): where cases were reported in a period, for a category and a source. The
// server counts the caller's cases per grid cell (GET /api/v1/center/heat, scoped like every case
// query, at most a few thousand weighted cells whatever the period); this draws them as a MapLibre
// heatmap layer under the live case points, with its own control in the map's top-left corner.
// Off until switched on; it reloads when a picker changes, and every minute while on.

import type { GeoJSONSource, IControl, Map as MLMap } from "maplibre-gl";

import type { Api } from "./api";
import { el } from "./format";
import { SOURCE, getLang, t } from "./i18n";

export type HeatPeriod = "today" | "7d" | "30d" | "month" | "custom";

export interface HeatAnswer {
  type: "FeatureCollection";
  features: GeoJSON.Feature<GeoJSON.Point, { weight: number }>[];
  period: HeatPeriod;
  from: string;
  to: string; // exclusive
  categories: string[];
  sources: string[];
  total: number;
  cells: number;
  max_weight: number;
  cell_m: number;
  coarsened: boolean;
  truncated: boolean;
}

interface Taxonomy {
  categories: { code: string; name_zh: string; name_en: string; group: string }[];
  groups: { code: string; name_zh: string; name_en: string }[];
}

const PERIODS: [HeatPeriod, "heatToday" | "heat7d" | "heat30d" | "heatMonth" | "heatCustom"][] = [
  ["today", "heatToday"],
  ["7d", "heat7d"],
  ["30d", "heat30d"],
  ["month", "heatMonth"],
  ["custom", "heatCustom"],
];
const REFRESH_MS = 60_000;
export const HEAT_LAYER = "heat";

/** A YYYY-MM-DD date plus ``days`` (the custom range's last day is inclusive on screen). */
function addDays(iso: string, days: number): string {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

export class HeatLayer {
  on = false;
  /** The last answer drawn, and how many were loaded (for the browser tests). */
  data: HeatAnswer | null = null;
  loads = 0;
  error: string | null = null;
  private readonly box: HTMLDivElement;
  private readonly toggle: HTMLInputElement;
  private readonly period: HTMLSelectElement;
  private readonly category: HTMLSelectElement;
  private readonly source: HTMLSelectElement;
  private readonly from: HTMLInputElement;
  private readonly to: HTMLInputElement;
  private readonly custom: HTMLSpanElement;
  private readonly summary: HTMLDivElement;
  private taxonomy: Promise<void> | null = null;
  private seq = 0;

  constructor(
    private readonly map: MLMap,
    private readonly api: Api,
  ) {
    this.toggle = el("input", { type: "checkbox", "data-testid": "heat-toggle" });
    this.period = el("select", { "data-testid": "heat-period", disabled: "" });
    for (const [value, key] of PERIODS) this.period.append(el("option", { value }, t(key)));
    this.period.value = "7d";
    this.category = el("select", { "data-testid": "heat-category", disabled: "" }, el("option", { value: "" }, t("allCategories")));
    this.source = el("select", { "data-testid": "heat-source", disabled: "" }, el("option", { value: "" }, t("allSources")));
    for (const code of Object.keys(SOURCE)) this.source.append(el("option", { value: code }, SOURCE[code][getLang() === "zh" ? 0 : 1]));
    const today = new Date().toLocaleDateString("sv-SE", { timeZone: "Asia/Shanghai" }); // YYYY-MM-DD
    this.from = el("input", { type: "date", "data-testid": "heat-from", value: addDays(today, -29) });
    this.to = el("input", { type: "date", "data-testid": "heat-to", value: today });
    this.custom = el("span", { class: "heat-custom", hidden: "" }, this.from, "–", this.to);
    this.summary = el("div", { class: "heat-summary", "data-testid": "heat-summary" });
    this.box = el(
      "div",
      { class: "heat-control maplibregl-ctrl", "data-testid": "heat-control" },
      el("label", { class: "heat-switch" }, this.toggle, " ", t("heatmap")),
      el("div", { class: "heat-pickers" }, this.period, this.custom, this.category, this.source),
      this.summary,
    );
    this.toggle.addEventListener("change", () => void this.setOn(this.toggle.checked));
    this.period.addEventListener("change", () => {
      this.custom.hidden = this.period.value !== "custom";
      void this.load();
    });
    for (const input of [this.category, this.source, this.from, this.to]) input.addEventListener("change", () => void this.load());

    const control: IControl = { onAdd: () => this.box, onRemove: () => this.box.remove() };
    map.addControl(control, "top-left");
    if (map.loaded()) this.addLayer();
    else map.on("load", () => this.addLayer());
    window.setInterval(() => {
      if (this.on && !document.hidden) void this.load();
    }, REFRESH_MS);
  }

  private addLayer(): void {
    const map = this.map;
    if (map.getSource(HEAT_LAYER)) return;
    map.addSource(HEAT_LAYER, { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    map.addLayer(
      {
        id: HEAT_LAYER,
        type: "heatmap",
        source: HEAT_LAYER,
        layout: { visibility: this.on ? "visible" : "none" },
        paint: {
          "heatmap-weight": ["interpolate", ["linear"], ["get", "weight"], 0, 0, 1, 1],
          // Cells are ~150 m: a glow of a few hundred metres to a few kilometres, wider than the
          // case symbols drawn on top, so hot areas show around them at every zoom.
          "heatmap-intensity": ["interpolate", ["linear"], ["zoom"], 8, 1, 15, 3],
          "heatmap-radius": ["interpolate", ["linear"], ["zoom"], 8, 18, 11, 32, 13, 55, 15, 90],
          "heatmap-opacity": 0.8,
          "heatmap-color": [
            "interpolate",
            ["linear"],
            ["heatmap-density"],
            0, "rgba(33,102,172,0)",
            0.2, "#2b83ba",
            0.4, "#abdda4",
            0.6, "#ffffbf",
            0.8, "#fdae61",
            1, "#d7191c",
          ],
        },
      },
      // Under the live cases, so they stay clickable and readable on top of the heat.
      map.getLayer("clusters") ? "clusters" : undefined,
    );
    if (this.data) this.draw(this.data);
  }

  async setOn(on: boolean): Promise<void> {
    this.on = on;
    this.toggle.checked = on;
    for (const s of [this.period, this.category, this.source]) s.disabled = !on;
    this.box.classList.toggle("on", on);
    if (this.map.getLayer(HEAT_LAYER)) this.map.setLayoutProperty(HEAT_LAYER, "visibility", on ? "visible" : "none");
    if (on) {
      this.taxonomy ??= this.fillCategories();
      await this.taxonomy;
      await this.load();
    } else {
      this.summary.textContent = "";
    }
  }

  /** Categories grouped by their 大类; a group itself is a choice too ("…（全部）"). */
  private async fillCategories(): Promise<void> {
    const tax = await this.api.request<Taxonomy>("GET", "/api/v1/admin/taxonomy");
    const zh = getLang() === "zh";
    for (const g of tax.groups) {
      const group = el("optgroup", { label: zh ? g.name_zh : g.name_en });
      group.append(el("option", { value: g.code }, `${zh ? g.name_zh : g.name_en}${t("heatWholeGroup")}`));
      for (const c of tax.categories.filter((x) => x.group === g.code)) {
        group.append(el("option", { value: c.code }, zh ? c.name_zh : c.name_en));
      }
      this.category.append(group);
    }
  }

  private query(): string {
    const q = new URLSearchParams();
    if (this.period.value === "custom") {
      q.set("period", "custom");
      q.set("from", this.from.value);
      q.set("to", addDays(this.to.value, 1)); // the API's `to` is exclusive
    } else q.set("period", this.period.value);
    if (this.category.value) q.set("category", this.category.value);
    if (this.source.value) q.set("source", this.source.value);
    return q.toString();
  }

  /** Fetch the cells for the pickers' values and draw them (a slower older answer is dropped). */
  async load(): Promise<void> {
    if (!this.on) return;
    if (this.period.value === "custom" && (!this.from.value || !this.to.value)) return;
    const seq = ++this.seq;
    this.box.classList.add("loading");
    try {
      const answer = await this.api.request<HeatAnswer>("GET", `/api/v1/center/heat?${this.query()}`);
      if (seq !== this.seq) return;
      this.error = null;
      this.data = answer;
      this.loads += 1;
      this.draw(answer);
    } catch (err) {
      if (seq !== this.seq) return;
      this.error = err instanceof Error ? err.message : String(err);
      this.summary.textContent = `${t("failed")}${this.error}`;
      this.summary.classList.add("error");
    } finally {
      if (seq === this.seq) this.box.classList.remove("loading");
    }
  }

  private draw(answer: HeatAnswer): void {
    const src = this.map.getSource(HEAT_LAYER) as GeoJSONSource | undefined;
    if (!src) return;
    src.setData(answer);
    // Weights relative to the heaviest cell, so one busy period does not wash out a quiet one.
    this.map.setPaintProperty(HEAT_LAYER, "heatmap-weight", ["interpolate", ["linear"], ["get", "weight"], 0, 0, Math.max(1, answer.max_weight), 1]);
    const last = addDays(answer.to, -1);
    const range = answer.from === last ? answer.from : `${answer.from} – ${last}`;
    this.summary.classList.remove("error");
    this.summary.textContent = `${range} · ${answer.total} ${t("cases")} · ${answer.cells} ${t("heatCells")} (${Math.round(answer.cell_m)} m)`;
    this.summary.dataset.total = String(answer.total);
  }
}
