// The inspector app (网格员 App) at /m/: log in once, then four tabs within thumb reach —
// 上报 report, 任务 tasks, 巡查 patrol, 队列 queue — and a status bar (online, queue, language).

import { Api, ApiError, NetworkDown } from "./api";
import { h, toast } from "./dom";
import { t, toggleLang } from "./i18n";
import { Live } from "./live";
import { PatrolScreen } from "./patrol";
import { Outbox } from "./queue";
import { QueueScreen } from "./queueview";
import { ReportScreen } from "./report";
import { TasksScreen } from "./tasks";
import { loadTaxonomy } from "./taxonomy";
import "./style.css";

type Tab = "report" | "tasks" | "patrol" | "queue";

const root = document.getElementById("app") as HTMLElement;
const api = new Api();
const outbox = new Outbox(api);

if (import.meta.env.PROD && "serviceWorker" in navigator) {
  // The app shell comes from the phone's cache when there is no network (src/sw.ts).
  void navigator.serviceWorker.register("./sw.js").catch(() => undefined);
}

function loginScreen(): void {
  const user = h("input", { name: "username", autocomplete: "username", "data-testid": "login-user" });
  const pass = h("input", {
    name: "password",
    type: "password",
    autocomplete: "current-password",
    "data-testid": "login-password",
  });
  const error = h("p", { class: "warn", "data-testid": "login-error" });
  const form = h(
    "form",
    { class: "login" },
    h("h1", {}, t("appName")),
    h("label", { class: "field" }, t("username"), user),
    h("label", { class: "field" }, t("password"), pass),
    h("button", { class: "primary big", type: "submit", "data-testid": "login-submit" }, t("login")),
    error,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void api
      .login(user.value.trim(), pass.value)
      .then(() => start())
      .catch((err: unknown) => {
        error.textContent =
          err instanceof ApiError ? `${t("loginFailed")}: ${err.message}` : err instanceof NetworkDown ? t("offline") : String(err);
      });
  });
  const langButton = h("button", { class: "link lang", type: "button" }, t("lang"));
  langButton.addEventListener("click", () => {
    toggleLang();
    loginScreen();
  });
  root.replaceChildren(h("div", { class: "login-wrap" }, langButton, form));
}

async function start(): Promise<void> {
  if (!api.me) {
    try {
      await api.loadMe();
    } catch {
      if (!api.me) return loginScreen();
    }
  }
  const me = api.me;
  if (!me) return loginScreen();
  await outbox.load();
  const tx = await loadTaxonomy(api);

  const report = new ReportScreen(api, outbox, tx);
  const tasks = new TasksScreen(api, outbox);
  const patrol = new PatrolScreen(api);
  const queue = new QueueScreen(outbox);
  const screens: Record<Tab, HTMLElement> = { report: report.el, tasks: tasks.el, patrol: patrol.el, queue: queue.el };

  const net = h("span", { class: "pill", "data-testid": "net-state" });
  const queueBadge = h("span", { class: "badge", "data-testid": "queue-count" }, "0");
  const langButton = h("button", { class: "link lang", "data-testid": "lang" }, t("lang"));
  const logout = h("button", { class: "link" }, t("logout"));
  const header = h(
    "header",
    { class: "bar" },
    h("div", { class: "who" }, h("strong", {}, t("appName")), h("span", { class: "muted small" }, me.actor)),
    net,
    langButton,
    logout,
  );
  const main = h("main", {});
  const tabs: [Tab, string, string][] = [
    ["report", "✚", t("tabReport")],
    ["tasks", "☑", t("tabTasks")],
    ["patrol", "◎", t("tabPatrol")],
    ["queue", "⇅", t("tabQueue")],
  ];
  const nav = h("nav", { class: "tabs" });
  const buttons = new Map<Tab, HTMLButtonElement>();
  for (const [tab, icon, label] of tabs) {
    const b = h("button", { "data-tab": tab, "data-testid": `tab-${tab}` }, h("span", { class: "icon" }, icon), label);
    if (tab === "queue") b.append(queueBadge);
    b.addEventListener("click", () => show(tab));
    buttons.set(tab, b);
    nav.append(b);
  }
  function show(tab: Tab): void {
    main.replaceChildren(screens[tab]);
    for (const [k, b] of buttons) b.classList.toggle("on", k === tab);
    if (tab === "report") report.shown();
    if (tab === "tasks") void tasks.reload();
    if (tab === "queue") queue.render();
  }
  function netState(): void {
    const on = navigator.onLine;
    net.textContent = on ? t("online") : t("offline");
    net.classList.toggle("off", !on);
  }
  window.addEventListener("online", netState);
  window.addEventListener("offline", netState);
  netState();

  outbox.onChange = () => {
    queueBadge.textContent = String(outbox.list.length);
    queueBadge.classList.toggle("on", outbox.list.length > 0);
    queue.render();
  };
  outbox.onSent = (s) => {
    toast(`${t("sentOk")}: ${s.summary}`);
    void tasks.reload();
  };
  outbox.onChange();
  api.onLoggedOut = () => {
    live.stop();
    loginScreen();
  };
  langButton.addEventListener("click", () => {
    toggleLang();
    live.stop();
    void start();
  });
  logout.addEventListener("click", () => api.logout());

  const live = new Live(api, () => void tasks.reload());
  live.onState = (s) => tasks.setLive(s === "live");
  live.start();

  root.replaceChildren(h("div", { class: "shell" }, header, main, nav));
  show(me.role === "unit_staff" ? "tasks" : "report");
  void outbox.kick(); // whatever waited from an earlier session
}

document.documentElement.lang = localStorage.getItem("youhu.m.lang") === "en" ? "en" : "zh-CN";
if (api.loggedIn) void start();
else loginScreen();
