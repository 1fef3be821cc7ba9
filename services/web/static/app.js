// calclab UI: cluster dashboard, calculator and Mandelbrot explorer.
// Plain JavaScript, no framework and no network access beyond the master.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------
  // Helpers
  // ------------------------------------------------------------------

  const escapeHTML = (s) => String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);

  function fmtMs(ms) {
    if (!Number.isFinite(ms)) return '—';
    if (ms < 1) return ms.toFixed(2) + ' ms';
    if (ms < 10) return ms.toFixed(1) + ' ms';
    if (ms < 1000) return Math.round(ms) + ' ms';
    return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  }

  const fmtInt = (n) => Number(n || 0).toLocaleString('en-US');

  function fmtTime(d) {
    return d.toLocaleTimeString('en-GB', { hour12: false });
  }

  async function getJSON(url) {
    const res = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return res.json();
  }

  // ------------------------------------------------------------------
  // Slave colours, shared by the dashboard, the overlay and the legend
  // ------------------------------------------------------------------

  const SLAVE_COLORS = [
    [249, 115, 22], [34, 197, 94], [59, 130, 246], [236, 72, 153],
    [168, 85, 247], [234, 179, 8], [20, 184, 166], [239, 68, 68],
  ];
  const slaveColors = new Map();

  function knowSlaves(ids) {
    for (const id of [...ids].sort()) slaveRGB(id);
  }

  function slaveRGB(id) {
    if (!slaveColors.has(id)) {
      slaveColors.set(id, SLAVE_COLORS[slaveColors.size % SLAVE_COLORS.length]);
    }
    return slaveColors.get(id);
  }

  // slaveTag is a slave's swatch and id; a long id ends in an ellipsis and
  // shows whole in its tooltip.
  const slaveTag = (id) => `<span class="slave-id" title="${escapeHTML(id)}"><span class="swatch" style="background:${slaveCSS(id)}"></span>` +
    `<span class="sid">${escapeHTML(id)}</span></span>`;

  const slaveCSS = (id, a = 1) => {
    const [r, g, b] = slaveRGB(id);
    return a === 1 ? `rgb(${r},${g},${b})` : `rgba(${r},${g},${b},${a})`;
  };

  // ------------------------------------------------------------------
  // Mandelbrot explorer: view state
  // ------------------------------------------------------------------

  const COLORMAPS = ['classic', 'fire', 'ocean', 'grayscale', 'rainbow'];
  const POLICIES = ['least-conn', 'round-robin', 'p2c', 'consistent-hash'];
  const ITER_MIN = 10;
  const ITER_MAX = 5000;
  const DEFAULTS = { cx: -0.6, cy: 0, iter: 200, cmap: 'classic', w: 800, h: 600, policy: '' };
  const MAX_DIM = 16384;
  // The master's default --mandel-max-pixels: a larger frame is refused, so
  // the page never allocates a canvas for it.
  const MAX_PIXELS = 4096 * 4096;
  // The master's default --mandel-max-iter: a link asking for more is not
  // sent to the master (it would answer 413); the page says so instead.
  const MAX_ITER = 100000;

  const defaultScale = (w, h) => Math.max(3.4 / w, 2.6 / h);

  function defaultView(w = DEFAULTS.w, h = DEFAULTS.h) {
    return { ...DEFAULTS, w, h, scale: defaultScale(w, h) };
  }

  // origin is the complex value sampled at frame pixel (0, 0), as the
  // server computes it (mandel.Frame.Origin).
  const origin = (v) => [v.cx - (v.w / 2) * v.scale, v.cy + (v.h / 2) * v.scale];

  // viewFromHash reads a view from the URL hash. A value that is out of
  // range or not a number is not used: its default stays, and a note for
  // the user is added to v.notes.
  function viewFromHash(hash) {
    const p = new URLSearchParams(String(hash || '').replace(/^#/, ''));
    if (![...p.keys()].length) return null;
    const notes = [];
    const reject = (k, allowed) => {
      if (p.get(k) !== null) notes.push(`${k}=${p.get(k)} ignored: ${allowed}`);
    };
    const num = (k) => {
      const s = p.get(k);
      if (s === null || s.trim() === '') return undefined;
      const n = Number(s);
      return Number.isFinite(n) ? n : undefined;
    };
    const int = (k, lo, hi) => {
      const n = num(k);
      return n !== undefined && Number.isInteger(n) && n >= lo && n <= hi ? n : undefined;
    };
    const v = defaultView();
    const w = int('w', 1, MAX_DIM);
    const h = int('h', 1, MAX_DIM);
    if (w !== undefined && h !== undefined && w * h <= MAX_PIXELS) {
      v.w = w;
      v.h = h;
    } else if (p.get('w') !== null || p.get('h') !== null) {
      notes.push(`w=${p.get('w')}, h=${p.get('h')} ignored: 1 to ${MAX_DIM} pixels a side, ${fmtInt(MAX_PIXELS)} in all`);
    }
    v.scale = defaultScale(v.w, v.h);
    const cx = num('cx');
    const cy = num('cy');
    const scale = num('scale');
    if (cx !== undefined) v.cx = cx; else reject('cx', 'a number');
    if (cy !== undefined) v.cy = cy; else reject('cy', 'a number');
    if (scale !== undefined && scale > 0) v.scale = scale; else reject('scale', 'a positive number');
    const iter = int('iter', 1, MAX_ITER);
    if (iter !== undefined) v.iter = iter; else reject('iter', `iterations are a whole number from 1 to ${fmtInt(MAX_ITER)}`);
    const cmap = p.get('cmap');
    if (cmap && COLORMAPS.includes(cmap)) v.cmap = cmap; else reject('cmap', `one of ${COLORMAPS.join(', ')}`);
    const policy = p.get('policy');
    if (policy && POLICIES.includes(policy)) v.policy = policy; else if (policy) reject('policy', `one of ${POLICIES.join(', ')}`);
    v.notes = notes;
    return v;
  }

  function hashOf(v) {
    const p = new URLSearchParams();
    p.set('cx', String(v.cx));
    p.set('cy', String(v.cy));
    p.set('scale', String(v.scale));
    p.set('iter', String(v.iter));
    p.set('cmap', v.cmap);
    p.set('w', String(v.w));
    p.set('h', String(v.h));
    if (v.policy) p.set('policy', v.policy);
    return '#' + p.toString();
  }

  // query is the render request: String(number) is the shortest text that
  // parses back to the same float64, exactly as the server formats floats.
  function query(v) {
    const q = new URLSearchParams();
    q.set('cx', String(v.cx));
    q.set('cy', String(v.cy));
    q.set('scale', String(v.scale));
    q.set('width', String(v.w));
    q.set('height', String(v.h));
    q.set('max_iter', String(v.iter));
    q.set('colormap', v.cmap);
    if (v.policy) q.set('policy', v.policy);
    return q.toString();
  }

  const renderURL = (v) => new URL('/mandelbrot/render?' + query(v), location.href).href;

  // ------------------------------------------------------------------
  // Mandelbrot explorer: elements
  // ------------------------------------------------------------------

  const canvas = $('view');
  const ctx = canvas.getContext('2d', { alpha: false });
  const overlay = $('overlay');
  const octx = overlay.getContext('2d');
  const stage = $('stage');
  const inner = $('stage-inner');
  const stageMsg = $('stage-msg');
  const snap = document.createElement('canvas');
  const iterInput = $('iter');
  const iterOut = $('iter-out');
  const cmapSel = $('cmap');
  const resSel = $('res');
  const policySel = $('policy');
  const overlayToggle = $('overlay-toggle');
  const download = $('download');

  let view = null; // the committed view (what the URL says)
  let shown = null; // the view whose pixels are on the canvas
  let es = null; // the EventSource of the render in progress
  let gen = 0; // render generation: late events of older renders are dropped
  let liveSlaves = {}; // per-slave totals of the render in progress
  let overlayTiles = []; // tiles drawn in the render in progress

  const lastRender = {
    seq: 0, done: false, tiles: 0, total: 0, ms: 0, error: null, slaves: {}, url: '',
  };

  const setState = (s) => { document.body.dataset.renderState = s; };

  const iterToSlider = (n) => Math.round(1000 * Math.log(Math.min(Math.max(n, ITER_MIN), ITER_MAX) / ITER_MIN) / Math.log(ITER_MAX / ITER_MIN));
  const sliderToIter = (x) => Math.round(ITER_MIN * Math.pow(ITER_MAX / ITER_MIN, x / 1000));

  function syncControls() {
    iterInput.value = String(iterToSlider(view.iter));
    iterOut.textContent = String(view.iter);
    cmapSel.value = view.cmap;
    const res = `${view.w}x${view.h}`;
    if (![...resSel.options].some((o) => o.value === res)) {
      const o = document.createElement('option');
      o.value = res;
      o.textContent = `${view.w} × ${view.h}`;
      resSel.add(o, 0);
    }
    resSel.value = res;
    policySel.value = view.policy;
    updateCoords();
  }

  function digitsFor(scale) {
    return Math.min(17, Math.max(3, Math.ceil(-Math.log10(scale)) + 1));
  }

  function updateCoords() {
    const d = digitsFor(view.scale);
    const zoom = defaultScale(view.w, view.h) / view.scale;
    const z = zoom >= 1000 ? zoom.toExponential(1).replace('e+', 'e') : zoom.toFixed(zoom < 10 ? 2 : 0);
    const precise = view.scale > 4e-16 * Math.max(1, Math.abs(view.cx), Math.abs(view.cy));
    $('coords').textContent = `centre ${view.cx.toFixed(d)} ${view.cy < 0 ? '−' : '+'} ${Math.abs(view.cy).toFixed(d)}i · zoom ×${z}` +
      (precise ? '' : ' · beyond float64 precision');
  }

  function updateHash(push) {
    const h = hashOf(view);
    if (location.hash === h) return;
    if (push) history.pushState(null, '', h);
    else history.replaceState(null, '', h);
  }

  // setView makes v the current view, records it in the URL and renders it.
  function setView(v, push = true) {
    view = { ...v };
    syncControls();
    updateHash(push);
    render();
  }

  // ------------------------------------------------------------------
  // Mandelbrot explorer: rendering
  // ------------------------------------------------------------------

  function showMessage(msg, retry = false) {
    stageMsg.textContent = msg;
    if (msg && retry) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'btn';
      b.id = 'retry';
      b.textContent = 'Retry';
      b.addEventListener('click', () => { retryWhenSlaves = false; render(); });
      stageMsg.append(b);
    }
    stageMsg.hidden = !msg;
  }

  // retryWhenSlaves is set when a render failed because no slave could
  // take it; the dashboard's poll renders again when one registers.
  let retryWhenSlaves = false;

  function setProgress(done, total, final) {
    const pct = final ? 100 : total ? Math.floor((100 * done) / total) : 0;
    $('progress-fill').style.width = pct + '%';
    $('progress').setAttribute('aria-valuenow', String(pct));
    $('progress-text').textContent = pct + '%';
  }

  function setStats(text) { $('render-stats').textContent = text; }

  // previewTransform maps pixels of view a onto view b: b = a*k + (dx, dy),
  // in frame pixels of b.
  function previewTransform(a, b) {
    const [ax, ay] = origin(a);
    const [bx, by] = origin(b);
    return { k: a.scale / b.scale, dx: (ax - bx) / b.scale, dy: (by - ay) / b.scale };
  }

  // preview shows, by a CSS transform, what the canvas would look like at
  // view v (while dragging or wheeling, before the render starts).
  function preview(v) {
    if (!shown) return;
    const t = previewTransform(shown, v);
    const css = stage.clientWidth / canvas.width; // CSS pixels per frame pixel
    inner.style.transform = `translate(${t.dx * css}px, ${t.dy * css}px) scale(${t.k})`;
  }

  function resetPreview() { inner.style.transform = ''; }

  // paintPlaceholder draws the previous picture, moved and scaled into the
  // new view and dimmed, so a zoom or pan responds at once; tiles then
  // replace it (every tile is opaque and drawn 1:1, so nothing of the
  // placeholder survives a finished render).
  function paintPlaceholder(prev, v) {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!prev) return;
    const t = previewTransform(prev, v);
    if (!(t.k > 1 / 64 && t.k < 64)) return;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(snap, 0, 0, snap.width, snap.height, t.dx, t.dy, snap.width * t.k, snap.height * t.k);
    ctx.fillStyle = 'rgba(0,0,0,0.45)';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }

  function sizeCanvases(w, h) {
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
      overlay.width = w;
      overlay.height = h;
    }
    stage.style.maxWidth = w + 'px';
  }

  function render() {
    if (es) {
      es.close(); // the master cancels the abandoned render
      es = null;
    }
    const my = ++gen;
    const v = { ...view };
    // Snapshot what is on screen, resize, then paint the placeholder.
    let prev = null;
    if (shown && canvas.width > 0) {
      snap.width = canvas.width;
      snap.height = canvas.height;
      snap.getContext('2d').drawImage(canvas, 0, 0);
      prev = shown;
    }
    sizeCanvases(v.w, v.h);
    paintPlaceholder(prev, v);
    resetPreview();
    shown = v;
    octx.clearRect(0, 0, overlay.width, overlay.height);
    overlayTiles = [];
    liveSlaves = {};
    renderLegend({}, false);
    showMessage('');

    const url = '/mandelbrot/stream?' + query(v);
    Object.assign(lastRender, {
      seq: lastRender.seq + 1, done: false, tiles: 0, total: 0, ms: 0, error: null, slaves: {}, url: renderURL(v),
    });
    download.href = lastRender.url;
    download.download = `mandelbrot_${v.w}x${v.h}_${v.cmap}.png`;
    setState('rendering');
    setProgress(0, 0, false);
    setStats('rendering…');

    const t0 = performance.now();
    const src = new EventSource(url);
    es = src;
    let started = false;
    let finished = false;
    const pending = [];

    const fail = (msg) => {
      if (my !== gen) return;
      lastRender.error = msg;
      lastRender.done = false;
      setState('error');
      setStats('failed');
      retryWhenSlaves = /no (healthy )?slaves?\b|unavailable|no slave/i.test(msg);
      showMessage(msg, true);
      if (es === src) es = null;
    };

    src.addEventListener('start', (e) => {
      if (my !== gen) return;
      started = true;
      const d = JSON.parse(e.data);
      lastRender.total = d.tiles;
      setProgress(0, d.tiles, false);
      setStats(`0/${d.tiles} tiles`);
    });

    src.addEventListener('tile', (e) => {
      if (my !== gen) return;
      const t = JSON.parse(e.data);
      pending.push(drawTile(t, my).then(() => {
        if (my !== gen) return;
        lastRender.tiles++;
        const s = (liveSlaves[t.slave] ||= { tiles: 0, busy_ms: 0 });
        s.tiles++;
        s.busy_ms += t.ms;
        setProgress(lastRender.tiles, lastRender.total, false);
        setStats(`${lastRender.tiles}/${lastRender.total} tiles · ${fmtMs(performance.now() - t0)}`);
        renderLegend(liveSlaves, false);
      }));
    });

    src.addEventListener('done', async (e) => {
      finished = true;
      src.close();
      if (my !== gen) return;
      const d = JSON.parse(e.data);
      const results = await Promise.allSettled(pending);
      if (my !== gen) return;
      const bad = results.find((r) => r.status === 'rejected');
      if (bad) {
        fail('could not draw a tile: ' + bad.reason);
        return;
      }
      Object.assign(lastRender, { done: true, tiles: d.tiles, ms: d.ms, slaves: d.slaves || {} });
      if (es === src) es = null;
      setProgress(d.tiles, d.tiles, true);
      const n = Object.keys(lastRender.slaves).length;
      setStats(`${d.tiles}/${d.tiles} tiles · ${fmtMs(d.ms)} on ${n} slave${n === 1 ? '' : 's'}`);
      renderLegend(lastRender.slaves, true);
      setState('done');
    });

    src.addEventListener('error', async (e) => {
      if (my !== gen || finished) {
        src.close();
        return;
      }
      finished = true;
      src.close();
      if (e.data !== undefined) { // the master's "event: error"
        let msg = 'render failed';
        try { msg = JSON.parse(e.data).error || msg; } catch (_) { /* keep the default */ }
        fail(msg);
        return;
      }
      // The connection failed; EventSource hides the body, so ask again
      // for the status and the JSON error (a bad parameter, no slaves...).
      fail(started ? 'lost the connection to the master' : await explainFailure(url));
    });
  }

  async function explainFailure(url) {
    const ac = new AbortController();
    try {
      const res = await fetch(url, { signal: ac.signal, cache: 'no-store' });
      if (res.ok) {
        ac.abort();
        return 'the render stream failed; try again';
      }
      let msg = `HTTP ${res.status}`;
      try {
        const body = await res.json();
        if (body && body.error) msg = body.error + (body.detail ? ` (${body.detail})` : '');
      } catch (_) { /* not JSON */ }
      return msg;
    } catch (err) {
      return 'master unreachable: ' + err.message;
    }
  }

  function decodePNG(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const blob = new Blob([bytes], { type: 'image/png' });
    if (window.createImageBitmap) {
      // No colour-space conversion: the canvas gets the server's bytes.
      return createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    }
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error('bad PNG'));
      img.src = 'data:image/png;base64,' + b64;
    });
  }

  async function drawTile(t, my) {
    const img = await decodePNG(t.png);
    if (my !== gen) {
      if (img.close) img.close();
      return;
    }
    ctx.imageSmoothingEnabled = false;
    ctx.globalAlpha = 1;
    ctx.globalCompositeOperation = 'source-over';
    ctx.drawImage(img, t.ox, t.oy);
    if (img.close) img.close();
    const info = { ox: t.ox, oy: t.oy, w: t.w, h: t.h, slave: t.slave, ms: t.ms, attempts: t.attempts };
    overlayTiles.push(info);
    drawOverlayTile(info);
  }

  function drawOverlayTile(t) {
    const k = Math.max(1, overlay.width / Math.max(1, stage.clientWidth)); // frame px per CSS px
    octx.fillStyle = slaveCSS(t.slave, 0.22);
    octx.fillRect(t.ox, t.oy, t.w, t.h);
    octx.strokeStyle = slaveCSS(t.slave, 0.95);
    octx.lineWidth = k;
    octx.strokeRect(t.ox + k / 2, t.oy + k / 2, t.w - k, t.h - k);
    if (t.w < 36 * k || t.h < 18 * k) return;
    const label = fmtMs(t.ms) + (t.attempts > 1 ? ` ×${t.attempts}` : '');
    octx.font = `600 ${Math.round(11 * k)}px system-ui, sans-serif`;
    octx.textBaseline = 'top';
    const tw = octx.measureText(label).width;
    octx.fillStyle = 'rgba(0,0,0,0.6)';
    octx.fillRect(t.ox + 3 * k, t.oy + 3 * k, tw + 8 * k, 15 * k);
    octx.fillStyle = '#fff';
    octx.fillText(label, t.ox + 7 * k, t.oy + 5 * k);
  }

  function renderLegend(slaves, final) {
    const ids = Object.keys(slaves).sort();
    knowSlaves(ids);
    $('legend').innerHTML = ids.map((id) => {
      const s = slaves[id];
      return `<li data-slave="${escapeHTML(id)}">${slaveTag(id)} ${s.tiles} tile${s.tiles === 1 ? '' : 's'} · ${fmtMs(s.busy_ms)} busy</li>`;
    }).join('');
    $('legend').dataset.final = final ? 'true' : 'false';
  }

  // ------------------------------------------------------------------
  // Mandelbrot explorer: interaction
  // ------------------------------------------------------------------

  // framePoint converts a pointer position into frame pixel coordinates.
  // The stage is never transformed, so its box is the canvas's resting box.
  function framePoint(e) {
    const r = stage.getBoundingClientRect();
    return [
      ((e.clientX - r.left) * canvas.width) / r.width,
      ((e.clientY - r.top) * canvas.height) / r.height,
    ];
  }

  function complexAt(v, fx, fy) {
    const [x0, y0] = origin(v);
    return [x0 + fx * v.scale, y0 - fy * v.scale];
  }

  const clampScale = (s, v) => Math.min(Math.max(s, 1e-300), 8 / Math.min(v.w, v.h));

  // zoomAbout returns v zoomed by factor keeping frame point (fx, fy) fixed,
  // or centred on it.
  function zoomAbout(v, fx, fy, factor, centre) {
    const [re, im] = complexAt(v, fx, fy);
    const scale = clampScale(v.scale / factor, v);
    if (centre) return { ...v, cx: re, cy: im, scale };
    return { ...v, scale, cx: re - (fx - v.w / 2) * scale, cy: im + (fy - v.h / 2) * scale };
  }

  let drag = null;
  let wheelView = null;
  let wheelTimer = 0;

  canvas.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    try { canvas.setPointerCapture(e.pointerId); } catch (_) { /* synthetic pointer */ }
    drag = { x: e.clientX, y: e.clientY, moved: false, target: null };
  });

  canvas.addEventListener('pointermove', (e) => {
    const [fx, fy] = framePoint(e);
    const [re, im] = complexAt(wheelView || view, fx, fy);
    const d = digitsFor(view.scale);
    $('cursor-pos').textContent = `${re.toFixed(d)} ${im < 0 ? '−' : '+'} ${Math.abs(im).toFixed(d)}i`;
    if (!drag) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true;
    stage.classList.add('dragging');
    const r = stage.getBoundingClientRect();
    const k = canvas.width / r.width; // frame px per CSS px
    drag.target = { ...view, cx: view.cx - dx * k * view.scale, cy: view.cy + dy * k * view.scale };
    preview(drag.target);
  });

  canvas.addEventListener('pointerleave', () => { $('cursor-pos').textContent = ''; });

  canvas.addEventListener('pointerup', (e) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    stage.classList.remove('dragging');
    if (d.moved) {
      setView(d.target);
      return;
    }
    const [fx, fy] = framePoint(e);
    setView(zoomAbout(view, fx, fy, e.shiftKey ? 0.5 : 2, true));
  });

  canvas.addEventListener('pointercancel', () => {
    drag = null;
    stage.classList.remove('dragging');
    resetPreview();
  });

  canvas.addEventListener('wheel', (e) => {
    e.preventDefault();
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
    const factor = Math.pow(2, (-e.deltaY * unit) / 300);
    const [fx, fy] = framePoint(e);
    wheelView = zoomAbout(wheelView || view, fx, fy, factor, false);
    preview(wheelView);
    clearTimeout(wheelTimer);
    wheelTimer = setTimeout(() => {
      const v = wheelView;
      wheelView = null;
      setView(v);
    }, 250);
  }, { passive: false });

  iterInput.addEventListener('input', () => { iterOut.textContent = String(sliderToIter(Number(iterInput.value))); });
  iterInput.addEventListener('change', () => setView({ ...view, iter: sliderToIter(Number(iterInput.value)) }));
  cmapSel.addEventListener('change', () => setView({ ...view, cmap: cmapSel.value }));
  policySel.addEventListener('change', () => setView({ ...view, policy: policySel.value }));
  resSel.addEventListener('change', () => {
    const [w, h] = resSel.value.split('x').map(Number);
    // Keep the visible width of the complex plane.
    setView({ ...view, w, h, scale: (view.scale * view.w) / w });
  });
  $('reset').addEventListener('click', () => {
    setView({ ...defaultView(view.w, view.h), cmap: view.cmap, policy: view.policy });
  });

  overlayToggle.addEventListener('change', () => {
    overlay.hidden = !overlayToggle.checked;
    try { localStorage.setItem('calclab.overlay', overlayToggle.checked ? '1' : '0'); } catch (_) { /* private mode */ }
  });
  // Tiles by slave is on unless the user turned it off.
  overlayToggle.checked = true;
  try { overlayToggle.checked = localStorage.getItem('calclab.overlay') !== '0'; } catch (_) { /* private mode */ }
  overlay.hidden = !overlayToggle.checked;

  function fromLocation(push) {
    const v = viewFromHash(location.hash);
    const notes = (v && v.notes) || [];
    if (v) delete v.notes;
    $('view-note').textContent = notes.join(' · ');
    $('view-note').hidden = !notes.length;
    if (v && view && hashOf(v) === hashOf(view)) return;
    // A rejected value is dropped from the URL too (replaceState), so the
    // link on screen is the view on screen.
    setView(v || defaultView(), push && !notes.length);
  }
  window.addEventListener('popstate', () => fromLocation(false));
  window.addEventListener('hashchange', () => fromLocation(false));

  // ------------------------------------------------------------------
  // Dashboard
  // ------------------------------------------------------------------

  const conn = $('conn');
  const samples = []; // {t, rate} of the last 60 s
  let prevDone = null;

  function setConn(state, text) {
    conn.dataset.state = state;
    $('conn-text').textContent = text;
  }

  function renderSlaves(list) {
    list.sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));
    knowSlaves(list.map((s) => s.id));
    const body = $('slaves-body');
    if (!list.length) {
      body.innerHTML = '<tr class="empty"><td colspan="5">no slaves registered</td></tr>';
      return;
    }
    body.innerHTML = list.map((s) => {
      const cap = Math.max(1, s.capacity || 1);
      const pct = Math.min(100, Math.round((100 * s.in_flight) / cap));
      const cls = pct >= 100 ? 'full' : pct >= 50 ? 'mid' : '';
      const seen = s.last_seen ? Math.max(0, Math.round((Date.now() - Date.parse(s.last_seen)) / 1000)) : null;
      const title = `${s.webhook}${s.version ? ' · v' + s.version : ''} · failures ${s.failures}` + (seen !== null ? ` · seen ${seen}s ago` : '');
      return `<tr data-slave="${escapeHTML(s.id)}" title="${escapeHTML(title)}">` +
        `<td>${slaveTag(s.id)}</td>` +
        `<td><span class="badge ${escapeHTML(s.status)}">${escapeHTML(s.status)}</span></td>` +
        `<td><div class="load"><div class="load-bar"><div class="load-fill ${cls}" style="width:${pct}%"></div></div>` +
        `<span class="load-text">${s.in_flight}/${s.capacity}</span></div></td>` +
        `<td class="num" title="${escapeHTML(fmtInt(s.tasks_done))} calculator tasks and Mandelbrot tiles">${fmtInt(s.tasks_done)}</td>` +
        `<td class="num">${s.latency_ms ? fmtMs(s.latency_ms) : '—'}</td></tr>`;
    }).join('');
  }

  function renderHealth(h, slaves = []) {
    $('st-slaves').textContent = String(h.slaves);
    $('st-queue').textContent = fmtInt(h.queue_depth);
    $('st-inflight').textContent = fmtInt(h.in_flight);
    $('st-done').textContent = fmtInt(h.tasks_done);
    const now = performance.now();
    if (prevDone) {
      const dt = (now - prevDone.t) / 1000;
      const dn = h.tasks_done - prevDone.n;
      samples.push({ t: now, rate: dt > 0 && dn > 0 ? dn / dt : 0 });
    }
    prevDone = { t: now, n: h.tasks_done };
    while (samples.length && samples[0].t < now - 60000) samples.shift();
    const rate = samples.length ? samples[samples.length - 1].rate : 0;
    const peak = samples.reduce((m, s) => Math.max(m, s.rate), 0);
    $('st-rate').textContent = rate < 100 ? rate.toFixed(1) : fmtInt(Math.round(rate));
    $('st-peak').textContent = peak > 0 ? `· peak ${peak < 100 ? peak.toFixed(1) : fmtInt(Math.round(peak))}` : '';
    drawSparkline(now);
    // Green only when the master is ok and every registered slave is
    // serving: one that is down (or draining) makes the cluster degraded.
    const notServing = slaves.filter((s) => s.status !== 'free' && s.status !== 'busy');
    const st = h.status === 'ok' && h.slaves > 0 && notServing.length === 0 ? 'ok' : 'degraded';
    const why = notServing.length ? ` · ${notServing.map((s) => `${s.id} ${s.status}`).join(', ')}` : '';
    setConn(st, `master ${h.status} · ${h.slaves} slave${h.slaves === 1 ? '' : 's'}${why}${h.version ? ' · v' + h.version : ''}`);
    // A render that failed for want of slaves runs again once one serves.
    if (retryWhenSlaves && h.slaves > 0) {
      retryWhenSlaves = false;
      render();
    }
  }

  function drawSparkline(now) {
    const c = $('spark');
    const dpr = window.devicePixelRatio || 1;
    const W = c.clientWidth || 240;
    const H = c.clientHeight || 44;
    if (c.width !== Math.round(W * dpr)) { c.width = Math.round(W * dpr); c.height = Math.round(H * dpr); }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    g.strokeStyle = '#e2e8f0';
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(0, H - 0.5);
    g.lineTo(W, H - 0.5);
    g.stroke();
    if (samples.length < 2) return;
    const max = Math.max(1, ...samples.map((s) => s.rate)) * 1.15;
    const x = (t) => W - ((now - t) / 60000) * W;
    const y = (r) => H - 2 - (r / max) * (H - 6);
    g.beginPath();
    samples.forEach((s, i) => (i ? g.lineTo(x(s.t), y(s.rate)) : g.moveTo(x(s.t), y(s.rate))));
    const grad = g.createLinearGradient(0, 0, 0, H);
    grad.addColorStop(0, 'rgba(79,70,229,0.35)');
    grad.addColorStop(1, 'rgba(79,70,229,0.02)');
    g.strokeStyle = '#4f46e5';
    g.lineWidth = 1.5;
    g.lineJoin = 'round';
    g.stroke();
    g.lineTo(x(samples[samples.length - 1].t), H);
    g.lineTo(x(samples[0].t), H);
    g.closePath();
    g.fillStyle = grad;
    g.fill();
  }

  function renderTasks(list) {
    const body = $('tasks-body');
    if (!list.tasks || !list.tasks.length) {
      body.innerHTML = '<tr class="empty"><td colspan="4">no tasks yet</td></tr>';
      return;
    }
    body.innerHTML = list.tasks.map((t) => {
      let res;
      if (t.status === 'completed') res = `<td class="num">${escapeHTML(String(t.result))}</td>`;
      else if (t.status === 'failed') {
        const short = (t.error || 'failed').replace(/^evaluation failed: /, '').replace(/ at position \d+$/, '');
        res = `<td class="err" title="${escapeHTML(t.error || '')}">${escapeHTML(short)}</td>`;
      }
      else res = `<td><span class="badge">${escapeHTML(t.status)}</span></td>`;
      return `<tr><td class="expr" title="${escapeHTML(t.expression)}">${escapeHTML(t.expression)}</td>${res}` +
        `<td>${t.slave ? slaveTag(t.slave) : '—'}</td>` +
        `<td class="num">${t.duration_ms ? t.duration_ms.toFixed(1) : '—'}</td></tr>`;
    }).join('');
  }

  async function pollCluster() {
    try {
      const [slaves, health] = await Promise.all([getJSON('/slaves'), getJSON('/health')]);
      renderSlaves(slaves);
      renderHealth(health, slaves);
      $('dash-updated').textContent = 'updated ' + fmtTime(new Date());
    } catch (err) {
      setConn('down', 'master unreachable');
    }
    setTimeout(pollCluster, 1000);
  }

  async function pollTasks() {
    try {
      renderTasks(await getJSON('/tasks?limit=10'));
    } catch (_) { /* shown by pollCluster */ }
    setTimeout(pollTasks, 1000);
  }

  // ------------------------------------------------------------------
  // Calculator
  // ------------------------------------------------------------------

  const form = $('calc-form');
  const input = $('calc-input');
  const submitBtn = $('calc-submit');
  const resultBox = $('calc-result');
  const calcHistory = [];

  function showResult(state, html) {
    resultBox.dataset.state = state;
    resultBox.innerHTML = html;
  }

  function renderHistory() {
    $('calc-history').innerHTML = calcHistory.map((h) => {
      const res = h.error !== undefined
        ? `<span class="h-res err" title="${escapeHTML(h.error)}">${escapeHTML(h.error)}</span>`
        : `<span class="h-res">= ${escapeHTML(h.result)}</span>`;
      const meta = [fmtTime(h.at), h.slave ? 'on ' + h.slave : '', h.ms !== undefined ? fmtMs(h.ms) : ''].filter(Boolean).join(' · ');
      return `<li data-expr="${escapeHTML(h.expr)}"${h.error !== undefined ? ' class="err"' : ''} title="Click to edit"><span class="h-expr" title="${escapeHTML(h.expr)}">${escapeHTML(h.expr)}</span>${res}` +
        `<span class="h-meta">${escapeHTML(meta)}</span></li>`;
    }).join('');
  }

  $('calc-history').addEventListener('click', (e) => {
    const li = e.target.closest('li');
    if (!li) return;
    input.value = li.dataset.expr;
    input.focus();
  });

  $('examples').addEventListener('click', (e) => {
    const chip = e.target.closest('.chip');
    if (!chip) return;
    input.value = chip.textContent;
    form.requestSubmit();
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const expr = input.value.trim();
    if (!expr) return;
    submitBtn.disabled = true;
    showResult('busy', `<span class="muted">computing <code>${escapeHTML(expr)}</code>…</span>`);
    const entry = { expr, at: new Date() };
    try {
      const res = await fetch('/submit-task', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ payload: expr }),
      });
      let body = null;
      try { body = await res.json(); } catch (_) { /* not JSON */ }
      if (body && body.slave) entry.slave = body.slave;
      if (body && body.duration_ms) entry.ms = body.duration_ms;
      if (res.ok && body && body.status === 'completed' && typeof body.result === 'number') {
        entry.result = String(body.result);
      } else if (body && body.error) {
        entry.error = body.error;
      } else if (res.status === 202 && body) {
        entry.error = `still ${body.status} (task ${body.task_id})`;
      } else {
        entry.error = `HTTP ${res.status}`;
      }
    } catch (err) {
      entry.error = 'master unreachable: ' + err.message;
    }
    submitBtn.disabled = false;
    const meta = [entry.slave ? 'on ' + entry.slave : '', entry.ms !== undefined ? fmtMs(entry.ms) : ''].filter(Boolean).join(' · ');
    if (entry.error !== undefined) {
      showResult('error', `<span class="expr">${escapeHTML(expr)}</span><span class="error" id="calc-error">${escapeHTML(entry.error)}</span>` +
        `<span class="meta">${escapeHTML(meta)}</span>`);
    } else {
      showResult('ok', `<span class="expr">${escapeHTML(expr)} =</span><span class="value" id="calc-value">${escapeHTML(entry.result)}</span>` +
        `<span class="meta">${escapeHTML(meta)}</span>`);
      input.select();
    }
    calcHistory.unshift(entry);
    calcHistory.length = Math.min(calcHistory.length, 20);
    renderHistory();
  });

  // ------------------------------------------------------------------
  // Start
  // ------------------------------------------------------------------

  window.calclab = {
    get view() { return { ...view }; },
    lastRender,
    renderURL: () => renderURL(view),
    setView: (v) => setView({ ...view, ...v }),
  };

  fromLocation(false);
  pollCluster();
  pollTasks();
})();
