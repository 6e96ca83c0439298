// Drives the server's web page in headless Chromium as a person would: choose a model, pick
// an image, wait for the top-5 bars; saves a screenshot. Usage: node serve_page.mjs URL IMAGE
// SCREENSHOT [BAD-FILE]. Exits non-zero with a message on any failure.
import { chromium } from "playwright-core";

const [url, image, shot, badFile] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  // a phone-sized viewport: the page must work there
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  await page.goto(url, { waitUntil: "networkidle" });
  const options = await page.locator("#model option").count();
  if (options < 1) throw new Error("the model list is empty");
  await page.selectOption("#model", { index: 0 });
  await page.setInputFiles("#file", image);
  await page.waitForSelector("#results .row", { timeout: 20000 });
  const rows = await page.locator("#results .row").count();
  if (rows !== 5) throw new Error(`expected 5 result bars, found ${rows}`);
  const latency = await page.textContent("#latency");
  if (!/ms/.test(latency)) throw new Error(`no latency shown: '${latency}'`);
  const preview = await page.locator("#drop img").count();
  if (preview !== 1) throw new Error("no image preview");
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`top-5 rendered (${rows} bars); ${latency.trim()}`);
  if (badFile) {
    await page.setInputFiles("#file", badFile);
    await page.waitForSelector("#status.error", { timeout: 20000 });
    const msg = await page.textContent("#status");
    console.log(`non-image file: '${msg.trim()}'`);
    if (!msg || msg.length < 10) throw new Error("no clear message for a non-image file");
  }
} catch (e) {
  console.error("FAILED: " + e.message);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
