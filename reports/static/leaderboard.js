/* attreval leaderboard: click a column header to sort the rows (best first, then the other way). */
(function () {
  "use strict";
  function sortValue(row, column, numeric) {
    const cell = row.cells[column];
    const raw = cell ? cell.dataset.sort : undefined;
    if (raw === undefined || raw === "") { return null; }
    return numeric ? Number(raw) : raw;
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      const body = table.tBodies[0];
      const headers = table.querySelectorAll("thead th[data-column]");
      headers.forEach(function (header) {
        header.querySelector("button.sort").addEventListener("click", function () {
          const column = Number(header.dataset.column);
          const numeric = header.dataset.type === "number";
          const current = header.getAttribute("aria-sort");
          const descending = current ? current === "ascending" : numeric && header.dataset.higher !== "false";
          const rows = Array.from(body.rows);
          const original = new Map(rows.map(function (row, position) { return [row, position]; }));
          rows.sort(function (a, b) {
            const left = sortValue(a, column, numeric), right = sortValue(b, column, numeric);
            if (left === null || right === null) {
              return left === right ? original.get(a) - original.get(b) : (left === null ? 1 : -1);
            }
            const compared = numeric ? left - right : String(left).localeCompare(String(right));
            return compared !== 0 ? (descending ? -compared : compared) : original.get(a) - original.get(b);
          });
          headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
          header.setAttribute("aria-sort", descending ? "descending" : "ascending");
          rows.forEach(function (row) { body.appendChild(row); });
        });
      });
    });
    document.documentElement.dataset.ready = "true";
  });
})();
