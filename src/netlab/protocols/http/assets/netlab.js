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

  function serviceCard(service) {
    const card = el("section", null, { class: "card", "data-service": service.name });
    card.append(el("h3", service.name));
    const addresses = el("ul", null, { class: "addresses" });
    for (const address of service.listening) addresses.append(el("li", address));
    if (!service.listening.length) {
      addresses.append(el("li", "not listening", { class: "muted" }));
    }
    const counters = el("dl", null, { class: "counters" });
    for (const [key, label, value] of service.counters) {
      const row = el("div");
      row.append(el("dt", label), el("dd", value, { "data-counter": key }));
      counters.append(row);
    }
    card.append(addresses, counters);
    return card;
  }

  function roomCard(room) {
    const card = el("section", null, { class: "card room", "data-room": room.name });
    card.append(el("h3", room.name));
    card.append(el("p", room.topic || "no topic", { class: "topic" }));
    const users = el("ul", null, { class: "users" });
    for (const user of room.users) {
      users.append(el("li", user.nick + (user.oper ? " (oper)" : "")));
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
    document.getElementById("services").replaceChildren(...snapshot.services.map(serviceCard));
    const rooms = document.getElementById("rooms");
    if (snapshot.rooms === null) {
      rooms.replaceChildren(el("p", "The chat is not running.", { class: "muted" }));
    } else {
      rooms.replaceChildren(...snapshot.rooms.map(roomCard));
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
    connect("/dashboard/stream" + window.location.search, { snapshot: showDashboard });
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
