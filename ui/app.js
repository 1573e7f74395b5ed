// marketd alerts UI: plain JavaScript, no build step, no inline code (the page's CSP
// allows only scripts and styles from this server).
"use strict";

(() => {
  const MAX_CARDS = 500;
  const BACKOFF_INITIAL_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const $ = (id) => document.getElementById(id);

  const cards = new Map(); // alert id -> <li>
  let muted = localStorage.getItem("marketd.muted") === "1";
  let audio = null;
  let attempt = 0;
  let reconnectTimer = null;

  // -- formatting ---------------------------------------------------------------------

  const tradingViewSymbol = (symbol) => `BINANCE:${encodeURIComponent(symbol)}.P`;
  const tradingViewUrl = (symbol) =>
    `https://www.tradingview.com/chart/?symbol=${tradingViewSymbol(symbol)}`;
  const chartEmbedUrl = (symbol) =>
    "https://s.tradingview.com/widgetembed/?symbol=" +
    encodeURIComponent(tradingViewSymbol(symbol)) +
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
    symbol.href = tradingViewUrl(alert.symbol);
    symbol.target = "_blank";
    symbol.rel = "noopener noreferrer";
    symbol.title = `Chart of ${tradingViewSymbol(alert.symbol)}`;
    symbol.addEventListener("click", (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      openChart(alert.symbol);
    });
    head.append(symbol);
    head.append(el("span", "direction", alert.direction === "up" ? "▲ pump" : "▼ dump"));
    head.append(el("span", "pct", formatPct(alert)));
    li.append(head);

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
    return li;
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
    return true;
  }

  // -- filters ------------------------------------------------------------------------

  function applyFilter(card) {
    const text = $("filter-symbol").value.trim().toUpperCase();
    const direction = $("filter-direction").value;
    card.hidden =
      (text !== "" && !card.dataset.symbol.includes(text)) ||
      (direction !== "all" && card.dataset.direction !== direction);
  }

  function applyFilters() {
    for (const card of cards.values()) applyFilter(card);
    updateCount();
  }

  function updateCount() {
    let shown = 0;
    for (const card of cards.values()) if (!card.hidden) shown += 1;
    $("count").textContent = cards.size ? `${shown} of ${cards.size} shown` : "";
    $("empty").hidden = cards.size > 0;
  }

  // -- chart panel --------------------------------------------------------------------

  function openChart(symbol) {
    const panel = $("chart");
    panel.hidden = false;
    panel.dataset.symbol = tradingViewSymbol(symbol);
    $("chart-title").textContent = tradingViewSymbol(symbol);
    $("chart-link").href = tradingViewUrl(symbol);
    $("chart-frame").src = chartEmbedUrl(symbol);
    document.body.classList.add("with-chart");
  }

  function closeChart() {
    $("chart").hidden = true;
    $("chart-frame").removeAttribute("src");
    document.body.classList.remove("with-chart");
  }

  // -- connection ---------------------------------------------------------------------

  function setStatus(state, text) {
    const status = $("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  function connect() {
    reconnectTimer = null;
    setStatus(attempt === 0 ? "connecting" : "reconnecting", "connecting…");
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
        attempt = 0;
        setStatus("live", "live");
      } else if (message.type === "alert" || message.type === "alerts") {
        const alerts = message.type === "alert" ? [message.alert] : message.alerts || [];
        const added = alerts.filter(addAlert);
        if (added.length) beep(added[added.length - 1].direction); // one beep per burst
      }
      updateCount();
    });
    ws.addEventListener("close", (event) => scheduleReconnect(event.code));
  }

  function scheduleReconnect(code) {
    if (reconnectTimer !== null) return;
    // Exponential backoff with jitter: a random delay in [d/2, d], d doubling to a cap.
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    attempt += 1;
    const why = code === 1001 ? "server restarting" : code === 1008 ? "too slow" : "disconnected";
    setStatus("reconnecting", `${why}; retrying in ${(delay / 1000).toFixed(1)} s`);
    reconnectTimer = setTimeout(connect, delay);
  }

  // -- rules panel --------------------------------------------------------------------

  const RULE_FIELDS = [
    ["name", "text"],
    ["window_s", "number"],
    ["threshold_pct", "number"],
    ["cooldown_s", "number"],
  ];

  function ruleRow(rule) {
    const tr = el("tr", "rule");
    for (const [field, type] of RULE_FIELDS) {
      const td = el("td");
      const input = el("input");
      input.type = type;
      input.name = field;
      input.setAttribute("aria-label", field);
      if (type === "number") input.step = "any";
      input.value = rule[field] === undefined ? "" : String(rule[field]);
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
      for (const [field, type] of RULE_FIELDS) {
        const value = tr.querySelector(`input[name="${field}"]`).value.trim();
        rule[field] = type === "number" && value !== "" && !Number.isNaN(Number(value)) ? Number(value) : value;
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
    $("rule-add").addEventListener("click", () => {
      $("rules-body").append(ruleRow({ name: "", window_s: 60, threshold_pct: 2, cooldown_s: 30 }));
    });
    $("rules-save").addEventListener("click", saveRules);
    $("filter-symbol").addEventListener("input", applyFilters);
    $("filter-direction").addEventListener("change", applyFilters);
    $("chart-close").addEventListener("click", closeChart);
    if (!muted) audioContext();
    updateSoundControls();
    updateCount();
    connect();
  }

  init();
})();
