/** What the page draws: the runtime drop-down, one card per image, and the similar-images panel. */
import { topK } from '../core/util/top_k.ts';
import { $, caption, copyCanvas } from './dom.ts';
import { cosine } from './preprocess.ts';
import type { Backend, Runtime } from './protocol.ts';
import { results, state, type ImageResult } from './state.ts';

/** Nearest neighbours shown per image. */
const NEIGHBOURS = 3;

/** The runtime/backend drop-down; a change reloads the page with ?runtime= and ?backend=. */
export function renderOptions(runtime: Runtime, backend: Backend): void {
  const sel = $('runtime') as HTMLSelectElement;
  sel.replaceChildren(
    ...state.options.map((o) => {
      const opt = document.createElement('option');
      opt.value = opt.textContent = o;
      opt.selected = o === `${runtime}/${backend}`;
      return opt;
    }),
  );
  sel.onchange = () => {
    const [r, b] = sel.value.split('/');
    const p = new URLSearchParams(location.search);
    p.set('runtime', r);
    p.set('backend', b);
    p.delete('ep');
    location.search = p.toString();
  };
}

/** One image's card: thumbnail, size and time, top-5 bars (or the embedding size), the server cosine slot. */
export function renderCard(r: ImageResult): void {
  const i = results.indexOf(r);
  const card = document.createElement('div');
  card.className = 'card';
  card.id = `image-${i}`;
  const c = document.createElement('canvas');
  c.width = c.height = r.thumb.width;
  c.getContext('2d')!.drawImage(r.thumb, 0, 0);
  const title = document.createElement('div');
  title.className = 'title';
  title.textContent = `${r.name} (${r.width}×${r.height}) · ${r.ms.toFixed(1)} ms`;
  card.append(c, title);
  if (r.top.length) {
    const ol = document.createElement('ol');
    ol.className = 'top';
    for (const t of r.top) {
      const li = document.createElement('li');
      li.dataset.label = t.label;
      li.dataset.probability = String(t.probability);
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${(t.probability * 100).toFixed(1)}%`;
      const txt = document.createElement('span');
      txt.className = 'txt';
      txt.textContent = `${t.label} ${(t.probability * 100).toFixed(1)}%`;
      li.append(bar, txt);
      ol.append(li);
    }
    card.append(ol);
  } else {
    const p = document.createElement('div');
    p.textContent = `embedding (${r.embedding.length}-d); this model has no classifier`;
    card.append(p);
  }
  const sc = document.createElement('div');
  sc.className = 'server-cosine';
  card.append(sc);
  $('results').prepend(card);
  ($('compare') as HTMLButtonElement).disabled = false;
}

/** The pair cosine of the last two images, and every image's nearest neighbours (the similar-images panel). */
export function renderSimilarity(): void {
  const n = results.length;
  if (n >= 2) {
    const a = results[n - 2],
      b = results[n - 1];
    state.similarity = cosine(a.embedding, b.embedding);
    const el = $('similarity');
    el.dataset.value = String(state.similarity);
    el.textContent = `cosine(${a.name}, ${b.name}) = ${state.similarity.toFixed(4)}`;
  }
  state.neighbours = results.map((r, i) => {
    const others = results.flatMap((_, j) => (j === i ? [] : [j]));
    const scores = others.map((j) => cosine(r.embedding, results[j].embedding));
    return topK(scores, NEIGHBOURS).map(({ index, value }) => [others[index], value] as [number, number]);
  });
  const panel = $('similar');
  panel.replaceChildren(
    ...results.map((r, i) => {
      const row = document.createElement('div');
      row.className = 'row';
      row.dataset.index = String(i);
      const q = document.createElement('figure');
      q.className = 'query';
      q.append(copyCanvas(r.thumb), caption(r.name));
      row.append(q);
      for (const [j, cs] of state.neighbours[i]) {
        const f = document.createElement('figure');
        f.dataset.index = String(j);
        f.dataset.cosine = String(cs);
        f.append(copyCanvas(results[j].thumb), caption(`${results[j].name} · ${cs.toFixed(3)}`));
        row.append(f);
      }
      return row;
    }),
  );
  $('similar-section').hidden = results.length < 2;
}
