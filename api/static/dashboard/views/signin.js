import { t } from "../i18n.js";
import { api, decodeClaims, field, h, notify, remember } from "../lib.js";

export function viewSignIn(main) {
  const input = h("textarea", { name: "token", rows: 4, required: true, autocomplete: "off", spellcheck: "false" });
  const form = h(
    "form",
    {
      class: "card narrow",
      onsubmit: async (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!decodeClaims(token)) {
          notify(t("badToken", { message: "not a JWT" }), "error");
          return;
        }
        try {
          await api("/api/v1/bulk-operations/history", { token, query: { pageSize: 1 } });
        } catch (error) {
          notify(t("badToken", { message: error.message }), "error");
          return;
        }
        remember(token);
        location.hash = "#/operations";
      },
    },
    h("h1", {}, t("signInTitle")),
    h("p", { class: "help" }, t("signInHelp")),
    field("token", t("token"), input),
    h("button", { type: "submit", class: "primary" }, t("signIn")),
  );
  main.append(form);
  input.focus();
}
