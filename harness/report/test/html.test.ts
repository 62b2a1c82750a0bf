// The HTML report in a real browser (Debian's chromium through playwright-core): the
// timeline, the downtime band and the packet marks are there and agree with the JSON (every
// lost and delayed packet a mark, the healthy ones in runs that add up to the packets sent).
// The results come from recorded fixture pcaps through the real analyzer; a catalogue-sized
// synthetic result checks the size bound and that a lost packet still shows; the compare view
// is checked on two saved result files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { compareResults, parsePairRule, renderCompareHtml } from '../compare.js';
import { renderHtmlReport, writeHtmlReport } from '../html.js';
import { readJsonReport, writeJsonReport, type JsonReport } from '../json.js';
import { fmtMs } from '../table.js';
import { bigResult } from './big-result.js';
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
      const counts = await section.locator(`.pkt[data-flow="${i}"]`).evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-count') ?? 1)));
      assert.is(counts.reduce((a, b) => a + b, 0), f.sent, `${r.scenario} flow ${i}: the marks stand for every packet once`);
      assert.ok(counts.length < f.sent / 2, `${r.scenario} flow ${i}: healthy packets drawn as runs (${counts.length} marks)`);
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
  await firstLost.hover();
  assert.is(await page.locator('#status').textContent(), `seq ${drop.traffic[0]!.lostSeqs[0]} lost, at ${await firstLost.getAttribute('data-t')} ms`, 'hover details of a lost packet');
  const run = page.locator('section[data-scenario="fixture-ping-drop-window"] .pkt[data-count]').first();
  await run.hover();
  assert.match(await page.locator('#status').textContent() ?? '', new RegExp(`^seq ${await run.getAttribute('data-seq')}-\\d+ ok: ${await run.getAttribute('data-count')} packets sent from -?[\\d.]+ to -?[\\d.]+ ms, rtt up to [\\d.]+ ms$`), 'hover details of a run');
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

test('catalogue-sized report: 20 flows x 16,000 packets under the size bound, every lost packet drawn and on top', async () => {
  const results = [bigResult(20, 16_000)];
  const html = renderHtmlReport(results);
  // The catalogue's budget is 3 MB for 21 scenarios; one marks-only flow of 16,000 costs ~2 kB
  // plus its affected packets (here 133 each).
  assert.ok(html.length < 1_000_000, `report is ${html.length} bytes`);
  const doubled = renderHtmlReport([bigResult(20, 32_000)]);
  assert.ok(doubled.length < html.length * 1.25, `twice the healthy packets, ${doubled.length} vs ${html.length} bytes: healthy packets must fold into runs`);
  const file = join(out, 'report-big.html');
  writeHtmlReport(file, results);

  const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(pathToFileURL(file).href);
  const r = results[0]!;
  for (const [i, f] of r.traffic.entries()) {
    const lost = await page.locator(`.pkt[data-flow="${i}"][data-state="lost"]`).evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
    assert.equal(lost, f.lostSeqs, `flow ${i}: a mark per lost packet`);
    assert.is(await page.locator(`.pkt[data-flow="${i}"][data-state="delayed"]`).count(), f.delayed, `flow ${i}: a mark per delayed packet`);
    assert.is(await page.locator(`.pkt[data-flow="${i}"][data-reordered]`).count(), f.reordered, `flow ${i}: a mark per reordered packet`);
  }
  // The first lost packet of flow 0 touches the run of ok packets before it: it is visible and
  // tall, and what is drawn at its centre is a lost mark, not the run painted over it.
  const mark = page.locator('.pkt[data-flow="0"][data-state="lost"]').first();
  await mark.scrollIntoViewIfNeeded();
  const box = await mark.boundingBox();
  assert.ok(box && box.height > 10 && box.width >= 1, `lost mark drawn (${JSON.stringify(box)})`);
  const top = await page.evaluate(([x, y]) => document.elementFromPoint(x!, y!)?.getAttribute('data-state'), [box!.x + box!.width / 2, box!.y + box!.height / 2]);
  assert.is(top, 'lost', 'the lost mark is on top');
  await page.locator('#affected-only').check();
  assert.ok(await mark.isVisible(), 'still shown with only affected packets');
  assert.not.ok(await page.locator('.pkt[data-state="ok"]:not([data-reordered])').first().isVisible());
  await page.close();
});

test('compare view from two saved result files: pairs, figures, two timelines per pair on one axis', async () => {
  const fileA = join(out, 'compare-a.json');
  const fileB = join(out, 'compare-b.json');
  writeJsonReport(fileA, [await resultFromFixture('ping-drop-window.pcap', 'baseline-ping'), await resultFromFixture('udp-echo-drop-sll.pcap', 'baseline-udp')], { packets: false });
  writeJsonReport(fileB, [await resultFromFixture('ping-delay-window.pcap', 'netpass-ping')], { packets: false });
  const a = readJsonReport(fileA);
  const b = readJsonReport(fileB);
  const c = compareResults(a.results, b.results, [parsePairRule('baseline-:netpass-')]);
  assert.is(c.pairs.length, 1);
  assert.equal(c.unpairedA, ['baseline-udp [engine]']);
  const htmlFile = join(out, 'compare.html');
  writeFileSync(htmlFile, renderCompareHtml(c, { a: 'compare-a.json', b: 'compare-b.json' }));
  assert.ok(!/<(link|img|script)[^>]+(src|href)=/i.test(readFileSync(htmlFile, 'utf8')), 'self-contained: no external assets');

  const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(pathToFileURL(htmlFile).href);
  const pair = page.locator('section.pair[data-pair="0"]');
  assert.is(await pair.getAttribute('data-scenario-a'), 'baseline-ping');
  assert.is(await pair.getAttribute('data-scenario-b'), 'netpass-ping');
  const [ra, rb] = [a.results[0]!, b.results[0]!];
  const lostA = ra.traffic[0]!.lost;
  assert.ok(lostA > 0);
  assert.is(await pair.locator('tr[data-figure="lost"] td[data-side="a"]').textContent(), String(lostA));
  assert.is(await pair.locator('tr[data-figure="lost"] td[data-side="b"]').textContent(), '0');
  assert.is(await pair.locator('tr[data-figure="lost"] td[data-side="delta"]').textContent(), `-${lostA}`);
  assert.is(await pair.locator('tr[data-figure="downtimeMs"] td[data-side="a"]').textContent(), fmtMs(ra.migration.downtimeMs));
  assert.is(await page.locator('tr[data-pair="0"] td[data-figure="lost"]').getAttribute('class'), 'better');

  // A above B, both with their downtime band and marks from the saved files, on one time axis.
  const svgA = pair.locator('figure[data-side="a"] svg[data-timeline="0-a"]');
  const svgB = pair.locator('figure[data-side="b"] svg[data-timeline="0-b"]');
  const [boxA, boxB] = [await svgA.boundingBox(), await svgB.boundingBox()];
  assert.ok(boxA && boxB && boxA.y + boxA.height <= boxB.y, 'A above B');
  assert.is(await svgA.locator('rect.downtime').getAttribute('data-downtime-ms'), String(ra.migration.downtimeMs));
  assert.is(await svgB.locator('rect.downtime').getAttribute('data-downtime-ms'), String(rb.migration.downtimeMs));
  const lostSeqs = await svgA.locator('.pkt[data-state="lost"]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
  assert.equal(lostSeqs, ra.traffic[0]!.lostSeqs);
  assert.is(await svgB.locator('.pkt[data-state="delayed"]').count(), rb.traffic[0]!.delayed);
  const tick = async (svg: typeof svgA): Promise<string[]> => svg.locator('line.grid').evaluateAll((els) => els.map((e) => e.getAttribute('x1')!));
  assert.equal(await tick(svgA), await tick(svgB), 'the same time axis');
  const lostBox = await svgA.locator('.pkt[data-state="lost"]').first().boundingBox();
  assert.ok(lostBox && lostBox.height > 10, 'a lost mark is drawn tall enough to see');

  await page.screenshot({ path: join(out, 'compare-screenshot.png'), fullPage: true });
  assert.ok(statSync(join(out, 'compare-screenshot.png')).size > 10_000);
  assert.equal(errors, []);
  await page.close();
});

test.run();
