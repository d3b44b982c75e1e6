// The live streams of the desk and the inbox pages, followed the same way. Served by
// kcc_shared.web to every service's pages, before the page's own script.
(function () {
  "use strict";
  // A stream the server refused (429: this person's pages just left still hold their slots
  // for a second; 503: the process is full) is closed for good by the browser, where the
  // refusal asks to try again. Do so after a few seconds, from the last update this page
  // had, so nothing in between is missed.
  function follow(url, onUpdate) {
    var last = null;
    function connect() {
      var source = new EventSource(last === null ? url : url.replace(/last_event_id=\d*/, "last_event_id=" + last));
      source.addEventListener("update", function (message) {
        if (message.lastEventId) { last = message.lastEventId; }
        onUpdate(message);
      });
      source.addEventListener("error", function () {
        if (source.readyState === EventSource.CLOSED) { setTimeout(connect, 5000); }
      });
    }
    connect();
  }
  window.kccLive = {follow: follow};
})();
