// Strings from the one catalogue (web/static/i18n/messages.json), in the page's language.
const lang = document.documentElement.lang === "en" ? "en" : "es";
const catalogue = await (await fetch(new URL("../i18n/messages.json", import.meta.url))).json();

export function t(key, values = {}) {
  const entry = catalogue[key];
  if (!entry) return key;
  return entry[lang].replace(/\{(\w+)\}/g, (_, name) => values[name] ?? "");
}
