// The agent desk (/balie): live updates through the stream; served as a file because the
// pages' Content-Security-Policy allows no inline script.
// Progressive enhancement: without JavaScript the page works; with it, changes show live.
(function () {
  if (!window.EventSource) { return; }
  // What the page hands over (no inline script: the Content-Security-Policy forbids it).
  var live = document.getElementById("live");
  var labels = JSON.parse(live.getAttribute("data-status-labels"));
  var events = JSON.parse(live.getAttribute("data-event-labels"));
  var page = document.getElementById("pagina");
  var refreshes = 0;
  // Never replace a form the agent has started to fill in: then the link below will do.
  function edited() {
    var fields = page.querySelectorAll("input, textarea, select");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.type === "checkbox" || f.type === "radio") {
        if (f.checked !== f.defaultChecked) { return true; }
      } else if (f.tagName === "SELECT") {
        for (var j = 0; j < f.options.length; j++) {
          if (f.options[j].selected !== f.options[j].defaultSelected) { return true; }
        }
      } else if (f.type !== "hidden" && f.value !== f.defaultValue) {
        return true;
      }
    }
    return false;
  }
  // The page of this request, fetched again: the answer, the question for the agent and the
  // rating form appear without a reload. Resolves to whether the page was replaced.
  function refresh() {
    var mine = ++refreshes;
    return fetch(window.location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("pagina");
        // A later update's refresh is under way: that one shows the newest state.
        if (mine !== refreshes || !fresh || edited()) { return mine !== refreshes; }
        page.innerHTML = fresh.innerHTML;
        return true;
      })
      .catch(function () { return false; });
  }
  var url = live.getAttribute("data-stream");
  var source = new EventSource(url);
  source.addEventListener("update", function (message) {
    var update = JSON.parse(message.data);
    var cells = document.querySelectorAll('[data-status-of="' + update.request_id + '"]');
    cells.forEach(function (cell) {
      cell.textContent = labels[update.status] || update.status;
      cell.className = "status status-" + update.status;
    });
    var shown = document.querySelector("[data-request]");
    var here = shown !== null && shown.getAttribute("data-request") === update.request_id;
    var known = cells.length > 0 || here;
    var what = events[update.entry.type] || update.entry.type;
    var message = (known ? "Nieuw bij je vraag: " : "Nieuw: ") + what + " (" + (labels[update.status] || update.status) + "). ";
    function show(replaced) {
      live.textContent = message;
      if (replaced) { return; }
      var link = document.createElement("a");
      link.href = here ? window.location.pathname : live.getAttribute("data-desk") + "/vragen/" + update.request_id;
      link.textContent = here ? "Pagina vernieuwen" : "Bekijk de vraag";
      live.appendChild(link);
    }
    if (here && !edited() && window.fetch && window.DOMParser) {
      refresh().then(show);
    } else {
      show(false);
    }
  });
})();
