// marketd alerts UI: plain JavaScript, no build step, no inline code (the page's CSP
// allows only scripts and styles from this server).
"use strict";

(() => {
  const MAX_CARDS = 500;
  const BACKOFF_INITIAL_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const $ = (id) => document.getElementById(id);

  const STATUS_INTERVAL_MS = 2000;
  const STATUS_TIMEOUT_MS = 4000;

  const cards = new Map(); // alert id -> <li>
  let muted = localStorage.getItem("marketd.muted") === "1";
  // Symbols muted on the server (GET /api/mutes): symbol -> until (epoch ms) or null.
  let mutedSymbols = new Map();
  // Desktop notifications: wanted by the user (asked only from the button).
  let notifyWanted = localStorage.getItem("marketd.notify") === "1";
  // Live alerts the user has not seen yet: counted in the tab title.
  const baseTitle = document.title;
  let unseen = 0;
  let audio = null;
  let attempt = 0;
  let reconnectTimer = null;
  // The alerts socket: connecting | reconnecting | open | closed (with why, and the retry).
  let socket = { state: "connecting", note: "" };
  // The daemon as GET /api/status last said: unknown (not asked since the socket opened),
  // unsupported (no such route: a server without it), ok (body), unreachable (error).
  let daemon = { kind: "unknown", body: null, error: "", at: 0 };
  let statusTimer = null;
  let statusBusy = false;

  // -- formatting ---------------------------------------------------------------------

  // TradingView names USD-M perpetuals <SYMBOL>.P; spot pairs (and dated USD-M delivery
  // contracts, BTCUSDT_260626) have no suffix.
  const perpetual = (symbol, market) => market === "usdm" && !symbol.includes("_");
  const tradingViewSymbol = (symbol, market) =>
    `BINANCE:${encodeURIComponent(symbol)}${perpetual(symbol, market) ? ".P" : ""}`;
  const tradingViewUrl = (symbol, market) =>
    `https://www.tradingview.com/chart/?symbol=${tradingViewSymbol(symbol, market)}`;
  const chartEmbedUrl = (symbol, market) =>
    "https://s.tradingview.com/widgetembed/?symbol=" +
    encodeURIComponent(tradingViewSymbol(symbol, market)) +
    "&interval=5&theme=dark&style=1&locale=en&hidesidetoolbar=1&saveimage=0";

  function formatPct(alert) {
    const value = Math.abs(Number(alert.change_pct)).toFixed(2);
    return (alert.direction === "up" ? "+" : "−") + value + " %";
  }

  function formatTime(ms) {
    const d = new Date(ms);
    const pad = (n) => String(n).padStart(2, "0");
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // -- sound --------------------------------------------------------------------------

  function audioContext() {
    if (audio === null) {
      const Ctor = window.AudioContext || window.webkitAudioContext;
      if (!Ctor) return null;
      audio = new Ctor();
      audio.addEventListener("statechange", updateSoundControls);
    }
    return audio;
  }

  function updateSoundControls() {
    const ctx = audio;
    const blocked = !muted && ctx !== null && ctx.state === "suspended";
    $("enable-sound").hidden = !blocked;
    document.body.dataset.sound = muted ? "muted" : blocked ? "blocked" : "on";
    const button = $("mute");
    button.textContent = muted ? "Sound: off" : "Sound: on";
    button.setAttribute("aria-pressed", String(muted));
  }

  function beep(direction) {
    if (muted) return;
    const ctx = audioContext();
    if (ctx === null) return;
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "sine";
    osc.frequency.value = direction === "up" ? 880 : 440;
    const t = ctx.currentTime;
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.25, t + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.25);
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.start(t);
    osc.stop(t + 0.3);
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
    updateSoundControls();
  }

  // -- alert cards --------------------------------------------------------------------

  function renderCard(alert) {
    const li = el("li", `card ${alert.direction === "up" ? "up" : "down"}`);
    li.dataset.id = alert.id;
    li.dataset.symbol = alert.symbol;
    li.dataset.direction = alert.direction;
    li.dataset.key = String(alert.detected_at_ms);

    const head = el("div", "card-head");
    const symbol = el("a", "symbol", alert.symbol);
    symbol.href = tradingViewUrl(alert.symbol, alert.market);
    symbol.target = "_blank";
    symbol.rel = "noopener noreferrer";
    symbol.title = `Chart of ${tradingViewSymbol(alert.symbol, alert.market)}`;
    symbol.addEventListener("click", (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      openChart(alert.symbol, alert.market);
    });
    head.append(symbol);
    head.append(el("span", "direction", alert.direction === "up" ? "▲ pump" : "▼ dump"));
    head.append(el("span", "pct", formatPct(alert)));
    if (alert.muted === true) {
      li.classList.add("muted");
      li.dataset.muted = "true";
      head.append(el("span", "badge muted-badge", "muted"));
    }
    const mute = el("button", "mute-symbol");
    mute.type = "button";
    mute.addEventListener("click", () => setMute(alert.symbol, !symbolMuted(alert.symbol)));
    head.append(mute);
    li.append(head);
    li.tabIndex = -1; // focusable, for a notification's click

    const prices = el("div", "prices");
    prices.append(el("span", "label", "now "), el("span", "price", alert.price));
    prices.append(el("span", "label", " from "), el("span", "base-price", alert.base_price));
    li.append(prices);

    const meta = el("div", "meta");
    const time = el("time", "time", formatTime(alert.price_time_ms));
    time.dateTime = new Date(alert.price_time_ms).toISOString();
    time.title = time.dateTime;
    meta.append(time);
    meta.append(el("span", "rule", ` · ${alert.market} · rule ${alert.rule}`));
    li.append(meta);
    renderMuteButton(li);
    return li;
  }

  // The newest card (not muted) carries the class "newest", a visible "newest" badge and
  // aria-current: the highlight is not colour alone.
  function markNewest() {
    const list = $("alerts");
    const newest = [...list.children].find((card) => card.dataset.muted !== "true") || null;
    const current = list.querySelector("li.card.newest");
    if (current === newest) return;
    if (current) {
      current.classList.remove("newest");
      current.removeAttribute("aria-current");
      current.querySelector(".newest-badge")?.remove();
    }
    if (newest) {
      newest.classList.add("newest");
      newest.setAttribute("aria-current", "true");
      newest.querySelector(".card-head .pct").before(el("span", "badge newest-badge", "newest"));
    }
  }

  function addAlert(alert) {
    if (!alert || typeof alert.id !== "string" || cards.has(alert.id)) return false;
    const card = renderCard(alert);
    const list = $("alerts");
    let before = list.firstElementChild;
    while (before && Number(before.dataset.key) > alert.detected_at_ms) {
      before = before.nextElementSibling;
    }
    list.insertBefore(card, before);
    cards.set(alert.id, card);
    while (cards.size > MAX_CARDS) {
      const last = list.lastElementChild;
      cards.delete(last.dataset.id);
      last.remove();
    }
    applyFilter(card);
    markNewest();
    return true;
  }

  // -- attention: the tab title, desktop notifications --------------------------------

  const pageHidden = () => document.visibilityState === "hidden";

  // On screen: inside the viewport and below the sticky header bar.
  function onScreen(card) {
    if (!card || card.hidden) return false;
    const box = card.getBoundingClientRect();
    const top = document.querySelector(".bar").getBoundingClientRect().bottom;
    return box.bottom > top && box.top < window.innerHeight;
  }

  function renderTitle() {
    document.title = unseen ? `(${unseen}) ${baseTitle}` : baseTitle;
  }

  // Whether the user can see the newest alerts: the top of the list (its first shown card)
  // is on screen.
  function topInView() {
    const top = [...$("alerts").children].find((card) => !card.hidden);
    return !top || onScreen(top);
  }

  // Live alerts shown while the page is hidden, or while the list's top is scrolled out of
  // view, count as unseen.
  function noteUnseen(added) {
    const shown = added.filter((alert) => cards.get(alert.id)?.hidden === false);
    if (!shown.length || (!pageHidden() && topInView())) return;
    unseen += shown.length;
    renderTitle();
  }

  // The user looks: the page is visible and the top of the list on screen.
  function looked() {
    if (unseen === 0 || pageHidden() || !topInView()) return;
    unseen = 0;
    renderTitle();
  }

  function notifySupport() {
    if (typeof window.Notification !== "function") return "unsupported";
    if (!window.isSecureContext) return "insecure";
    return window.Notification.permission; // default | granted | denied
  }

  const NOTIFY_TEXT = {
    on: ["Desktop notifications: on", "A notification per new alert while this tab is hidden"],
    off: ["Desktop notifications", "Ask the browser to show a notification per new alert while this tab is hidden"],
    denied: ["Desktop notifications: blocked", "The browser blocks notifications for this site: allow them in its site settings"],
    unsupported: ["Desktop notifications: unavailable", "This browser has no notifications here (they need HTTPS or localhost)"],
  };

  function updateNotifyControls() {
    const support = notifySupport();
    let state = "off";
    if (support === "unsupported" || support === "insecure") state = "unsupported";
    else if (support === "denied") state = "denied";
    else if (support === "granted" && notifyWanted) state = "on";
    document.body.dataset.notify = state;
    const button = $("notify");
    [button.textContent, button.title] = NOTIFY_TEXT[state];
    button.disabled = state === "unsupported" || state === "denied";
    button.setAttribute("aria-pressed", String(state === "on"));
  }

  async function toggleNotify() {
    if (document.body.dataset.notify === "on") {
      notifyWanted = false;
    } else {
      let permission = window.Notification.permission;
      if (permission !== "granted") {
        try {
          permission = await window.Notification.requestPermission();
        } catch {
          permission = window.Notification.permission;
        }
      }
      notifyWanted = permission === "granted";
    }
    localStorage.setItem("marketd.notify", notifyWanted ? "1" : "0");
    updateNotifyControls();
  }

  function notify(alert) {
    if (document.body.dataset.notify !== "on" || !pageHidden()) return;
    try {
      const notification = new window.Notification(`${alert.symbol} ${formatPct(alert)}`, {
        body: `now ${alert.price} (from ${alert.base_price}) · rule ${alert.rule} · ${alert.market}`,
        tag: alert.id,
      });
      notification.onclick = () => {
        window.focus();
        openCard(alert.id);
        notification.close();
      };
    } catch {
      // Some browsers (Chrome on Android) allow notifications from a service worker only.
    }
  }

  // Bring a card to the user: clear a filter that hides it, scroll to it, focus it.
  function openCard(id) {
    const card = cards.get(id);
    if (!card) return;
    if (card.hidden) {
      $("filter-symbol").value = "";
      $("filter-direction").value = "all";
      if (card.dataset.muted === "true") $("show-muted").checked = true;
      applyFilters();
    }
    card.scrollIntoView({ block: "center" });
    card.focus();
    looked();
  }

  // -- filters ------------------------------------------------------------------------

  function applyFilter(card) {
    const text = $("filter-symbol").value.trim().toUpperCase();
    const direction = $("filter-direction").value;
    card.hidden =
      (text !== "" && !card.dataset.symbol.includes(text)) ||
      (direction !== "all" && card.dataset.direction !== direction) ||
      (card.dataset.muted === "true" && !$("show-muted").checked);
  }

  function applyFilters() {
    for (const card of cards.values()) applyFilter(card);
    updateCount();
  }

  function updateCount() {
    let shown = 0;
    let mutedCards = 0;
    for (const card of cards.values()) {
      if (!card.hidden) shown += 1;
      if (card.dataset.muted === "true") mutedCards += 1;
    }
    $("count").textContent = cards.size ? `${shown} of ${cards.size} shown` : "";
    $("muted-count").textContent = mutedCards ? `(${mutedCards})` : "";
    $("empty").hidden = cards.size > 0;
  }

  // -- chart panel --------------------------------------------------------------------

  function openChart(symbol, market) {
    const panel = $("chart");
    panel.hidden = false;
    panel.dataset.symbol = tradingViewSymbol(symbol, market);
    $("chart-title").textContent = tradingViewSymbol(symbol, market);
    $("chart-link").href = tradingViewUrl(symbol, market);
    $("chart-frame").src = chartEmbedUrl(symbol, market);
    document.body.classList.add("with-chart");
  }

  function closeChart() {
    $("chart").hidden = true;
    $("chart-frame").removeAttribute("src");
    document.body.classList.remove("with-chart");
  }

  // -- connection ---------------------------------------------------------------------

  function setStatus(state, text, title = "") {
    const status = $("status");
    status.dataset.state = state;
    status.textContent = text;
    status.title = title;
  }

  function connect() {
    reconnectTimer = null;
    socket = { state: attempt === 0 ? "connecting" : "reconnecting", note: "" };
    renderBadge();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws/alerts`);
    ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "replay") {
        for (const alert of message.alerts || []) addAlert(alert);
        loadMutes();
        attempt = 0;
        socket = { state: "open", note: "" };
        daemon = { kind: "unknown", body: null, error: "", at: 0 }; // ask again now
        renderBadge();
        pollStatus();
      } else if (message.type === "alert" || message.type === "alerts") {
        const alerts = message.type === "alert" ? [message.alert] : message.alerts || [];
        // The gateway pushes no alert of a muted symbol; one muted here a moment ago is quiet.
        const added = alerts.filter(addAlert).filter((alert) => !symbolMuted(alert.symbol));
        if (added.length) beep(added[added.length - 1].direction); // one beep per burst
        noteUnseen(added);
        for (const alert of added) notify(alert);
      } else if (message.type === "suppressed") {
        showHeld(message);
      }
      updateCount();
    });
    ws.addEventListener("close", (event) => scheduleReconnect(event.code));
  }

  // The gateway caps alerts pushed live per second; what it held back is summarised
  // here (the history API and a reload still have every alert).
  function showHeld(message) {
    const held = document.getElementById("held");
    const since = new Date(message.since_ms).toLocaleTimeString();
    held.textContent =
      `${message.count} more alert${message.count === 1 ? "" : "s"} since ${since} not shown live ` +
      `(more than ${message.limit_per_s}/s); reload the page to see them all.`;
    held.hidden = false;
  }

  function scheduleReconnect(code) {
    if (reconnectTimer !== null) return;
    // Exponential backoff with jitter: a random delay in [d/2, d], d doubling to a cap.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    attempt += 1;
    const why = code === 1001 ? "server restarting" : code === 1008 ? "too slow" : "disconnected";
    socket = { state: "closed", note: `${why}; retrying in ${(delay / 1000).toFixed(1)} s` };
    renderBadge();
    reconnectTimer = setTimeout(connect, delay);
  }

  // -- daemon status: the header badge, polling /api/status ---------------------------

  // The badge: "live" only while the socket is open and the daemon is ready.
  function renderBadge() {
    if (socket.state === "connecting") return setStatus("connecting", "connecting…");
    if (socket.state === "reconnecting") {
      return setStatus("reconnecting", "offline · reconnecting…");
    }
    if (socket.state === "closed") return setStatus("reconnecting", `offline · ${socket.note}`);
    if (daemon.kind === "unknown") return setStatus("connecting", "connected · checking status…");
    // A server without /api/status: its readiness is unknown, the socket is all there is.
    if (daemon.kind === "unsupported") return setStatus("live", "live");
    if (daemon.kind === "unreachable") {
      return setStatus("offline", "offline · status unreachable", daemon.error);
    }
    const body = daemon.body;
    if (body.ready) return setStatus("live", "live");
    return setStatus("degraded", notReadyText(body), `Not ready: ${body.not_ready.join(", ")}`);
  }

  const PART_NAMES = { "spool:full": "spool full", alerts_reader: "alerts reader" };

  // "connected · feeds down", "connected · 1 of 2 feeds down · kafka not ready", ...
  function notReadyText(body) {
    const feeds = body.not_ready.filter((name) => name.startsWith("feed:"));
    const others = body.not_ready.filter((name) => !name.startsWith("feed:"));
    const total = (body.connections || []).length;
    const parts = [];
    if (feeds.length) {
      parts.push(feeds.length < total ? `${feeds.length} of ${total} feeds down` : "feeds down");
    }
    if (others.length) {
      parts.push(`${others.map((name) => PART_NAMES[name] || name).join(", ")} not ready`);
    }
    return `connected · ${parts.join(" · ") || "not ready"}`;
  }

  function scheduleStatus(delay) {
    clearTimeout(statusTimer);
    statusTimer = document.hidden ? null : setTimeout(pollStatus, delay);
  }

  async function pollStatus() {
    clearTimeout(statusTimer); // called early (the socket opened, the panel opened): one chain
    statusTimer = null;
    if (statusBusy) return; // the request under way schedules the next one
    statusBusy = true;
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), STATUS_TIMEOUT_MS);
    const at = Date.now();
    try {
      const response = await fetch("/api/status", { cache: "no-store", signal: controller.signal });
      if (response.status === 404) {
        daemon = { kind: "unsupported", body: null, error: "", at };
      } else if (!response.ok) {
        daemon = { kind: "unreachable", body: null, error: `HTTP ${response.status}`, at };
      } else {
        daemon = { kind: "ok", body: await response.json(), error: "", at };
      }
    } catch (error) {
      const why = error.name === "AbortError" ? "no answer in time" : String(error);
      daemon = { kind: "unreachable", body: null, error: why, at };
    } finally {
      clearTimeout(timeout);
      statusBusy = false;
    }
    renderBadge();
    renderHealth();
    scheduleStatus(STATUS_INTERVAL_MS);
  }

  // -- status panel -------------------------------------------------------------------

  const formatCount = (n) => Number(n).toLocaleString("en");
  const missing = (value) => value === null || value === undefined;

  function formatAge(seconds) {
    if (missing(seconds)) return "—";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  }

  function formatRate(rate) {
    if (missing(rate)) return "—";
    return rate < 10 ? rate.toFixed(1) : formatCount(Math.round(rate));
  }

  function formatDelay(ms) {
    if (missing(ms)) return "—";
    return Math.abs(ms) < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  function formatBytes(n) {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i += 1;
    }
    return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
  }

  function card(section, title, children) {
    const div = el("div", "health-card");
    div.dataset.section = section;
    div.append(el("h3", "", title), ...children);
    return div;
  }

  function line(className, text, kind) {
    const p = el("p", `health-line ${className}`, text);
    if (kind) p.dataset.kind = kind;
    return p;
  }

  // [cell class, heading, value]; the columns that matter most come first (phones scroll).
  const CONNECTION_COLUMNS = [
    ["conn-id", "connection", (c) => c.id],
    ["conn-state", "state", (c) => (c.state === "subscribed" && !c.ready ? "stale" : c.state)],
    ["conn-rate", "msg/s", (c) => formatRate(c.messages_per_s)],
    ["conn-age", "last frame", (c) => formatAge(c.last_frame_age_s)],
    ["conn-delay", "delay", (c) => formatDelay(c.delay_ms)],
    ["conn-streams", "streams", (c) => String(c.streams)],
    ["conn-reconnects", "reconnects", (c) => String(c.reconnects)],
    ["conn-market", "market", (c) => c.market],
  ];

  function connectionsCard(connections) {
    const table = el("table", "health-table");
    const head = table.createTHead().insertRow();
    for (const [, heading] of CONNECTION_COLUMNS) head.append(el("th", "", heading));
    const rows = table.createTBody();
    for (const c of connections) {
      const tr = el("tr", "conn");
      tr.dataset.id = c.id;
      tr.dataset.state = c.state;
      tr.dataset.ready = String(c.ready);
      for (const [className, , value] of CONNECTION_COLUMNS) tr.append(el("td", className, value(c)));
      if (c.last_error) tr.title = `last error: ${c.last_error}`;
      rows.append(tr);
    }
    const wrap = el("div", "table-wrap");
    wrap.append(table);
    const up = connections.filter((c) => c.ready).length;
    const div = card("connections", `Connections · ${up} of ${connections.length} up`, [wrap]);
    div.classList.add("wide");
    return div;
  }

  function booksCard(books) {
    const behind = books.resyncing + books.waiting;
    const counts = `${books.synced} synced · ${books.resyncing} resyncing · ${books.waiting} waiting`;
    const children = [line("books-counts", counts, behind ? "warn" : "ok")];
    if (books.not_synced.length) {
      const list = el("ul", "health-list books-not-synced");
      for (const b of books.not_synced) {
        const since = missing(b.out_of_sync_s)
          ? "never synced"
          : `out of sync for ${formatAge(b.out_of_sync_s)}`;
        const resyncs = b.resyncs ? ` · ${b.resyncs} resyncs` : "";
        list.append(el("li", "", `${b.market} ${b.symbol}: ${b.state}, ${since}${resyncs}`));
      }
      if (behind > books.not_synced.length) {
        list.append(el("li", "more", `and ${behind - books.not_synced.length} more`));
      }
      children.push(list);
    }
    return card("books", "Order books", children);
  }

  function spoolCard(spool) {
    const waiting = `${formatCount(spool.backlog)} records to deliver`;
    const children = [
      line("spool-backlog", waiting, spool.full ? "error" : spool.backlog ? "warn" : "ok"),
      line("spool-oldest", `oldest ${formatAge(spool.oldest_age_s)}`),
      line("spool-disk", `${formatBytes(spool.bytes)} of ${formatBytes(spool.max_bytes)} on disk`),
    ];
    if (spool.full) children.push(line("spool-full", "full: intake waits for Kafka", "error"));
    return card("spool", "Spool", children);
  }

  function kafkaCard(kafka) {
    const flight = `${formatCount(kafka.in_flight)} in flight · ${formatCount(kafka.pending_retry)} to retry`;
    const error = kafka.last_error
      ? `last error ${formatAge(kafka.last_error_age_s)} ago: ${kafka.last_error}`
      : "no error";
    return card("kafka", "Kafka", [
      line("kafka-connected", kafka.connected ? "connected" : "not connected",
        kafka.connected ? "ok" : "error"),
      line("kafka-flight", flight),
      line("kafka-error", error),
    ]);
  }

  function detectorCard(detector) {
    const source = detector.source === "kafka" ? "reads Kafka" : "reads the pipeline";
    const counts = `${formatCount(detector.ticks)} prices · ${formatCount(detector.alerts)} alerts`;
    return card("detector", "Detector", [
      line("detector-running", `${detector.running ? "running" : "stopped"} · ${source}`,
        detector.running ? "ok" : "error"),
      line("detector-lag", `lag ${formatAge(detector.lag_s)}`),
      line("detector-counts", `${counts} · ${formatCount(detector.instruments)} symbols`),
    ]);
  }

  function gatewayCard(gateway) {
    const n = gateway.clients;
    const from = gateway.alerts_from === "kafka" ? "from Kafka" : "from the detector";
    return card("gateway", "Gateway", [
      line("gateway-clients", `${n} ${n === 1 ? "browser" : "browsers"} connected`),
      line("gateway-source", `alerts ${from}`),
    ]);
  }

  const SECTIONS = [
    ["connections", connectionsCard],
    ["books", booksCard],
    ["spool", spoolCard],
    ["kafka", kafkaCard],
    ["detector", detectorCard],
    ["gateway", gatewayCard],
  ];

  function renderHealth() {
    if ($("health").hidden) return;
    const summary = $("health-summary");
    const body = $("health-body");
    if (daemon.kind !== "ok") {
      summary.textContent = {
        unknown: "Asking the daemon…",
        unsupported: "This server does not report its status.",
        unreachable: `The daemon's status is unreachable (${daemon.error}).`,
      }[daemon.kind];
      summary.dataset.kind = daemon.kind === "unreachable" ? "error" : "info";
      body.replaceChildren();
      return;
    }
    const s = daemon.body;
    const state = s.ready ? "Ready" : `Not ready: ${s.not_ready.join(", ")}`;
    summary.textContent = `${state} · roles: ${s.roles.join(", ")} · updated ${formatTime(daemon.at)}`;
    summary.dataset.kind = s.ready ? "ok" : "error";
    body.replaceChildren(...SECTIONS.filter(([key]) => s[key]).map(([key, make]) => make(s[key])));
  }

  // -- rules panel --------------------------------------------------------------------

  const RULE_FIELDS = [
    ["name", "text"],
    ["window_s", "number"],
    ["threshold_pct", "number"],
    ["cooldown_s", "number"],
    ["notify", "list"], // notifier names (notifications:), comma-separated
    // Filters: symbol globs (BTC*, *USDT), globs to leave out, markets (spot, usdm);
    // empty: every symbol / market. A blank minimum 24 h quote volume means none.
    ["symbols", "list"],
    ["exclude", "list"],
    ["markets", "list"],
    ["min_quote_volume_24h", "number", "optional"],
  ];

  function ruleRow(rule) {
    const tr = el("tr", "rule");
    for (const [field, type] of RULE_FIELDS) {
      const td = el("td");
      const input = el("input");
      input.type = type === "list" ? "text" : type;
      input.name = field;
      input.setAttribute("aria-label", field);
      if (type === "number") input.step = "any";
      const value = rule[field];
      input.value = value === undefined ? "" : Array.isArray(value) ? value.join(", ") : String(value);
      td.append(input);
      tr.append(td);
    }
    const td = el("td");
    const remove = el("button", "remove", "✕");
    remove.type = "button";
    remove.setAttribute("aria-label", "Remove rule");
    remove.addEventListener("click", () => tr.remove());
    td.append(remove);
    tr.append(td);
    return tr;
  }

  function showRules(rules) {
    const body = $("rules-body");
    body.replaceChildren(...rules.map(ruleRow));
  }

  function rulesMessage(text, kind) {
    const node = $("rules-message");
    node.textContent = text;
    node.dataset.kind = kind;
  }

  async function loadRules() {
    try {
      const response = await fetch("/api/rules", { cache: "no-store" });
      const body = await response.json();
      if (!response.ok) {
        rulesMessage(body.error || `error ${response.status}`, "error");
        return;
      }
      showRules(body.rules);
      $("rules-save").disabled = !body.editable;
      if (!body.editable) {
        rulesMessage("Rule changes are disabled on this server (gateway.api_token is empty).", "info");
      } else {
        rulesMessage("", "info");
      }
    } catch (error) {
      rulesMessage(`Could not load the rules: ${error}`, "error");
    }
  }

  function collectRules() {
    return [...$("rules-body").querySelectorAll("tr.rule")].map((tr) => {
      const rule = {};
      for (const [field, type, optional] of RULE_FIELDS) {
        const value = tr.querySelector(`input[name="${field}"]`).value.trim();
        if (optional && value === "") continue; // the server's default
        if (type === "list") {
          rule[field] = value ? value.split(",").map((name) => name.trim()).filter(Boolean) : [];
        } else {
          rule[field] = type === "number" && value !== "" && !Number.isNaN(Number(value)) ? Number(value) : value;
        }
      }
      return rule;
    });
  }

  async function saveRules() {
    const token = $("token").value.trim() || sessionStorage.getItem("marketd.token") || "";
    if (!token) {
      rulesMessage("Enter the API token to change the rules.", "error");
      $("token").focus();
      return;
    }
    rulesMessage("Saving…", "info");
    try {
      const response = await fetch("/api/rules", {
        method: "PUT",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ rules: collectRules() }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        sessionStorage.setItem("marketd.token", token);
        $("token").value = "";
        showRules(body.rules);
        rulesMessage("Saved: the new rules are in force.", "ok");
      } else if (response.status === 401) {
        sessionStorage.removeItem("marketd.token");
        rulesMessage("The token was rejected.", "error");
      } else {
        rulesMessage(body.error || `error ${response.status}`, "error");
      }
    } catch (error) {
      rulesMessage(`Could not save the rules: ${error}`, "error");
    }
  }

  // -- mutes: per symbol, kept by the server (/api/mutes) -----------------------------

  function symbolMuted(symbol) {
    if (!mutedSymbols.has(symbol)) return false;
    const until = mutedSymbols.get(symbol);
    return until === null || until > Date.now();
  }

  function renderMuteButton(card) {
    const button = card.querySelector(".mute-symbol");
    const on = symbolMuted(card.dataset.symbol);
    button.textContent = on ? "Unmute" : "Mute";
    button.setAttribute("aria-pressed", String(on));
    button.setAttribute("aria-label", `${on ? "Unmute" : "Mute"} ${card.dataset.symbol}`);
  }

  function mutesMessage(text, kind) {
    const node = $("mutes-message");
    node.textContent = text;
    node.dataset.kind = kind;
  }

  function showMutesPanel() {
    $("mutes").hidden = false;
    $("mutes-toggle").setAttribute("aria-expanded", "true");
  }

  function showMutes(list) {
    mutedSymbols = new Map(list.map((m) => [m.symbol, m.until_ms ?? null]));
    const items = [...mutedSymbols.keys()].filter(symbolMuted).map((symbol) => {
      const until = mutedSymbols.get(symbol);
      const li = el("li", "muted-symbol");
      li.dataset.symbol = symbol;
      li.append(el("strong", "", symbol));
      li.append(el("span", "until", until === null ? " until unmuted" : ` until ${formatTime(until)}`));
      const button = el("button", "unmute", "Unmute");
      button.type = "button";
      button.setAttribute("aria-label", `Unmute ${symbol}`);
      button.addEventListener("click", () => setMute(symbol, false));
      li.append(button);
      return li;
    });
    $("mutes-list").replaceChildren(...items);
    $("mutes-empty").hidden = items.length > 0;
    for (const card of cards.values()) renderMuteButton(card);
  }

  async function fetchMutes() {
    const response = await fetch("/api/mutes", { cache: "no-store" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `error ${response.status}`);
    return body;
  }

  async function loadMutes() {
    try {
      showMutes((await fetchMutes()).mutes);
    } catch (error) {
      mutesMessage(`Could not load the muted symbols: ${error.message || error}`, "error");
    }
  }

  async function setMute(symbol, mute) {
    const token =
      $("mute-token").value.trim() || $("token").value.trim() ||
      sessionStorage.getItem("marketd.token") || "";
    if (!token) {
      showMutesPanel();
      mutesMessage(`Enter the API token to ${mute ? "mute" : "unmute"} ${symbol}, then press its button again.`, "error");
      $("mute-token").focus();
      return;
    }
    mutesMessage(mute ? `Muting ${symbol}…` : `Unmuting ${symbol}…`, "info");
    try {
      // The server's set as it is now (another browser may have changed it), then ours.
      const now = Date.now();
      const current = (await fetchMutes()).mutes.filter((m) => m.symbol !== symbol);
      const forMs = Number($("mute-for").value);
      if (mute) current.push({ symbol, until_ms: forMs > 0 ? now + forMs : null });
      const response = await fetch("/api/mutes", {
        method: "PUT",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ mutes: current }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        sessionStorage.setItem("marketd.token", token);
        $("mute-token").value = "";
        showMutes(body.mutes);
        const until = mutedSymbols.get(symbol);
        mutesMessage(
          !mute ? `${symbol} unmuted.` : until ? `${symbol} muted until ${formatTime(until)}.` : `${symbol} muted.`,
          "ok",
        );
      } else if (response.status === 401) {
        sessionStorage.removeItem("marketd.token");
        showMutesPanel();
        mutesMessage("The token was rejected.", "error");
      } else {
        showMutesPanel();
        mutesMessage(body.error || `error ${response.status}`, "error");
      }
    } catch (error) {
      showMutesPanel();
      mutesMessage(`Could not change the muted symbols: ${error.message || error}`, "error");
    }
  }

  // -- wiring -------------------------------------------------------------------------

  function init() {
    $("mute").addEventListener("click", () => {
      muted = !muted;
      localStorage.setItem("marketd.muted", muted ? "1" : "0");
      if (!muted) audioContext()?.resume().catch(() => {});
      updateSoundControls();
    });
    $("enable-sound").addEventListener("click", () => {
      audioContext()?.resume().then(updateSoundControls, updateSoundControls);
    });
    $("rules-toggle").addEventListener("click", () => {
      const panel = $("rules");
      panel.hidden = !panel.hidden;
      $("rules-toggle").setAttribute("aria-expanded", String(!panel.hidden));
      if (!panel.hidden) loadRules();
    });
    $("health-toggle").addEventListener("click", () => {
      const panel = $("health");
      panel.hidden = !panel.hidden;
      $("health-toggle").setAttribute("aria-expanded", String(!panel.hidden));
      renderHealth();
      if (!panel.hidden) pollStatus();
    });
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) scheduleStatus(0); // stops polling while hidden
      else pollStatus();
      updateNotifyControls(); // the permission may have changed in the browser's settings
      looked();
    });
    window.addEventListener("focus", () => {
      updateNotifyControls();
      looked();
    });
    window.addEventListener("scroll", looked, { passive: true });
    $("notify").addEventListener("click", toggleNotify);
    $("mutes-toggle").addEventListener("click", () => {
      const panel = $("mutes");
      panel.hidden = !panel.hidden;
      $("mutes-toggle").setAttribute("aria-expanded", String(!panel.hidden));
      if (!panel.hidden) loadMutes();
    });
    $("show-muted").addEventListener("change", applyFilters);
    $("rule-add").addEventListener("click", () => {
      $("rules-body").append(ruleRow({ name: "", window_s: 60, threshold_pct: 2, cooldown_s: 30 }));
    });
    $("rules-save").addEventListener("click", saveRules);
    $("filter-symbol").addEventListener("input", applyFilters);
    $("filter-direction").addEventListener("change", applyFilters);
    $("chart-close").addEventListener("click", closeChart);
    if (!muted) audioContext();
    updateSoundControls();
    updateNotifyControls();
    updateCount();
    connect();
  }

  init();
})();
