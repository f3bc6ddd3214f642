(function () {
  "use strict";
  var table = document.getElementById("candidates");
  var body = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);

  function value(row, i) {
    var cell = row.cells[i];
    return cell ? cell.getAttribute("data-v") : "";
  }

  // Sort the rows by column `col` ("asc" or "desc"); empty cells last, ties in proposal order.
  function sortBy(col, dir) {
    var idx = -1;
    heads.forEach(function (th, i) { if (th.getAttribute("data-col") === col) { idx = i; } });
    if (idx < 0) { return false; }
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = rows.every(function (r) { var v = value(r, idx); return v === "" || !isNaN(Number(v)); });
    rows.sort(function (a, b) {
      var va = value(a, idx), vb = value(b, idx);
      var order = Number(a.getAttribute("data-index")) - Number(b.getAttribute("data-index"));
      if (va === "" || vb === "") { return va === vb ? order : (va === "" ? 1 : -1); }
      var c = numeric ? Number(va) - Number(vb) : va.localeCompare(vb);
      if (c === 0) { return order; }
      return dir === "desc" ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    heads.forEach(function (th, i) {
      th.setAttribute("aria-sort", i === idx ? (dir === "desc" ? "descending" : "ascending") : "none");
    });
    table.setAttribute("data-sorted-by", col + "," + dir);
    return true;
  }

  heads.forEach(function (th) {
    th.addEventListener("click", function () {
      var col = th.getAttribute("data-col");
      var dir = th.getAttribute("aria-sort") === "ascending" ? "desc" : "asc";
      if (sortBy(col, dir) && window.history && history.replaceState) {
        history.replaceState(null, "", "#sort=" + encodeURIComponent(col) + "," + dir);
      }
    });
  });

  // Point <-> row: hovering one highlights the other; clicking a point scrolls to its row.
  function mark(id, on) {
    var sel = '[data-id="' + String(id).replace(/["\\]/g, "\\$&") + '"]';
    Array.prototype.forEach.call(document.querySelectorAll(sel), function (el) {
      el.classList.toggle("hl", on);
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("svg .pt, #candidates tbody tr"), function (el) {
    var id = el.getAttribute("data-id");
    el.addEventListener("mouseenter", function () { mark(id, true); });
    el.addEventListener("mouseleave", function () { mark(id, false); });
    if (el.tagName.toLowerCase() === "g") {
      el.addEventListener("click", function () {
        var row = body.querySelector('tr[data-id="' + id + '"]');
        if (row) { row.scrollIntoView({ block: "center" }); }
      });
    }
  });

  var match = /^#sort=([^,]+),(asc|desc)$/.exec(window.location.hash);
  if (match) { sortBy(decodeURIComponent(match[1]), match[2]); }
  var plotted = document.querySelectorAll("svg .pt").length;
  document.documentElement.setAttribute("data-report-ready", String(plotted));
})();
