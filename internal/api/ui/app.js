// switchyard status page. Draws the last 15 minutes: what the server sampled
// before the page opened (/series), then what the page's own polls of
// /status see. No libraries, no build step.
//
// Every figure is also written as plain text (and, for numbers, the exact
// value in a data-value attribute) into elements with stable ids or
// data-field attributes, which the browser test reads.
'use strict';
(function () {
  const STATUS_EVERY_MS = 2000;
  const HISTORY_EVERY_MS = 10000;
  const WINDOW_MS = 15 * 60 * 1000;

  // The API's paths relative to the page's directory (the page is / or
  // /status). Built from origin and path rather than location.href, which
  // may carry the user:token@ of the address bar: fetch() refuses URLs with
  // credentials. Same origin, so the browser sends its Basic credentials.
  const base = location.origin + location.pathname.replace(/[^/]*$/, '');

  const $ = (id) => document.getElementById(id);
  const field = (name) => document.querySelector('[data-field="' + name + '"]');

  // samples: one per /status poll, oldest first, trimmed to WINDOW_MS.
  // Rates are null for the first poll and after a counter reset.
  const samples = [];
  let prev = null; // counters of the previous poll

  // ---- formatting ----

  function fmtInt(n) { return Number(n).toLocaleString('en-US'); }
  function fmtRate(x) { return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2); }
  function fmtMs(x) { return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2); }
  function fmtBytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
  }
  function fmtDuration(sec) {
    sec = Math.floor(sec);
    const d = Math.floor(sec / 86400), h = Math.floor(sec / 3600) % 24, m = Math.floor(sec / 60) % 60, s = sec % 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + s + 's';
    return s + 's';
  }
  function fmtTook(ns) {
    const ms = ns / 1e6;
    return ms < 1000 ? ms.toFixed(0) + ' ms' : (ms / 1000).toFixed(1) + ' s';
  }
  // fmtTime is local "YYYY-MM-DD HH:MM:SS"; Go's zero time is "—".
  function fmtTime(iso) {
    const t = new Date(iso);
    if (!iso || isNaN(t) || t.getFullYear() < 1971) return '—';
    const p = (n) => String(n).padStart(2, '0');
    return t.getFullYear() + '-' + p(t.getMonth() + 1) + '-' + p(t.getDate()) + ' ' +
      p(t.getHours()) + ':' + p(t.getMinutes()) + ':' + p(t.getSeconds());
  }
  function ago(iso) {
    const t = new Date(iso);
    if (!iso || isNaN(t) || t.getFullYear() < 1971) return '';
    return ' (' + fmtDuration(Math.max(0, Date.now() - t) / 1000) + ' ago)';
  }
  // fmtAxis labels a chart's grid lines: 0, 2.5, 250, 1.5k.
  function fmtAxis(v) {
    if (v >= 1000) return Number((v / 1000).toPrecision(3)) + 'k';
    return String(Number(v.toPrecision(3)));
  }
  const short = (id) => (id || '').slice(0, 12);

  // setNum writes a number's text and its exact value; null shows a dash.
  function setNum(el, value, fmt) {
    if (!el) return;
    el.textContent = value == null ? '—' : fmt(value);
    el.dataset.value = value == null ? '' : String(value);
  }
  function setText(id, text) { $(id).textContent = text == null || text === '' ? '—' : text; }

  // healthClass maps a health word to the badge colour.
  function healthClass(h) {
    if (h === 'healthy' || h === 'ok') return 'ok';
    if (h === 'starting') return 'warn';
    return 'bad';
  }
  function setBadge(el, text) {
    el.textContent = text || '—';
    el.className = 'badge ' + healthClass(text);
  }

  // el builds an element with text (never HTML) and attributes.
  function el(tag, text, attrs) {
    const e = document.createElement(tag);
    if (text != null) e.textContent = text;
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }

  // ---- fetching ----

  async function getJSON(path) {
    const res = await fetch(base + path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (res.status === 401) {
      throw new Error('401 from ' + path + ': reload the page and log in with the API token as the password');
    }
    let body = null;
    try { body = await res.json(); } catch (e) { /* reported below */ }
    // /status answers 503 with the full status when nothing healthy is active.
    if (body && (res.ok || (path === 'status' && res.status === 503))) return body;
    throw new Error(path + ': HTTP ' + res.status + (body && body.error ? ': ' + body.error : ''));
  }

  // showError shows the failure of one poller (by name) until it succeeds.
  const errors = {};
  function showError(name, err) {
    errors[name] = err ? err.message : '';
    const msgs = Object.values(errors).filter(Boolean);
    const b = $('error');
    b.hidden = !msgs.length;
    b.textContent = msgs.length ? 'Cannot read the API: ' + msgs.join('; ') + ' (showing the last figures)' : '';
  }

  // ---- series ----

  // codeClasses sums proxy.codes ({"200": n, ...}) into 2xx..5xx.
  function codeClasses(codes) {
    const c = { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
    for (const k in codes || {}) {
      const cls = Math.floor(Number(k) / 100) + 'xx';
      if (cls in c) c[cls] += codes[k];
    }
    return c;
  }

  // latency prefers the last minute when it saw requests (the API's
  // proxy.windows["1m"]), else the histogram since start: an idle minute
  // has no latencies to show.
  function latency(p, st) {
    const ws = p.windows || st.windows;
    for (const name of ['1m', '15m']) {
      const t = ws && ws[name] && ws[name].latency_ms && ws[name].latency_ms.total;
      if (t && t.count > 0) return t;
    }
    return (p.latency_ms && p.latency_ms.total) || null;
  }

  // record turns one /status into a sample. Rates are counter differences
  // divided by the server's uptime difference (exact however late the poll
  // ran), or the page's clock when the API reports no uptime.
  function record(st, now) {
    const p = st.proxy || {};
    const cur = { t: now, up: (st.uptime_ns || 0) / 1e9, req: p.requests || 0, shed: p.shed || 0, codes: codeClasses(p.codes) };
    const lat = latency(p, st);
    const s = { t: now, queued: p.queued || 0, inflight: p.in_flight || 0, rps: null, shed: null,
      p50: lat ? lat.p50 : null, p90: lat ? lat.p90 : null, p99: lat ? lat.p99 : null,
      over: !!(p.queue && p.queue.state === 'overloaded') };
    if (prev) {
      let dt = cur.up - prev.up;
      if (!(dt > 0)) dt = (now - prev.t) / 1000;
      // A counter going down means the server restarted: no rate this time.
      if (dt > 0 && cur.req >= prev.req && cur.shed >= prev.shed) {
        s.rps = (cur.req - prev.req) / dt;
        s.shed = (cur.shed - prev.shed) / dt;
        for (const k in cur.codes) s['c' + k] = Math.max(0, cur.codes[k] - prev.codes[k]) / dt;
      }
    }
    prev = cur;
    samples.push(s);
    while (samples.length && samples[0].t < now - WINDOW_MS) samples.shift();
    return s;
  }

  // seed fills the charts with the server's samples of the last 15 minutes
  // (GET /series), placed on the page's clock: an operator who opens the
  // page during an incident sees what led up to it. Queue depth and in
  // flight are gauges the server does not sample: those charts start empty.
  function seed(series) {
    const skew = series.now ? Date.now() - Date.parse(series.now) : 0;
    const first = samples.length ? samples[0].t : Infinity;
    const seeded = [];
    for (const p of series.points || []) {
      const t = Date.parse(p.t) + skew, sec = p.seconds > 0 ? p.seconds : 5;
      if (!(t < first)) continue; // the page's own samples win
      const l = p.latency_ms || {}, has = l.count > 0;
      const s = { t: t, queued: null, inflight: null, rps: p.requests / sec, shed: p.shed / sec,
        p50: has ? l.p50 : null, p90: has ? l.p90 : null, p99: has ? l.p99 : null };
      const cls = codeClasses(p.codes);
      for (const k in cls) s['c' + k] = cls[k] / sec;
      seeded.push(s);
    }
    samples.unshift(...seeded);
    while (samples.length && samples[0].t < Date.now() - WINDOW_MS) samples.shift();
  }

  // ---- charts ----

  // niceMax rounds up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // drawChart draws series ([{key, label, fmt}], values read from samples
  // by key) into svg#id: lines, or stacked areas when stacked. The x axis is
  // the last WINDOW_MS up to now; samples lacking a value are left out.
  // With bands, the spans between polls that found the queue overloaded are
  // shaded behind the lines.
  function drawChart(id, series, stacked, bands) {
    const svg = $(id);
    const W = Math.round(svg.clientWidth) || 400, H = Math.round(svg.clientHeight) || 150;
    const L = 46, R = 8, T = 8, B = 18;
    const now = Date.now();
    const x = (t) => L + (t - (now - WINDOW_MS)) / WINDOW_MS * (W - L - R);
    const pts = samples.filter((s) => series.every((se) => s[se.key] != null));
    // Stacked: a layer's top is the sum of itself and the layers below.
    const tops = series.map((se, i) => pts.map((s) =>
      stacked ? series.slice(0, i + 1).reduce((a, sj) => a + s[sj.key], 0) : s[se.key]));
    const max = niceMax(Math.max(0, ...tops.flat()));
    const y = (v) => T + (1 - v / max) * (H - T - B);
    let out = bands ? overloadBands(x, T, H - B) : '';
    for (const f of [0, 0.5, 1]) {
      const yy = y(max * f).toFixed(1);
      out += '<line class="grid" x1="' + L + '" x2="' + (W - R) + '" y1="' + yy + '" y2="' + yy + '"/>' +
        '<text class="y" x="' + (L - 5) + '" y="' + (Number(yy) + 3) + '">' + fmtAxis(max * f) + '</text>';
    }
    for (const [label, t, cls] of [['−15 min', now - WINDOW_MS, 'x0'], ['−7.5 min', now - WINDOW_MS / 2, 'x'], ['now', now, 'x1']]) {
      out += '<text class="' + cls + '" x="' + x(t).toFixed(1) + '" y="' + (H - 4) + '">' + label + '</text>';
    }
    // Draw the top layer first so that lower stacked layers paint over it.
    for (let i = series.length - 1; i >= 0; i--) {
      if (!pts.length) break;
      const line = pts.map((s, k) => (k ? 'L' : 'M') + x(s.t).toFixed(1) + ' ' + y(tops[i][k]).toFixed(1)).join(' ');
      if (stacked) {
        const lastX = x(pts[pts.length - 1].t).toFixed(1), firstX = x(pts[0].t).toFixed(1);
        out += '<path class="area s-' + series[i].key.replace(/^c/, '') + '" d="' + line +
          ' L' + lastX + ' ' + y(0).toFixed(1) + ' L' + firstX + ' ' + y(0).toFixed(1) + ' Z"/>';
      } else {
        // A dot on the latest value: visible even while the line is short.
        const s = pts[pts.length - 1];
        out += '<path class="line s-' + series[i].key + '" d="' + line + '"/>' +
          '<circle class="s-' + series[i].key + '" r="2.5" cx="' + x(s.t).toFixed(1) + '" cy="' + y(tops[i][pts.length - 1]).toFixed(1) + '"/>';
      }
    }
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.innerHTML = out;
    svg.dataset.points = String(pts.length);
    // Legend: the latest value of each series.
    const legend = $(id.replace('chart-', 'legend-'));
    legend.textContent = '';
    const last = pts[pts.length - 1];
    for (const se of series) {
      const key = el('span', se.label + ' ', { class: 'key s-' + se.key.replace(/^c/, '') });
      key.appendChild(el('b', last ? (se.fmt || fmtRate)(last[se.key]) : '—'));
      legend.appendChild(key);
    }
  }

  // overloadBands shades, from top to bottom, each span from the previous
  // poll to a poll that found the queue overloaded.
  function overloadBands(x, top, bottom) {
    const left = x(Date.now() - WINDOW_MS);
    let out = '';
    for (let i = 0; i < samples.length; i++) {
      if (!samples[i].over) continue;
      const from = Math.max(left, x(i ? samples[i - 1].t : samples[i].t - STATUS_EVERY_MS)), to = x(samples[i].t);
      out += '<rect class="band-over" x="' + from.toFixed(1) + '" y="' + top + '" width="' +
        Math.max(1, to - from).toFixed(1) + '" height="' + (bottom - top) + '"/>';
    }
    return out;
  }

  function drawCharts() {
    drawChart('chart-rps', [{ key: 'rps', label: 'req/s' }]);
    drawChart('chart-latency', [
      { key: 'p50', label: 'p50', fmt: fmtMs }, { key: 'p90', label: 'p90', fmt: fmtMs }, { key: 'p99', label: 'p99', fmt: fmtMs }], false, true);
    drawChart('chart-queued', [{ key: 'queued', label: 'queued', fmt: (v) => String(Math.round(v)) }]);
    drawChart('chart-shed', [{ key: 'shed', label: 'shed/s' }]);
    drawChart('chart-codes', ['2xx', '3xx', '4xx', '5xx'].map((c) => ({ key: 'c' + c, label: c })), true);
  }

  // ---- rendering ----

  function renderStatus(st, s) {
    const p = st.proxy || {};
    setText('app', st.app);
    setText('version', st.version);
    setText('uptime', st.uptime_ns ? fmtDuration(st.uptime_ns / 1e9) : '—');
    setText('updated', fmtTime(new Date().toISOString()));
    const overall = st.healthy ? 'healthy' : st.active ? 'unhealthy' : 'no active container';
    setBadge($('overall'), overall);
    $('operation-banner').hidden = !st.operation;
    $('operation').textContent = st.operation || '';

    setNum($('rps'), s.rps, fmtRate);
    setNum($('shed'), s.shed, fmtRate);
    setNum($('p50'), s.p50, fmtMs);
    setNum($('p90'), s.p90, fmtMs);
    setNum($('p99'), s.p99, fmtMs);
    setNum($('queued'), p.queued || 0, fmtInt);
    setNum($('inflight'), p.in_flight || 0, fmtInt);

    const cls = codeClasses(p.codes);
    for (const f of ['requests', 'shed', 'failed']) setNum(field(f), p[f] || 0, fmtInt);
    for (const c in cls) setNum(field('codes-' + c), cls[c], fmtInt);
    for (const f of ['bytes_in', 'bytes_out']) setNum(field(f), p[f] || 0, fmtBytes);
    renderQueue(p.queue, p.shed_reasons || {});

    renderActive(st.active);
    setText('previous', short(st.previous_config));
    setText('source', st.source);
    renderLaunched((st.launched || []).filter((c) => !st.active || c.id !== st.active.id));
  }

  // renderQueue shows the queue's state (normal, queueing, overloaded), how
  // long a request waits at most now, and why requests were refused.
  function renderQueue(q, reasons) {
    const st = $('queue-state');
    st.textContent = q ? q.state : '—';
    st.className = 'state ' + (q ? q.state : '');
    st.title = q ? q.discipline + ' queue, overloaded ' + (q.overloads || 0) + ' times' : '';
    setNum($('queue-timeout'), q ? q.effective_timeout_ms : null, fmtMs);
    for (const r of ['queue_timeout', 'overload', 'queue_full', 'limits', 'no_app']) {
      setNum(field('shed-' + r), reasons[r] || 0, fmtInt);
    }
    const over = field('overloaded');
    over.textContent = q ? fmtDuration(q.overloaded_seconds || 0) : '—';
    over.dataset.value = q ? String(q.overloaded_seconds || 0) : '';
  }

  function renderActive(a) {
    $('no-active').hidden = !!a;
    $('active').hidden = !a;
    if (!a) return;
    const id = $('active-id');
    id.textContent = short(a.id);
    id.title = id.dataset.value = a.id;
    setText('active-name', a.name);
    setBadge($('active-health'), a.health);
    setText('active-image', a.image);
    const cfg = $('active-config');
    cfg.textContent = short(a.config_id) || '—';
    cfg.title = cfg.dataset.value = a.config_id || '';
    setText('active-started', fmtTime(a.started) + ago(a.started));
    setText('active-addr', a.addr);
    setText('active-workers', a.workers);
    setNum($('active-inflight'), a.in_flight || 0, fmtInt);
    setNum($('active-requests'), a.stats ? a.stats.requests : null, fmtInt);
  }

  function renderLaunched(list) {
    const tb = $('launched');
    tb.textContent = '';
    if (!list.length) tb.appendChild(el('tr')).appendChild(el('td', 'none', { colspan: 6, class: 'empty' }));
    for (const c of list) {
      const tr = tb.appendChild(el('tr', null, { 'data-id': c.id }));
      tr.appendChild(el('td')).appendChild(el('code', short(c.id), { title: c.id, 'data-field': 'id' }));
      tr.appendChild(el('td')).appendChild(el('code', c.image, { 'data-field': 'image' }));
      tr.appendChild(el('td')).appendChild(el('code', short(c.config_id), { title: c.config_id || '', 'data-field': 'config' }));
      tr.appendChild(el('td', fmtTime(c.started) + ago(c.started), { 'data-field': 'started' }));
      const badge = tr.appendChild(el('td')).appendChild(el('span'));
      setBadge(badge, c.health);
      tr.appendChild(el('td', fmtInt(c.in_flight || 0), { class: 'num', 'data-field': 'in_flight', 'data-value': c.in_flight || 0 }));
    }
  }

  function renderHistory(events) {
    const tb = $('history');
    tb.textContent = '';
    if (!events.length) tb.appendChild(el('tr')).appendChild(el('td', 'no deployments yet', { colspan: 8, class: 'empty' }));
    for (const e of events) {
      const tr = tb.appendChild(el('tr', null, { 'data-action': e.action, 'data-result': e.result }));
      tr.appendChild(el('td', fmtTime(e.time), { 'data-field': 'time' }));
      tr.appendChild(el('td', e.action, { 'data-field': 'action' }));
      const badge = tr.appendChild(el('td')).appendChild(el('span', null, { 'data-field': 'result' }));
      setBadge(badge, e.result);
      tr.appendChild(el('td', e.who || '', { 'data-field': 'who' }));
      tr.appendChild(el('td')).appendChild(el('code', short(e.config_id), { title: e.config_id || '', 'data-field': 'config' }));
      tr.appendChild(el('td')).appendChild(el('code', short(e.container), { title: e.container || '', 'data-field': 'container' }));
      tr.appendChild(el('td', e.duration_ns ? fmtTook(e.duration_ns) : '', { class: 'num', 'data-field': 'duration' }));
      tr.appendChild(el('td', e.error || '', { class: 'error-text', 'data-field': 'error' }));
    }
  }

  // ---- polling ----

  // poll runs fn now and then every ms, one call at a time: a slow API
  // delays the next poll instead of piling requests up.
  function poll(name, fn, ms) {
    const run = async () => {
      try { await fn(); showError(name, null); } catch (err) { showError(name, err); }
      setTimeout(run, ms);
    };
    run();
  }

  // The server's last 15 minutes first, once; the polls go on regardless.
  getJSON('series').then((series) => { seed(series); drawCharts(); }).catch((err) => showError('series', err));
  poll('status', async () => {
    const st = await getJSON('status');
    const s = record(st, Date.now());
    renderStatus(st, s);
    drawCharts();
  }, STATUS_EVERY_MS);
  poll('deployments', async () => renderHistory((await getJSON('deployments')).deployments || []), HISTORY_EVERY_MS);
  // Redraw on resize: the charts are drawn at the SVG's pixel size.
  window.addEventListener('resize', drawCharts);
})();
