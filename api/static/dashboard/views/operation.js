// One operation: counts, ETA, errors by code, recent results, and the lifecycle buttons.

import { formatNumber, formatTime, t } from "../i18n.js";
import { api, download, follow, h, notify, progressBar, setProgress, statusBadge, table } from "../lib.js";

const BASE = "/api/v1/bulk-operations";
const FINAL = new Set(["Completed", "Failed", "Cancelled", "PartiallyCompleted"]);

export function viewOperation(main, { signal, params: [operationId] }) {
  const title = h("h1", {}, operationId);
  const badge = h("span");
  const bar = progressBar(0, t("progress"));
  const figures = h("dl", { class: "figures" });
  const message = h("p", { class: "status-message" });
  const actions = h("div", { class: "actions" });
  const errors = h("section", { "aria-labelledby": "errors-title" });
  const recent = h("section", { "aria-labelledby": "recent-title" });
  const dialog = confirmDialog(() => act("cancel"));
  main.append(
    h("div", { class: "heading" }, title, badge),
    bar,
    message,
    figures,
    actions,
    errors,
    recent,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => download(`${BASE}/items/${operationId}/export?format=csv`) }, t("exportCsv")),
      h("button", { type: "button", onclick: () => download(`${BASE}/items/${operationId}/export?format=xlsx`) }, t("exportXlsx")),
    ),
    dialog,
  );

  let last = null;
  let pending = null;

  async function refresh() {
    try {
      const { data } = await api(`${BASE}/status/${operationId}`, { signal });
      draw(data);
      if (FINAL.has(data.status)) await aggregates();
    } catch (error) {
      if (signal.aborted) return;
      if (error.status === 404) {
        main.replaceChildren(h("h1", {}, t("notFound", { id: operationId })));
      } else notify(t("failedToLoad", { message: error.message }), "error");
    }
  }

  function draw(op) {
    last = op;
    title.textContent = op.operationName;
    badge.replaceChildren(statusBadge(op.status, t(op.status)), " ", h("span", { class: "muted" }, t(op.operationType)));
    const m = op.metrics;
    setProgress(bar, m.progressPercentage);
    message.textContent = op.pauseReason || op.statusMessage;
    const rows = [
      [t("total"), formatNumber(m.totalItems)],
      [t("processed"), formatNumber(m.processedItems)],
      [t("succeeded"), formatNumber(m.successfulItems)],
      [t("failed"), formatNumber(m.failedItems)],
      [t("skipped"), formatNumber(m.skippedItems)],
      [t("eta"), m.estimatedTimeRemaining || "—"],
      [t("phase"), op.currentPhase],
      [t("started"), formatTime(op.startedAt)],
      [t("completed"), formatTime(op.completedAt)],
    ];
    if (op.totalCost) rows.push([t("cost"), op.totalCost.toFixed(2)]);
    figures.replaceChildren(...rows.map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))));
    const final = FINAL.has(op.status);
    actions.replaceChildren(
      h("button", { type: "button", class: "danger", disabled: final || op.stopReason === "CANCELLED", onclick: () => dialog.showModal() }, t("cancel")),
      op.status === "Paused"
        ? h("button", { type: "button", onclick: () => act("resume") }, t("resume"))
        : h("button", { type: "button", disabled: final, onclick: () => act("pause") }, t("pause")),
      op.operationType === "BulkLinkSend"
        ? h("button", { type: "button", disabled: !final || !m.failedItems, onclick: () => act("retry") }, t("retryFailed"))
        : "",
    );
    if (!final) drawErrors(groupErrors(m.errors));
    recent.replaceChildren(
      h("h2", { id: "recent-title" }, t("recentResults")),
      table(
        t("recentResults"),
        [t("item"), t("status"), t("result"), t("completed")],
        (op.recentResults || []).slice().reverse().map((r) => [r.itemId, t(r.status), r.resultData || "—", formatTime(r.processedAt)]),
        { class: "captioned-above" },
      ),
    );
  }

  function groupErrors(list) {
    const byCode = new Map();
    for (const error of list || []) {
      const entry = byCode.get(error.errorCode) || { errorCode: error.errorCode, count: 0, example: error.errorMessage };
      entry.count += 1;
      byCode.set(error.errorCode, entry);
    }
    return [...byCode.values()];
  }

  function drawErrors(entries) {
    errors.replaceChildren(
      h("h2", { id: "errors-title" }, t("errorsByCode")),
      entries.length
        ? table(t("errorsByCode"), [t("errorCode"), t("count"), t("example")], entries.map((e) => [e.errorCode, formatNumber(e.count), e.example || e.errorCategory || "—"]), { class: "captioned-above" })
        : h("p", { class: "empty" }, t("noErrors")),
    );
  }

  async function aggregates() {
    try {
      const { data } = await api(`${BASE}/aggregates/${operationId}`, { signal });
      drawErrors(data.byError);
    } catch {
      /* still being stored: the live errors stay */
    }
  }

  async function act(action) {
    const path = action === "retry" ? `${BASE}/retry/${operationId}` : `${BASE}/${action}/${operationId}`;
    try {
      const answer = await api(path, { method: "POST" });
      notify(t("actionDone", { action: t(action === "retry" ? "retryFailed" : action), message: answer.message || answer.data?.status || "OK" }));
      if (action === "retry" && answer.data?.operationId) location.hash = `#/operations/${answer.data.operationId}`;
      else refresh();
    } catch (error) {
      notify(error.message, "error");
    }
  }

  function onEvent(kind) {
    // the stream says something changed; the full status is read at most once a second
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh(); }, kind === "operation_completed" ? 0 : 1000);
  }

  signal.addEventListener("abort", () => clearTimeout(pending));
  refresh().then(() => {
    if (last && !FINAL.has(last.status)) follow(`${BASE}/events/${operationId}`, onEvent, signal);
  });
}

function confirmDialog(onConfirm) {
  const dialog = h("dialog", { "aria-labelledby": "confirm-title" });
  dialog.append(
    h("p", { id: "confirm-title" }, t("confirmCancel")),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "danger", id: "confirm-cancel", onclick: () => { dialog.close(); onConfirm(); } }, t("confirm")),
      h("button", { type: "button", onclick: () => dialog.close() }, t("keep")),
    ),
  );
  return dialog;
}
