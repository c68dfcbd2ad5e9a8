/**
 * The browser demo end to end: a random-weight CMC model exported with the real exporter, `cmc serve`
 * on 127.0.0.1 serving it and the freshly built web/dist bundle, and Debian's Chromium driven by
 * playwright-core — once with WebGPU (SwiftShader's Vulkan adapter) and once with ?ep=wasm. Both must
 * pick the server's top-1 class for the uploaded PNGs and give embeddings with cosine >= 0.99 to the
 * server's /v1/embed ones ("Compare with server" button). Screenshots go to a temp folder (printed).
 *
 * Skipped when /usr/bin/chromium (or CMC_CHROMIUM) or playwright-core is missing.
 *
 *   node --import tsx --test test/web/demo.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer } from '../../serve/main.ts';
import { buildWeb } from '../../web/build.ts';
import { multipart, request, testImage } from '../serve/fixture.ts';
import { Rng } from '../../train/util/rng.ts';
import sharp from 'sharp';
import { RawU8Source } from '../../train/data/sources.ts';

/**
 * Real photos for the browser-vs-server bound: a few imagenette test images (../shared/data beside the
 * checkout, or CMC_DATA_DIR), upscaled and JPEG-encoded so the browser's and libvips' JPEG decoders both
 * take part. Nothing from the data set is written into the repository. null when the data is absent.
 */
async function realPhotoJpegs(n: number): Promise<{ name: string; mimeType: string; buffer: Buffer }[] | null> {
  const root = process.env.CMC_DATA_DIR ?? path.resolve(import.meta.dirname, '../../../shared/data');
  const dir = path.join(root, 'imagenette64-sub');
  if (!fs.existsSync(path.join(dir, 'meta.json'))) return null;
  const src = new RawU8Source(dir, 'test');
  try {
    const out = [];
    for (let i = 0; i < n; i++) {
      const s = await src.get(i * 97);
      const buffer = await sharp(Buffer.from(s.rgb), { raw: { width: s.width, height: s.height, channels: 3 } })
        .resize(s.width * 3, s.height * 2, { kernel: 'lanczos3' })
        .jpeg({ quality: 90 })
        .toBuffer();
      out.push({ name: `photo${i}.jpg`, mimeType: 'image/jpeg', buffer });
    }
    return out;
  } finally {
    src.close();
  }
}

const CHROMIUM = process.env.CMC_CHROMIUM ?? '/usr/bin/chromium';
const VK_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse'];

/**
 * Like test/serve/fixture.ts exportRandomModel (random-weight encoder, real exporter), but with a linear
 * head scaled so that its class probabilities are far from uniform: a near-tie between the top two classes
 * would make "same top-1 as the server" a coin toss at float32 precision.
 */
async function exportDemoModel(outDir: string, size: number, classes: string[], seed: number): Promise<void> {
  const [{ getCmcSpec }, { paramShapes }, { initialValues }, { exportModel, defaultLayer }, { featuresDim }] = await Promise.all([
    import('../../train/spec/registry.ts'),
    import('../../train/spec/shapes.ts'),
    import('../../train/model/build_tfjs.ts'),
    import('../../train/export/export.ts'),
    import('../../train/export/emit.ts'),
  ]);
  const arch = 'alexnet_small', featDim = 128;
  const spec = getCmcSpec(arch, { imageSize: size, featDim, view: 'Lab' });
  const rng = new Rng(seed);
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const v of spec.views) for (const p of paramShapes(v.encoder)) tensors[`model/${v.name}.${p.name}`] = { shape: p.shape, data: initialValues(p, rng) };
  const header = { config: { model: arch, image_size: size, feat_dim: featDim, view: 'Lab' }, classNames: classes };
  const layer = defaultLayer(spec);
  const f = featuresDim(spec, layer);
  const weight = new Float32Array(f * classes.length);
  for (let i = 0; i < weight.length; i++) weight[i] = rng.range(-1, 1) * HEAD_SCALE;
  const head = { format: 'cmc-linear-head' as const, version: 1 as const, layer, features: 'flatten' as const, classNames: classes, inFeatures: f, weight, bias: new Float32Array(classes.length) };
  await exportModel({ checkpoint: { header, tensors }, head, outDir, name: 'demo', version: '1' });
}
const HEAD_SCALE = 2;
// A small input keeps the model (download, SwiftShader session: WebGPU emulated on the CPU) short.
const SIZE = 32;

async function loadPlaywright(): Promise<typeof import('playwright-core') | undefined> {
  try {
    return await import('playwright-core');
  } catch {
    return undefined;
  }
}

interface PageState {
  ready: boolean;
  error?: string;
  provider?: string;
  loadMs?: number;
  images: { name: string; top: { label: string; probability: number }[]; ms: number; serverCosine?: number; embedding: number[] }[];
  similarity?: number;
  busy: number;
}

test('browser demo: WebGPU and wasm match the server (top-1, cosine >= 0.99)', { timeout: 90_000 }, async (t) => {
  if (!fs.existsSync(CHROMIUM)) {
    t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set CMC_CHROMIUM)`);
    return;
  }
  const pw = await loadPlaywright();
  if (!pw) {
    t.skip('playwright-core is not installed (npm install -D playwright-core@1)');
    return;
  }
  const t0 = performance.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmc-web-test-'));
  const shots = path.join(tmp, 'screenshots');
  fs.mkdirSync(shots);
  const models = path.join(tmp, 'models');
  await exportDemoModel(path.join(models, 'demo'), SIZE, CLASSES, 7);
  const web = await buildWeb({ outdir: path.join(tmp, 'dist') });
  const tPrep = performance.now();
  const s = await startServer({ models, port: 0, host: '127.0.0.1', provider: 'cpu', quiet: true, web_dist: web.outdir, max_delay_ms: 1 });
  const browser = await pw.chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--use-webgpu-adapter=swiftshader',
      '--enable-features=Vulkan',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
    env: { ...process.env, VK_ICD_FILENAMES: VK_ICD } as Record<string, string>,
  });
  t.after(async () => {
    await browser.close().catch(() => {});
    await s.close();
  });

  // Two generated PNGs (different sizes and aspect ratios, so the shared resize + crop really works).
  const pngs = [
    { name: 'a.png', mimeType: 'image/png', buffer: await testImage('png', 200, 150, 3) },
    { name: 'b.png', mimeType: 'image/png', buffer: await testImage('png', 97, 131, 11) },
  ];
  const mp = multipart(pngs.map((p) => ({ filename: p.name, type: p.mimeType, data: p.buffer })));
  const cls = await request(`${s.url}/v1/classify?top_k=5`, { method: 'POST', headers: { 'content-type': mp.type }, body: mp.body });
  assert.equal(cls.status, 200, cls.text);
  const preds = cls.json.predictions as { label: string; probability: number }[][];
  const serverTop1 = preds.map((p) => p[0].label);
  const margins = preds.map((p) => p[0].probability - p[1].probability);
  console.log(`# server top-1 ${serverTop1.join(' / ')}, margin over top-2 ${margins.map((m) => m.toFixed(4)).join(' / ')}`);
  for (const m of margins) assert.ok(m > 1e-3, `server top-1 margin ${m}: a near-tie, the comparison would be meaningless`);

  // The model files are reachable read-only, nothing else is.
  assert.equal((await request(`${s.url}/models/demo/manifest.json`)).status, 200);
  assert.equal((await request(`${s.url}/models/demo/..%2F..%2Fetc%2Fpasswd`)).status, 404);
  assert.equal((await request(`${s.url}/models/demo/head.json`)).status, 404);

  const report: string[] = [];
  for (const mode of ['webgpu', 'wasm'] as const) {
    const ctx = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const page = await ctx.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    try {
      await page.goto(`${s.url}/${mode === 'wasm' ? '?ep=wasm' : ''}`);
      await page.waitForFunction(() => {
        const st = (window as unknown as { cmcDemo?: PageState }).cmcDemo;
        return !!st && (st.ready || !!st.error);
      }, undefined, { timeout: 40_000 });
      let st = (await page.evaluate(() => (window as unknown as { cmcDemo: PageState }).cmcDemo)) as PageState;
      assert.equal(st.error, undefined, `${mode}: ${st.error}\n${logs.join('\n')}`);
      if (mode === 'webgpu') {
        const hasAdapter = await page.evaluate(async () => !!(await (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu?.requestAdapter()));
        assert.ok(hasAdapter, 'no WebGPU adapter in Chromium (SwiftShader Vulkan ICD missing?)');
      }
      assert.equal(st.provider, mode, `${mode}: the page ran ${st.provider}\n${logs.join('\n')}`);
      assert.equal(await page.textContent('#provider'), mode);

      await page.setInputFiles('#file', pngs);
      await page.waitForFunction(() => {
        const st = (window as unknown as { cmcDemo: PageState }).cmcDemo;
        return st.images.length === 2 && st.busy === 0;
      }, undefined, { timeout: 20_000 });
      await page.click('#compare');
      await page.waitForFunction(() => {
        const st = (window as unknown as { cmcDemo: PageState }).cmcDemo;
        return st.busy === 0 && st.images.every((i) => i.serverCosine !== undefined);
      }, undefined, { timeout: 20_000 });
      st = (await page.evaluate(() => (window as unknown as { cmcDemo: PageState }).cmcDemo)) as PageState;
      const shot = path.join(shots, `demo-${mode}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`# screenshot (${mode}): ${shot}`);

      st.images.forEach((img, i) => {
        assert.equal(img.top[0].label, serverTop1[i], `${mode}: ${img.name} top-1 ${img.top[0].label}, server ${serverTop1[i]}`);
        assert.ok(img.serverCosine! >= 0.99, `${mode}: ${img.name} browser vs server cosine ${img.serverCosine}`);
      });
      // The top-1 shown on the page is the one in the state.
      const shownTop1 = await page.$$eval('.card ol.top li:first-child', (els) => els.map((e) => (e as HTMLElement).dataset.label));
      assert.deepEqual([...shownTop1].reverse(), serverTop1);
      assert.ok(typeof st.similarity === 'number' && Math.abs(st.similarity) <= 1.0001);
      assert.match((await page.textContent('#similarity')) ?? '', /cosine\(a\.png, b\.png\)/);
      if (mode === 'wasm') {
        const jpegs = await realPhotoJpegs(3);
        if (!jpegs) {
          report.push('real-photo JPEG check skipped: ../shared/data/imagenette64-sub not found');
        } else {
          await page.setInputFiles('#file', jpegs);
          await page.waitForFunction((n) => {
            const st = (window as unknown as { cmcDemo: PageState }).cmcDemo;
            return st.images.length === n && st.busy === 0;
          }, 2 + jpegs.length, { timeout: 20_000 });
          await page.click('#compare');
          await page.waitForFunction(() => {
            const st = (window as unknown as { cmcDemo: PageState }).cmcDemo;
            return st.busy === 0 && st.images.every((i) => i.serverCosine !== undefined);
          }, undefined, { timeout: 20_000 });
          const all = ((await page.evaluate(() => (window as unknown as { cmcDemo: PageState }).cmcDemo)) as PageState).images;
          const photos = all.filter((i) => i.name.endsWith('.jpg'));
          assert.equal(photos.length, jpegs.length);
          for (const img of photos) assert.ok(img.serverCosine! >= 0.99, `real photo ${img.name}: browser vs server cosine ${img.serverCosine}`);
          report.push(`real-photo JPEGs (wasm): browser-vs-server cosine ${photos.map((i) => i.serverCosine!.toFixed(6)).join(' / ')}`);
        }
      }
      report.push(
        `${mode}: session+warm-up ${st.loadMs!.toFixed(0)} ms, inference ${st.images.map((i) => i.ms.toFixed(1)).join(' / ')} ms, ` +
          `browser-vs-server cosine ${st.images.map((i) => `${i.serverCosine!.toFixed(6)} (1-cos ${(1 - i.serverCosine!).toExponential(1)})`).join(" / ")}, top-1 ${st.images.map((i) => i.top[0].label).join(' / ')}, ` +
          `pair cosine ${st.similarity!.toFixed(4)}`,
      );
    } catch (e) {
      await page.screenshot({ path: path.join(shots, `demo-${mode}-failed.png`), fullPage: true }).catch(() => {});
      console.log(`# page log (${mode}):\n${logs.join('\n')}`);
      throw e;
    } finally {
      await ctx.close();
    }
  }
  for (const l of report) console.log(`# ${l}`);
  console.log(`# export + web build ${(tPrep - t0).toFixed(0)} ms (bundle ${(web.bundleBytes / 1e3).toFixed(0)} kB), total ${(performance.now() - t0).toFixed(0)} ms`);
});
