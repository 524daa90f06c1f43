// Across sponsors (Admin): the worker group's lag, dead letters, live operations by sponsor.

import { formatNumber, formatTime, t } from "../i18n.js";
import { api, h, notify, table } from "../lib.js";

export function viewAdmin(main, { signal, session }) {
  if (!session.isAdmin) {
    main.append(h("h1", {}, t("navAdmin")), h("p", { role: "alert" }, "403"));
    return;
  }
  const body = h("div", { "aria-live": "polite" }, t("loading"));
  main.append(h("h1", {}, t("adminTitle")), body);

  async function load() {
    try {
      const { data } = await api("/api/v1/admin/overview", { signal });
      const lag = data.consumerLag;
      body.replaceChildren(
        h("p", { class: "muted" }, t("asOf", { time: formatTime(data.asOf) })),
        h(
          "div",
          { class: "cards" },
          h("div", { class: "card stat", id: "lag-total" }, h("span", { class: "stat-label" }, t("consumerLag")), h("strong", {}, lag.probeOk ? t("lagTotal", { count: formatNumber(lag.totalLag) }) : t("probeDown"))),
          h("div", { class: "card stat", id: "dead-letters" }, h("span", { class: "stat-label" }, t("deadLetters")), h("strong", {}, data.deadLetters.retained === null ? "—" : formatNumber(data.deadLetters.retained))),
        ),
        table(t("liveOperations"), [t("type"), t("status"), t("count")], data.operations.map((o) => [t(o.operationType), t(o.status), formatNumber(o.count)])),
        table(t("sponsors"), [t("sponsors"), t("running"), t("inView")], data.sponsors.map((s) => [String(s.sponsorId), formatNumber(s.running), formatNumber(s.live)])),
        table(`${t("consumerLag")} (${lag.group})`, [t("topic"), t("partition"), t("lag")], lag.partitions.map((p) => [p.topic, String(p.partition), formatNumber(p.lag)])),
      );
    } catch (error) {
      if (!signal.aborted) notify(t("failedToLoad", { message: error.message }), "error");
    }
  }

  load();
  const timer = setInterval(load, 5000);
  signal.addEventListener("abort", () => clearInterval(timer));
}
