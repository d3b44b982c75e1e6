// Sortable tables on the SLA overview: progressive enhancement. Without this script every
// sortable column header is a link that sorts on the server (?sorteer=...&volgorde=...); with it
// the header becomes a button that sorts the rows in place, by mouse or keyboard (Enter, Space),
// sets aria-sort and says what happened in a live region. A static file: the pages'
// Content-Security-Policy allows no inline script.
(function () {
  "use strict";

  function valueOf(row, index) {
    var cell = row.children[index];
    var raw = cell ? cell.getAttribute("data-waarde") : "";
    return raw === null ? "" : raw;
  }

  function compare(a, b) {
    // Empty (no data) always last, whatever the direction: handled by the caller.
    var x = Number(a), y = Number(b);
    if (!isNaN(x) && !isNaN(y)) { return x - y; }
    return a.localeCompare(b, "nl", { sensitivity: "base" });
  }

  function sortTable(table, header, status) {
    var headers = Array.prototype.slice.call(header.parentNode.children);
    var index = headers.indexOf(header);
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var a = valueOf(r1, index), b = valueOf(r2, index);
      if (a === "" || b === "") { return (a === "") - (b === ""); }
      var order = compare(a, b);
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    headers.forEach(function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var label = header.textContent.replace(/\s+/g, " ").trim();
    status.textContent = "Gesorteerd op " + label + ", " + (ascending ? "oplopend" : "aflopend") + ".";
    if (table.id === "afdelingen" && window.history && window.history.replaceState) {
      var url = new URL(window.location.href);
      url.searchParams.set("sorteer", header.getAttribute("data-sorteer"));
      url.searchParams.set("volgorde", ascending ? "oplopend" : "aflopend");
      window.history.replaceState(null, "", url.toString());
    }
  }

  function enhance(table) {
    var status = document.createElement("p");
    status.className = "sorteerstatus";
    status.setAttribute("role", "status");
    table.parentNode.insertBefore(status, table.nextSibling);
    var headers = table.querySelectorAll("thead th[data-sorteer]");
    Array.prototype.forEach.call(headers, function (header) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sorteerknop";
      button.textContent = header.textContent.replace(/\s+/g, " ").trim();
      header.textContent = "";
      header.appendChild(button);
      button.addEventListener("click", function () { sortTable(table, header, status); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sorteerbaar"), enhance);
  });
})();
