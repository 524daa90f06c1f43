// Submitting from the page: a code generation, or a link send to pasted recipients.

import { t } from "../i18n.js";
import { api, field, h, notify, select } from "../lib.js";

export function viewNew(main, { session }) {
  main.append(h("h1", {}, t("navNew")), codesForm(session), linksForm(session));
}

function codesForm() {
  const name = h("input", { name: "operationName", value: "Bulk Code Generation", maxlength: 200, required: true });
  const quantity = h("input", { name: "quantity", type: "number", min: 1, value: 1000, required: true });
  const tier = h("input", { name: "subscriptionTierId", type: "number", min: 1, max: 1000, value: 1, required: true });
  const batch = h("input", { name: "batchSize", type: "number", min: 1, max: 20000, value: 500, required: true });
  return h(
    "form",
    {
      class: "card",
      id: "codes-form",
      onsubmit: (event) =>
        submit(event, "/api/v1/bulk-operations/generate-codes", {
          operationName: name.value,
          subscriptionTierId: Number(tier.value),
          quantity: Number(quantity.value),
          processing: { batchSize: Number(batch.value) },
        }),
    },
    h("h2", {}, t("newCodes")),
    field("codes-name", t("operationName"), name),
    field("codes-quantity", t("quantity"), quantity),
    field("codes-tier", t("tier"), tier),
    field("codes-batch", t("batchSize"), batch),
    h("button", { type: "submit", class: "primary" }, t("submit")),
  );
}

function linksForm() {
  const name = h("input", { name: "operationName", value: "Link campaign", maxlength: 200, required: true });
  const channel = select("channel", [["SMS", "SMS"], ["WhatsApp", "WhatsApp"], ["Email", "E-mail"]], "SMS");
  const message = h("textarea", { name: "messageTemplate", rows: 3, required: true, maxlength: 1600 });
  message.value = "Merhaba {name}! {link}";
  const recipients = h("textarea", { name: "recipients", rows: 6, required: true, placeholder: "Ayşe Yılmaz, +905321234567" });
  const batch = h("input", { name: "batchSize", type: "number", min: 1, max: 1000, value: 100, required: true });
  return h(
    "form",
    {
      class: "card",
      id: "links-form",
      onsubmit: (event) =>
        submit(event, "/api/v1/bulk-operations/send-links", {
          operationName: name.value,
          channel: channel.value,
          messageTemplate: message.value,
          recipients: parseRecipients(recipients.value),
          processing: { batchSize: Number(batch.value) },
        }),
    },
    h("h2", {}, t("newLinks")),
    field("links-name", t("operationName"), name),
    field("links-channel", t("channel"), channel),
    field("links-message", t("messageTemplate"), message),
    field("links-recipients", t("recipients"), recipients),
    field("links-batch", t("batchSize"), batch),
    h("button", { type: "submit", class: "primary" }, t("submit")),
  );
}

function parseRecipients(text) {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [person, address = ""] = line.split(/[,;\t]/).map((part) => part.trim());
      return address.includes("@") ? { name: person, email: address } : { name: person, phoneNumber: address };
    });
}

async function submit(event, path, body) {
  event.preventDefault();
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const answer = await api(path, { method: "POST", body });
    notify(t("submitted", { id: answer.data.operationId }));
    location.hash = `#/operations/${answer.data.operationId}`;
  } catch (error) {
    const fields = (error.details?.errors || []).map((e) => `${e.field}: ${e.message}`);
    notify([error.message, ...fields.slice(0, 5)].join(" · "), "error");
  } finally {
    button.disabled = false;
  }
}
