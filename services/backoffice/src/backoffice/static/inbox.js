// The department inbox: new, reopened and updated items appear without a reload. Served as a
// file because the pages' Content-Security-Policy allows no inline script. Progressive
// enhancement: without JavaScript the pages work as they are; with it, they follow the stream.
(function () {
  "use strict";
  // "Gebruik dit antwoord": with the answer form open, the earlier answer is copied into it
  // to adapt; without it (or without JavaScript) the link opens the form filled in.
  document.addEventListener("click", function (event) {
    var link = event.target && event.target.closest ? event.target.closest("a.gebruik") : null;
    var field = document.getElementById("antwoord");
    if (!link || !field) { return; }
    var source = document.getElementById(link.getAttribute("data-antwoord"));
    if (!source) { return; }
    event.preventDefault();
    field.value = source.textContent.trim();
    field.focus();
    var notice = document.getElementById("live");
    if (notice) { notice.textContent = "Het eerdere antwoord staat in het antwoordveld; pas het aan voor deze vraag."; }
  });
  var live = document.getElementById("live");
  if (!live || !window.kccLive || !window.EventSource || !window.fetch || !window.DOMParser) { return; }
  var shown = live.getAttribute("data-request"); // the item page: only its own updates count
  var words = {
    "request.routed": "nieuwe vraag",
    "request.reopened": "vraag heropend",
    "request.clarified": "nieuwe informatie van het KCC",
    "request.cancelled": "vraag ingetrokken door het KCC",
    "request.rated": "beoordeling van het KCC",
    "request.claimed": "vraag opgepakt",
    "request.released": "vraag terug in de wachtrij",
    "request.answered": "vraag beantwoord",
    "request.reroute_requested": "vraag doorgestuurd",
    "request.clarification_requested": "verduidelijking gevraagd"
  };
  var refreshes = 0;
  var pending = null;

  // Never replace a form someone has started to fill in: the notice's link will do.
  function edited() {
    var fields = document.querySelectorAll("main textarea, main select, main input[type=text]");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.tagName === "SELECT") {
        // Without a `selected` attribute the first option is the default one.
        var initial = 0;
        for (var j = 0; j < f.options.length; j++) {
          if (f.options[j].defaultSelected) { initial = j; }
        }
        if (f.selectedIndex !== initial) { return true; }
      } else if (f.value !== f.defaultValue) {
        return true;
      }
    }
    return false;
  }

  function announce(text, withLink) {
    live.textContent = text + " ";
    if (withLink) {
      var link = document.createElement("a");
      link.href = window.location.pathname + window.location.search;
      link.textContent = "Pagina vernieuwen";
      live.appendChild(link);
    }
  }

  // The page fetched again; the work region swapped in, keeping the keyboard focus where it
  // was (a button or link with the same id in the new list).
  function refresh(text) {
    var mine = ++refreshes;
    return fetch(window.location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        if (mine !== refreshes) { return; } // a later update's refresh shows the newest state
        if (edited()) { announce(text, true); return; } // typing began while fetching
        var doc = new DOMParser().parseFromString(html, "text/html");
        // The list (or the item) and, on the inbox, the counts in the switcher and filters.
        var parts = shown ? ["#werk", "#actie"] : ["#werk", "#bedankjes", "nav.tabs", "nav.snelfilters"];
        var active = document.activeElement;
        var focused = active && active !== document.body ? active.id : "";
        parts.forEach(function (selector) {
          var now = document.querySelector(selector), next = doc.querySelector(selector);
          if (now && next) { now.innerHTML = next.innerHTML; }
        });
        if (focused && document.activeElement !== active) {
          var again = document.getElementById(focused);
          if (again) { again.focus(); }
        }
        document.title = doc.title;
        announce(text, false);
      })
      .catch(function () { announce(text, true); });
  }

  window.kccLive.follow(live.getAttribute("data-stream"), function (message) {
    var update = JSON.parse(message.data);
    if (shown && update.request_id !== shown) { return; }
    var what = words[update.type] || "wijziging";
    var text = (shown ? "Nieuw bij deze vraag: " : "Nieuw in " + (update.departments || []).join(", ") + ": ") + what + ".";
    if (edited()) { announce(text, true); return; }
    // Several updates in a burst: one fetch after the last of them.
    if (pending) { clearTimeout(pending); }
    pending = setTimeout(function () { pending = null; refresh(text); }, 150);
  });
})();
