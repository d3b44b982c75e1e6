// The desk of the KCC-medewerker (/balie): served as a file because the pages'
// Content-Security-Policy allows no inline script.
// Progressive enhancement: without JavaScript every page works (forms post, links lead);
// with it the error summary takes the focus, a lost connection keeps the typed question, and
// changes (a department's question back, an answer) show live.
(function () {
  var live = document.getElementById("live");
  var page = document.getElementById("pagina");
  if (!live || !page) { return; }

  // -- the error summary (GOV.UK / NL Design System pattern) -------------------------------
  function focusSummary() {
    var summary = document.getElementById("foutoverzicht");
    if (!summary) { return; }
    summary.focus();
    // To the top of the window, rounded down: a fraction of a pixel must not cut off its border.
    window.scrollTo(0, Math.floor(window.scrollY + summary.getBoundingClientRect().top));
  }
  focusSummary();
  // A link in the summary moves the focus to its field (an anchor alone only scrolls), with
  // the field's label in view.
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest(".foutoverzicht a[href^='#']") : null;
    if (!link) { return; }
    var field = document.getElementById(link.getAttribute("href").slice(1));
    if (!field) { return; }
    event.preventDefault();
    var label = document.querySelector("label[for='" + field.id + "']");
    (label || field).scrollIntoView({block: "start"});
    field.focus({preventScroll: true});
  });

  // -- filing: a network failure keeps the question ----------------------------------------
  // The form is sent with fetch; the server answers as it does without script (a redirect to
  // the question, or the form again with the error summary). Only when nothing came back does
  // the page stay as it is, with the text, and say what happened. The form's idempotency key
  // makes sending it again safe: a question that did arrive is filed once.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "nieuwe-vraag" || !window.fetch || !window.FormData) { return; }
    // "Zoek eerdere antwoorden" and "Hiermee is de vraag beantwoord" go where they say, as
    // without script (the form travels with them, so nothing typed is lost).
    if (event.submitter && event.submitter.hasAttribute("formaction")) { return; }
    event.preventDefault();
    var notice = document.getElementById("verzendfout");
    var button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; }
    if (notice) { notice.hidden = true; notice.textContent = ""; }
    fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin"})
      .then(function (response) {
        return response.text().then(function (text) {
          // What a browser without script would show: the question filed (after the
          // redirect, with its message) or the form again with the error summary.
          var fresh = new DOMParser().parseFromString(text, "text/html");
          var content = fresh.getElementById("pagina");
          // A refusal or an outage that is not the form again (Geen toegang, Even niet
          // bereikbaar) leaves the form as it is, with what was typed.
          if (!content || (!response.ok && !fresh.getElementById("nieuwe-vraag"))) {
            throw {status: response.status};
          }
          page.innerHTML = content.innerHTML;
          var messages = document.getElementById("meldingen");
          var freshMessages = fresh.getElementById("meldingen");
          if (messages && freshMessages) { messages.innerHTML = freshMessages.innerHTML; }
          document.title = fresh.title;
          if (response.redirected) {
            window.history.pushState(null, "", response.url);
            var first = messages && messages.firstElementChild;
            window.scrollTo(0, 0);
            if (first) { first.focus(); }
          }
          focusSummary();
        });
      })
      .catch(function (problem) {
        if (button) { button.disabled = false; }
        if (!notice) { return; }
        notice.textContent = problem && problem.status
          ? "Je vraag is niet verstuurd: de server gaf een fout (" + problem.status + "). " +
            "Wat je typte staat er nog. Probeer het zo nog eens."
          : "Je vraag is niet verstuurd: er is geen verbinding met de server. Wat je typte " +
            "staat er nog. Controleer de verbinding en klik nog eens op Vraag versturen.";
        notice.hidden = false;
        notice.setAttribute("tabindex", "-1");
        notice.focus();
      });
  });

  // -- earlier answers while typing --------------------------------------------------------
  // A pause in typing asks the server for the reusable answers most like the question (the
  // same page the "Zoek eerdere antwoorden" button shows, so both say the same), and the
  // number found is announced. A failed look-up changes nothing: the button still works.
  (function () {
    var form = document.getElementById("nieuwe-vraag");
    var box = document.getElementById("eerder");
    var said = document.getElementById("eerder-aantal");
    var field = document.getElementById("question");
    if (!form || !box || !said || !field || !window.fetch || !window.FormData || !window.DOMParser) {
      return;
    }
    var timer = null;
    var asked = 0;
    var last = field.value.trim();
    function lookUp() {
      var text = field.value.trim();
      if (text.length < 10 || text === last) { return; }
      last = text;
      var mine = ++asked;
      fetch(box.getAttribute("data-search"), {
        method: "POST", body: new FormData(form), credentials: "same-origin"
      })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          // An answer to an older question came after a newer one's: the newer one counts.
          if (mine !== asked) { return; }
          var fresh = new DOMParser().parseFromString(html, "text/html");
          var next = fresh.getElementById("eerder");
          var count = fresh.getElementById("eerder-aantal");
          if (!next) { return; }
          box.innerHTML = next.innerHTML;
          box.hidden = false;
          var text = count ? count.textContent : "";
          // Said again only when it changed: a screen reader is not told the same at every pause.
          if (text !== said.textContent) { said.textContent = text; }
        })
        .catch(function () { last = ""; });
    }
    field.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(lookUp, 400);
    });
  })();

  // Back after a question was filed in place: show that page as it is now.
  window.addEventListener("popstate", function () { window.location.reload(); });

  // -- live updates ------------------------------------------------------------------------
  if (!window.EventSource || !window.kccLive) { return; }
  var labels = JSON.parse(live.getAttribute("data-status-labels"));
  var events = JSON.parse(live.getAttribute("data-event-labels"));
  var waiting = parseInt(live.getAttribute("data-action-count"), 10) || 0;
  var refreshes = 0;
  // Never replace a form the KCC-medewerker has started to fill in: then the link will do.
  function edited(root) {
    var fields = root.querySelectorAll("input, textarea, select");
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
  function swap(fresh, id) {
    var now = document.getElementById(id);
    var next = fresh.getElementById(id);
    if (now && next && !edited(now)) { now.innerHTML = next.innerHTML; }
  }
  // This page fetched again: the count of questions waiting for the KCC (title, header, the
  // "Actie nodig" group and the list) always; the whole question page when it is this one.
  // Resolves to whether the question page was replaced.
  function refresh(here) {
    var mine = ++refreshes;
    return fetch(window.location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (text) {
        // A later update's refresh is under way: that one shows the newest state.
        if (mine !== refreshes) { return true; }
        var fresh = new DOMParser().parseFromString(text, "text/html");
        document.title = fresh.title;
        swap(fresh, "actie-teller");
        var count = fresh.getElementById("live");
        var before = waiting;
        waiting = count ? parseInt(count.getAttribute("data-action-count"), 10) || 0 : waiting;
        var replaced = false;
        var content = fresh.getElementById("pagina");
        if (here && content && !edited(page)) {
          page.innerHTML = content.innerHTML;
          replaced = true;
        } else {
          swap(fresh, "actie");
          swap(fresh, "lijst");
        }
        return {replaced: replaced, more: waiting > before};
      })
      .catch(function () { return {replaced: false, more: false}; });
  }
  window.kccLive.follow(live.getAttribute("data-stream"), function (message) {
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
    var text = (known ? "Nieuw bij je vraag: " : "Nieuw: ") + what + " (" + (labels[update.status] || update.status) + "). ";
    function show(outcome) {
      live.textContent = outcome.more
        ? "Actie nodig: een afdeling heeft een vraag aan het KCC. " + waiting +
          (waiting === 1 ? " vraag wacht" : " vragen wachten") + " op jou. "
        : text;
      if (outcome.replaced) { return; }
      var link = document.createElement("a");
      link.href = here ? window.location.pathname : live.getAttribute("data-desk") + "/vragen/" + update.request_id;
      link.textContent = here ? "Pagina vernieuwen" : "Bekijk de vraag";
      live.appendChild(link);
    }
    if (window.fetch && window.DOMParser) {
      refresh(here).then(show);
    } else {
      show({replaced: false, more: false});
    }
  });
})();
