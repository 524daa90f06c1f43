// Dealer invitations from Excel: the template, a drop zone, row errors, the reports.

import { formatTime, t } from "../i18n.js";
import { api, download, field, h, notify, select, statusBadge, table } from "../lib.js";

const DEALERS = "/api/v1/sponsorship/dealer";

export function viewDealers(main, { signal }) {
  const input = h("input", { type: "file", name: "file", accept: ".xlsx,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", required: true });
  const chosen = h("span", { class: "muted" });
  input.addEventListener("change", () => (chosen.textContent = input.files[0]?.name || ""));
  const zone = h(
    "div",
    {
      class: "dropzone",
      ondragover: (event) => { event.preventDefault(); zone.classList.add("over"); },
      ondragleave: () => zone.classList.remove("over"),
      ondrop: (event) => {
        event.preventDefault();
        zone.classList.remove("over");
        if (event.dataTransfer.files.length) {
          input.files = event.dataTransfer.files;
          chosen.textContent = input.files[0].name;
        }
      },
    },
    h("p", {}, t("dropFile")),
    field("dealer-file", t("chooseFile"), input),
    chosen,
  );
  const type = select("invitationType", [["Invite", "Invite"], ["AutoCreate", "AutoCreate"]], "Invite");
  const tier = select("defaultTier", ["S", "M", "L", "XL"].map((x) => [x, x]), "M");
  const count = h("input", { type: "number", name: "defaultCodeCount", min: 0, max: 100, value: 1 });
  const sms = h("input", { type: "checkbox", name: "sendSms", checked: true });
  const outcome = h("section", { "aria-live": "polite", id: "dealer-outcome" });
  const jobs = h("section", { "aria-labelledby": "jobs-title" });

  function formData() {
    const form = new FormData();
    form.append("file", input.files[0]);
    form.append("invitationType", type.value);
    form.append("defaultTier", tier.value);
    form.append("defaultCodeCount", count.value);
    form.append("sendSms", sms.checked ? "true" : "false");
    return form;
  }

  async function upload(event) {
    event.preventDefault();
    if (!input.files.length) return;
    try {
      const { data } = await api(`${DEALERS}/invite-bulk`, { method: "POST", form: formData() });
      const id = data.jobId;
      outcome.replaceChildren(
        h("p", { class: "notice info" }, t("jobQueued", { id }), " ", h("a", { href: `#/operations/${id}` }, id)),
        h("button", { type: "button", onclick: () => download(`${DEALERS}/bulk-status/${id}/report.xlsx`) }, t("jobReport")),
      );
      loadJobs();
    } catch (error) {
      const rows = error.details?.errors;
      if (!rows) {
        notify(error.message, "error");
        outcome.replaceChildren();
        return;
      }
      const heading = h("h2", { tabindex: "-1" }, t("rowErrors", { count: error.details.errorCount }));
      outcome.replaceChildren(
        heading,
        h(
          "button",
          { type: "button", onclick: () => download(`${DEALERS}/invite-bulk?errorReport=xlsx`, { method: "POST", form: formData(), fallbackName: "dealer-invitation-errors.xlsx" }) },
          t("errorReport"),
        ),
        table(t("rowErrors", { count: error.details.errorCount }), [t("row"), t("column"), t("error"), t("value")], rows.map((r) => [r.row, r.column, r.error, r.value]), { class: "row-errors captioned-above" }),
      );
      heading.focus();
    }
  }

  async function loadJobs() {
    try {
      const { data } = await api(`${DEALERS}/bulk-history`, { signal });
      jobs.replaceChildren(
        h("h2", { id: "jobs-title" }, t("recentJobs")),
        table(
          t("recentJobs"),
          [t("name"), t("status"), t("total"), t("failed"), t("created")],
          data.jobs.map((job) => [
            h("a", { href: `#/operations/${job.jobId}` }, job.jobId),
            statusBadge(job.status, t(job.status)),
            String(job.totalDealers),
            String(job.failedInvitations),
            formatTime(job.createdDate),
          ]),
        ),
      );
    } catch (error) {
      if (!signal.aborted) notify(t("failedToLoad", { message: error.message }), "error");
    }
  }

  main.append(
    h("h1", {}, t("dealersTitle")),
    h("p", {}, h("button", { type: "button", onclick: () => download(`${DEALERS}/invite-bulk/template.xlsx`) }, t("template"))),
    h(
      "form",
      { class: "card", id: "dealer-form", onsubmit: upload },
      zone,
      field("dealer-type", t("invitationType"), type),
      field("dealer-tier", t("defaultTier"), tier),
      field("dealer-count", t("defaultCodeCount"), count),
      h("div", { class: "field inline" }, sms, h("label", { for: "dealer-sms" }, t("sendSms"))),
      h("button", { type: "submit", class: "primary" }, t("upload")),
    ),
    outcome,
    jobs,
  );
  sms.id = "dealer-sms";
  loadJobs();
}
