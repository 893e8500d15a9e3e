// A stored payload made readable: the request's system prompt and messages, then the answer,
// with thinking, tool calls and tool results as their own blocks. Streamed answers are
// reassembled from their SSE events.

import { h } from "./dom.js";

/** Base64 (as the payload stores bodies) to text; null when absent. */
export function decodeBody(base64) {
  if (base64 === null || base64 === undefined) return null;
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

export function tryJson(text) {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export function pretty(text) {
  const parsed = tryJson(text);
  return parsed === null ? text : JSON.stringify(parsed, null, 2);
}

/** Rebuild a message from a Messages API event stream (text, thinking and tool input deltas). */
export function assembleStream(text) {
  const message = { role: "assistant", content: [], usage: {} };
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
    const event = tryJson(data);
    if (!event) continue;
    switch (event.type) {
      case "message_start":
        Object.assign(message, { ...event.message, content: [] });
        break;
      case "content_block_start":
        message.content[event.index] = { ...event.content_block, _json: "" };
        break;
      case "content_block_delta": {
        const target = message.content[event.index];
        if (!target) break;
        const d = event.delta;
        if (d.type === "text_delta") target.text = (target.text ?? "") + d.text;
        else if (d.type === "thinking_delta") target.thinking = (target.thinking ?? "") + d.thinking;
        else if (d.type === "input_json_delta") target._json += d.partial_json;
        break;
      }
      case "content_block_stop": {
        const target = message.content[event.index];
        if (target?._json) target.input = tryJson(target._json) ?? target._json;
        break;
      }
      case "message_delta":
        Object.assign(message, event.delta);
        message.usage = { ...message.usage, ...event.usage };
        break;
      case "error":
        message.content.push({ type: "error", error: event.error });
        break;
      default:
    }
  }
  message.content = message.content.filter(Boolean).map(({ _json, ...rest }) => rest);
  return message;
}

function json(value) {
  return h("pre", { class: "code" }, typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

function blockView(block) {
  if (typeof block === "string") return h("div", { class: "block block-text" }, block);
  switch (block.type) {
    case "text":
      return h("div", { class: "block block-text" }, block.text ?? "");
    case "thinking":
    case "redacted_thinking":
      return h("details", { class: "block block-thinking" },
        h("summary", {}, block.type === "thinking" ? "Thinking" : "Thinking (redacted)"),
        h("div", { class: "block-text muted" }, block.thinking ?? ""));
    case "tool_use":
    case "server_tool_use":
      return h("div", { class: "block block-tool" },
        h("div", { class: "block-title" }, h("span", { class: "badge info" }, "tool call"), block.name ?? "", h("span", { class: "muted small mono" }, block.id ?? "")),
        json(block.input ?? {}));
    case "tool_result": {
      const content = Array.isArray(block.content) ? block.content.map(blockView) : h("div", { class: "block-text" }, block.content ?? "");
      return h("div", { class: `block block-tool${block.is_error ? " error" : ""}` },
        h("div", { class: "block-title" }, h("span", { class: block.is_error ? "badge bad" : "badge ok" }, block.is_error ? "tool error" : "tool result"), h("span", { class: "muted small mono" }, block.tool_use_id ?? "")),
        content);
    }
    case "image":
    case "document":
      return h("div", { class: "block muted" }, `[${block.type}${block.source?.media_type ? `, ${block.source.media_type}` : ""}]`);
    case "error":
      return h("div", { class: "block block-tool error" }, h("div", { class: "block-title" }, "error"), json(block.error));
    default:
      return h("div", { class: "block" }, json(block));
  }
}

function messageView(role, content, note) {
  const blocks = typeof content === "string" ? [blockView(content)] : (content ?? []).map(blockView);
  return h("div", { class: `msg ${role}` }, h("div", { class: "msg-role" }, note ? `${role} · ${note}` : role), blocks);
}

/** The conversation view for one payload; explains itself when a body is missing or not JSON. */
export function conversationView(payload) {
  const parts = [];
  const requestText = decodeBody(payload.request?.body);
  const request = tryJson(requestText);
  if (!request) {
    parts.push(h("p", { class: "muted" }, requestText ? "The request body is not JSON; see Raw request." : "No request body was stored."));
  } else {
    if (request.system) parts.push(messageView("system", request.system));
    for (const message of request.messages ?? []) parts.push(messageView(message.role ?? "user", message.content));
    if (payload.request.bodyTruncated) parts.push(h("p", { class: "muted small" }, "The stored request body was truncated."));
  }
  const responseText = decodeBody(payload.response?.body);
  if (responseText) {
    const streamed = payload.meta?.isStream || responseText.trimStart().startsWith("event:");
    const answer = streamed ? assembleStream(responseText) : tryJson(responseText);
    if (answer?.content) parts.push(messageView("assistant", answer.content, answer.stop_reason ? `stop: ${answer.stop_reason}` : null));
    else if (answer?.error) parts.push(messageView("assistant", [{ type: "error", error: answer.error }]));
    else parts.push(h("p", { class: "muted" }, "The response is not a message; see Raw response."));
    if (payload.response.bodyTruncated) parts.push(h("p", { class: "muted small" }, "The stored response body was truncated."));
  } else if (payload.response) {
    parts.push(h("p", { class: "muted" }, "No response body was stored."));
  }
  return parts;
}

/** Headers and the pretty-printed body of one side of the exchange. */
export function rawView(side, label) {
  if (!side) return [h("p", { class: "muted" }, `No ${label} was stored.`)];
  const rows = Object.entries(side.headers ?? {}).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, v)));
  const body = decodeBody(side.body);
  return [
    side.status !== undefined ? h("p", {}, h("strong", {}, "Status "), String(side.status)) : null,
    rows.length ? h("table", { class: "kv" }, h("tbody", {}, rows)) : h("p", { class: "muted small" }, "No headers stored."),
    body === null ? h("p", { class: "muted" }, "No body stored.") : json(pretty(body)),
    side.bodyTruncated ? h("p", { class: "muted small" }, "Truncated when stored.") : null,
  ];
}
