// The management API from the browser: JSON calls and Server-Sent Event streams, both sending
// the operator's API key when one is stored, and asking for one when the server says 401.

const KEY_STORAGE = "better-ccflare.apiKey";

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field ?? null;
  }
}

export function storedKey() {
  return localStorage.getItem(KEY_STORAGE);
}

export function storeKey(key) {
  localStorage.setItem(KEY_STORAGE, key);
}

export function forgetKey() {
  localStorage.removeItem(KEY_STORAGE);
}

function headers(extra = {}) {
  const key = storedKey();
  return key ? { ...extra, "x-api-key": key } : extra;
}

// One prompt at a time: every call that meets a 401 meanwhile waits for the same answer.
let pendingPrompt = null;

/**
 * Ask the operator for an admin key (the layout's dialog). Resolves once a key is stored;
 * rejects when they cancel.
 */
export function askForKey(reason) {
  pendingPrompt ??= new Promise((resolve, reject) => {
    const dialog = document.getElementById("api-key-dialog");
    const form = document.getElementById("api-key-form");
    const error = document.getElementById("api-key-error");
    error.textContent = reason ?? "";
    error.hidden = !reason;
    form.reset();
    const done = (ok) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("close", onClose);
      pendingPrompt = null;
      if (ok) resolve();
      else reject(new ApiError(401, "An admin API key is needed to use the dashboard."));
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const key = new FormData(form).get("apiKey").trim();
      if (!key) return;
      storeKey(key);
      done(true);
      dialog.close();
    };
    const onClose = () => done(false);
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", onClose);
    if (!dialog.open) dialog.showModal();
  });
  return pendingPrompt;
}

/** The reason to show in the key prompt, or null when the response is not an auth failure. */
async function authProblem(response) {
  if (response.status !== 401 && response.status !== 403) return null;
  const body = await response.json().catch(() => ({}));
  const hadKey = Boolean(storedKey());
  if (response.status === 403) return body.error ?? "This key may not use the management API; use an admin key.";
  return hadKey ? (body.error ?? "The stored API key was not accepted.") : null;
}

/**
 * Call the API and return its decoded JSON. Throws ApiError with the server's message.
 * `body` (any JSON value) is sent as JSON.
 */
export async function api(path, { method = "GET", body, signal } = {}) {
  for (;;) {
    const init = { method, signal, cache: "no-store", headers: headers({ accept: "application/json" }) };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401 || response.status === 403) {
      await askForKey(await authProblem(response));
      continue;
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = { error: text };
      }
    }
    if (!response.ok) {
      throw new ApiError(response.status, data?.error ?? `${response.status} ${response.statusText}`, data?.field);
    }
    return data;
  }
}

export const post = (path, body = {}) => api(path, { method: "POST", body });

/** Parse one SSE event block into {event, data}; comments give null. */
function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: data.join("\n") } : null;
}

/**
 * Follow an SSE endpoint. EventSource cannot send the API key header, so the stream is read
 * with fetch. Reconnects with a growing delay; `onState` hears "live" and "reconnecting".
 * Returns a function that stops it.
 */
export function follow(path, onEvent, onState = () => {}) {
  const controller = new AbortController();
  let delay = 1000;
  const run = async () => {
    while (!controller.signal.aborted) {
      try {
        const response = await fetch(path, {
          headers: headers({ accept: "text/event-stream" }),
          signal: controller.signal,
          cache: "no-store",
        });
        if (response.status === 401 || response.status === 403) {
          await askForKey(await authProblem(response));
          continue;
        }
        if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
        onState("live");
        delay = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replaceAll("\r\n", "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) !== -1) {
            const parsed = parseEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (parsed) onEvent(parsed);
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof ApiError) {
          onState("stopped");
          return;
        }
      }
      if (controller.signal.aborted) return;
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
  };
  run();
  return () => controller.abort();
}
