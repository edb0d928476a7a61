
/* The live entry (anywidget): the same explorer, whose learned map is asked of the kernel through the widget's
 * synced traits `query` and `answer` (flowlib.explorer.LiveMixtureExplorer). Appended to mixture_explorer.js. */
function render({ model, el }) {
  var root = document.createElement("div"), data = document.createElement("script"), listeners = [];
  root.className = "flowlib-explorer";
  root.dataset.flowlibExplorer = "live";
  data.type = "application/json";
  data.className = "fx-data";
  data.textContent = JSON.stringify(model.get("payload"));
  root.appendChild(data);
  el.appendChild(root);
  function relay() { var reply = model.get("answer"); listeners.forEach(function (listener) { listener(reply); }); }
  model.on("change:answer", relay);
  flowlibMixtureExplorer(root, {
    ask: function (query) { model.set("query", query); model.save_changes(); },
    onAnswer: function (listener) { listeners.push(listener); },
  });
  return function () { model.off("change:answer", relay); };
}
export default { render };
