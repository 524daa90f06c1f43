// What every view uses: building DOM safely, calling the API with the token, following
// Server-Sent Events over fetch (EventSource cannot send an Authorization header), files.

const TOKEN_KEY = "bulkops.token";

/** An element: attributes (on... = listeners, aria and data attributes as given), then children.
 * Strings become text nodes: nothing from the API is ever parsed as HTML. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "class") element.className = value;
    else if (name in element && !name.includes("-") && typeof value !== "string") element[name] = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function session() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return null;
  const claims = decodeClaims(token);
  if (!claims || (claims.exp && claims.exp * 1000 < Date.now())) {
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }
  return { token, claims, isAdmin: claims.role === "Admin", sponsorId: claims.sponsorId ?? null };
}

export function remember(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forget() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The token's claims, for display only: the API checks the signature on every call. */
export function decodeClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error || "HTTP_ERROR";
    this.details = body?.details || null;
  }
}

/** A fresh idempotency key (randomUUID exists only on https or localhost pages). */
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function headers(token, extra = {}) {
  return { Authorization: `Bearer ${token}`, ...extra };
}

/** JSON in, the envelope's body out; an ApiError (the envelope's code and message) if not ok. */
export async function api(path, { method = "GET", body, form, token, signal, query } = {}) {
  const own = token ?? session()?.token;
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const init = { method, signal, headers: headers(own) };
  if (form) init.body = form;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  if (method === "POST" && !form) init.headers["Idempotency-Key"] = newKey();
  const response = await fetch(url, init);
  const type = response.headers.get("content-type") || "";
  const payload = type.includes("json") ? await response.json() : null;
  if (response.status === 401 && !token) {
    forget();
    location.hash = "#/signin";
  }
  if (!response.ok) throw new ApiError(response.status, payload);
  return payload;
}

/** A file from the API (with the token), saved under the name the server gives. */
export async function download(path, { method = "GET", form, fallbackName = "download" } = {}) {
  const response = await fetch(path, { method, body: form, headers: headers(session()?.token) });
  const blob = await response.blob();
  const disposition = response.headers.get("content-disposition") || "";
  const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] || fallbackName;
  const link = h("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  return response.status;
}

/** Follows a Server-Sent Events stream until ``signal`` aborts; reconnects after a drop. */
export async function follow(path, onEvent, signal) {
  while (!signal.aborted) {
    try {
      const response = await fetch(path, { headers: headers(session()?.token), signal });
      if (!response.ok) return;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) onEvent(event, JSON.parse(data));
        }
      }
      if (path.includes("/events/")) return; // one operation's stream ends with it
    } catch (error) {
      if (signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

/** A progress bar people and screen readers can read. */
export function progressBar(percent, label) {
  const value = Math.max(0, Math.min(100, Math.round(percent * 10) / 10));
  const fill = h("span", { class: "bar-fill" });
  fill.style.width = `${value}%`;
  return h(
    "div",
    {
      class: "bar",
      role: "progressbar",
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": String(value),
      "aria-label": label,
    },
    fill,
    h("span", { class: "bar-text" }, `${value}%`),
  );
}

export function setProgress(bar, percent) {
  const value = Math.max(0, Math.min(100, Math.round(percent * 10) / 10));
  bar.setAttribute("aria-valuenow", String(value));
  bar.querySelector(".bar-fill").style.width = `${value}%`;
  bar.querySelector(".bar-text").textContent = `${value}%`;
}

/** A message in the page's live region (read out by screen readers). */
export function notify(text, kind = "info") {
  const region = document.getElementById("notices");
  const notice = h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  region.replaceChildren(notice);
}

/** A status as a coloured badge with its translated name. */
export function statusBadge(status, label) {
  return h("span", { class: `badge status-${status}`, "data-status": status }, label);
}

/** A table with a caption and a header row; ``rows`` are arrays of cells. */
export function table(caption, headings, rows, attrs = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      attrs,
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))),
    ),
  );
}

/** A labelled form field (the label is tied to the input for screen readers). */
export function field(id, label, input) {
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

export function select(name, options, selected) {
  return h(
    "select",
    { name },
    options.map(([value, label]) => h("option", { value, selected: value === selected }, label)),
  );
}
