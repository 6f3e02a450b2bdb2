// The playground: sends the form as a chat request to the gateway's console endpoint and shows the answer as its SSE
// stream arrives, then the call's audit record. A static file (the console's Content-Security-Policy allows no inline
// script); no framework.
"use strict";
(() => {
  const form = document.getElementById("playground");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const answer = $("pg-answer");
  const error = $("pg-error");
  const send = $("pg-send");

  function set(id, text) { $(id).textContent = text; }

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
  }

  async function showRecord(requestId, browserTtft) {
    // The audit record is written off the request's path, a moment after the answer ends.
    for (let i = 0; i < 40; i++) {
      const response = await fetch("/ui/playground/record?request_id=" + encodeURIComponent(requestId), { credentials: "same-origin" });
      if (!response.ok) return;
      const found = await response.json();
      if (found.problem) { set("pg-request", requestId + " (" + found.problem + ")"); return; }
      if (found.found) {
        const record = found.record;
        const link = document.createElement("a");
        link.href = "/ui/audit/" + found.entry_id;
        link.textContent = requestId;
        $("pg-request").replaceChildren(link);
        if (record.ttft_ms != null) {
          set("pg-ttft", Math.round(record.ttft_ms) + " ms at the gateway" + (browserTtft ? ", " + browserTtft + " ms in this browser" : ""));
        }
        if (record.resumed && record.resumed.length) {
          set("pg-resumed", record.resumed.map((r) => `${r.from} → ${r.to} at ${r.at_chars} (${r.reason}, ${r.how})`).join("; "));
        } else {
          set("pg-resumed", "no");
        }
        const table = $("pg-attempt-table");
        const body = table.querySelector("tbody");
        body.replaceChildren(...record.attempts.map((a) => {
          const row = document.createElement("tr");
          for (const text of [a.deployment, a.outcome, a.reason || "–", Math.round(a.elapsed_ms) + " ms"]) {
            const cell = document.createElement("td");
            cell.textContent = text;
            row.appendChild(cell);
          }
          return row;
        }));
        table.hidden = false;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const token = data.get("__RequestVerificationToken");
    const key = data.get("key");
    answer.textContent = "";
    error.hidden = true;
    for (const id of ["pg-status", "pg-deployment", "pg-ttft", "pg-attempts", "pg-fallback", "pg-resumed", "pg-request"]) set(id, "…");
    $("pg-attempt-table").hidden = true;
    send.disabled = true;
    const started = performance.now();
    try {
      const response = await fetch("/ui/playground/chat" + (key ? "?key=" + encodeURIComponent(key) : ""), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Onyx-Antiforgery": token },
        body: JSON.stringify({
          model: data.get("model"),
          stream: true,
          stream_options: { include_usage: true },
          messages: [{ role: "user", content: data.get("prompt") }],
        }),
      });
      set("pg-status", String(response.status));
      set("pg-deployment", response.headers.get("x-onyx-deployment") || "–");
      set("pg-attempts", response.headers.get("x-onyx-attempts") || "–");
      set("pg-fallback", response.headers.get("x-onyx-fallback") === "true" ? "yes" : "no");
      const requestId = response.headers.get("x-request-id");
      set("pg-request", requestId || "–");
      set("pg-ttft", "–");
      if (!response.ok || !response.body) {
        const text = await response.text();
        try { fail(JSON.parse(text).error.message); } catch { fail(text || "HTTP " + response.status); }
        if (requestId) await showRecord(requestId);
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let browserTtft = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data: ")) continue;
            const payload = line.slice(6);
            if (payload === "[DONE]") continue;
            const chunk = JSON.parse(payload);
            if (chunk.error) { fail(chunk.error.message); continue; }
            const text = chunk.choices && chunk.choices[0] && chunk.choices[0].delta && chunk.choices[0].delta.content;
            if (text) {
              if (browserTtft === null) {
                browserTtft = Math.round(performance.now() - started);
                set("pg-ttft", browserTtft + " ms in this browser");
              }
              answer.textContent += text;
            }
          }
        }
      }
      if (requestId) await showRecord(requestId, browserTtft);
    } catch (e) {
      fail(String(e));
    } finally {
      send.disabled = false;
    }
  });
})();
