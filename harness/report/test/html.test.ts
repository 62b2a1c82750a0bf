// The HTML report in a real browser (Debian's chromium through playwright-core): the
// timeline, the downtime band and one mark per packet are there and agree with the JSON.
// The results come from recorded fixture pcaps through the real analyzer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { writeHtmlReport } from '../html.js';
import { writeJsonReport, type JsonReport } from '../json.js';
import { resultFromFixture } from './report-fixture.js';

const out = fileURLToPath(new URL('../../../../out/', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
let browser: Browser | undefined;

test.before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (npm run setup)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});
test.after(async () => { await browser?.close(); });

test('report from fixture pcaps: timeline, downtime and packet marks match the JSON', async () => {
  mkdirSync(out, { recursive: true });
  const results = [
    await resultFromFixture('ping-drop-window.pcap', 'fixture-ping-drop-window'),
    await resultFromFixture('ping-delay-window.pcap', 'fixture-ping-delay-window'),
    await resultFromFixture('udp-echo-drop-sll.pcap', 'fixture-udp-echo-drop'),
  ];
  const htmlFile = join(out, 'report-fixture.html');
  const jsonFile = join(out, 'report-fixture.json');
  writeHtmlReport(htmlFile, results);
  writeJsonReport(jsonFile, results);
  const json = JSON.parse(readFileSync(jsonFile, 'utf8')) as JsonReport;
  assert.ok(!/<(link|img|script)[^>]+(src|href)=/i.test(readFileSync(htmlFile, 'utf8')), 'self-contained: no external assets');

  const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(pathToFileURL(htmlFile).href);
  assert.is(await page.locator('svg[data-timeline]').count(), json.results.length);
  assert.is(await page.locator('[data-summary]').getAttribute('data-fail'), String(json.summary.fail));

  for (const r of json.results) {
    const section = page.locator(`section[data-scenario="${r.scenario}"]`);
    assert.is(await section.getAttribute('data-verdict'), r.verdict);
    const band = section.locator('rect.downtime');
    assert.is(await band.count(), 1, `${r.scenario}: one downtime band`);
    assert.is(await band.getAttribute('data-downtime-ms'), String(r.migration.downtimeMs));
    assert.is(await section.locator('.phase').count(), r.timeline.length);
    assert.is(await section.locator('.announce').count(), r.announces.length);
    for (const [i, f] of r.traffic.entries()) {
      const marks = section.locator(`.pkt[data-flow="${i}"]`);
      assert.is(await marks.count(), f.sent, `${r.scenario} flow ${i}: one mark per packet`);
      const lostSeqs = await section.locator(`.pkt[data-flow="${i}"][data-state="lost"]`)
        .evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
      assert.equal(lostSeqs, f.lostSeqs, `${r.scenario} flow ${i}: lost marks`);
      assert.is(await section.locator(`.pkt[data-flow="${i}"][data-state="delayed"]`).count(), f.delayed);
      const outage = section.locator(`rect.outage[data-flow="${i}"]`);
      assert.is(await outage.count(), f.outageMs > 0 ? 1 : 0);
      if (f.outageMs > 0) assert.is(await outage.getAttribute('data-outage-ms'), String(f.outageMs));
    }
    for (const e of r.expectations) {
      assert.is(await section.locator(`tr[data-expectation="${e.name}"]`).getAttribute('data-ok'), String(e.ok));
    }
  }
  const drop = json.results[0]!;
  assert.ok(drop.traffic[0]!.lost > 0, 'the drop-window fixture shows loss');
  const firstLost = page.locator('section[data-scenario="fixture-ping-drop-window"] .pkt[data-state="lost"]').first();
  const box = await firstLost.boundingBox();
  assert.ok(box && box.height > 10, 'a lost mark is drawn tall enough to see');
  const okMark = page.locator('.pkt[data-state="ok"]').first();
  assert.ok(await okMark.isVisible());
  await page.locator('#affected-only').check();
  assert.not.ok(await okMark.isVisible(), 'the checkbox hides ok marks');
  await page.locator('#affected-only').uncheck();

  await page.screenshot({ path: join(out, 'report-screenshot.png'), fullPage: true });
  assert.ok(statSync(join(out, 'report-screenshot.png')).size > 10_000);
  assert.equal(errors, []);
  await page.close();
});

test.run();
