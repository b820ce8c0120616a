// The command center in a real browser (Debian chromium driven by playwright-core), run by
// test_center_browser.py, which owns the server and Kafka. They talk in JSON lines: this script
// writes {"step": …} on stdout when it needs something from the bus, and reads the answer on stdin.
"use strict";
const path = require("node:path");
const fs = require("node:fs");
const readline = require("node:readline");

const env = process.env;
const { chromium } = require(path.join(env.FRONTEND_DIR, "node_modules", "playwright-core"));
const BASE = env.BASE_URL;
const ART = env.ARTIFACTS;
const lines = readline.createInterface({ input: process.stdin });
const answers = [];
let waiting = null;
lines.on("line", (l) => {
  const msg = JSON.parse(l);
  if (waiting) {
    const w = waiting;
    waiting = null;
    w(msg);
  } else answers.push(msg);
});

function ask(step, extra = {}) {
  process.stdout.write(JSON.stringify({ step, ...extra }) + "\n");
  return new Promise((resolve) => {
    if (answers.length) resolve(answers.shift());
    else waiting = resolve;
  });
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function login(browser, username) {
  const context = await browser.newContext({ viewport: { width: 1600, height: 900 }, locale: "zh-CN" });
  const page = await context.newPage();
  page.on("pageerror", (e) => process.stderr.write(`[${username}] page error: ${e}\n`));
  page.on("response", (r) => {
    if (r.url().includes("/api/v1/tiles/") && r.status() >= 400) process.stderr.write(`[${username}] tile ${r.status()} ${r.url()}\n`);
  });
  page.on("console", (m) => {
    if (m.type() === "error") process.stderr.write(`[${username}] console: ${m.text()}\n`);
  });
  await page.goto(BASE + "/");
  await page.getByTestId("login-username").fill(username);
  await page.getByTestId("login-password").fill(env.PASSWORD);
  await page.getByTestId("login-submit").click();
  await page.waitForSelector('[data-testid=live-state].live', { timeout: 20_000 });
  return page;
}

const queueItem = (page, id) => page.locator(`[data-testid=queue] li[data-case-id="${id}"]`);

async function main() {
  const browser = await chromium.launch({
    executablePath: env.CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
  });
  const result = {};
  try {
    const op1 = await login(browser, env.USER1);
    const op2 = await login(browser, env.USER2);
    check((await op1.getByTestId("user").textContent()).includes(env.USER1), "op1 header shows the user");

    // 1. An event published to Kafka shows in the queue and on the map within 2 s.
    const pub = await ask("publish");
    const item = op1.locator("[data-testid=queue] li", { hasText: pub.title });
    await item.waitFor({ timeout: 10_000 });
    const caseId = Number(await item.getAttribute("data-case-id"));
    await op1.waitForFunction((cid) => window.youhu.map.drawn.includes(cid), caseId, { timeout: 10_000 });
    result.latency_ms = Date.now() - pub.published_at_ms;
    result.case_id = caseId;
    check(result.latency_ms < 2000, `case took ${result.latency_ms} ms to reach the queue and the map`);
    await queueItem(op2, caseId).waitFor({ timeout: 5_000 });
    // The district's own area layers are drawn from the vector tiles (no basemap).
    await op1.waitForFunction(
      () => window.youhu.map.map.queryRenderedFeatures({ layers: ["district-line", "street-line"] }).length > 0,
      null,
      { timeout: 15_000 },
    );
    await op1.waitForFunction(() => window.youhu.map.map.areTilesLoaded(), null, { timeout: 15_000 });
    await op1.screenshot({ path: path.join(ART, "center-map.png") });

    // 2. Both operators open the case; the first registers and dispatches it.
    await queueItem(op1, caseId).click();
    await queueItem(op2, caseId).click();
    const statusOf = (page) => page.getByTestId("panel-status").textContent();
    await op1.waitForFunction(() => document.querySelector("[data-testid=panel-status]")?.textContent === "上报");
    check((await op1.getByTestId("panel-sources").textContent()).includes(pub.record), "source record shown");
    // The map has zoomed to the case: it is drawn as its own point now.
    await op1.waitForFunction((cid) => window.youhu.map.renderedCaseIds().includes(cid), caseId, { timeout: 10_000 });
    for (const [action, expect] of [["register", "立案"], ["dispatch", "派遣"]]) {
      await op1.locator(`[data-testid=panel-actions] button[data-action=${action}]`).click();
      await op1.getByTestId("action-submit").click();
      await op1.waitForFunction((s) => document.querySelector("[data-testid=panel-status]")?.textContent === s, expect, { timeout: 10_000 });
    }
    // 3. The second operator's open panel follows without a reload.
    const t0 = Date.now();
    await op2.waitForFunction(() => document.querySelector("[data-testid=panel-status]")?.textContent === "派遣", null, { timeout: 5_000 });
    await op2.waitForSelector('[data-testid=panel-timeline] li[data-action=dispatch]', { timeout: 5_000 });
    result.peer_update_ms = Date.now() - t0;
    check((await statusOf(op2)) === "派遣", "peer sees 派遣");

    await op1.waitForTimeout(500); // let the map finish its ease before the pictures
    await op1.screenshot({ path: path.join(ART, "center-case.png") });
    await op1.getByTestId("panel").screenshot({ path: path.join(ART, "center-panel.png") });

    // 4. The second operator's connection drops; cases opened meanwhile arrive after it comes
    //    back, replayed from the hub (resumed, not a fresh snapshot), each exactly once.
    const before = await op2.evaluate(() => ({ ...window.youhu.live.counters }));
    await op2.evaluate(() => window.youhu.live.drop(120_000));
    await op2.waitForSelector('[data-testid=live-state].reconnecting');
    const missed = await ask("offline");
    await op2.evaluate(() => window.youhu.live.reconnectNow());
    await op2.waitForSelector('[data-testid=live-state].live', { timeout: 10_000 });
    for (const title of missed.titles) {
      await op2.locator("[data-testid=queue] li", { hasText: title }).waitFor({ timeout: 10_000 });
      const n = await op2.locator("[data-testid=queue] li", { hasText: title }).count();
      check(n === 1, `${title} listed ${n} times`);
    }
    const after = await op2.evaluate(() => ({ ...window.youhu.live.counters }));
    check(after.resumed === before.resumed + 1, `resumed ${before.resumed} → ${after.resumed}`);
    check(after.resyncs === before.resyncs && after.snapshots === before.snapshots, "no resync, no new snapshot");
    check(after.deltas >= before.deltas + missed.titles.length, "the missed deltas were applied");
    result.resumed = after.resumed;

    // 5. The case panel's evidence. The test makes a possible duplicate: an app report with a
    //    photo (plus a supplement photo) next to an open 网格 case, not forwarded to 数字城管 while
    //    it is held; the 网格 case's write-back failed while that system was down.
    const dup = await ask("duplicates");
    const panel = op1.getByTestId("panel");
    const titleIs = (page, id) =>
      page.waitForFunction((cid) => document.querySelector("[data-testid=panel-title]")?.textContent.startsWith(`#${cid} `), id, { timeout: 10_000 });
    const itemB = op1.locator("[data-testid=queue] li", { hasText: dup.title_b });
    await itemB.waitFor({ timeout: 10_000 });
    await itemB.click();
    await titleIs(op1, dup.b);
    const dupInfo = { a: dup.a, b: dup.b };
    // The duplicate: a link to the other case, and the decisions the operator may take.
    await panel.locator(`[data-testid=duplicate-link][data-case-id="${dup.a}"]`).waitFor({ timeout: 10_000 });
    check(await panel.getByTestId("duplicate-merge").isVisible(), "merge offered");
    check(await panel.getByTestId("duplicate-distinct").isVisible(), "不是重复 offered");
    // Photos: fetched with the token (the uploads need it), shown by stage, all decoded.
    await op1.waitForFunction(
      () => {
        const imgs = [...document.querySelectorAll("[data-testid=panel-photos] [data-testid=panel-photo] img")];
        return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0);
      },
      null,
      { timeout: 15_000 },
    );
    dupInfo.photos = await panel.locator("[data-testid=panel-photo]").evaluateAll((els) => {
      const n = {};
      for (const e of els) n[e.dataset.stage] = (n[e.dataset.stage] || 0) + 1;
      return n;
    });
    dupInfo.natural_widths = await panel.locator("[data-testid=panel-photo] img").evaluateAll((els) => els.map((i) => i.naturalWidth));
    check((await panel.locator("[data-testid=panel-photo][data-stage=reported]").textContent()).includes("上报"), "photo labelled 上报");
    check(
      (await panel.locator("[data-testid=panel-photo] img").first().getAttribute("src")).startsWith("blob:"),
      "photo loaded into a blob URL with the token",
    );
    // Click to enlarge.
    await panel.locator("[data-testid=panel-photo][data-stage=reported]").click();
    await op1.waitForFunction(() => {
      const box = document.querySelector("[data-testid=lightbox]");
      const img = box?.querySelector("img");
      return box && !box.hidden && img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: 10_000 });
    dupInfo.lightbox_width = await op1.evaluate(() => document.querySelector("[data-testid=lightbox] img").naturalWidth);
    await op1.screenshot({ path: path.join(ART, "center-lightbox.png") });
    await op1.keyboard.press("Escape");
    await op1.waitForFunction(() => document.querySelector("[data-testid=lightbox]").hidden);
    // Held: nothing has gone to 数字城管 yet (it may already hold this problem as the other case).
    const dest = "[data-testid=panel-deliveries] details.dest[data-destination=szcg]";
    const szcg = panel.locator(dest);
    await panel.getByTestId("panel-deliveries").waitFor({ state: "attached", timeout: 10_000 });
    await op1.waitForTimeout(500);
    dupInfo.forwarded_while_held = await szcg.count();
    // The whole panel in the picture: a taller window for the moment, the top scrolled into view.
    await op1.setViewportSize({ width: 1600, height: 1500 });
    await panel.evaluate((e) => (e.scrollTop = 0));
    await op1.waitForTimeout(300);
    await panel.screenshot({ path: path.join(ART, "center-panel-duplicate.png") });
    await op1.setViewportSize({ width: 1600, height: 900 });
    // The link opens the other case, whose panel lists this report as its possible duplicate.
    await panel.locator(`[data-testid=duplicate-link][data-case-id="${dup.a}"]`).click();
    await titleIs(op1, dup.a);
    const back = panel.locator(`[data-testid=duplicated-by-link][data-case-id="${dup.b}"]`);
    await back.waitFor({ timeout: 10_000 });
    dupInfo.opened_other = true;
    // Its delivery states: the write-back to 网格 failed; the operator replays it and it arrives.
    const wdest = "[data-testid=panel-deliveries] details.dest[data-destination=wangge]";
    const wangge = panel.locator(wdest);
    await panel.locator(`${wdest}[data-state=failed]`).waitFor({ timeout: 10_000 });
    check((await wangge.textContent()).includes(dup.a_record), "the source record's number is shown");
    dupInfo.failed_reason = (await wangge.locator("li[data-state=failed] q.reason").textContent()).trim();
    await wangge.getByTestId("delivery-replay").click();
    await panel.locator(`${wdest}[data-state=acknowledged]`).waitFor({ timeout: 20_000 });
    dupInfo.replayed_state = await wangge.getAttribute("data-state");
    // Back to it, and 不是重复: it goes on as its own case (立案); now it is forwarded to 数字城管,
    // which also hears "registered", and both show up in the open panel without a reload.
    await back.click();
    await titleIs(op1, dup.b);
    await panel.getByTestId("duplicate-distinct").click();
    await panel.locator("[data-testid=panel-duplicate] [data-testid=action-submit]").click();
    await op1.waitForFunction(() => document.querySelector("[data-testid=panel-status]")?.textContent === "立案", null, { timeout: 10_000 });
    // (attached, not visible: a destination whose deliveries all arrived is folded)
    await szcg.locator("li[data-stage=forward]").waitFor({ state: "attached", timeout: 20_000 });
    await szcg.locator("li[data-stage=registered]").waitFor({ state: "attached", timeout: 20_000 });
    dupInfo.live_registered_stage = true;
    check(!(await panel.getByTestId("duplicate-distinct").count()), "the question is settled");
    result.duplicate = dupInfo;

    // 6. Statistics page, and the English switch.
    await op1.goto(BASE + "/#/stats");
    await op1.waitForSelector("[data-testid=stats-table] tbody tr");
    await op1.screenshot({ path: path.join(ART, "center-stats.png") });
    await op1.getByTestId("lang-switch").click();
    await op1.waitForSelector("text=Command Center");
    result.ok = true;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify({ step: "done", ...result }) + "\n");
  lines.close();
}

main().catch((err) => {
  process.stderr.write(`e2e failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
