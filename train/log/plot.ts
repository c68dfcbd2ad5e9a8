/**
 * Minimal SVG line charts, drawn by the project itself (no plotting dependency): training curves,
 * accuracy against SGD steps, accuracy per layer. Portable (no node imports).
 *
 *   const svg = lineChart({ title: 'loss', xLabel: 'step', yLabel: 'loss', series: [{ name: 'NCE', points: [[1, 20], [2, 18]] }] });
 */
export interface Series {
  name: string;
  points: [number, number][];
  /** Draw markers at each point (default true when a series has few points). */
  markers?: boolean;
  dashed?: boolean;
  /** Stroke colour (default: the palette, by series position). */
  color?: string;
  /** Error bars: errors[j] is the half-length of point j's bar (e.g. one standard deviation); 0 or missing: none. */
  errors?: number[];
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  /** Force the y range (e.g. [0, 1] for accuracies). */
  yRange?: [number, number];
  /** Format of y tick labels (default: 3 significant digits). */
  yFormat?: (v: number) => string;
  /** Explicit x ticks as [value, label] (e.g. layer names); default: evenly spaced numeric ticks. */
  xTicks?: [number, string][];
  /**
   * Where the legend goes (default 'top-right'); 'bottom-right' suits curves that rise to the right; 'below'
   * puts it under the x axis (the SVG grows by one row per series), clear of the data.
   */
  legend?: 'top-right' | 'bottom-right' | 'below';
  /** Extra room on the x axis, in x units, on each side (e.g. 0.5 for categorical x such as layers). */
  xPad?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 640;
  const H = o.height ?? 400;
  const m = { l: 64, r: 16, t: 36, b: 48 };
  const pts = o.series
    .flatMap((s) =>
      s.points.flatMap(([x, y], j) => [-1, 0, 1].map((d) => [x, y + d * errorOf(s, j)] as [number, number])),
    )
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (pts.length === 0) throw new Error(`lineChart '${o.title}': no finite points`);
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = o.yRange ?? [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (o.xPad) [x0, x1] = [x0 - o.xPad, x1 + o.xPad];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  if (!o.yRange) {
    const pad = (y1 - y0) * 0.05;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const fmt = o.yFormat ?? ((v: number) => Number(v.toPrecision(3)).toString());
  const drawn = o.series
    .map((s, i) => ({
      s,
      c: s.color ?? PALETTE[i % PALETTE.length],
      good: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
      bars: s.points
        .map(([x, y], j) => [x, y, errorOf(s, j)])
        .filter(([x, y, e]) => Number.isFinite(x) && Number.isFinite(y) && e > 0),
    }))
    .filter((e) => e.good.length > 0);
  const HT = o.legend === 'below' ? H + 16 * drawn.length + 4 : H;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${HT}" viewBox="0 0 ${W} ${HT}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${HT}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>`);
  for (const t of ticks(y0, y1, 5)) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 6}" y="${sy(t) + 4}" text-anchor="end">${esc(fmt(t))}</text>`);
  }
  const xt: [number, string][] = o.xTicks
    ? o.xTicks.filter(([t]) => Number.isFinite(t) && t >= x0 && t <= x1)
    : ticks(x0, x1, 6).map((t) => [t, Number(t.toPrecision(4)).toString()]);
  for (const [t, label] of xt) {
    out.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${H - m.b}" y2="${H - m.b + 4}" stroke="black"/>`);
    out.push(`<text x="${sx(t)}" y="${H - m.b + 18}" text-anchor="middle">${esc(label)}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="black"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="black"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(
    `<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
  );
  // Lines first, then the legend on a light box above them, sized to the longest name (about 6.5 px per
  // character at 12 px sans-serif).
  const dash = (s: Series) => (s.dashed ? ' stroke-dasharray="6 4"' : '');
  for (const { s, c, good, bars } of drawn) {
    const d = good.map(([x, y], j) => `${j ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"${dash(s)}/>`);
    // One error bar per point: a vertical line from y - e to y + e with 8 px caps.
    for (const [x, y, e] of bars) {
      const [X, lo, hi] = [sx(x).toFixed(1), sy(y - e).toFixed(1), sy(y + e).toFixed(1)];
      const cap = (Y: string) => `M${(sx(x) - 4).toFixed(1)},${Y} L${(sx(x) + 4).toFixed(1)},${Y}`;
      out.push(
        `<path class="error-bar" d="M${X},${lo} L${X},${hi} ${cap(lo)} ${cap(hi)}" fill="none" stroke="${c}" stroke-width="1.5"/>`,
      );
    }
    if (s.markers ?? good.length <= 40)
      for (const [x, y] of good)
        out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${c}"/>`);
  }
  const legendW = Math.max(150, 30 + 6.5 * Math.max(...drawn.map((e) => e.s.name.length)));
  const legendX = o.legend === 'below' ? m.l : W - m.r - legendW;
  const legendY = o.legend === 'below' ? H - 4 : o.legend === 'bottom-right' ? H - m.b - 8 - 16 * drawn.length : m.t;
  if (o.legend !== 'below')
    out.push(
      `<rect x="${legendX - 4}" y="${legendY}" width="${legendW}" height="${16 * drawn.length + 4}" fill="white" fill-opacity="0.8"/>`,
    );
  drawn.forEach(({ s, c }, i) => {
    const ly = legendY + 8 + i * 16;
    out.push(
      `<line x1="${legendX}" x2="${legendX + 20}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"${dash(s)}/>`,
    );
    out.push(`<text x="${legendX + 24}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** The error-bar half-length of point j of a series (0 when it has none or it is not a finite number). */
function errorOf(s: Series, j: number): number {
  const e = s.errors?.[j];
  return e !== undefined && Number.isFinite(e) && e > 0 ? e : 0;
}

function ticks(a: number, b: number, n: number): number[] {
  const step = niceStep((b - a) / n);
  const out: number[] = [];
  for (let t = Math.ceil(a / step) * step; t <= b + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
