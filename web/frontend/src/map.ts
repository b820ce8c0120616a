// The live map: our own area layers as vector tiles (no basemap unless one is configured, so it
// works offline), cases as clustered points coloured by status with a ring for deadline risk, and
// inspectors' positions. Cluster counts are HTML markers: the style has no glyphs to download.

import { Map as MLMap, Marker, setWorkerUrl } from "maplibre-gl";
import type { GeoJSONSource, MapGeoJSONFeature, StyleSpecification } from "maplibre-gl";
import workerUrl from "maplibre-gl/dist/maplibre-gl-worker.mjs?url";
import "maplibre-gl/dist/maplibre-gl.css";

import type { Api } from "./api";
import { HeatLayer } from "./heat";
import { t } from "./i18n";
import { type CaseState, type CaseStore, riskOf } from "./store";

setWorkerUrl(workerUrl);

export interface CenterConfig {
  basemap_url: string | null;
  basemap_attribution: string;
  districts: { code: string; name: string; bounds: [number, number, number, number] }[];
  heartbeat_s: number;
}

export const STATUS_COLOURS: Record<string, string> = {
  reported: "#4ea8ff",
  registered: "#36cfc9",
  dispatched: "#b37feb",
  in_progress: "#ffc53d",
  handled: "#5cdbd3",
  verified: "#73d13d",
  returned: "#ff85c0",
  suspended: "#8c8c8c",
};
export const RISK_COLOURS = { overdue: "#ff4d4f", soon: "#fa8c16", ok: "#ffffff", none: "#bfbfbf" };

const AREA_LEVELS: [string, number, string, number][] = [
  // level, min zoom, colour, line width
  ["district", 0, "#91d5ff", 3],
  ["street", 8, "#69c0ff", 2],
  ["community", 12, "#40a9ff", 1],
  ["grid", 14, "#1d39c4", 0.6],
];

export class LiveMap {
  readonly map: MLMap | null;
  private readonly markers = new Map<number, Marker>();
  private pending = false;
  /** Case ids handed to the map in the last redraw (whether shown singly or in a cluster). */
  drawn: number[] = [];
  /** The heat map layer and its control (heat.ts); null without WebGL. */
  heat: HeatLayer | null = null;

  constructor(
    el: HTMLElement,
    cfg: CenterConfig,
    private readonly api: Api,
    private readonly store: CaseStore,
    private readonly visible: (c: CaseState) => boolean,
    private readonly onPick: (caseId: number) => void,
  ) {
    let map: MLMap | null = null;
    try {
      map = new MLMap({
        container: el,
        style: this.style(cfg),
        bounds: cfg.districts[0]?.bounds ?? [113.0, 23.2, 113.5, 23.6],
        fitBoundsOptions: { padding: 20 },
        attributionControl: cfg.basemap_attribution ? { customAttribution: cfg.basemap_attribution } : false,
        transformRequest: (url: string) =>
          url.includes("/api/v1/tiles/") && this.api.token
            ? { url, headers: { Authorization: `Bearer ${this.api.token}` } }
            : { url },
      });
    } catch (err) {
      el.textContent = `${t("webglMissing")}: ${String(err)}`;
      el.classList.add("map-error");
    }
    this.map = map;
    if (!map) return;
    map.on("load", () => {
      this.addLayers(map);
      this.refresh();
    });
    this.heat = new HeatLayer(map, api); // after addLayers' handler: it goes under the case layers
    map.on("render", () => this.updateClusterMarkers());
    store.onChange(() => this.refresh());
  }

  private style(cfg: CenterConfig): StyleSpecification {
    const origin = location.origin;
    const sources: StyleSpecification["sources"] = {};
    const layers: StyleSpecification["layers"] = [
      { id: "background", type: "background", paint: { "background-color": "#0b1a2b" } },
    ];
    if (cfg.basemap_url) {
      sources.basemap = { type: "raster", tiles: [cfg.basemap_url], tileSize: 256 };
      layers.push({ id: "basemap", type: "raster", source: "basemap", paint: { "raster-opacity": 0.6 } });
    }
    for (const [level, minzoom, colour, width] of AREA_LEVELS) {
      sources[`areas-${level}`] = {
        type: "vector",
        tiles: [`${origin}/api/v1/tiles/${level}/{z}/{x}/{y}.mvt`],
        minzoom: Math.max(0, minzoom - 1),
        maxzoom: 14,
      };
      if (level === "district") {
        layers.push({
          id: "district-fill",
          type: "fill",
          source: "areas-district",
          "source-layer": "district",
          paint: { "fill-color": "#13324f", "fill-opacity": 0.5 },
        });
      }
      layers.push({
        id: `${level}-line`,
        type: "line",
        source: `areas-${level}`,
        "source-layer": level,
        minzoom,
        paint: { "line-color": colour, "line-width": width, "line-opacity": 0.8 },
      });
    }
    return { version: 8, sources, layers };
  }

  private addLayers(map: MLMap): void {
    map.addSource("cases", {
      type: "geojson",
      data: { type: "FeatureCollection", features: [] },
      cluster: true,
      clusterRadius: 42,
      clusterMaxZoom: 15,
      clusterProperties: {
        overdue: ["+", ["case", ["==", ["get", "risk"], "overdue"], 1, 0]],
      },
    });
    map.addSource("positions", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    map.addLayer({
      id: "clusters",
      type: "circle",
      source: "cases",
      filter: ["has", "point_count"],
      paint: {
        "circle-color": ["case", [">", ["get", "overdue"], 0], "#cf1322", "#1677ff"],
        "circle-radius": ["step", ["get", "point_count"], 16, 10, 22, 100, 30],
        "circle-opacity": 0.85,
        "circle-stroke-color": "#ffffff",
        "circle-stroke-width": 2,
      },
    });
    map.addLayer({
      id: "cases-point",
      type: "circle",
      source: "cases",
      filter: ["!", ["has", "point_count"]],
      paint: {
        "circle-color": ["coalesce", ["get", "colour"], "#4ea8ff"],
        "circle-radius": 9,
        "circle-stroke-color": ["coalesce", ["get", "ring"], "#ffffff"],
        "circle-stroke-width": 3,
      },
    });
    map.addLayer({
      id: "positions",
      type: "circle",
      source: "positions",
      paint: {
        "circle-color": "#52c41a",
        "circle-radius": 6,
        "circle-stroke-color": "#0b1a2b",
        "circle-stroke-width": 2,
      },
    });
    map.on("click", "cases-point", (e) => {
      const f = e.features?.[0];
      if (f) this.onPick(Number(f.properties.case_id));
    });
    map.on("click", "clusters", (e) => {
      const f = e.features?.[0];
      if (f) void this.zoomInto(map, f);
    });
    for (const layer of ["cases-point", "clusters"]) {
      map.on("mouseenter", layer, () => (map.getCanvas().style.cursor = "pointer"));
      map.on("mouseleave", layer, () => (map.getCanvas().style.cursor = ""));
    }
  }

  private async zoomInto(map: MLMap, f: MapGeoJSONFeature): Promise<void> {
    const src = map.getSource("cases") as GeoJSONSource;
    const zoom = await src.getClusterExpansionZoom(Number(f.properties.cluster_id));
    const [lon, lat] = (f.geometry as GeoJSON.Point).coordinates as [number, number];
    map.easeTo({ center: [lon, lat], zoom });
  }

  /** Redraw from the store (coalesced to one update per frame). */
  refresh(): void {
    if (this.pending || !this.map) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  private draw(): void {
    const map = this.map;
    if (!map || !map.getSource("cases")) return;
    const now = Date.now();
    const features: GeoJSON.Feature[] = [];
    for (const c of this.store.cases.values()) {
      if (c.lon === null || c.lat === null || !this.visible(c)) continue;
      const risk = riskOf(c, now);
      features.push({
        type: "Feature",
        geometry: { type: "Point", coordinates: [c.lon, c.lat] },
        properties: {
          case_id: c.case_id,
          status: c.status,
          risk,
          colour: STATUS_COLOURS[c.status] ?? "#4ea8ff",
          ring: RISK_COLOURS[risk],
        },
      });
    }
    (map.getSource("cases") as GeoJSONSource).setData({ type: "FeatureCollection", features });
    this.drawn = features.map((f) => Number(f.properties?.case_id));
    const positions: GeoJSON.Feature[] = [...this.store.positions.values()].map((p) => ({
      type: "Feature",
      geometry: { type: "Point", coordinates: [p.lon, p.lat] },
      properties: { inspector: p.inspector, name: p.name ?? p.inspector },
    }));
    (map.getSource("positions") as GeoJSONSource).setData({ type: "FeatureCollection", features: positions });
  }

  private updateClusterMarkers(): void {
    const map = this.map;
    if (!map || !map.getSource("cases") || !map.isSourceLoaded("cases")) return;
    const seen = new Set<number>();
    for (const f of map.querySourceFeatures("cases")) {
      const p = f.properties;
      if (!p.cluster) continue;
      const id = Number(p.cluster_id);
      if (seen.has(id)) continue;
      seen.add(id);
      let marker = this.markers.get(id);
      const [lon, lat] = (f.geometry as GeoJSON.Point).coordinates as [number, number];
      if (!marker) {
        const el = document.createElement("div");
        el.className = "cluster-count";
        marker = new Marker({ element: el }).setLngLat([lon, lat]).addTo(map);
        this.markers.set(id, marker);
      }
      marker.getElement().textContent = String(p.point_count);
    }
    for (const [id, marker] of this.markers) {
      if (!seen.has(id)) {
        marker.remove();
        this.markers.delete(id);
      }
    }
  }

  /** Case ids drawn as single points right now (for the tests and the status bar). */
  renderedCaseIds(): number[] {
    if (!this.map || !this.map.getLayer("cases-point")) return [];
    return this.map.queryRenderedFeatures({ layers: ["cases-point"] }).map((f) => Number(f.properties.case_id));
  }

  /** Centre the case in the part of the map the case panel leaves free. */
  focus(c: CaseState, panelWidth = 0): void {
    if (this.map && c.lon !== null && c.lat !== null) {
      this.map.easeTo({
        center: [c.lon, c.lat],
        zoom: Math.max(this.map.getZoom(), 15),
        padding: { top: 0, bottom: 0, left: 0, right: panelWidth },
      });
    }
  }
}
