// The small map of the report: the phone's position as a draggable pin over the platform's own
// community and grid outlines (vector tiles of /api/v1/tiles, the command center's endpoint). No
// basemap: it works offline and needs no third-party tiles (a deployment may add one later).

import { Map as MLMap, Marker, setWorkerUrl, type StyleSpecification } from "maplibre-gl";
import workerUrl from "maplibre-gl/dist/maplibre-gl-worker.mjs?url";
import "maplibre-gl/dist/maplibre-gl.css";
import type { Api } from "./api";

// The tile worker is a file of the build (no blob from a CDN); the service worker caches it too.
setWorkerUrl(workerUrl);

const HUADU: [number, number] = [113.22, 23.4];

function style(): StyleSpecification {
  const tiles = (level: string) => [`${location.origin}/api/v1/tiles/${level}/{z}/{x}/{y}.mvt`];
  return {
    version: 8,
    sources: {
      community: { type: "vector", tiles: tiles("community"), minzoom: 10, maxzoom: 14 },
      grid: { type: "vector", tiles: tiles("grid"), minzoom: 12, maxzoom: 14 },
    },
    layers: [
      { id: "background", type: "background", paint: { "background-color": "#eef2f6" } },
      {
        id: "community-fill",
        type: "fill",
        source: "community",
        "source-layer": "community",
        paint: { "fill-color": "#d3e3f4", "fill-opacity": 0.7 },
      },
      {
        id: "grid-line",
        type: "line",
        source: "grid",
        "source-layer": "grid",
        minzoom: 13,
        paint: { "line-color": "#4d86c4", "line-width": 1.5, "line-dasharray": [2, 1] },
      },
      {
        id: "community-line",
        type: "line",
        source: "community",
        "source-layer": "community",
        paint: { "line-color": "#0f5fa8", "line-width": 2 },
      },
    ],
  };
}

export class PinMap {
  private map: MLMap | null = null;
  private marker: Marker | null = null;
  readonly ok: boolean;
  onMove: (lon: number, lat: number) => void = () => undefined;

  constructor(el: HTMLElement, api: Api) {
    try {
      this.map = new MLMap({
        container: el,
        style: style(),
        center: HUADU,
        zoom: 11,
        attributionControl: false,
        transformRequest: (url: string) =>
          url.includes("/api/v1/tiles/") && api.token
            ? { url, headers: { Authorization: `Bearer ${api.token}` } }
            : { url },
      });
      this.map.on("error", () => undefined); // a tile that fails offline is not an error worth a popup
    } catch {
      this.map = null; // no WebGL: the report still uses the phone's position, just without a map
    }
    this.ok = this.map !== null;
  }

  /** Put the pin (and the view) at the phone's position. */
  place(lon: number, lat: number): void {
    if (!this.map) return;
    if (!this.marker) {
      this.marker = new Marker({ draggable: true, color: "#d4380d" }).setLngLat([lon, lat]).addTo(this.map);
      this.marker.on("dragend", () => {
        const p = this.marker?.getLngLat();
        if (p) this.onMove(p.lng, p.lat);
      });
      this.map.jumpTo({ center: [lon, lat], zoom: 15 }); // the grid around, not just the spot
    } else {
      this.marker.setLngLat([lon, lat]);
      this.map.panTo([lon, lat]);
    }
  }

  resize(): void {
    this.map?.resize();
  }
}
