// netlab's pages, kept live by Server-Sent Events.  Everything shown is set
// with textContent, never innerHTML: nicks, topics, paths and peers come from
// users and must stay text.
"use strict";

(() => {
  const MAX_EVENTS = 500;

  function el(tag, text, attributes) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    return node;
  }

  const SVG = "http://www.w3.org/2000/svg";
  const CHART_WIDTH = 180;
  const CHART_HEIGHT = 40;
  // The charts' points, newest last: {t, rates: {service: {series: rate}}}.
  let points = [];
  let historySeconds = 180;
  let services = [];

  function serviceCard(service) {
    const card = el("section", null, { class: "card", "data-service": service.name });
    const title = el("h3", service.name);
    if (service.kind !== "-" && service.kind !== service.name) {
      title.append(" ", el("small", service.kind, { class: "kind" }));
    }
    card.append(title);
    const addresses = el("ul", null, { class: "addresses" });
    for (const address of service.listening) addresses.append(el("li", address));
    if (!service.listening.length) {
      addresses.append(el("li", "not listening yet", { class: "muted" }));
    }
    card.append(addresses);
    if (service.try.length) {
      const tries = el("span");
      service.try.forEach((line, i) => {
        if (i) tries.append(" or ");
        tries.append(el("code", line));
      });
      const line = el("p", "try ", { class: "try" });
      line.append(tries);
      card.append(line);
    }
    const counters = el("dl", null, { class: "counters" });
    for (const [key, label, value] of service.counters) {
      const row = el("div");
      row.append(el("dt", label), el("dd", value, { "data-counter": key }));
      counters.append(row);
    }
    card.append(counters, el("div", null, { class: "chart" }));
    return card;
  }

  function readable(rate) {
    if (rate >= 1e6) return (rate / 1e6).toFixed(1) + "M";
    if (rate >= 1e4) return (rate / 1e3).toFixed(0) + "k";
    if (rate >= 1e3) return (rate / 1e3).toFixed(1) + "k";
    return String(Math.round(rate * 10) / 10);
  }

  // One small SVG per card: each series scaled to its own peak over the
  // window, over time (a stretch with no samples stays a gap in x).
  function drawChart(card, service) {
    const box = card.querySelector(".chart");
    if (!box) return;
    const end = points.length ? points[points.length - 1].t : 0;
    const start = end - historySeconds;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `${service.name}: the last ${historySeconds / 60} minutes`);
    const legend = el("p", null, { class: "legend" });
    service.series.forEach(([key, label], index) => {
      const values = points
        .filter((point) => point.rates[service.name] && key in point.rates[service.name])
        .map((point) => [point.t, point.rates[service.name][key]]);
      const peak = Math.max(0, ...values.map(([, rate]) => rate));
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("class", `series series-${index}`);
      line.setAttribute("data-series", key);
      line.setAttribute("points", values.map(([t, rate]) => {
        const x = ((t - start) / historySeconds) * CHART_WIDTH;
        const y = CHART_HEIGHT - 1 - (peak ? (rate / peak) * (CHART_HEIGHT - 2) : 0);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      }).join(" "));
      svg.append(line);
      const now = values.length ? values[values.length - 1][1] : 0;
      const item = el("span", `${label} ${readable(now)} (peak ${readable(peak)})`,
        { class: `series-${index}`, "data-series": key, "data-peak": peak });
      legend.append(item);
    });
    box.replaceChildren(svg, legend);
  }

  function drawCharts() {
    for (const service of services) {
      const card = document.querySelector(`[data-service="${CSS.escape(service.name)}"]`);
      if (card) drawChart(card, service);
    }
  }

  function addPoints(more) {
    points = points.concat(more);
    const end = points.length ? points[points.length - 1].t : 0;
    points = points.filter((point) => point.t > end - historySeconds);
    drawCharts();
  }

  function roomCard(room) {
    const card = el("section", null, { class: "card room", "data-room": room.name });
    card.append(el("h3", room.name));
    card.append(el("p", room.topic || "no topic", { class: "topic" }));
    const users = el("ul", null, { class: "users" });
    for (const user of room.users) {
      const item = el("li", user.nick + (user.oper ? " (oper)" : ""));
      if (user.node) item.append(" ", el("small", "on " + user.node));
      users.append(item);
    }
    if (!room.users.length) users.append(el("li", "nobody", { class: "muted" }));
    card.append(users);
    return card;
  }

  function eventItem(event) {
    const item = el("li", null, { "data-kind": event.kind });
    item.append(el("time", event.time), el("span", event.text, { class: "text" }));
    return item;
  }

  function showDashboard(snapshot) {
    services = snapshot.services;
    document.getElementById("services").replaceChildren(...services.map(serviceCard));
    drawCharts();
    const rooms = document.getElementById("rooms");
    if (snapshot.rooms === null) {
      rooms.replaceChildren(el("p", "The chat is not running.", { class: "muted" }));
    } else {
      rooms.replaceChildren(...snapshot.rooms.map(roomCard));
    }
    const workers = document.getElementById("workers");
    if (workers && snapshot.workers) {
      workers.tBodies[0].replaceChildren(...snapshot.workers.map((row) => {
        const tr = el("tr", null, row.answering ? { class: "answering" } : {});
        for (const key of ["worker", "pid", "connections_open", "connections_total"]) {
          tr.append(el("td", String(row[key])));
        }
        return tr;
      }));
    }
    const cluster = document.getElementById("cluster");
    if (cluster && snapshot.cluster) {
      cluster.textContent = snapshot.cluster.text;
      cluster.dataset.state = snapshot.cluster.state;
    }
    document.getElementById("events").replaceChildren(...snapshot.events.map(eventItem));
  }

  function setStatus(state, text) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.dataset.state = state;
  }

  function connect(url, handlers) {
    const source = new EventSource(url);
    source.addEventListener("open", () => setStatus("live", "live"));
    source.addEventListener("error", () => setStatus("down", "reconnecting\u2026"));
    for (const [name, handler] of Object.entries(handlers)) {
      source.addEventListener(name, (message) => handler(JSON.parse(message.data)));
    }
    return source;
  }

  const page = document.body.dataset.page;
  if (page === "dashboard") {
    // The instructor's ?token= goes to the stream too.
    connect("/dashboard/stream" + window.location.search, {
      // Sent first on every (re)connection: the server's last few minutes.
      history: (history) => {
        historySeconds = history.seconds;
        points = [];
        addPoints(history.points);
      },
      snapshot: showDashboard,
      sample: (sample) => addPoints(sample.points),
    });
  } else if (page === "events") {
    const list = document.getElementById("events");
    connect("/events/stream" + window.location.search, {
      // Sent first on every (re)connection, before the recent events again.
      reset: () => list.replaceChildren(),
      netlab: (event) => {
        list.prepend(eventItem(event));
        while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
      },
      skipped: (note) => {
        list.prepend(el("li", `(${note.skipped} events skipped: reading too slowly)`,
          { class: "muted" }));
      },
    });
  }
})();
