// Runs before the first paint (a classic script in <head>): the theme is the one the
// reader chose on this device (localStorage, a display preference), else the system's.
// app.js owns the toggle and follows system changes.
(function applyTheme() {
  let chosen = null;
  try {
    chosen = localStorage.getItem("tmpmail.theme");
  } catch (_) {
    chosen = null;
  }
  const system = matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  document.documentElement.dataset.theme = chosen === "light" || chosen === "dark" ? chosen : system;
})();
