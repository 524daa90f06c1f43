// The dashboard: a hash router over views. Each view gets a container and an AbortSignal
// that fires when the user leaves it (its streams and timers stop with it).

import { formatTime, lang, setLang, t } from "./i18n.js";
import { forget, h, session } from "./lib.js";
import { viewAdmin } from "./views/admin.js";
import { viewDealers } from "./views/dealers.js";
import { viewNew } from "./views/new.js";
import { viewOperation } from "./views/operation.js";
import { viewOperations } from "./views/operations.js";
import { viewSignIn } from "./views/signin.js";
import { viewStatistics } from "./views/statistics.js";

const ROUTES = [
  [/^#\/signin$/, viewSignIn, false],
  [/^#\/operations$/, viewOperations, true],
  [/^#\/new$/, viewNew, true],
  [/^#\/operations\/([a-z]+_[0-9a-f]{32})$/, viewOperation, true],
  [/^#\/statistics$/, viewStatistics, true],
  [/^#\/dealers$/, viewDealers, true],
  [/^#\/admin$/, viewAdmin, true],
];

let leaving = new AbortController();

function navigation(current) {
  const me = session();
  const links = [
    ["#/operations", "navOperations"],
    ["#/new", "navNew"],
    ["#/statistics", "navStatistics"],
    ["#/dealers", "navDealers"],
  ];
  if (me?.isAdmin) links.push(["#/admin", "navAdmin"]);
  const nav = document.getElementById("nav");
  nav.replaceChildren(
    h(
      "ul",
      {},
      me
        ? links.map(([href, key]) =>
            h(
              "li",
              {},
              h("a", { href, "aria-current": current.startsWith(href) ? "page" : null }, t(key)),
            ),
          )
        : [],
    ),
  );
  const who = document.getElementById("who");
  who.replaceChildren(
    me
      ? h(
          "span",
          { class: "who", title: me.claims.exp ? formatTime(new Date(me.claims.exp * 1000)) : "" },
          me.isAdmin ? t("admin") : t("sponsor", { id: me.sponsorId }),
        )
      : "",
    h(
      "button",
      {
        type: "button",
        class: "link",
        lang: lang() === "tr" ? "en" : "tr",
        onclick: () => {
          setLang(lang() === "tr" ? "en" : "tr");
          render();
        },
      },
      t("language"),
    ),
    me
      ? h(
          "button",
          {
            type: "button",
            class: "link",
            onclick: () => {
              forget();
              location.hash = "#/signin";
            },
          },
          t("signOut"),
        )
      : "",
  );
}

function render() {
  leaving.abort();
  leaving = new AbortController();
  const hash = location.hash || "#/operations";
  const me = session();
  let match = null;
  let view = null;
  for (const [pattern, handler, needsSession] of ROUTES) {
    match = pattern.exec(hash);
    if (match) {
      view = needsSession && !me ? viewSignIn : handler;
      break;
    }
  }
  if (!view) {
    location.hash = me ? "#/operations" : "#/signin";
    return;
  }
  document.documentElement.lang = lang();
  document.title = t("appName");
  navigation(hash);
  document.getElementById("notices").replaceChildren();
  const main = document.getElementById("main");
  main.replaceChildren();
  view(main, { signal: leaving.signal, params: match.slice(1), session: me });
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", render);
setLang(lang());
render();
