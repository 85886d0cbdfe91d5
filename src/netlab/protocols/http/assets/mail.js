"use strict";
// The web mailbox's live list: each message /mail/stream announces is
// added at the top, its strings set as text, never as HTML.
(function () {
  const list = document.getElementById("messages");
  if (list === null) {
    return;
  }
  const live = document.getElementById("live");
  const empty = document.getElementById("empty");

  function span(className, text) {
    const element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  }

  function add(message) {
    const id = String(message.id);
    if (list.querySelector('li[data-id="' + CSS.escape(id) + '"]') !== null) {
      return;
    }
    const row = document.createElement("li");
    row.className = "message new";
    row.dataset.id = id;
    const link = document.createElement("a");
    link.className = "subject";
    link.href = message.url;
    link.textContent = message.subject;
    row.append(link, span("from", message.from), span("to", "to " + message.to),
               span("received", message.received), span("size", message.size + " bytes"));
    list.prepend(row);
    if (empty !== null) {
      empty.hidden = true;
    }
  }

  const stream = new EventSource(list.dataset.stream);
  stream.addEventListener("ready", function () {
    live.textContent = "live";
    document.body.dataset.live = "open";
  });
  stream.addEventListener("mail", function (event) {
    add(JSON.parse(event.data));
  });
  stream.onerror = function () {
    live.textContent = "reconnecting";
    document.body.dataset.live = "closed";
  };
})();
