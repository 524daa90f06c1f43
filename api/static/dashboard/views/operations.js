// The operations list: filters, a page from history, and live progress of what runs.

import { formatNumber, formatTime, t } from "../i18n.js";
import { api, field, follow, h, notify, progressBar, select, setProgress, statusBadge, table } from "../lib.js";

const STATUSES = ["Queued", "Processing", "Paused", "Completed", "PartiallyCompleted", "Failed", "Cancelled"];
const TYPES = ["BulkCodeGeneration", "BulkLinkSend", "BulkDealerInvitation"];
const PAGE_SIZE = 20;

export function viewOperations(main, { signal }) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const filters = {
    status: params.get("status") || "",
    operationType: params.get("operationType") || "",
    search: params.get("search") || "",
    page: Number(params.get("page") || 1),
  };
  const statusSelect = select("status", [["", t("any")], ...STATUSES.map((s) => [s, t(s)])], filters.status);
  const typeSelect = select("operationType", [["", t("any")], ...TYPES.map((s) => [s, t(s)])], filters.operationType);
  const searchInput = h("input", { type: "search", name: "search", value: filters.search, maxlength: 100 });
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      onsubmit: (event) => {
        event.preventDefault();
        filters.status = statusSelect.value;
        filters.operationType = typeSelect.value;
        filters.search = searchInput.value.trim();
        filters.page = 1;
        load();
      },
    },
    field("filter-status", t("filterStatus"), statusSelect),
    field("filter-type", t("filterType"), typeSelect),
    field("filter-search", t("search"), searchInput),
    h("button", { type: "submit" }, t("apply")),
  );
  const list = h("div", { class: "operations", "aria-live": "polite" }, t("loading"));
  const pager = h("nav", { class: "pager", "aria-label": t("page", { page: "", pages: "" }) });
  main.append(
    h("div", { class: "heading" }, h("h1", {}, t("navOperations")), h("a", { href: "#/new", class: "button primary" }, t("navNew"))),
    form,
    list,
    pager,
  );

  const rows = new Map();
  const noticed = new Set(); // operations reported live that this page did not show
  let reload = null;

  async function load() {
    try {
      const page = await api("/api/v1/bulk-operations/history", {
        signal,
        query: {
          pageSize: PAGE_SIZE,
          page: filters.page,
          status: filters.status,
          operationType: filters.operationType,
          search: filters.search,
        },
      });
      draw(page);
    } catch (error) {
      if (!signal.aborted) notify(t("failedToLoad", { message: error.message }), "error");
    }
  }

  function draw(page) {
    rows.clear();
    if (!page.data.length) {
      list.replaceChildren(h("p", { class: "empty" }, t("noOperations")));
    } else {
      list.replaceChildren(
        table(
          t("navOperations"),
          [t("name"), t("type"), t("status"), t("progress"), t("counts"), t("created")],
          page.data.map((op) => row(op)),
          { class: "operations-table" },
        ),
      );
    }
    const pages = Math.max(1, Math.ceil(page.pagination.totalCount / PAGE_SIZE));
    pager.replaceChildren(
      h("button", { type: "button", disabled: filters.page <= 1, onclick: () => { filters.page -= 1; load(); } }, t("previous")),
      h("span", {}, t("page", { page: filters.page, pages })),
      h("button", { type: "button", disabled: !page.pagination.hasMore, onclick: () => { filters.page += 1; load(); } }, t("next")),
    );
  }

  function row(op) {
    const processed = op.successfulItems + op.failedItems + op.skippedItems;
    const percent = op.totalItems ? (processed / op.totalItems) * 100 : 0;
    const cells = {
      status: statusBadge(op.status, t(op.status)),
      bar: progressBar(percent, `${op.operationName}: ${t("progress")}`),
      counts: h("span", {}, countsText(op.successfulItems, op.failedItems, op.skippedItems)),
    };
    rows.set(op.operationId, cells);
    return [
      h("a", { href: `#/operations/${op.operationId}`, "data-operation": op.operationId }, op.operationName),
      t(op.operationType),
      cells.status,
      cells.bar,
      cells.counts,
      formatTime(op.createdAt),
    ];
  }

  function onUpdate(_, update) {
    const cells = rows.get(update.operationId);
    if (!cells) {
      // new to this page: reload once (it may be a new operation that belongs here)
      if (noticed.has(update.operationId)) return;
      noticed.add(update.operationId);
      if (!reload) reload = setTimeout(() => { reload = null; load(); }, 1000);
      return;
    }
    setProgress(cells.bar, update.progressPercentage);
    cells.status.replaceWith((cells.status = statusBadge(update.status, t(update.status))));
    cells.counts.textContent = countsText(update.successfulItems, update.failedItems, update.skippedItems);
  }

  signal.addEventListener("abort", () => clearTimeout(reload));
  load();
  follow("/api/v1/bulk-operations/events", onUpdate, signal);
}

export function countsText(succeeded, failed, skipped) {
  return `${formatNumber(succeeded)} / ${formatNumber(failed)} / ${formatNumber(skipped)}`;
}
