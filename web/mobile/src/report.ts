// 上报: category, photos, the phone's position on a small map (draggable pin), the address from
// reverse geocoding, a description. Before sending, open cases of the same category nearby are
// offered ("已有人上报 — 补充照片?"): the photo joins that case instead of opening a new one.
// Whatever is chosen goes into the offline queue (queue.ts), online or not.

import { type Api, type CaseOut } from "./api";
import { h, metres, toast } from "./dom";
import { statusLabel, t } from "./i18n";
import { PhotoPicker } from "./photos";
import { PinMap } from "./pinmap";
import { type CloudEventDraft, newId, type Outbox } from "./queue";
import { type Category, countUse, label, quickPicks, type Taxonomy } from "./taxonomy";

interface ReverseOut {
  inside: boolean;
  address: string;
  grid: { code: string; name: string } | null;
}

interface NearbyOut {
  cases: CaseOut[];
}

const NEARBY_TIMEOUT_MS = 5_000;

export class ReportScreen {
  readonly el: HTMLElement;
  private category: Category | null = null;
  private lon: number | null = null;
  private lat: number | null = null;
  private accuracy: number | null = null;
  private pinMoved = false;
  private watch: number | null = null;
  private readonly picker = new PhotoPicker(t("addPhoto"), "report-photos");
  private readonly map: PinMap;
  private readonly quick: HTMLElement;
  private readonly select: HTMLSelectElement;
  private readonly where: HTMLElement;
  private readonly address: HTMLInputElement;
  private readonly description: HTMLTextAreaElement;
  private readonly structure: HTMLElement;
  private readonly area: HTMLInputElement;
  private readonly kind: HTMLInputElement;
  private readonly hint: HTMLElement;
  private readonly sendButton: HTMLButtonElement;

  constructor(
    private readonly api: Api,
    private readonly outbox: Outbox,
    private readonly tx: Taxonomy | null,
  ) {
    this.quick = h("div", { class: "chips", "data-testid": "quick-picks" });
    this.select = h("select", { "data-testid": "category-select", "aria-label": t("category") });
    this.fillCategories();
    const mapEl = h("div", { class: "pin-map", "data-testid": "pin-map" });
    this.map = new PinMap(mapEl, api);
    this.map.onMove = (lon, lat) => {
      this.pinMoved = true;
      void this.setPlace(lon, lat, null);
    };
    this.where = h("div", { class: "muted small", "data-testid": "where" }, t("locating"));
    this.address = h("input", { type: "text", "data-testid": "address", placeholder: t("address") });
    this.description = h("textarea", { rows: 3, "data-testid": "description", placeholder: t("descriptionHint") });
    this.area = h("input", { type: "number", min: 0, step: "0.1", "data-testid": "structure-area" });
    this.kind = h("input", { type: "text", "data-testid": "structure-type", placeholder: "天面加建 / 铁皮房…" });
    this.structure = h(
      "div",
      { class: "structure", hidden: true },
      h("label", {}, t("structureArea"), this.area),
      h("label", {}, t("structureType"), this.kind),
    );
    this.hint = h("div", { class: "hint", hidden: true, "data-testid": "duplicate-hint" });
    this.sendButton = h("button", { class: "primary big", "data-testid": "send-report" }, t("send"));
    this.sendButton.addEventListener("click", () => void this.submit());
    const locate = h("button", { class: "link", type: "button" }, `◎ ${t("locateMe")}`);
    locate.addEventListener("click", () => {
      this.pinMoved = false;
      this.locate();
    });

    this.el = h(
      "section",
      { class: "screen report", "data-testid": "report-screen" },
      h("h2", {}, t("category")),
      this.quick,
      this.select,
      this.structure,
      h("h2", {}, t("photos")),
      this.picker.el,
      h("h2", {}, t("location"), " ", locate),
      mapEl,
      h("p", { class: "muted small" }, this.map.ok ? t("dragPin") : t("noMap")),
      this.where,
      h("label", { class: "field" }, t("address"), this.address),
      h("label", { class: "field" }, t("description"), this.description),
      this.hint,
      this.sendButton,
    );
  }

  /** Called when the tab is shown: the map needs its size, the GPS a fresh watch. */
  shown(): void {
    this.map.resize();
    if (this.watch === null) this.locate();
  }

  private fillCategories(): void {
    this.quick.replaceChildren();
    this.select.replaceChildren(h("option", { value: "" }, t("allCategories")));
    if (!this.tx) return;
    for (const c of quickPicks(this.tx)) {
      const chip = h("button", { class: "chip", type: "button", "data-code": c.code }, label(c));
      chip.addEventListener("click", () => this.choose(c));
      this.quick.append(chip);
    }
    for (const g of this.tx.groups) {
      const og = h("optgroup", { label: label(g) });
      for (const c of this.tx.categories.filter((x) => x.group === g.code))
        og.append(h("option", { value: c.code }, label(c)));
      this.select.append(og);
    }
    this.select.addEventListener("change", () => {
      const c = this.tx?.categories.find((x) => x.code === this.select.value);
      if (c) this.choose(c);
    });
  }

  private choose(c: Category): void {
    this.category = c;
    this.select.value = c.code;
    for (const chip of this.quick.querySelectorAll<HTMLElement>(".chip"))
      chip.classList.toggle("on", chip.dataset.code === c.code);
    // A 拆违 clue needs the structure's size: the owning system refuses one without it.
    this.structure.hidden = c.group !== "build";
  }

  private locate(): void {
    if (!("geolocation" in navigator)) {
      this.where.textContent = t("noGps");
      return;
    }
    if (this.watch !== null) navigator.geolocation.clearWatch(this.watch);
    this.watch = navigator.geolocation.watchPosition(
      (pos) => {
        this.accuracy = pos.coords.accuracy;
        if (!this.pinMoved) void this.setPlace(pos.coords.longitude, pos.coords.latitude, pos.coords.accuracy);
      },
      () => (this.where.textContent = t("noGps")),
      { enableHighAccuracy: true, maximumAge: 10_000, timeout: 30_000 },
    );
  }

  private async setPlace(lon: number, lat: number, accuracy: number | null): Promise<void> {
    const first = this.lon === null;
    const moved = this.lon === null || this.lat === null || Math.abs(this.lon - lon) + Math.abs(this.lat - lat) > 2e-5;
    this.lon = lon;
    this.lat = lat;
    if (accuracy !== null) this.map.place(lon, lat);
    const acc = this.accuracy !== null && !this.pinMoved ? ` ±${Math.round(this.accuracy)}${t("meters")}` : "";
    this.where.textContent = `${lon.toFixed(6)}, ${lat.toFixed(6)}${acc}`;
    this.where.dataset.lon = String(lon);
    this.where.dataset.lat = String(lat);
    if (!first && !moved) return;
    try {
      const r = await this.api.json<ReverseOut>(`/api/v1/geo/reverse?lon=${lon}&lat=${lat}`);
      if (this.lon !== lon || this.lat !== lat) return; // the pin moved on meanwhile
      // Keep what the inspector typed after the area names; replace only our own prefix.
      const prev = this.address.dataset.auto ?? "";
      const cur = this.address.value;
      if (cur.startsWith(prev)) {
        this.address.value = r.address + cur.slice(prev.length);
        this.address.dataset.auto = r.address;
      }
      this.where.textContent += r.grid ? ` · ${r.grid.name}` : "";
    } catch {
      // offline: the address stays as typed; the platform places the report by its point anyway
    }
  }

  private async submit(): Promise<void> {
    const c = this.category;
    if (!c) return toast(t("needCategory"), "warn");
    if (this.picker.blobs.length === 0) return toast(t("needPhoto"), "warn");
    if (this.lon === null || this.lat === null) return toast(t("needPlace"), "warn");
    this.sendButton.disabled = true;
    try {
      const nearby = navigator.onLine ? await this.nearby(c, this.lon, this.lat) : [];
      if (nearby.length > 0) {
        this.offer(nearby);
        return;
      }
      await this.queueReport();
    } finally {
      this.sendButton.disabled = false;
    }
  }

  private async nearby(c: Category, lon: number, lat: number): Promise<CaseOut[]> {
    this.hint.hidden = false;
    this.hint.replaceChildren(h("p", { class: "muted" }, t("checking")));
    try {
      const ctl = new AbortController();
      const timer = window.setTimeout(() => ctl.abort(), NEARBY_TIMEOUT_MS);
      const q = new URLSearchParams({ lon: String(lon), lat: String(lat), category: c.code });
      const out = await this.api.json<NearbyOut>(`/api/v1/cases/nearby?${q}`, { signal: ctl.signal });
      window.clearTimeout(timer);
      return out.cases;
    } catch {
      return []; // no answer in time (weak network): report; the platform merges true duplicates
    } finally {
      this.hint.hidden = true;
    }
  }

  private offer(cases: CaseOut[]): void {
    const list = h("ul", { class: "cards" });
    for (const c of cases) {
      const add = h("button", { class: "primary", "data-testid": `add-to-${c.id}` }, t("addToCase"));
      add.addEventListener("click", () => void this.queueSupplement(c));
      list.append(
        h(
          "li",
          { class: "card" },
          h("div", { class: "card-title" }, `${t("caseNo")} #${c.id} · ${c.title}`),
          h(
            "div",
            { class: "muted small" },
            `${statusLabel(c.status)} · ${metres(c.distance_m ?? 0)}${t("meters")} · ${c.address ?? ""}`,
          ),
          add,
        ),
      );
    }
    const anyway = h("button", { class: "secondary", "data-testid": "report-anyway" }, t("reportAnyway"));
    anyway.addEventListener("click", () => {
      this.hint.hidden = true;
      void this.queueReport();
    });
    const cancel = h("button", { class: "link" }, t("cancel"));
    cancel.addEventListener("click", () => (this.hint.hidden = true));
    this.hint.replaceChildren(h("h3", {}, t("alreadyReported")), list, anyway, cancel);
    this.hint.hidden = false;
    this.hint.scrollIntoView({ block: "nearest" });
  }

  private async queueSupplement(c: CaseOut): Promise<void> {
    const note = this.description.value.trim();
    await this.outbox.add({
      kind: "supplement",
      id: newId(),
      createdAt: Date.now(),
      state: "pending",
      attempts: 0,
      summary: `${t("kindSupplement")} → #${c.id} ${c.title}`,
      photos: [...this.picker.blobs],
      roles: this.picker.blobs.map(() => "evidence" as const),
      uploaded: [],
      caseId: c.id,
      note,
    });
    this.hint.hidden = true;
    this.reset();
    toast(t("queued"));
  }

  private async queueReport(): Promise<void> {
    const c = this.category;
    const me = this.api.me;
    if (!c || this.lon === null || this.lat === null || !me) return;
    const id = newId(); // the CloudEvent id: the pipeline drops a repeat of (source, id)
    const now = new Date().toISOString();
    const description = this.description.value.trim();
    const native: Record<string, unknown> = {};
    if (c.group === "build") {
      const area = Number(this.area.value);
      if (area > 0) native.mianji_m2 = area;
      if (this.kind.value.trim()) native.jianzhu_lx = this.kind.value.trim();
    }
    const event: CloudEventDraft = {
      specversion: "1.0",
      id,
      source: "/sources/mobile",
      type: "cn.youhu.event.reported",
      time: now,
      datacontenttype: "application/json",
      data: {
        source_system: "mobile",
        source_record_id: `M-${id}`,
        source_category: { code: c.code, label: c.name_zh },
        unified_category: c.code,
        title: (description.split(/[。\n]/)[0] ?? "").slice(0, 60) || c.name_zh,
        description,
        location: { type: "Point", coordinates: [this.lon, this.lat] },
        address: this.address.value.trim() || undefined,
        reported_at: now,
        reporter: { kind: "inspector", id: me.username },
        native,
      },
    };
    await this.outbox.add({
      kind: "report",
      id,
      createdAt: Date.now(),
      state: "pending",
      attempts: 0,
      summary: `${label(c)} · ${event.data.title as string}`,
      photos: [...this.picker.blobs],
      roles: this.picker.blobs.map(() => null),
      uploaded: [],
      event,
    });
    countUse(c.code);
    this.reset();
    toast(t("queued"));
  }

  private reset(): void {
    this.picker.clear();
    this.description.value = "";
    this.area.value = "";
    this.kind.value = "";
  }
}
