// calclab API reference: renders the master's /openapi.json in the page.
// Plain JavaScript, no framework, no CDN: the lab may be offline.
'use strict';

(async () => {
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);

  // md renders the small Markdown subset the document uses: headings, code
  // fences, bullet lists, paragraphs, `code`, **bold** and [links](url).
  function md(src) {
    // Code spans first, so that ** inside `2 ** 3` stays as written.
    const inline = (s) => String(s).split(/(`[^`]+`)/).map((part) => (part.startsWith('`') && part.length > 1
      ? `<code>${esc(part.slice(1, -1))}</code>`
      : esc(part)
        .replace(/\*\*([^*]+)\*\*/g, '<b>$1</b>')
        .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (_, t, u) => (/^(https?:|\/|#)/.test(u) ? `<a href="${u}">${t}</a>` : t)))).join('');
    const out = [];
    const lines = String(src || '').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i];
      if (l.startsWith('```')) {
        const code = [];
        for (i++; i < lines.length && !lines[i].startsWith('```'); i++) code.push(lines[i]);
        out.push(`<pre><code>${esc(code.join('\n'))}</code></pre>`);
      } else if (/^#{1,6} /.test(l)) {
        const n = Math.min(6, l.indexOf(' ') + 2);
        out.push(`<h${n}>${inline(l.replace(/^#+ /, ''))}</h${n}>`);
      } else if (/^[*-] /.test(l)) {
        const items = [];
        for (; i < lines.length && /^[*-] /.test(lines[i]); i++) items.push(`<li>${inline(lines[i].slice(2))}</li>`);
        i--;
        out.push(`<ul>${items.join('')}</ul>`);
      } else if (l.trim()) {
        const para = [l];
        for (; i + 1 < lines.length && lines[i + 1].trim() && !/^(```|#|[*-] )/.test(lines[i + 1]); i++) para.push(lines[i + 1]);
        out.push(`<p>${inline(para.join(' '))}</p>`);
      }
    }
    return out.join('\n');
  }

  let doc;
  try {
    const res = await fetch('/openapi.json', { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    doc = await res.json();
  } catch (err) {
    $('api-doc').innerHTML = `<p class="err">could not load /openapi.json: ${esc(err.message)}</p>`;
    return;
  }

  const resolve = (ref) => ref.replace(/^#\//, '').split('/').reduce((o, k) => (o ? o[k.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined), doc);
  const deref = (x) => (x && x.$ref ? resolve(x.$ref) || {} : x || {});

  // schema renders a schema as an indented outline, $refs named and
  // expanded once (a schema seen higher up is only named).
  function schema(s, seen = new Set(), depth = 0) {
    if (!s) return '';
    let name = '';
    if (s.$ref) {
      name = s.$ref.split('/').pop();
      if (seen.has(name) || depth > 6) return `<span class="t">${esc(name)}</span>`;
      seen = new Set(seen).add(name);
      s = deref(s);
    }
    const type = Array.isArray(s.type) ? s.type.join(' | ') : s.type || (s.oneOf ? 'one of' : s.anyOf ? 'any of' : '');
    let head = `<span class="t">${esc(name || type)}</span>`;
    if (name && type) head += ` <span class="muted">${esc(type)}</span>`;
    if (s.enum) head += ` <span class="muted">(${s.enum.map((e) => esc(JSON.stringify(e))).join(', ')})</span>`;
    const parts = [];
    if (s.properties) {
      const req = new Set(s.required || []);
      for (const [k, v] of Object.entries(s.properties)) {
        const d = deref(v).description || v.description || '';
        parts.push(`<li><b>${esc(k)}</b>${req.has(k) ? ' <span class="req">required</span>' : ''}: ${schema(v, seen, depth + 1)}` +
          (d ? ` <span class="muted">— ${esc(d.split('\n')[0])}</span>` : '') + '</li>');
      }
    }
    if (s.items) parts.push(`<li>items: ${schema(s.items, seen, depth + 1)}</li>`);
    for (const k of ['oneOf', 'anyOf', 'allOf']) {
      if (s[k]) for (const alt of s[k]) parts.push(`<li>${k}: ${schema(alt, seen, depth + 1)}</li>`);
    }
    return head + (parts.length ? `<ul>${parts.join('')}</ul>` : '');
  }

  const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
  const ops = [];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const m of METHODS) {
      if (item[m]) ops.push({ path, method: m, op: item[m], servers: item.servers || doc.servers || [], params: item.parameters || [] });
    }
  }
  const tags = (doc.tags || []).map((t) => t.name);
  for (const o of ops) for (const t of o.op.tags || []) if (!tags.includes(t)) tags.push(t);

  const anchor = (o) => `op-${o.op.operationId || (o.method + o.path).replace(/[^a-z0-9]+/gi, '-')}`;
  $('api-title').textContent = doc.info.title + ' API';
  $('api-version').textContent = `version ${doc.info.version} · OpenAPI ${doc.openapi}` +
    (doc.info.license ? ` · ${doc.info.license.name}` : '');
  document.title = `${doc.info.title} API`;

  $('api-toc').innerHTML = tags.map((t) => `<h4>${esc(t)}</h4>` + ops.filter((o) => (o.op.tags || []).includes(t))
    .map((o) => `<a href="#${anchor(o)}"><span class="m m-${o.method}">${o.method}</span>${esc(o.path)}</a>`).join('')).join('');

  const opHTML = (o) => {
    const op = o.op;
    const sec = (op.security ?? doc.security ?? []).filter((r) => Object.keys(r).length);
    const params = [...o.params, ...(op.parameters || [])].map(deref);
    const body = op.requestBody ? deref(op.requestBody) : null;
    const servers = o.servers.map((s) => s.url).join(', ');
    let h = `<section class="api-op" id="${anchor(o)}"><h3><span class="m m-${o.method}">${o.method}</span> ${esc(o.path)}</h3>`;
    h += `<div>${esc(op.summary || '')}${sec.length ? ` <span class="lock" title="Authorization: Bearer TOKEN, when the master runs with --token">🔒 ${esc(sec.map((r) => Object.keys(r).join(', ')).join(' or '))}</span>` : ''}</div>`;
    if (servers && servers !== '/') h += `<div class="srv">served at ${esc(servers)}</div>`;
    if (op.description) h += md(op.description);
    if (params.length) {
      h += '<h5>Parameters</h5><table><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>' + params.map((p) =>
        `<tr><td><b>${esc(p.name)}</b>${p.required ? ' <span class="req">required</span>' : ''}</td><td>${esc(p.in)}</td>` +
        `<td class="schema">${schema(p.schema)}</td><td>${md(p.description || '')}</td></tr>`).join('') + '</table>';
    }
    if (body && body.content) {
      h += '<h5>Request body</h5>';
      for (const [ct, c] of Object.entries(body.content)) h += `<div class="schema"><span class="muted">${esc(ct)}</span> ${schema(c.schema)}</div>`;
    }
    h += '<h5>Responses</h5><table>' + Object.entries(op.responses || {}).map(([code, r]) => {
      r = deref(r);
      const cts = Object.entries(r.content || {}).map(([ct, c]) => `<div class="schema"><span class="muted">${esc(ct)}</span> ${schema(c.schema)}</div>`).join('');
      return `<tr><td><b>${esc(code)}</b></td><td>${md(r.description || '')}${cts}</td></tr>`;
    }).join('') + '</table></section>';
    return h;
  };

  $('api-doc').innerHTML = `<section class="api-doc-intro">${md(doc.info.description)}</section>` + ops.map(opHTML).join('');
  document.body.dataset.apiOps = String(ops.length);
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
})();
