// The sponsor's (an Admin's: everyone's) figures, with charts drawn by Chart.js.

import { formatNumber, formatTime, t } from "../i18n.js";
import { api, h, notify, table } from "../lib.js";

const OUTCOME_COLOURS = ["#2da44e", "#bf8700", "#cf222e", "#6e7781"];
const BAR_COLOUR = "#1f6feb";

export async function viewStatistics(main, { signal }) {
  main.append(h("h1", {}, t("statisticsTitle")), h("p", { class: "muted" }, t("loading")));
  let stats;
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "Europe/Istanbul";
    stats = (await api("/api/v1/bulk-operations/statistics", { signal, query: { timeZone: zone } })).data;
  } catch (error) {
    if (!signal.aborted) notify(t("failedToLoad", { message: error.message }), "error");
    return;
  }
  const cards = [
    [t("totalOperations"), formatNumber(stats.total_operations)],
    [t("successRate"), `${stats.overall_success_rate}%`],
    [t("itemsProcessed"), formatNumber(stats.total_items_processed)],
    [t("totalCost"), stats.total_cost.toFixed(2)],
  ];
  const recent = stats.last_30_days;
  const busiest = stats.popular_times.slice().sort((a, b) => a.hour - b.hour); // the top hours
  const days = lastDays(stats.daily_last_30_days);
  main.replaceChildren(
    h("h1", {}, t("statisticsTitle")),
    h("p", { class: "muted" }, t("asOf", { time: formatTime(stats.as_of) })),
    h("div", { class: "cards" }, cards.map(([label, value]) => h("div", { class: "card stat" }, h("span", { class: "stat-label" }, label), h("strong", {}, value)))),
    h("h2", {}, t("last30")),
    h(
      "div",
      { class: "cards" },
      [
        [t("totalOperations"), formatNumber(recent.operations_count)],
        [t("linksSent"), formatNumber(recent.links_sent)],
        [t("codesGenerated"), formatNumber(recent.codes_generated)],
        [t("successRate"), `${recent.success_rate}%`],
      ].map(([label, value]) => h("div", { class: "card stat" }, h("span", { class: "stat-label" }, label), h("strong", {}, value))),
    ),
    h(
      "div",
      { class: "charts" },
      chart(t("perDay"), "bar", days.map((d) => d.date.slice(5)), days.map((d) => d.operations_count)),
      chart(t("outcomes"), "doughnut", [t("Completed"), t("PartiallyCompleted"), t("Failed"), t("Cancelled")], [
        stats.successful_operations,
        stats.partially_completed_operations,
        stats.failed_operations,
        stats.cancelled_operations,
      ]),
      chart(t("channels"), "bar", Object.keys(stats.channel_breakdown), Object.values(stats.channel_breakdown).map((c) => c.count)),
      chart(
        t("popularHours"),
        "bar",
        busiest.map((p) => `${String(p.hour).padStart(2, "0")}:00`),
        busiest.map((p) => p.operations),
      ),
      chart(
        t("successRate"),
        "bar",
        Object.keys(stats.channel_breakdown),
        Object.values(stats.channel_breakdown).map((c) => c.success_rate),
      ),
    ),
    table(
      t("channels"),
      [t("channel"), t("count"), t("successRate"), t("cost")],
      Object.entries(stats.channel_breakdown).map(([channel, c]) => [channel, formatNumber(c.count), `${c.success_rate}%`, c.cost.toFixed(2)]),
    ),
  );
}

/** The last 30 UTC days, oldest first, days without operations as zeros. */
function lastDays(daily) {
  const byDate = new Map(daily.map((d) => [d.date, d]));
  const today = new Date();
  return Array.from({ length: 30 }, (_, back) => {
    const day = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - 29 + back));
    const date = day.toISOString().slice(0, 10);
    return byDate.get(date) || { date, operations_count: 0 };
  });
}

/** A chart on a canvas, with the same figures as text for screen readers. */
function chart(title, type, labels, values) {
  const canvas = h("canvas", { role: "img", "aria-label": `${title}: ${labels.map((l, i) => `${l} ${values[i]}`).join(", ") || "—"}` });
  const figure = h("figure", { class: "card chart" }, h("figcaption", {}, title), canvas);
  requestAnimationFrame(() => {
    if (typeof Chart === "undefined") return;
    new Chart(canvas, {
      type,
      data: { labels, datasets: [{ label: title, data: values, backgroundColor: type === "doughnut" ? OUTCOME_COLOURS : BAR_COLOUR }] },
      options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { display: type === "doughnut" } } },
    });
  });
  return figure;
}
