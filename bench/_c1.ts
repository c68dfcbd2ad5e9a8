// scratch: where does a lone request's time go? sequential requests, then the server's own histograms.
import http from 'node:http';
import sharp from 'sharp';
import { testPixels } from '../test/serve/fixture.ts';
import { startChild } from './serve.ts';
const extra = (process.argv[2] ?? '').split(/\s+/).filter(Boolean);
const { child, url } = await startChild(['--models', 'models', '--port', '0', '--provider', 'cpu', '--web_dist', '', ...extra], () => {});
const body = await sharp(testPixels(256, 192, 101), { raw: { width: 256, height: 192, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const one = () => new Promise<number>((resolve) => { const t = performance.now(); const r = http.request(`${url}/v1/embed`, { method: 'POST', agent, headers: { 'content-type': 'image/jpeg' } }, (res) => { res.resume(); res.on('end', () => resolve(performance.now() - t)); }); r.end(body); });
for (let i = 0; i < 100; i++) await one();
const m0 = await (await fetch(`${url}/metrics`)).text();
const lat: number[] = [];
for (let i = 0; i < 600; i++) lat.push(await one());
const m1 = await (await fetch(`${url}/metrics`)).text();
lat.sort((a, b) => a - b);
const get = (t: string, name: string) => { let s = 0, c = 0; for (const l of t.split('\n')) { if (l.startsWith(name + '_sum')) s += Number(l.split(' ').pop()); if (l.startsWith(name + '_count')) c += Number(l.split(' ').pop()); } return { s, c }; };
for (const n of ['cmc_http_request_duration_seconds', 'cmc_preprocess_duration_seconds', 'cmc_queue_duration_seconds', 'cmc_inference_duration_seconds']) { const a = get(m0, n), b = get(m1, n); console.log(`${n}: mean ${(1000 * (b.s - a.s) / (b.c - a.c)).toFixed(3)} ms over ${b.c - a.c}`); }
console.log(`client: p50 ${lat[300].toFixed(2)} ms p10 ${lat[60].toFixed(2)} p90 ${lat[540].toFixed(2)} mean ${(lat.reduce((a, b) => a + b) / lat.length).toFixed(2)}`);
child.kill('SIGTERM');
process.exit(0);
