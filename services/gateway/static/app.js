// The web chat: streamed answers over Server-Sent Events (fetch + a small parser),
// citations, document upload and status polling. No build step, no libraries.
"use strict";

const $ = (id) => document.getElementById(id);
const URL_RE = /https?:\/\/[^\s<>"')\]]+/g;
const POLL_MS = 1000;
const HISTORY_TURNS = 20; // earlier messages sent with a question (the gateway keeps what fits)
let running = null; // the AbortController of the answer being streamed
const history = []; // this page's conversation: {role, content}, oldest first

for (const id of ["api-key", "collection"]) {
  const saved = localStorage.getItem(id);
  if (saved) $(id).value = saved;
  $(id).addEventListener("change", () => localStorage.setItem(id, $(id).value));
}

function headers(extra = {}) {
  const key = $("api-key").value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

$("prompt").addEventListener("input", () => {
  const links = $("prompt").value.match(URL_RE) || [];
  $("links").textContent = links.length ? `Will read: ${links.join(", ")}` : "";
});

// Server-Sent Events from a fetch body: events are separated by a blank line.
async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { event: "message", data: [] };
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event.event = line.slice(6).trim();
        else if (line.startsWith("data:")) event.data.push(line.slice(5).replace(/^ /, ""));
      }
      yield { event: event.event, data: event.data.join("\n") };
    }
  }
}

function showCitations(turn, sources) {
  if (!sources.length) return;
  const list = element("ol", "citations");
  for (const source of sources) {
    const item = element("li", "citation");
    item.value = source.n;
    if (/^https?:\/\//i.test(source.url || "")) {  // a link only to a web page, never javascript: or data:
      const link = element("a", "", source.label);
      link.href = source.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      item.append(link);
    } else {
      item.textContent = source.label;
    }
    list.append(item);
  }
  turn.append(list);
}

// What the answer could not use (a link that did not load, sources left out) and
// whether it was cut at the token limit: said under the answer, never hidden.
function showNotes(turn, payload) {
  const notes = [...(payload.context_errors || [])];
  if (payload.finish_reason === "length") notes.push("the answer was cut at its token limit");
  if (!notes.length) return;
  const list = element("ul", "notes");
  for (const note of notes) list.append(element("li", "", note));
  turn.append(list);
}

async function ask(prompt) {
  const turn = element("div", "turn");
  turn.append(element("div", "question", prompt));
  const answer = element("div", "answer");
  turn.append(answer);
  $("conversation").append(turn);
  running = new AbortController();
  $("send").disabled = true;
  $("stop").hidden = false;
  try {
    const response = await fetch("/v1/chat", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({
        prompt,
        collection: $("collection").value,
        stream: true,
        history: history.slice(-HISTORY_TURNS),
      }),
      signal: running.signal,
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.detail || `HTTP ${response.status}`);
    }
    for await (const { event, data } of sseEvents(response)) {
      const payload = JSON.parse(data);
      if (event === "chunk") answer.textContent += payload.text;
      else if (event === "answer") {
        answer.textContent = payload.answer;
        showCitations(turn, payload.sources);
        showNotes(turn, payload);
        history.push({ role: "user", content: prompt }, { role: "assistant", content: payload.answer });
      } else if (event === "error") throw new Error(payload.detail);
    }
  } catch (error) {
    if (error.name !== "AbortError") turn.append(element("div", "error", String(error.message || error)));
  } finally {
    running = null;
    $("send").disabled = false;
    $("stop").hidden = true;
  }
}

$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt || running) return;
  $("prompt").value = "";
  $("links").textContent = "";
  ask(prompt);
});
$("stop").addEventListener("click", () => running && running.abort());

function showDocument(doc) {
  let item = document.querySelector(`[data-document="${doc.document_id}"]`);
  if (!item) {
    item = element("li");
    item.dataset.document = doc.document_id;
    $("document-list").prepend(item);
  }
  item.className = `state-${doc.state}`;
  const reason = doc.reason ? `: ${doc.reason}` : "";
  item.textContent = `${doc.file_name} (${doc.collection}) ${doc.state}${reason}`;
}

async function poll(documentId) {
  const response = await fetch(`/v1/documents/${documentId}`, { headers: headers() });
  if (!response.ok) return;
  const doc = await response.json();
  showDocument(doc);
  if (doc.state === "queued" || doc.state === "ingesting") setTimeout(() => poll(documentId), POLL_MS);
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  form.append("collection", $("collection").value);
  const response = await fetch("/v1/documents", { method: "POST", headers: headers(), body: form });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const item = element("li", "error", `${file.name}: ${body.detail || response.status}`);
    $("document-list").prepend(item);
    return;
  }
  showDocument(body);
  poll(body.document_id);
});

async function loadDocuments() {
  const response = await fetch("/v1/documents", { headers: headers() });
  if (!response.ok) return;
  const { documents } = await response.json();
  for (const doc of documents.reverse()) showDocument(doc);
}
loadDocuments();
