// The heat map and the report page in a real browser (Debian chromium driven by playwright-core),
// run by test_center_report_browser.py, which owns the server and the seeded cases. EXPECT holds
// the figures it counted from its rows; this script checks the page against them and against the
// API, writes screenshots, a PDF print and the XLSX export, and prints one JSON line at the end.
"use strict";
const path = require("node:path");

const env = process.env;
const { chromium } = require(path.join(env.FRONTEND_DIR, "node_modules", "playwright-core"));
const BASE = env.BASE_URL;
const ART = env.ARTIFACTS;
const EXPECT = JSON.parse(env.EXPECT);

function check(cond, message) {
  if (!cond) throw new Error(message);
}

function log(message) {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
}

/** The report page's formatting, written out again (a wrong format in report.ts shows here). */
function formatted(kind, v) {
  if (v === null || v === undefined) return "—";
  if (kind === "rate") return `${(v * 100).toFixed(2)}%`;
  if (kind === "hours") return v.toFixed(1);
  return String(v);
}

async function api(page, url) {
  return page.evaluate(async (u) => {
    const token = JSON.parse(sessionStorage.getItem("youhu.tokens")).tokens.access_token;
    const r = await fetch(u, { headers: { Authorization: `Bearer ${token}` } });
    if (!r.ok) throw new Error(`${u}: ${r.status} ${await r.text()}`);
    return r.json();
  }, url);
}

const heat = (page) => page.evaluate(() => {
  const h = window.youhu.map.heat;
  return { loads: h.loads, on: h.on, error: h.error, data: h.data };
});

/** Change a heat picker and wait for the answer it causes. */
async function heatAfter(page, change) {
  const before = (await heat(page)).loads;
  await change();
  await page.waitForFunction((n) => window.youhu.map.heat.loads > n, before, { timeout: 15_000 });
  return heat(page);
}

async function renderedHeat(page) {
  // The layer draws (queryable features) once its source has the data and the tiles are done.
  await page.waitForFunction(
    () => {
      const m = window.youhu.map.map;
      return m.isSourceLoaded("heat") && m.queryRenderedFeatures({ layers: ["heat"] }).length > 0;
    },
    null,
    { timeout: 15_000 },
  );
  return page.evaluate(() => window.youhu.map.map.queryRenderedFeatures({ layers: ["heat"] }).length);
}

function checkHeat(h, total, what) {
  check(!h.error, `${what}: ${h.error}`);
  check(h.data.type === "FeatureCollection", `${what}: not GeoJSON`);
  check(h.data.total === total, `${what}: total ${h.data.total}, expected ${total}`);
  const sum = h.data.features.reduce((s, f) => s + f.properties.weight, 0);
  check(sum === total, `${what}: weights add up to ${sum}, expected ${total}`);
}

/** Every cell of the table is the API's value, formatted; 合计 last; counts add up by street. */
async function checkTable(page, rep, sumsAddUp) {
  await page.waitForFunction(
    ([title, n]) =>
      document.querySelector("[data-testid=report-title]")?.textContent === title &&
      document.querySelectorAll("[data-testid=report-table] tbody tr").length === n,
    [rep.title, Math.max(rep.rows.length, 1)],
    { timeout: 15_000 },
  );
  const table = page.getByTestId("report-table");
  check((await page.getByTestId("report-issuer").textContent()).includes(rep.issuer), "issuer");
  check((await page.getByTestId("report-range").textContent()).includes(rep.period_label), "period label");
  const heads = await table.locator("thead th[data-col]").allTextContents();
  check(JSON.stringify(heads) === JSON.stringify(rep.columns.map((c) => c.zh)), `columns ${heads}`);
  const shown = await page.evaluate(() =>
    [...document.querySelectorAll("[data-testid=report-table] tbody tr, [data-testid=report-table] tfoot tr")].map((tr) => ({
      key: tr.getAttribute("data-key"),
      name: tr.querySelector("th").textContent,
      cells: Object.fromEntries([...tr.querySelectorAll("td[data-col]")].map((td) => [td.dataset.col, [JSON.parse(td.dataset.value), td.textContent]])),
    })),
  );
  const want = [...rep.rows, rep.total];
  check(shown.length === want.length, `${shown.length} rows shown, ${want.length} in the API`);
  want.forEach((row, i) => {
    const s = shown[i];
    check(s.key === (row.key ?? ""), `row ${i}: key ${s.key} vs ${row.key}`);
    check(s.name === row.name, `row ${i}: name ${s.name} vs ${row.name}`);
    for (const c of rep.columns) {
      const [value, text] = s.cells[c.key];
      check(value === row.values[c.key], `${row.name} ${c.zh}: ${value} vs ${row.values[c.key]}`);
      check(text === formatted(c.kind, row.values[c.key]), `${row.name} ${c.zh}: shows ${text}`);
    }
  });
  check(shown[shown.length - 1].name === "合计", "合计 is last");
  check((await table.locator("tfoot th").getAttribute("colspan")) === "2", "合计 spans 序号 and the name");
  const notes = await page.getByTestId("report-notes").locator("li").allTextContents();
  check(JSON.stringify(notes) === JSON.stringify(rep.notes), "the notes (说明) are the API's");
  if (sumsAddUp) {
    for (const c of rep.columns.filter((x) => x.kind === "count")) {
      const sum = rep.rows.reduce((s, r) => s + r.values[c.key], 0);
      check(sum === rep.total.values[c.key], `${c.zh}: rows add up to ${sum}, 合计 ${rep.total.values[c.key]}`);
    }
  }
}

/** Change a report picker; checkTable then waits for the table the API gives for it. */
async function reportAfter(page, change) {
  await Promise.all([page.waitForResponse((r) => r.url().includes("/api/v1/center/report?")), change()]);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: env.CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
  });
  const result = {};
  try {
    const context = await browser.newContext({ viewport: { width: 1600, height: 900 }, locale: "zh-CN", acceptDownloads: true });
    const page = await context.newPage();
    page.on("pageerror", (e) => log(`page error: ${e}`));
    page.on("console", (m) => {
      if (m.type() === "error") log(`console: ${m.text()}`);
    });
    await page.goto(BASE + "/");
    await page.getByTestId("login-username").fill(env.LOGIN_USER);
    await page.getByTestId("login-password").fill(env.PASSWORD);
    await page.getByTestId("login-submit").click();
    await page.waitForSelector("[data-testid=live-state].live", { timeout: 20_000 });
    await page.waitForFunction(() => window.youhu?.map?.map?.loaded() && window.youhu.map.map.getLayer("heat"), null, { timeout: 20_000 });

    // 1. The heat map is off at first; switched on it shows the last 7 days of the street's cases.
    check((await page.evaluate(() => window.youhu.map.map.getLayoutProperty("heat", "visibility"))) === "none", "off at first");
    let h = await heatAfter(page, () => page.getByTestId("heat-toggle").check());
    checkHeat(h, EXPECT.d7, "7 days");
    check(h.data.period === "7d" && h.data.to > EXPECT.today, `period ${h.data.period} to ${h.data.to}`);
    check((await page.evaluate(() => window.youhu.map.map.getLayoutProperty("heat", "visibility"))) === "visible", "visible");
    result.heat_rendered = await renderedHeat(page);
    check((await page.getByTestId("heat-summary").textContent()).includes(`${EXPECT.d7} 件`), "summary shows the total");
    // Closer in for the picture: at the district's zoom the street's cells are under one cluster.
    await page.evaluate(() => {
      const m = window.youhu.map.map;
      const xs = window.youhu.map.heat.data.features.map((f) => f.geometry.coordinates);
      const lon = xs.map((c) => c[0]);
      const lat = xs.map((c) => c[1]);
      m.fitBounds([[Math.min(...lon), Math.min(...lat)], [Math.max(...lon), Math.max(...lat)]], { padding: 250, maxZoom: 14, duration: 0 });
    });
    await page.waitForFunction(() => window.youhu.map.map.areTilesLoaded(), null, { timeout: 15_000 });
    await renderedHeat(page);
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(ART, "heatmap-7d.png") });
    log(`heat 7d: ${h.data.total} cases in ${h.data.cells} cells, ${result.heat_rendered} rendered`);

    // 2. 30 days, then one category: the data changes each time, and the layer still draws.
    h = await heatAfter(page, () => page.getByTestId("heat-period").selectOption("30d"));
    checkHeat(h, EXPECT.d30, "30 days");
    h = await heatAfter(page, () => page.getByTestId("heat-category").selectOption("env.exposed_garbage"));
    checkHeat(h, EXPECT.d30_garbage, "30 days, 暴露垃圾");
    check(JSON.stringify(h.data.categories) === '["env.exposed_garbage"]', "category sent");
    await renderedHeat(page);
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(ART, "heatmap-category.png") });
    result.heat_coordinates = h.data.features.map((f) => f.geometry.coordinates);
    result.heat_weights = h.data.features.map((f) => f.properties.weight);

    // 3. A custom range of one day (the last day is inclusive on screen, exclusive in the API).
    await heatAfter(page, () => page.getByTestId("heat-category").selectOption(""));
    await heatAfter(page, () => page.getByTestId("heat-period").selectOption("custom"));
    await page.getByTestId("heat-from").fill(EXPECT.custom_day);
    await page.getByTestId("heat-to").fill(EXPECT.custom_day);
    const next = new Date(`${EXPECT.custom_day}T00:00:00Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    await page.waitForFunction(
      ([from, to]) => {
        const d = window.youhu.map.heat.data;
        return d && d.period === "custom" && d.from === from && d.to === to;
      },
      [EXPECT.custom_day, next.toISOString().slice(0, 10)],
      { timeout: 15_000 },
    );
    h = await heat(page);
    checkHeat(h, EXPECT.custom_total, "custom day");

    // 4. Off again: the layer hides.
    await page.getByTestId("heat-toggle").uncheck();
    check((await page.evaluate(() => window.youhu.map.map.getLayoutProperty("heat", "visibility"))) === "none", "hidden again");

    // 5. The report page: this month by street, as the API answers it, cell by cell.
    await Promise.all([page.waitForResponse((r) => r.url().includes("/api/v1/center/report?")), page.getByTestId("nav-report").click()]);
    await page.waitForSelector("[data-testid=report-table] tbody tr");
    let rep = await api(page, `/api/v1/center/report?period=month&by=street&month=${EXPECT.month}`);
    await checkTable(page, rep, true);
    check(rep.rows.length === 1 && rep.rows[0].name === "新华街道", "an operator of 新华 sees 新华 only");
    result.report_month_received = rep.total.values.received;
    result.report_title = rep.title;
    await page.screenshot({ path: path.join(ART, "report-month.png"), fullPage: true });

    // 6. By category, then one day.
    await reportAfter(page, () => page.getByTestId("report-by").selectOption("category"));
    rep = await api(page, `/api/v1/center/report?period=month&by=category&month=${EXPECT.month}`);
    await checkTable(page, rep, true);
    check(rep.rows.length >= 2, "several categories");
    await reportAfter(page, () => page.getByTestId("report-period").selectOption("day"));
    await reportAfter(page, () => page.getByTestId("report-day").fill(EXPECT.custom_day));
    rep = await api(page, `/api/v1/center/report?period=day&by=category&day=${EXPECT.custom_day}`);
    await checkTable(page, rep, true);
    check(rep.total.values.received === EXPECT.custom_total, `day received ${rep.total.values.received}`);
    check(rep.title.includes("日报"), "a daily report");
    await reportAfter(page, () => page.getByTestId("report-period").selectOption("month"));
    await reportAfter(page, () => page.getByTestId("report-by").selectOption("street"));

    // 7. Export XLSX (the server's workbook) and print: only the sheet, as a PDF.
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("report-xlsx").click()]);
    await download.saveAs(path.join(ART, "report.xlsx"));
    check(download.suggestedFilename().endsWith(".xlsx"), `download ${download.suggestedFilename()}`);
    await page.emulateMedia({ media: "print" });
    check(!(await page.locator("header").isVisible()), "no header in print");
    check(!(await page.locator(".report-controls").isVisible()), "no controls in print");
    check(await page.getByTestId("report-table").isVisible(), "the table prints");
    await page.screenshot({ path: path.join(ART, "report-print.png"), fullPage: true });
    await page.pdf({ path: path.join(ART, "report.pdf"), landscape: true, printBackground: true });
    await page.emulateMedia({ media: "screen" });
    result.ok = true;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((err) => {
  process.stderr.write(`e2e failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
