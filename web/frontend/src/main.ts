// The command center (指挥中心): login, then the live map with the queue and the case panel, or the
// statistics page (#/stats), or the daily/monthly report (#/report). Chinese first; 中文/EN switch
// in the header.

import "./style.css";

import { Api, ApiError, type Me } from "./api";
import { el } from "./format";
import { getLang, setLang, t } from "./i18n";
import { LiveFeed, type LiveState } from "./live";
import { type CenterConfig, LiveMap } from "./map";
import { CasePanel } from "./panel";
import { Queue } from "./queue";
import { ReportPage } from "./report";
import { StatsPage } from "./stats";
import { CaseStore } from "./store";

interface Taxonomy {
  categories: { code: string; name_zh: string; name_en: string }[];
  groups: { code: string; name_zh: string; name_en: string }[];
}

const app = document.getElementById("app") as HTMLDivElement;
const api = new Api();
api.onLoggedOut = () => location.reload();
setLang(getLang());

// Handles for the browser tests and for operators' debugging in the console.
declare global {
  interface Window {
    youhu?: { store: CaseStore; live: LiveFeed; map: LiveMap; queue: Queue; panel: CasePanel };
  }
}

function loginPage(): void {
  const user = el("input", { name: "username", autocomplete: "username", "data-testid": "login-username" });
  const pass = el("input", { name: "password", type: "password", autocomplete: "current-password", "data-testid": "login-password" });
  const error = el("div", { class: "error", "data-testid": "login-error" });
  const submit = el("button", { class: "primary", type: "submit", "data-testid": "login-submit" }, t("login"));
  const form = el(
    "form",
    { class: "login" },
    el("h1", {}, t("title")),
    el("label", {}, t("username"), user),
    el("label", {}, t("password"), pass),
    submit,
    error,
    langSwitch(),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api.login(user.value.trim(), pass.value);
      location.hash = "#/map";
      await start();
    } catch (err) {
      error.textContent = t("loginFailed") + (err instanceof ApiError ? err.message : String(err));
    }
  });
  app.replaceChildren(form);
  user.focus();
}

function langSwitch(): HTMLButtonElement {
  const b = el("button", { type: "button", class: "lang", "data-testid": "lang-switch" }, getLang() === "zh" ? "EN" : "中文");
  b.addEventListener("click", () => {
    setLang(getLang() === "zh" ? "en" : "zh");
    location.reload();
  });
  return b;
}

async function start(): Promise<void> {
  let me: Me;
  let cfg: CenterConfig;
  let taxonomy: Taxonomy;
  try {
    [me, cfg, taxonomy] = await Promise.all([
      api.request<Me>("GET", "/api/v1/auth/me"),
      api.request<CenterConfig>("GET", "/api/v1/center/config"),
      api.request<Taxonomy>("GET", "/api/v1/admin/taxonomy"),
    ]);
  } catch {
    api.logout();
    return;
  }
  const names = new Map<string, [string, string]>();
  for (const x of [...taxonomy.categories, ...taxonomy.groups]) names.set(x.code, [x.name_zh, x.name_en]);
  const categoryName = (code: string | null): string => {
    if (!code) return "—";
    const n = names.get(code);
    return n ? n[getLang() === "zh" ? 0 : 1] : code;
  };

  const status = el("span", { class: "live-state connecting", "data-testid": "live-state" }, t("connecting"));
  const nav = el("nav", {}, el("a", { href: "#/map" }, t("map")), el("a", { href: "#/stats", "data-testid": "nav-stats" }, t("stats")), el("a", { href: "#/report", "data-testid": "nav-report" }, t("report")));
  const logout = el("button", { type: "button", "data-testid": "logout" }, t("logout"));
  logout.addEventListener("click", () => api.logout());
  const header = el(
    "header",
    {},
    el("h1", {}, t("title")),
    nav,
    status,
    el("span", { class: "user", "data-testid": "user" }, `${me.username} · ${me.role}`),
    langSwitch(),
    logout,
  );
  const mapEl = el("div", { class: "map", "data-testid": "map" });
  const panelEl = el("aside", { class: "panel", "data-testid": "panel" });
  const queueEl = el("section", { class: "side" });
  const mapPage = el("main", { class: "map-page" }, el("div", { class: "map-wrap" }, mapEl, panelEl), queueEl);
  const statsEl = el("main", { class: "stats-page" });
  const reportEl = el("main", { class: "report-page", "data-testid": "report-page" });
  app.replaceChildren(header, mapPage, statsEl, reportEl);

  const store = new CaseStore();
  const panel = new CasePanel(panelEl, api, me, store, categoryName);
  const queue = new Queue(queueEl, store, categoryName, (id) => {
    panel.show(id);
    const c = store.cases.get(id);
    if (c) map.focus(c, panelEl.getBoundingClientRect().width);
  });
  const map = new LiveMap(mapEl, cfg, api, store, (c) => queue.visible(c), (id) => panel.show(id));
  // A case opened from the panel (a possible duplicate, a merge link) is centred like a queue pick.
  panel.onOpenCase = (id) => {
    panel.show(id);
    const c = store.cases.get(id);
    if (c) map.focus(c, panelEl.getBoundingClientRect().width);
  };
  queue.onFilter = () => map.refresh();
  window.setInterval(() => map.refresh(), 30_000); // deadline risk changes with time alone
  const stats = new StatsPage(statsEl, api);
  const report = new ReportPage(reportEl, api);
  const live = new LiveFeed(api, store);
  live.onState = (s: LiveState) => {
    status.className = `live-state ${s}`;
    status.textContent = s === "live" ? `● ${t("live")}` : t(s === "connecting" ? "connecting" : "reconnecting");
  };
  live.start();
  window.youhu = { store, live, map, queue, panel };

  const route = (): void => {
    const onStats = location.hash.startsWith("#/stats");
    const onReport = location.hash.startsWith("#/report");
    mapPage.hidden = onStats || onReport;
    statsEl.hidden = !onStats;
    reportEl.hidden = !onReport;
    const here = onStats ? "#/stats" : onReport ? "#/report" : "#/map";
    for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.getAttribute("href") === here);
    if (onStats) void stats.load();
    else if (onReport) void report.show();
    else map.map?.resize();
  };
  window.addEventListener("hashchange", route);
  route();
}

if (api.loggedIn) void start();
else loginPage();
