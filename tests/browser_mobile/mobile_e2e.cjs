// The inspector app in a real browser: Debian chromium driven by playwright-core (the app's own
// devDependency), phone viewport 390×844, emulated geolocation. Run by test_mobile_browser.py,
// which owns the server, the database and the simulated source system. They talk in JSON lines:
// this script writes {"step": …} on stdout when it needs something prepared or checked, and reads
// the answer on stdin. Screenshots go to $ARTIFACTS/mobile-*.png.
"use strict";
const path = require("node:path");
const readline = require("node:readline");

const env = process.env;
const { chromium } = require(path.join(env.MOBILE_DIR, "node_modules", "playwright-core"));
const BASE = env.BASE_URL;
const ART = env.ARTIFACTS;
const POINTS = JSON.parse(env.POINTS); // [[lon, lat], …] well inside the inspector's street
const PHONE = { width: 390, height: 844 };
const tiles = { drawn: 0 }; // area tiles the small map loaded (community, grid outlines)

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

const log = (who, text) => process.stderr.write(`[${who}] ${text}\n`);

async function phone(browser, username, lonlat, { serviceWorkers = "allow" } = {}) {
  const context = await browser.newContext({
    viewport: PHONE,
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    locale: "zh-CN",
    geolocation: { longitude: lonlat[0], latitude: lonlat[1], accuracy: 8 },
    permissions: ["geolocation"],
    serviceWorkers,
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => log(username, `page error: ${e}`));
  page.on("response", (r) => {
    if (r.url().includes("/api/v1/tiles/") && r.status() === 200) tiles.drawn += 1;
  });
  page.on("console", (m) => {
    if (m.type() === "error") log(username, `console: ${m.text()}`);
  });
  await page.goto(BASE + "/m"); // redirected to /m/
  await page.getByTestId("login-user").fill(username);
  await page.getByTestId("login-password").fill(env.PASSWORD);
  await page.getByTestId("login-submit").click();
  await page.getByTestId("tab-report").waitFor({ timeout: 20_000 });
  check(new URL(page.url()).pathname === "/m/", `the app lives at /m/, not ${page.url()}`);
  return { context, page };
}

async function queueDrained(page, timeout = 30_000) {
  await page.getByTestId("tab-queue").click();
  await page.getByTestId("queue-empty").waitFor({ timeout });
}

async function fillReport(page, { code, photo, description }) {
  await page.getByTestId("tab-report").click();
  await page.locator(`[data-testid=quick-picks] .chip[data-code="${code}"]`).click();
  await page.locator("input[name=report-photos]").setInputFiles(photo);
  await page.waitForFunction(() => document.querySelector(".photos")?.dataset.count === "1");
  await page.getByTestId("description").fill(description);
  // The phone's position (emulated GPS) is on the map and named by reverse geocoding.
  await page.locator("[data-testid=where][data-lon]").waitFor({ timeout: 15_000 });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: env.CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
  });
  const result = {};
  try {
    // ---- 1. report with a photo → case, routed and forwarded (checked by the test) ---------
    const insp = await phone(browser, env.INSPECTOR, POINTS[0]);
    let page = insp.page;
    const tag1 = `${env.TAG}-A`;
    await fillReport(page, { code: "env.exposed_garbage", photo: env.PHOTO, description: `路边垃圾堆放 ${tag1}` });
    await page.waitForFunction(() => document.querySelector("[data-testid=address]").value.length > 0, null, {
      timeout: 15_000,
    });
    result.address = await page.getByTestId("address").inputValue();
    // The small map drew the community and grid outlines of the vector tiles (no basemap).
    await page.waitForFunction(() => !!document.querySelector(".pin-map canvas") && !!document.querySelector(".maplibregl-marker"));
    for (let i = 0; i < 100 && tiles.drawn === 0; i++) await page.waitForTimeout(100);
    check(tiles.drawn > 0, "the small map loaded the grid/community vector tiles");
    result.map_ok = true;
    await page.screenshot({ path: path.join(ART, "mobile-report.png") });
    await page.getByTestId("send-report").click();
    await queueDrained(page);
    await page.getByTestId("sent-item").first().waitFor();
    await page.screenshot({ path: path.join(ART, "mobile-sent.png") });
    const a = await ask("check_report", { tag: tag1 });
    if (a.center) {
      // The case on the command center's live map (an operator of the street).
      const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: "zh-CN" });
      const center = await ctx.newPage();
      await center.goto(BASE + "/");
      await center.getByTestId("login-username").fill(env.OPERATOR);
      await center.getByTestId("login-password").fill(env.PASSWORD);
      await center.getByTestId("login-submit").click();
      await center.waitForFunction((cid) => window.youhu?.map?.drawn?.includes(cid), a.case_id, { timeout: 30_000 });
      await center.screenshot({ path: path.join(ART, "mobile-center-map.png") });
      result.on_center_map = true;
      await ctx.close();
    }

    // ---- 2. offline: the app opens from its cache, the report waits, then goes once --------
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
    await page.reload(); // controlled by the service worker from now on
    await page.getByTestId("tab-report").waitFor();
    await insp.context.setGeolocation({ longitude: POINTS[1][0], latitude: POINTS[1][1], accuracy: 8 });
    await insp.context.setOffline(true);
    await page.reload(); // no network: the shell comes from the service worker's cache
    await page.getByTestId("tab-report").waitFor({ timeout: 15_000 });
    check((await page.getByTestId("net-state").textContent()) === "离线", "the app shows it is offline");
    const tag2 = `${env.TAG}-B`;
    await fillReport(page, { code: "env.exposed_garbage", photo: env.PHOTO, description: `离线上报 ${tag2}` });
    await page.getByTestId("send-report").click();
    await page.getByTestId("tab-queue").click();
    await page.locator("[data-testid=queue-item][data-kind=report][data-state=pending]").waitFor();
    check((await page.getByTestId("queue-count").textContent()) === "1", "one item waits in the queue");
    await page.screenshot({ path: path.join(ART, "mobile-offline-queue.png") });
    await page.reload(); // still offline: the queue survives a restart of the app (IndexedDB)
    await page.getByTestId("tab-queue").click();
    await page.locator("[data-testid=queue-item][data-kind=report]").waitFor({ timeout: 15_000 });
    await insp.context.setOffline(false);
    await queueDrained(page);
    await ask("check_offline", { tag: tag2 });

    // ---- 3. an answer lost after the server accepted: the resend is dropped as a repeat -----
    const lost = await phone(browser, env.INSPECTOR, POINTS[2], { serviceWorkers: "block" });
    let posts = 0;
    await lost.page.route("**/api/v1/events", async (route) => {
      posts += 1;
      if (posts === 1) {
        await route.fetch(); // the server gets it and accepts it…
        await route.abort("connectionreset"); // …but the phone never hears back
      } else await route.continue();
    });
    const tag3 = `${env.TAG}-C`;
    await fillReport(lost.page, { code: "env.exposed_garbage", photo: env.PHOTO, description: `答复丢失 ${tag3}` });
    await lost.page.getByTestId("send-report").click();
    await queueDrained(lost.page, 40_000);
    result.event_posts = posts;
    await ask("check_lost_answer", { tag: tag3, posts });
    await lost.context.close();

    // ---- 4. tasks: the unit signs for and handles with before/after photos; the inspector ---
    // ----    sees it live and fails the verification with a photo → rework ---------------------
    const task = await ask("prepare_task");
    const cid = task.case_id;
    const verifier = await phone(browser, env.INSPECTOR, POINTS[3], { serviceWorkers: "block" });
    await verifier.page.getByTestId("tab-tasks").click();
    await verifier.page.locator("[data-testid=live-state].on").waitFor({ timeout: 20_000 });
    const unit = await phone(browser, env.UNIT_STAFF, POINTS[3]);
    await unit.page.getByTestId("tab-tasks").click();
    await unit.page.getByTestId(`acknowledge-${cid}`).click();
    await unit.page.getByTestId(`handle-${cid}`).waitFor({ timeout: 20_000 });
    await unit.page.getByTestId(`handle-${cid}`).click();
    await unit.page.getByTestId("action-reason").fill("已清运完毕，现场恢复整洁");
    await unit.page.locator("input[name=photos-before]").setInputFiles(env.PHOTO);
    await unit.page.locator("input[name=photos-after]").setInputFiles(env.PHOTO2);
    await unit.page.waitForFunction(() => [...document.querySelectorAll(".sheet .photos")].every((p) => p.dataset.count === "1"));
    await unit.page.screenshot({ path: path.join(ART, "mobile-unit-handle.png") });
    await unit.page.getByTestId("action-submit").click();
    await queueDrained(unit.page);
    await unit.context.close();
    // Live: the handled case appears in the inspector's 待核查 without a reload.
    await verifier.page.getByTestId(`verify_fail-${cid}`).waitFor({ timeout: 20_000 });
    let actionPosts = 0;
    await verifier.page.route(`**/api/v1/cases/${cid}/actions`, async (route) => {
      actionPosts += 1;
      if (actionPosts === 1) {
        await route.fetch(); // acted on…
        await route.abort("connectionreset"); // …answer lost: the queue resends with the same key
      } else await route.continue();
    });
    await verifier.page.screenshot({ path: path.join(ART, "mobile-tasks.png") });
    await verifier.page.getByTestId(`verify_fail-${cid}`).click();
    await verifier.page.getByTestId("action-reason").fill("现场仍有垃圾残留");
    await verifier.page.locator("input[name=photos-evidence]").setInputFiles(env.PHOTO);
    await verifier.page.waitForFunction(() => document.querySelector(".sheet .photos")?.dataset.count === "1");
    await verifier.page.getByTestId("action-submit").click();
    await queueDrained(verifier.page, 40_000);
    check(
      (await verifier.page.locator("[data-testid=queue-item][data-state=failed]").count()) === 0,
      "the resent action was answered from its key, not refused",
    );
    await verifier.page.screenshot({ path: path.join(ART, "mobile-verify-fail.png") });
    result.action_posts = actionPosts;
    await ask("check_rework", { case_id: cid, posts: actionPosts });
    await verifier.context.close();

    // ---- 5. duplicate hint: a nearby open case of the same category gets the photo ---------
    const dup = await ask("prepare_duplicate");
    await insp.context.setGeolocation({ longitude: dup.lonlat[0], latitude: dup.lonlat[1], accuracy: 8 });
    page = insp.page;
    await page.reload();
    await page.getByTestId("tab-report").waitFor();
    const tag5 = `${env.TAG}-E`;
    await fillReport(page, { code: "env.exposed_garbage", photo: env.PHOTO, description: `补充 ${tag5}` });
    await page.getByTestId("send-report").click();
    await page.getByTestId(`add-to-${dup.case_id}`).waitFor({ timeout: 15_000 });
    const hint = await page.getByTestId("duplicate-hint").textContent();
    check(hint.includes("已有人上报"), `the hint says it was already reported: ${hint}`);
    await page.screenshot({ path: path.join(ART, "mobile-duplicate.png") });
    await page.getByTestId(`add-to-${dup.case_id}`).click();
    await queueDrained(page);
    await ask("check_duplicate", { case_id: dup.case_id, tag: tag5 });

    // ---- 6. patrol: positions while walking, on the bus (and the command center's map) -----
    await page.getByTestId("tab-patrol").click();
    await page.getByTestId("patrol-toggle").click();
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=patrol-stats]")?.dataset.count) >= 1, null, {
      timeout: 20_000,
    });
    const walked = [POINTS[4][0], POINTS[4][1]];
    await insp.context.setGeolocation({ longitude: walked[0], latitude: walked[1], accuracy: 6 });
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=patrol-stats]")?.dataset.count) >= 2, null, {
      timeout: 30_000,
    });
    await page.screenshot({ path: path.join(ART, "mobile-patrol.png") });
    await ask("check_patrol", { lonlat: walked });
    await page.getByTestId("patrol-toggle").click();

    // English on a switch.
    await page.getByTestId("lang").click();
    await page.waitForFunction(() => document.querySelector("[data-testid=tab-report]")?.textContent.includes("Report"));
    await page.screenshot({ path: path.join(ART, "mobile-english.png") });
    result.ok = true;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify({ step: "done", ...result }) + "\n");
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  },
);
