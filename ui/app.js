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
  const alertsById = new Map(); // alert id -> its JSON, with the outcomes known so far
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
    "&interval=5&theme=dark&style=1&locale=en&hidesidetoolbar=1&saveimage=0" +
    "&frameElementId=chart-frame";

  function formatPct(alert) {
    const value = Math.abs(Number(alert.change_pct)).toFixed(2);
    return (alert.direction === "up" ? "+" : "−") + value + " %";
  }

  // A signed percentage: "+1.23 %", "−0.40 %" (a minus sign), "0.00 %".
  function formatSigned(value, decimals = 2) {
    const n = Number(value);
    if (!Number.isFinite(n)) return "—";
    const text = Math.abs(n).toFixed(decimals);
    if (Number(text) === 0) return `${text} %`;
    return (n > 0 ? "+" : "−") + text + " %";
  }

  const pad2 = (n) => String(n).padStart(2, "0");
  const dayKey = (d) => `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;

  function formatTime(ms) {
    const d = new Date(ms);
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  // The time of day, with the date in front when it is not today: "2025-10-09 14:02:11".
  function formatWhen(ms, now = Date.now()) {
    const d = new Date(ms);
    const time = formatTime(ms);
    return dayKey(d) === dayKey(new Date(now)) ? time : `${dayKey(d)} ${time}`;
  }

  // How long a move took: "45 s", "3 min 5 s", "1 h 20 min"; "<1 s".
  function formatDuration(ms) {
    const s = Math.round(Number(ms) / 1000);
    if (!Number.isFinite(s) || s < 1) return "<1 s";
    if (s < 60) return `${s} s`;
    if (s < 3600) return s % 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s / 60} min`;
    const m = Math.floor((s % 3600) / 60);
    return m ? `${Math.floor(s / 3600)} h ${m} min` : `${Math.floor(s / 3600)} h`;
  }

  // How long ago: "just now", "12 s ago", "3 min ago", "2 h 5 min ago", "3 days ago".
  function formatAgo(ms) {
    const s = Math.floor(ms / 1000);
    if (!Number.isFinite(s) || s < 1) return "just now";
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) {
      const m = Math.floor((s % 3600) / 60);
      return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ""} ago`;
    }
    const days = Math.floor(s / 86400);
    return days === 1 ? "1 day ago" : `${days} days ago`;
  }

  // -- markets: quote assets, Binance links -------------------------------------------

  // Quote assets of Binance pairs, longest first: a symbol splits at the longest known
  // suffix (ETHFDUSD is ETH/FDUSD, not ETHFD/USD).
  const QUOTE_ASSETS = [
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USDP", "USD1", "AEUR", "EURI", "BIDR", "IDRT",
    "BVND", "DOGE", "DAI", "PAX", "VAI", "BTC", "ETH", "BNB", "XRP", "TRX", "DOT", "SOL",
    "TRY", "EUR", "BRL", "GBP", "AUD", "JPY", "RUB", "UAH", "ZAR", "PLN", "RON", "ARS", "MXN",
    "COP", "CZK", "IDR", "NGN",
  ].sort((a, b) => b.length - a.length);
  const USD_QUOTES = new Set(["USDT", "USDC", "FDUSD", "TUSD", "BUSD", "USDP", "USD1", "DAI", "PAX"]);

  // [base, quote] of a pair, or null when no known quote asset ends it. A dated USD-M
  // contract (BTCUSDT_260626) splits as its pair.
  function splitSymbol(symbol) {
    const pair = String(symbol).split("_")[0];
    const quote = QUOTE_ASSETS.find((q) => pair.length > q.length && pair.endsWith(q));
    return quote ? [pair.slice(0, -quote.length), quote] : null;
  }

  function binanceUrl(symbol, market) {
    if (market === "usdm") return `https://www.binance.com/en/futures/${encodeURIComponent(symbol)}`;
    const split = splitSymbol(symbol);
    const name = split ? `${split[0]}_${split[1]}` : symbol;
    return `https://www.binance.com/en/trade/${encodeURIComponent(name)}?type=spot`;
  }

  const MARKET_NAMES = { usdm: "USD-M futures", spot: "spot" };

  // An amount of the quote asset, short: "$1.2M", "$850k", "12.5 BTC".
  function formatNotional(value, symbol) {
    const n = Number(value);
    if (!Number.isFinite(n)) return String(value ?? "—");
    const abs = Math.abs(n);
    let text;
    if (abs >= 1e9) text = `${(n / 1e9).toFixed(1)}B`;
    else if (abs >= 1e6) text = `${(n / 1e6).toFixed(1)}M`;
    else if (abs >= 1e4) text = `${Math.round(n / 1e3)}k`;
    else if (abs >= 1e3) text = `${(n / 1e3).toFixed(1)}k`;
    else if (abs >= 10) text = n.toFixed(0);
    else text = String(Number(n.toPrecision(3)));
    const quote = splitSymbol(symbol)?.[1];
    if (!quote) return text;
    return USD_QUOTES.has(quote) ? `$${text}` : `${text} ${quote}`;
  }

  function formatRatio(value) {
    const n = Number(value);
    if (!Number.isFinite(n)) return "?";
    return n >= 100 ? String(Math.round(n)) : n.toFixed(1);
  }

  // -- what an alert says, per kind ---------------------------------------------------

  // The card's words for an alert: its label (beside the symbol), headline (the big
  // figure), the price line [label, value, class] pairs, and a detail line (may be "").
  function describe(alert) {
    const up = alert.direction === "up";
    const arrow = up ? "▲" : "▼";
    const f = alert.figures || {};
    const took = alert.duration_ms ?? Math.max(0, alert.price_time_ms - alert.base_time_ms);
    const window = Number(alert.window_s) > 0 ? formatDuration(Number(alert.window_s) * 1000) : "";
    switch (alert.kind) {
      case "volume": {
        const baseline = Number(f.baseline_s) > 0 ? ` of the previous ${formatDuration(Number(f.baseline_s) * 1000)}` : "";
        const trades = f.trades !== undefined ? ` (${Number(f.trades).toLocaleString("en")} trades)` : "";
        return {
          label: `${arrow} volume spike`,
          headline: f.ratio !== undefined ? `volume ×${formatRatio(f.ratio)}` : "volume spike",
          prices: [["price ", alert.base_price, "base-price"], [" → ", alert.price, "price"], [" ", `(${formatPct(alert)})`, "change"]],
          took,
          detail: `${formatNotional(f.window_notional, alert.symbol)} traded${window ? ` in ${window}` : ""}${trades}` +
            (f.ratio !== undefined ? `, ${formatRatio(f.ratio)}× the rate${baseline}` : ""),
        };
      }
      case "liquidation": {
        const longs = f.side ? f.side === "SELL" : !up;
        const count = Number(f.count);
        return {
          label: `${longs ? "▼ longs" : "▲ shorts"} liquidated`,
          headline: formatNotional(f.notional, alert.symbol),
          prices: [["price ", alert.base_price, "base-price"], [" → ", alert.price, "price"], [" ", `(${formatPct(alert)})`, "change"]],
          took,
          detail: Number.isFinite(count) ? `${count} liquidation ${count === 1 ? "order" : "orders"}${window ? ` within ${window}` : ""}` : "",
        };
      }
      case "premium":
        return {
          label: up ? "▲ premium" : "▼ discount",
          headline: formatSigned(alert.change_pct),
          prices: [["mark ", alert.price, "price"], [" · index ", alert.base_price, "base-price"]],
          took: 0,
          detail: `mark price ${Math.abs(Number(alert.change_pct)).toFixed(2)} % ${up ? "above" : "below"} the index price`,
        };
      case "funding":
        return {
          label: `${arrow} funding rate`,
          headline: formatSigned(alert.change_pct, 4),
          prices: [["mark ", alert.price, "price"]],
          took: 0,
          detail: up ? "longs pay shorts" : "shorts pay longs",
        };
      default: // price (and alerts of servers that send no kind)
        return {
          label: up ? "▲ pump" : "▼ dump",
          headline: formatPct(alert),
          prices: [["now ", alert.price, "price"], [" from ", alert.base_price, "base-price"]],
          took,
          detail: "",
        };
    }
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

  const SVG_NS = "http://www.w3.org/2000/svg";
  const SPARK_W = 120;
  const SPARK_H = 32;
  const SPARK_PAD = 3;

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  }

  // The move as a sparkline (SVG built with DOM calls: nothing inline for the CSP to
  // refuse); null when the path has fewer than two points.
  function sparkline(alert) {
    const path = (Array.isArray(alert.path) ? alert.path : [])
      .map((point) => (Array.isArray(point) ? [Number(point[0]), Number(point[1])] : [NaN, NaN]))
      .filter(([t, p]) => Number.isFinite(t) && Number.isFinite(p));
    if (path.length < 2) return null;
    const t0 = path[0][0];
    const t1 = path[path.length - 1][0];
    const prices = path.map(([, p]) => p);
    const low = Math.min(...prices);
    const high = Math.max(...prices);
    const span = SPARK_W - 2 * SPARK_PAD;
    const x = (t, i) => SPARK_PAD + (t1 > t0 ? (t - t0) / (t1 - t0) : i / (path.length - 1)) * span;
    const y = (p) =>
      high > low ? SPARK_PAD + ((high - p) / (high - low)) * (SPARK_H - 2 * SPARK_PAD) : SPARK_H / 2;
    const xy = path.map(([t, p], i) => [x(t, i).toFixed(1), y(p).toFixed(1)]);
    const node = svg("svg", {
      class: `spark ${alert.direction === "up" ? "up" : "down"}`,
      viewBox: `0 0 ${SPARK_W} ${SPARK_H}`,
      width: SPARK_W,
      height: SPARK_H,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": `price path: ${path[0][1]} to ${path[path.length - 1][1]} in ${formatDuration(t1 - t0)}`,
    });
    const title = svg("title", {});
    title.textContent = node.getAttribute("aria-label");
    node.append(title);
    node.append(
      svg("polyline", {
        class: "spark-line",
        points: xy.map((p) => p.join(",")).join(" "),
        "vector-effect": "non-scaling-stroke",
      }),
    );
    const [ex, ey] = xy[xy.length - 1];
    node.append(svg("circle", { class: "spark-end", cx: ex, cy: ey, r: 2.2 }));
    return node;
  }

  const OUTCOME_HORIZONS = [
    ["60", "+1m", "1 min"],
    ["300", "+5m", "5 min"],
    ["900", "+15m", "15 min"],
  ];

  // After an alert, at one horizon: pending (not known yet), continued (the price moved
  // further in the alert's direction), reversed (against it), or flat.
  function outcomeState(alert, after) {
    const outcome = alert?.outcomes?.[after];
    if (!outcome) return "pending";
    const change = Number(outcome.change_pct);
    if (!Number.isFinite(change) || change === 0) return "flat";
    return change > 0 === (alert.direction === "up") ? "continued" : "reversed";
  }

  // The change at a horizon in the alert's direction (positive: continued); null: pending.
  function followThrough(alert, after) {
    const change = Number(alert?.outcomes?.[after]?.change_pct);
    if (!alert?.outcomes?.[after] || !Number.isFinite(change)) return null;
    return alert.direction === "up" ? change : -change;
  }

  function renderOutcome(card, alert, after) {
    const cell = card.querySelector(`.outcome[data-after="${after}"]`);
    if (!cell) return;
    const [, short, long] = OUTCOME_HORIZONS.find(([key]) => key === after);
    const outcome = alert.outcomes?.[after];
    const state = outcomeState(alert, after);
    const value = cell.querySelector(".value");
    cell.dataset.state = state;
    card.dataset[`outcome${after}`] = state;
    if (!outcome) {
      value.textContent = "…";
      value.className = "value";
      cell.title = `${short}: the price ${long} after the alert, not known yet`;
      return;
    }
    const change = Number(outcome.change_pct);
    value.textContent = formatSigned(change);
    value.className = `value ${change > 0 ? "pos" : change < 0 ? "neg" : "zero"}`;
    cell.title = `${long} after the alert: ${outcome.price} (${formatSigned(change)} vs ${alert.price}), ${state}`;
  }

  function renderCard(alert) {
    const words = describe(alert);
    const li = el("li", `card ${alert.direction === "up" ? "up" : "down"}`);
    li.dataset.id = alert.id;
    li.dataset.symbol = alert.symbol;
    li.dataset.direction = alert.direction;
    li.dataset.kind = alert.kind || "price";
    li.dataset.key = String(alert.detected_at_ms);
    li.dataset.time = String(alert.price_time_ms);
    li.dataset.fired = String(alert.detected_at_ms ?? alert.price_time_ms);

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
    head.append(el("span", "direction", words.label));
    head.append(el("span", "pct", words.headline));
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

    const move = el("div", "move");
    const spark = sparkline(alert);
    if (spark) move.append(spark);
    const text = el("div", "move-text");
    const prices = el("div", "prices");
    for (const [label, value, className] of words.prices) {
      prices.append(el("span", "label", label), el("span", className, value));
    }
    if (words.took > 0) prices.append(el("span", "duration", ` in ${formatDuration(words.took)}`));
    text.append(prices);
    if (words.detail) text.append(el("div", "detail", words.detail));
    move.append(text);
    li.append(move);

    const outcomes = el("div", "outcomes");
    outcomes.setAttribute("role", "group");
    outcomes.setAttribute("aria-label", "Price change after the alert");
    for (const [after, short] of OUTCOME_HORIZONS) {
      const cell = el("span", "outcome");
      cell.dataset.after = after;
      cell.append(el("span", "horizon", short), el("span", "value", "…"));
      outcomes.append(cell);
    }
    li.append(outcomes);
    for (const [after] of OUTCOME_HORIZONS) renderOutcome(li, alert, after);

    const meta = el("div", "meta");
    const time = el("time", "time", formatWhen(alert.price_time_ms));
    time.dateTime = new Date(alert.price_time_ms).toISOString();
    time.title = time.dateTime;
    meta.append(time, el("span", "sep", " · "), el("span", "ago", formatAgo(Date.now() - Number(li.dataset.fired))));
    meta.append(el("span", "rule", ` · ${MARKET_NAMES[alert.market] || alert.market} · rule ${alert.rule}`));
    const links = el("span", "links");
    const binance = el("a", "binance", "Binance");
    binance.href = binanceUrl(alert.symbol, alert.market);
    binance.title = `${alert.symbol} on Binance (${MARKET_NAMES[alert.market] || alert.market})`;
    const tv = el("a", "tradingview", "TradingView");
    tv.href = tradingViewUrl(alert.symbol, alert.market);
    tv.title = `${tradingViewSymbol(alert.symbol, alert.market)} on TradingView`;
    for (const a of [binance, tv]) {
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    }
    links.append(binance, tv);
    meta.append(links);
    li.append(meta);
    renderMuteButton(li);
    return li;
  }

  // "12 s ago" on every card, and the date in front of the time once it is not today.
  let shownDay = dayKey(new Date());
  function tickTimes() {
    const now = Date.now();
    const today = dayKey(new Date(now));
    const dayChanged = today !== shownDay;
    shownDay = today;
    for (const card of cards.values()) {
      const ago = card.querySelector(".ago");
      const text = formatAgo(now - Number(card.dataset.fired));
      if (ago.textContent !== text) ago.textContent = text;
      if (dayChanged) card.querySelector(".time").textContent = formatWhen(Number(card.dataset.time), now);
    }
  }

  // The newest card (not muted) carries the class "newest", a visible "newest" badge and
  // aria-current: the highlight is not colour alone.
  function markNewest() {
    const list = $("alerts");
    let newest = null;
    for (const card of list.children) {
      if (card.dataset.muted === "true") continue;
      if (newest === null || Number(card.dataset.key) > Number(newest.dataset.key)) newest = card;
    }
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

  // -- order: newest first, or by what happened after (at the chosen horizon) ---------

  function compareCards(a, b) {
    const sort = $("sort").value;
    const newer = Number(b.dataset.key) - Number(a.dataset.key);
    if (sort === "newest") return newer;
    const after = $("outcome-horizon").value;
    const fa = followThrough(alertsById.get(a.dataset.id), after);
    const fb = followThrough(alertsById.get(b.dataset.id), after);
    if (fa === null || fb === null) return fa === fb ? newer : fa === null ? 1 : -1; // pending last
    return (sort === "reversed" ? fa - fb : fb - fa) || newer;
  }

  function reorder() {
    const list = $("alerts");
    const now = [...list.children];
    const sorted = [...now].sort(compareCards);
    if (sorted.every((card, i) => card === now[i])) return;
    list.append(...sorted); // moves each card, in order
  }

  function addAlert(alert) {
    if (!alert || typeof alert.id !== "string") return false;
    if (cards.has(alert.id)) {
      // Known (a replay after a reconnect): take the outcomes it brings.
      for (const outcome of Object.values(alert.outcomes || {})) applyOutcome({ ...outcome, id: alert.id });
      return false;
    }
    alert = { ...alert, outcomes: { ...(alert.outcomes || {}) } };
    const card = renderCard(alert);
    const list = $("alerts");
    let before = list.firstElementChild;
    while (before && Number(before.dataset.key) > alert.detected_at_ms) {
      before = before.nextElementSibling;
    }
    list.insertBefore(card, before);
    cards.set(alert.id, card);
    alertsById.set(alert.id, alert);
    while (cards.size > MAX_CARDS) {
      let oldest = null;
      for (const c of cards.values()) {
        if (oldest === null || Number(c.dataset.key) < Number(oldest.dataset.key)) oldest = c;
      }
      cards.delete(oldest.dataset.id);
      alertsById.delete(oldest.dataset.id);
      oldest.remove();
    }
    if ($("sort").value !== "newest") reorder();
    applyFilter(card);
    markNewest();
    return true;
  }

  // What happened after an alert ({"type": "outcome"}): its cell, its filter, the order.
  function applyOutcome(outcome) {
    const alert = alertsById.get(outcome?.id);
    const card = cards.get(outcome?.id);
    if (!alert || !card || outcome.after_s === undefined) return false;
    const after = String(outcome.after_s);
    const known = alert.outcomes[after];
    if (known && known.price === outcome.price && known.change_pct === outcome.change_pct) return false;
    alert.outcomes[after] = outcome;
    renderOutcome(card, alert, after);
    applyFilter(card);
    if ($("sort").value !== "newest") reorder();
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
    const words = describe(alert);
    const what =
      (alert.kind || "price") === "price"
        ? `now ${alert.price} (from ${alert.base_price})`
        : `${words.label.slice(2)}${words.detail ? `: ${words.detail}` : ""}`;
    try {
      const title = alert.kind === "liquidation" ? `${words.label.slice(2)} ${words.headline}` : words.headline;
      const notification = new window.Notification(`${alert.symbol} ${title}`, {
        body: `${what} · rule ${alert.rule} · ${alert.market}`,
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
      $("filter-kind").value = "all";
      $("filter-outcome").value = "all";
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
    const kind = $("filter-kind").value;
    const outcome = $("filter-outcome").value;
    card.hidden =
      (text !== "" && !card.dataset.symbol.includes(text)) ||
      (direction !== "all" && card.dataset.direction !== direction) ||
      (kind !== "all" && card.dataset.kind !== kind) ||
      (outcome !== "all" &&
        outcomeState(alertsById.get(card.dataset.id), $("outcome-horizon").value) !== outcome) ||
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

  // The embedded chart is a TradingView frame; whether it shows cannot be read across
  // origins, so the panel watches what it can: a frame that has not loaded within
  // CHART_TIMEOUT_MS, or that the page's CSP blocks, has failed (the frame gives way to a
  // message with the plain link); a message from the TradingView frame means it is up;
  // a frame that loaded but said nothing (an error page loads too) keeps a note with the
  // link above it. data-state on #chart: loading | loaded | unconfirmed | failed.
  const CHART_TIMEOUT_MS = 6000;
  const CHART_ORIGINS = ["https://s.tradingview.com", "https://www.tradingview.com"];
  let chartTimer = null;
  let chartLoaded = false;

  function chartState(state, why = "") {
    const panel = $("chart");
    panel.dataset.state = state;
    $("chart-frame").hidden = state === "failed";
    const note = $("chart-fallback");
    note.hidden = state !== "failed" && state !== "unconfirmed";
    note.dataset.kind = state;
    const symbol = panel.dataset.symbol;
    $("chart-fallback-text").textContent =
      state === "failed"
        ? `The TradingView chart could not be shown here: ${why}.`
        : "If the chart stays blank, TradingView is not reachable from this page (offline, or blocked by a network filter or an extension).";
    const link = $("chart-fallback-link");
    link.textContent = `Open ${symbol} on TradingView`;
    link.href = $("chart-link").href;
  }

  function openChart(symbol, market) {
    const panel = $("chart");
    panel.hidden = false;
    panel.dataset.symbol = tradingViewSymbol(symbol, market);
    $("chart-title").textContent = tradingViewSymbol(symbol, market);
    $("chart-link").href = tradingViewUrl(symbol, market);
    document.body.classList.add("with-chart");
    clearTimeout(chartTimer);
    chartLoaded = false;
    chartState("loading");
    if (navigator.onLine === false) {
      $("chart-frame").removeAttribute("src");
      chartState("failed", "this browser is offline");
      return;
    }
    chartTimer = setTimeout(() => {
      if ($("chart").dataset.state !== "loading") return;
      if (chartLoaded) chartState("unconfirmed");
      else chartState("failed", `no answer from TradingView within ${CHART_TIMEOUT_MS / 1000} s`);
    }, CHART_TIMEOUT_MS);
    $("chart-frame").src = chartEmbedUrl(symbol, market);
  }

  function closeChart() {
    clearTimeout(chartTimer);
    $("chart").hidden = true;
    $("chart").dataset.state = "closed";
    $("chart-frame").removeAttribute("src");
    document.body.classList.remove("with-chart");
  }

  function watchChart() {
    const frame = $("chart-frame");
    frame.addEventListener("load", () => {
      if (frame.getAttribute("src")) chartLoaded = true;
    });
    window.addEventListener("message", (event) => {
      if (event.source !== frame.contentWindow || !CHART_ORIGINS.includes(event.origin)) return;
      const state = $("chart").dataset.state;
      if (state === "loading" || state === "unconfirmed") {
        clearTimeout(chartTimer);
        chartState("loaded");
      }
    });
    document.addEventListener("securitypolicyviolation", (event) => {
      if (!String(event.violatedDirective).startsWith("frame-src")) return;
      if ($("chart").hidden) return;
      clearTimeout(chartTimer);
      chartState("failed", "this page's security policy blocks the chart frame");
    });
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
      } else if (message.type === "outcome") {
        applyOutcome(message.outcome); // an alert without a card here: ignored
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

  // [field, input type, label, help]; "optional": blank means the server's default.
  const RULE_FIELDS = [
    ["name", "text", "name", "1-40 of A-Z a-z 0-9 _ . -; unique"],
    ["kind", "kind", "kind", "what the rule watches"],
    ["window_s", "number", "window s", "seconds the rule looks back"],
    ["baseline_s", "number", "baseline s", "seconds before the window that set the usual volume"],
    ["threshold_pct", "number", "threshold %", ""],
    ["multiple", "number", "multiple ×", "the window's volume per second over the baseline's, more than"],
    ["min_notional", "number", "min notional", "", "optional"],
    ["cooldown_s", "number", "cooldown s", "seconds a symbol stays quiet after an alert of this rule"],
    ["notify", "list", "notify", "notifiers by name, comma-separated"],
    // Filters: symbol globs (BTC*, *USDT), globs to leave out, markets (spot, usdm);
    // empty: every symbol / market. A blank minimum 24 h quote volume means none.
    ["symbols", "list", "symbols", "symbol globs such as BTC*, *USDT, comma-separated; empty: every symbol"],
    ["exclude", "list", "exclude", "symbol globs to leave out, comma-separated"],
    ["markets", "list", "markets", "spot, usdm; empty: every market watched"],
    ["min_quote_volume_24h", "number", "min 24h quote vol", "minimum 24 h quote volume; empty: none", "optional"],
  ];
  const COMMON_FIELDS = ["name", "kind", "notify", "symbols", "exclude", "markets", "min_quote_volume_24h"];

  // Each kind: what it watches, its own fields, and their labels/placeholders there.
  const RULE_KINDS = {
    price: {
      title: "price move",
      help: "Alert when the price moves more than move % against the oldest price of the last window seconds.",
      fields: ["window_s", "threshold_pct", "cooldown_s"],
      labels: { threshold_pct: "move %" },
    },
    volume: {
      title: "volume spike",
      help: "Alert when the quote volume traded in the last window seconds, per second, is more than multiple × that of the baseline seconds before the window, and at least min notional (blank: any).",
      fields: ["window_s", "baseline_s", "multiple", "min_notional", "cooldown_s"],
      placeholders: { min_notional: "0: any" },
    },
    liquidation: {
      title: "liquidations",
      help: "Alert when one side's liquidations (USD-M) in the last window seconds add up to more than min notional (quote asset units).",
      fields: ["window_s", "min_notional", "cooldown_s"],
      placeholders: { min_notional: "e.g. 100000" },
    },
    premium: {
      title: "mark premium",
      help: "Alert when the mark price is more than premium % above or below the index price (USD-M).",
      fields: ["threshold_pct", "cooldown_s"],
      labels: { threshold_pct: "premium %" },
      placeholders: { threshold_pct: "e.g. 0.5" },
    },
    funding: {
      title: "funding rate",
      help: "Alert when the funding rate is beyond funding rate % either way (USD-M).",
      fields: ["threshold_pct", "cooldown_s"],
      labels: { threshold_pct: "funding rate %" },
      placeholders: { threshold_pct: "e.g. 0.05" },
    },
  };
  // The server's defaults (RuleSettings), for a field a kind shows that is still empty.
  const RULE_DEFAULTS = { window_s: 60, threshold_pct: 2, cooldown_s: 30, multiple: 5, baseline_s: 1800 };

  const ruleKind = (tr) => (RULE_KINDS[tr.dataset.kind] ? tr.dataset.kind : "price");
  const ruleApplies = (kind, field) =>
    COMMON_FIELDS.includes(field) || RULE_KINDS[kind].fields.includes(field);

  // Show the fields of the row's kind only (the others keep their values, unsent).
  function showKindFields(tr) {
    const kind = ruleKind(tr);
    const spec = RULE_KINDS[kind];
    for (const label of tr.querySelectorAll("label.field")) {
      const field = label.dataset.field;
      label.hidden = !ruleApplies(kind, field);
      const [, , text] = RULE_FIELDS.find(([name]) => name === field);
      label.querySelector(".field-name").textContent = spec.labels?.[field] || text;
      const input = label.querySelector("input");
      if (input) input.placeholder = spec.placeholders?.[field] || "";
      if (input && !label.hidden && input.value === "" && RULE_DEFAULTS[field] !== undefined) {
        input.value = String(RULE_DEFAULTS[field]);
      }
    }
    tr.querySelector(".kind-help").textContent =
      `${spec.help} Then the symbol stays quiet for cooldown seconds.`;
  }

  function ruleRow(rule) {
    const tr = el("tr", "rule");
    tr.dataset.kind = RULE_KINDS[rule.kind] ? rule.kind : "price";
    const td = el("td", "rule-fields");
    for (const [field, type, text, help] of RULE_FIELDS) {
      const label = el("label", "field");
      label.dataset.field = field;
      if (help) label.title = help;
      label.append(el("span", "field-name", text));
      let input;
      if (type === "kind") {
        input = el("select");
        for (const [kind, spec] of Object.entries(RULE_KINDS)) {
          const option = el("option", "", spec.title);
          option.value = kind;
          input.append(option);
        }
        input.value = tr.dataset.kind;
        input.addEventListener("change", () => {
          tr.dataset.kind = input.value;
          showKindFields(tr);
        });
      } else {
        input = el("input");
        input.type = type === "list" ? "text" : type;
        if (type === "number") input.step = "any";
        const value = rule[field];
        input.value =
          value === undefined || value === null ? "" : Array.isArray(value) ? value.join(", ") : String(value);
      }
      input.name = field;
      input.setAttribute("aria-label", field);
      label.append(input);
      td.append(label);
    }
    td.append(el("p", "kind-help hint"));
    tr.append(td);
    const cell = el("td", "rule-remove");
    const remove = el("button", "remove", "✕");
    remove.type = "button";
    remove.setAttribute("aria-label", "Remove rule");
    remove.addEventListener("click", () => tr.remove());
    cell.append(remove);
    tr.append(cell);
    showKindFields(tr);
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

  // A response's body: its JSON, or {error: its text} when it is not JSON (a proxy's page).
  async function responseBody(response) {
    const text = await response.text().catch(() => "");
    try {
      return JSON.parse(text);
    } catch {
      return { error: text.trim().slice(0, 500) };
    }
  }

  async function loadRules() {
    try {
      const response = await fetch("/api/rules", { cache: "no-store" });
      const body = await responseBody(response);
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

  // The rules as the server takes them (RuleSettings' fields): each row's kind and the
  // fields that apply to it; a blank optional field is left to the server's default.
  function collectRules() {
    return [...$("rules-body").querySelectorAll("tr.rule")].map((tr) => {
      const kind = ruleKind(tr);
      const rule = {};
      for (const [field, type, , , optional] of RULE_FIELDS) {
        if (!ruleApplies(kind, field)) continue;
        const value = tr.querySelector(`[name="${field}"]`).value.trim();
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
      const body = await responseBody(response);
      if (response.ok) {
        sessionStorage.setItem("marketd.token", token);
        $("token").value = "";
        showRules(body.rules);
        rulesMessage("Saved: the new rules are in force.", "ok");
      } else if (response.status === 401) {
        sessionStorage.removeItem("marketd.token");
        rulesMessage(`The token was rejected${body.error ? ` (${body.error})` : ""}.`, "error");
      } else {
        // The server's own words (it says which rule and field, and why).
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
      $("rules-body").append(ruleRow({ name: "", kind: "price", ...RULE_DEFAULTS }));
    });
    $("rules-save").addEventListener("click", saveRules);
    $("filter-symbol").addEventListener("input", applyFilters);
    $("filter-direction").addEventListener("change", applyFilters);
    $("filter-kind").addEventListener("change", applyFilters);
    $("filter-outcome").addEventListener("change", applyFilters);
    $("outcome-horizon").addEventListener("change", () => {
      applyFilters();
      reorder();
    });
    $("sort").addEventListener("change", () => {
      reorder();
      markNewest();
    });
    setInterval(tickTimes, 1000);
    $("chart-close").addEventListener("click", closeChart);
    watchChart();
    if (!muted) audioContext();
    updateSoundControls();
    updateNotifyControls();
    updateCount();
    connect();
  }

  init();
})();
